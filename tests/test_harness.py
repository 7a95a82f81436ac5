"""The test suite's own configuration (``tests/conftest.py``)."""
import os
import pathlib
import subprocess
import sys

import pytest

TESTS = pathlib.Path(__file__).parent


@pytest.mark.parametrize("workers", [None, "2"], ids=["one process", "xdist"])
def test_a_failure_is_named_when_it_happens(tmp_path, workers):
    """A failing test is named on its own line as soon as it fails, before pytest's summary,
    so a run stopped by a time limit still says which tests failed; a passing one is not.
    Under xdist the controller names it, where the progress is printed."""
    if workers:
        pytest.importorskip("xdist")
    (tmp_path / "test_sample.py").write_text(
        "def test_passes():\n    assert True\n\n\ndef test_fails():\n    assert False\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(TESTS), str(TESTS.parent), os.environ.get("PYTHONPATH", "")]))
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "conftest",
         "--rootdir", str(tmp_path), "-c", os.devnull, str(tmp_path / "test_sample.py")]
        + (["-n", workers] if workers else []),
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert run.returncode == 1, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    named = lines.index("FAILED (call) test_sample.py::test_fails")
    assert lines.count(lines[named]) == 1  # once: not by the worker as well
    summary = next(i for i, line in enumerate(lines) if "FAILURES" in line)
    assert named < summary
    assert not any("test_passes" in line for line in lines)
