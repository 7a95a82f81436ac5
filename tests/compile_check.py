"""Compile every kernel the ops launch, for an NVIDIA GPU, on a machine without one.

    python tests/compile_check.py [--dtype float32 ...]

Triton's interpreter runs code that its compiler rejects, so a CPU-only run of the suite cannot
see a kernel that does not compile. Here the library is imported with ``TRITON_INTERPRET=0``, a
stand-in driver reports an sm_90 GPU, and each launch (and each kernel loaded ahead of its
launch) is replaced by ``JITFunction.warmup``, which binds, specializes and compiles (to PTX and
cubin, with the ptxas Triton ships) without launching. Every registered op's sample calls of
each ``--dtype`` go through the op's full path on CPU tensors (only their dtypes, shapes and
alignment matter to a compilation). Prints one JSON line: the compilations made and the
compilation errors by op; exits 1 on any error.
"""
import argparse
import json
import os
import pathlib
import sys

os.environ["TRITON_INTERPRET"] = "0"  # before triton or the library is imported
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))  # the benchmarks

import torch  # noqa: E402
import triton  # noqa: E402

from benchmarks.instructions import StandInDriver as _StandInDriver  # noqa: E402


def _root_cause(exc):
    """The innermost error behind a compilation error, on one line."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:300]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python tests/compile_check.py")
    parser.add_argument("--dtype", action="append", default=[])
    args = parser.parse_args(argv)
    dtypes = [getattr(torch, d) for d in args.dtype or ["float32"]]
    triton.runtime.driver.set_active(_StandInDriver())

    import flaggems_exp
    from flaggems_exp import REGISTRY, testing
    from flaggems_exp.runtime import launch

    assert not flaggems_exp.runtime.device.INTERPRETED
    compiled, failures = [], []

    def compile_only(kernel, grid, kernel_args, options):
        # any failure inside Triton's compilation is the kernel's (a CompilationError, or a
        # RuntimeError of its dependency checks): kept here, where it happens, so that the op's
        # own rejections below (PyTorch's checks, raised before any launch) stay apart
        try:
            compiled.append(kernel.warmup(*kernel_args, grid=grid, **options))
        except Exception as exc:
            failures.append(exc)
            raise

    launch.run_kernel = compile_only
    launch.load_kernel = compile_only  # a kernel loaded ahead of its launch is compiled there
    errors = {}
    for op in dict.fromkeys(REGISTRY.values()):
        for dtype in dtypes:
            try:
                calls = testing.sample_calls(op, dtype)
            except Exception:  # noqa: BLE001 - no sample of this dtype
                continue
            for call in calls:
                failures.clear()
                try:
                    op.call(call.args, call.kwargs, call.kwargs.get("out"))
                except Exception:  # noqa: BLE001 - PyTorch's own rejections, and checks of
                    if failures:   # the kernels' device that CPU tensors fail, are no errors
                        errors.setdefault(op.name, _root_cause(failures[0]))
    print(json.dumps({"compiled": len(compiled), "errors": errors}))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
