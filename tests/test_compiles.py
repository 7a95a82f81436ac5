"""Every kernel the ops launch compiles for the GPU, checked on a CPU-only machine (see
``compile_check.py``): the interpreter runs code that Triton's compiler rejects."""
import json
import os
import pathlib
import subprocess
import sys

import pytest

import flaggems_exp

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.mark.skipif(flaggems_exp.device == "cuda",
                    reason="on a GPU the whole suite runs compiled")
def test_every_kernel_compiles_for_the_gpu():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    done = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "compile_check.py"), "--dtype", "float32",
         "--dtype", "float16", "--dtype", "int32"],
        capture_output=True, text=True, timeout=1200, env=env)
    assert done.stdout.strip(), done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["errors"] == {}
    assert summary["compiled"] > 300, summary  # the ops' launches did reach the compiler
    assert done.returncode == 0, done.stderr[-3000:]
