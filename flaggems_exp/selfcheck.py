"""Self-check: run every registered op on this machine against PyTorch.

    python -m flaggems_exp                       # every op, float16 / bfloat16 / float32
    python -m flaggems_exp --op sigmoid --op hypot --dtype float32
    python -m flaggems_exp --family InplaceOp

Each distinct op (in-place forms included) runs on ``flaggems_exp.device``: the GPU when there
is one, else the CPU through Triton's interpreter. Its calls come from ``flaggems_exp.testing``
and are judged as the test suite judges them: where PyTorch raises, ours must raise the same
error; otherwise the values must match PyTorch's float64 reference within tolerance.
The exit status is 1 when any op fails.
"""
import argparse
import sys
import time
import warnings

import torch
import triton

import flaggems_exp
from flaggems_exp import REGISTRY, testing

DEFAULT_DTYPES = ("float16", "bfloat16", "float32")


def check_op(op, dtypes):
    """(number of calls, None or the first failure) for ``op`` over ``dtypes``."""
    gen = torch.Generator().manual_seed(0)
    cases = 0
    for dtype in dtypes:
        for call in testing.sample_calls(op, dtype, generator=gen):
            cases += 1
            try:
                testing.check_call(op, call)
            except Exception as exc:  # noqa: BLE001 - report it, go on with the next op
                first_line = (str(exc).strip().splitlines() or [""])[0]
                return cases, f"{dtype} {call.label}: {type(exc).__name__}: {first_line}"
    return cases, None


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m flaggems_exp", description=__doc__.split("\n")[0])
    parser.add_argument("--op", action="append", default=[], metavar="NAME",
                        help="an op name or alias (repeatable); default: every op")
    parser.add_argument("--family", help="only ops of this family (e.g. PointwiseOp, InplaceOp)")
    parser.add_argument("--dtype", action="append", default=[], metavar="DTYPE",
                        help=f"a dtype name (repeatable); default: {', '.join(DEFAULT_DTYPES)}")
    args = parser.parse_args(argv)
    unknown = [n for n in args.op if n not in REGISTRY]
    if unknown:
        parser.error(f"unknown op(s): {', '.join(unknown)}")
    dtypes = [getattr(torch, d, None) for d in args.dtype or DEFAULT_DTYPES]
    if not all(isinstance(d, torch.dtype) for d in dtypes):
        parser.error(f"unknown dtype in {args.dtype}")
    ops = ([REGISTRY[n] for n in args.op] if args.op
           else list(dict.fromkeys(REGISTRY.values())))
    if args.family:
        ops = [op for op in ops if args.family in (op.family, testing.twin(op).family)]
    return list(dict.fromkeys(ops)), dtypes


def main(argv=None):
    ops, dtypes = parse_args(argv)
    # the interpreter computes in numpy, which warns on the inf/NaN that the checks feed on purpose
    warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"triton\.")
    print(f"flaggems_exp {flaggems_exp.__version__} on {flaggems_exp.device} "
          f"(torch {torch.__version__}, triton {triton.__version__}); dtypes: "
          + ", ".join(str(d).removeprefix("torch.") for d in dtypes))
    print(f"{'op':<28} {'family':<12} {'cases':>5}  {'result':<10} {'ms':>8}")
    passed, failed = 0, 0
    for op in ops:
        start = time.perf_counter()
        cases, failure = check_op(op, dtypes)
        ms = (time.perf_counter() - start) * 1e3
        passed, failed = passed + (failure is None), failed + (failure is not None)
        print(f"{op.name:<28} {op.family:<12} {cases:>5}  {'FAIL' if failure else 'pass':<10} {ms:>8.1f}")
        if failure:
            print(f"    {failure}")
    print(f"{len(ops)} ops: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
