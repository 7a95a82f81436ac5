"""Where a planned call's host time goes: the parts of one op's replay, timed one by one; and
what the first call of a signature costs.

    python -m benchmarks.host_parts --op sigmoid --op mul --dtype float16 [--calls 20000]
    TRITON_CACHE_DIR=$(mktemp -d) python -m benchmarks.host_parts --first-call --op sigmoid ...
    python -m benchmarks.host_parts --floor

For the runner's S case of each op: PyTorch's call, ours, and the parts of ours — the signature
key, the plan lookup, the plan's matcher (which spares both on a repeated signature), the
replay, each allocation it makes and each launch through the compiled kernel's own launcher
with its arguments already built. Each figure is the median of five loops
of ``--calls`` back-to-back calls and one synchronize (µs per call). Needs a GPU: the parts are
those of the compiled launch. ``--first-call`` times instead, per op, its first call in the
process (Triton's compilation included unless its cache already holds the kernel: point
``TRITON_CACHE_DIR`` at an empty folder), the full path of a signature whose kernel is compiled
(the plans dropped first: every check, the recording and the plan's construction) and a hit.
``--floor`` times what any Python op library pays per call on this machine, whatever its code:
PyTorch's own ``torch.sigmoid`` (the bar), an allocation from Python, the dispatcher's call into
a Python kernel registered with ``torch.library`` (one returning a ready tensor), and the launch
of a minimal compiled Triton kernel through its own launcher.
"""
import argparse
import statistics
import time

import functools
import warnings

import torch
import triton
import triton.language as tl

import flaggems_exp
from flaggems_exp import REGISTRY
from flaggems_exp.runtime import launch as launching
from flaggems_exp.runtime import plans
from flaggems_exp.runtime.triton_types import encode_scalar

from . import cases


def per_call(fn, calls):
    for _ in range(50):
        fn()
    torch.cuda.synchronize()
    loops = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()
        loops.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(loops)


def parts(op, dtype, calls):
    """[(part, µs per call)] of ``op``'s S case in ``dtype``."""
    baseline, args, kwargs = cases.runner_inputs(op, dtype, "S", "cuda")
    op.plans.clear()
    op(*args, **kwargs)
    key, tensors, pointers = op.signature(args, kwargs, None)
    plan = op.plans.get(key)
    rows = [("PyTorch", per_call(lambda: baseline.fn(*args, **kwargs), calls)),
            ("ours", per_call(lambda: op(*args, **kwargs), calls))]
    if plan is None:
        return rows + [("(not planned)", float("nan"))]
    rows += [("signature key", per_call(lambda: op.signature(
                 args, kwargs, None), calls)),
             ("plan lookup", per_call(lambda: op.plans.get(key), calls)),
             ("signature matcher (instead of key and lookup)", per_call(
                 lambda: plan.matches(args, kwargs, None), calls) if plan.matches else float("nan")),
             ("replay", per_call(lambda: plan.replay(args, kwargs, tensors, pointers), calls))]
    news = []
    for j, allocate in enumerate(plan.allocations):
        rows.append((f"allocation {j}", per_call(allocate, calls)))
        news.append(allocate())
    bases = tensors + news
    stream = launching.current_stream(plan.device_index)
    for k, launch in enumerate(plan.launches):
        if launch.direct is None:
            continue
        raw, grid, fixed = launch.direct
        values = list(launch.values)
        for slot, base, offset in launch.pointers:
            values[slot] = bases[base].data_ptr() + offset
        for slot, (where, name), compute in launch.numbers:
            source = args if where == "args" else kwargs
            values[slot] = encode_scalar(source[name], compute)
        rows.append((f"launch {k} ({launch.kernel.__name__}, {len(values)} arguments)",
                     per_call(lambda: raw(*grid, stream, *fixed, *values), calls)))
    return rows


@triton.jit
def _copy_kernel(out_ptr, in_ptr, numel, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < numel
    tl.store(out_ptr + offsets, tl.load(in_ptr + offsets, mask=mask), mask=mask)


def floor(calls):
    """[(part, µs per call)]: the per-call costs no Python op library avoids (``--floor``)."""
    x = torch.randn(4096, device="cuda", dtype=torch.float16)
    ready = torch.empty_like(x)
    rows = [("torch.sigmoid (PyTorch eager)", per_call(lambda: torch.sigmoid(x), calls)),
            ("torch.empty_strided, arguments bound", per_call(functools.partial(
                torch.empty_strided, (4096,), (1,), dtype=x.dtype, device=x.device), calls))]
    library = torch.library.Library("aten", "IMPL")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*[Oo]verrid")
            library.impl("sigmoid", lambda self: ready, "CUDA")
        rows.append(("torch.sigmoid into a Python kernel returning a ready tensor",
                     per_call(lambda: torch.sigmoid(x), calls)))
    finally:
        library._destroy()
    args = (ready, x, x.numel())
    recorded = launching.Recorded("floor", _copy_kernel, (4,), args, {"BLOCK": 1024},
                                  launching.run_kernel(_copy_kernel, (4,), args, {"BLOCK": 1024}))
    direct = launching.direct_launcher(recorded)
    if direct is not None:
        raw, grid, fixed = direct
        values = (ready.data_ptr(), x.data_ptr(), x.numel(), 1024)
        stream = launching.current_stream(x.device.index)
        rows.append(("launch of a 3-argument kernel, its own launcher",
                     per_call(lambda: raw(*grid, stream, *fixed, *values), calls)))
    return rows


def _once(fn):
    torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) * 1e6


def first_call(op, dtype):
    """(first call ms, new signature µs, hit µs) of ``op``'s S case in ``dtype``."""
    _, args, kwargs = cases.runner_inputs(op, dtype, "S", "cuda")
    first = _once(lambda: op(*args, **kwargs))
    new = []
    for _ in range(5):
        op.plans.clear()
        new.append(_once(lambda: op(*args, **kwargs)))
    hits = [_once(lambda: op(*args, **kwargs)) for _ in range(21)]
    return first / 1e3, statistics.median(new), statistics.median(hits)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.host_parts")
    parser.add_argument("--op", action="append", default=[])
    parser.add_argument("--dtype", default="float16")
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--first-call", action="store_true")
    parser.add_argument("--floor", action="store_true")
    args = parser.parse_args(argv)
    if not args.op and not args.floor:
        parser.error("name at least one --op, or --floor")
    if flaggems_exp.device != "cuda":
        raise SystemExit("host_parts needs a CUDA device: it times the compiled launch")
    if args.first_call:
        print("| op | family | first call ms | new signature µs | hit µs |")
        print("| --- | --- | --- | --- | --- |")
        for name in args.op:
            op = REGISTRY[name]
            times = first_call(op, getattr(torch, args.dtype))
            print(f"| {name} | {op.family} | {times[0]:.0f} | {times[1]:.0f} | {times[2]:.0f} |",
                  flush=True)
        return
    if args.floor:
        print("\n| per-call floor (float16, 4096 elements) | µs per call |\n| --- | --- |")
        for part, us in floor(args.calls):
            print(f"| {part} | {us:.2f} |", flush=True)
    for name in args.op:
        print(f"\n| {name} ({args.dtype}) | µs per call |\n| --- | --- |")
        for part, us in parts(REGISTRY[name], getattr(torch, args.dtype), args.calls):
            print(f"| {part} | {us:.2f} |", flush=True)


if __name__ == "__main__":
    main()
