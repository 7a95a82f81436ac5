"""How much of a case's measured kernel time is host time, and where that host time goes.

    python -m benchmarks.host_bound --op sigmoid --op diag --size S --size M [--profile]

Each op is timed as the runner times it (``timing.bench``), then again with the GPU held
busy before every timed call (a device sleep queued ahead of the L2 flush): the CPU then
enqueues the call before the GPU reaches it, so the second time is the kernel's alone. The
difference is launch cost that spilled into the first. ``--profile`` adds the functions
that take the host time of 2,000 direct calls at the op's first size (cProfile, by own time).
"""
import argparse
import cProfile
import io
import pstats

import torch

import flaggems_exp
from flaggems_exp import REGISTRY

from . import cases, providers, timing

_PAD_US = 300  # longer than any host path measured (about 160 µs at most)
_PAD_CYCLES = _PAD_US * 2000  # at least _PAD_US at any clock up to 2 GHz


def _padded(fn):
    return timing.bench(fn, lambda: torch.cuda._sleep(_PAD_CYCLES))


def measure(op, dtype, size):
    """(eager, gems) p50 in µs as the runner times them, then with the GPU padded."""
    baseline, args, kwargs = cases.runner_inputs(op, dtype, size, flaggems_exp.device)
    times = []
    for name in ("eager", "gems"):
        provider = providers.make(name, op, baseline)
        fn = (lambda p=provider: p.fn(*args, **kwargs))
        fn()
        times += [timing.bench(fn)[1] * 1e3, _padded(fn)[1] * 1e3]
    return times


def profile(op, dtype, size, calls=2000, top=15):
    _, args, kwargs = cases.runner_inputs(op, dtype, size, flaggems_exp.device)
    op(*args, **kwargs)
    timing.synchronize()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        op(*args, **kwargs)
    timing.synchronize()
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(top)
    return text.getvalue()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.host_bound")
    parser.add_argument("--op", action="append", required=True)
    parser.add_argument("--size", action="append", default=[], choices=cases.SIZES)
    parser.add_argument("--dtype", default="float16")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    if not timing.CUDA:
        raise SystemExit("host_bound needs a CUDA device: it measures launch cost spilling into "
                         "device time")
    dtype = getattr(torch, args.dtype)
    sizes = args.size or ["S", "M"]
    print("| op | size | eager µs | eager padded | gems µs | gems padded |")
    print("| --- | --- | --- | --- | --- | --- |")
    in_place = [n for n in args.op if cases.mutates_self(REGISTRY[n])]
    if in_place:
        parser.error(f"in-place ops need a restore between calls; not measured here: {in_place}")
    for name in args.op:
        for size in sizes:
            values = " | ".join(f"{t:.1f}" for t in measure(REGISTRY[name], dtype, size))
            print(f"| {name} | {size} | {values} |", flush=True)
    if args.profile:
        for name in args.op:
            print(f"\n## {name} at {sizes[0]}: host time of 2,000 direct calls\n")
            print(profile(REGISTRY[name], dtype, sizes[0]))


if __name__ == "__main__":
    main()
