"""One warm call of each provider at the runner's inputs, each inside cudaProfilerStart/Stop:
the calls for Nsight Compute to read.

    ncu --clock-control none --profile-from-start off --section SpeedOfLight \\
        --section Occupancy --section WarpStateStats --section SchedulerStats \\
        python -m benchmarks.profiled --op logaddexp --dtype float16 --size L

Times say how long a kernel takes; the hardware counters say why: the instructions it issues
and at what rate, its registers and occupancy, what its warps wait on. Read them before
guessing (`benchmarks/NOTES.md`, "logaddexp in 16 bits read with Nsight Compute").

For each op, dtype and provider (default eager, then gems): the call runs twice first
(compiling, planning, making a lookup table), an in-place op's self is restored from its
input, and the call runs once more between ``torch.cuda.profiler.start()`` and ``stop()``,
the device synchronized on both sides, so that ncu (``--profile-from-start off``) profiles
that call's kernels alone. One line per profiled call is printed, in the order of ncu's
kernels (a call may launch several). ``--clock-control none`` leaves the GPU's clocks as they
are, as the device machines ask. Needs CUDA.
"""
import sys

import torch

import flaggems_exp

from . import cases, providers, run, timing

WARMUP_CALLS = 2
DEVICE = flaggems_exp.device


def profile_call(fn, setup):
    """``fn()`` once between the profiler's start and stop, ``setup()`` (if any) before."""
    if setup:
        setup()
    timing.synchronize()
    torch.cuda.profiler.start()
    try:
        fn()
        timing.synchronize()
    finally:
        torch.cuda.profiler.stop()


def profile_op(op, dtypes, size, names, log):
    """Profiles ``op`` in each of ``dtypes`` it supports under each provider of ``names``;
    yields (dtype name, provider) of each profiled call, in order."""
    dtypes = cases.op_dtypes(op, dtypes)
    if not dtypes:
        return
    layout = cases.find_layout(op, dtypes[0], DEVICE)
    inplace = cases.mutates_self(op)
    compiled = providers.compile_eager(layout.baseline.fn) if "compile" in names else None
    for dtype in dtypes:
        case = cases.make_case(op, dtype, size, layout.index, None, DEVICE)
        args, kwargs = cases.to_device(case.call, DEVICE)
        for name in names:
            provider = providers.make(name, op, layout.baseline, compiled)
            fn, setup = run.timed_call(provider, args, kwargs, inplace)
            with provider.context():
                for _ in range(WARMUP_CALLS):
                    if setup:
                        setup()
                    fn()
                profile_call(fn, setup)
            print(f"profiled: {op.name} {cases.dtype_name(dtype)} {size} {name}", file=log,
                  flush=True)
            yield cases.dtype_name(dtype), name


def parse_args(argv):
    parser = run.op_parser("benchmarks.profiled", __doc__.split("\n")[0])
    parser.add_argument("--size", default="L", choices=cases.SIZES)
    parser.add_argument("--providers", default="eager,gems", metavar="LIST",
                        help="comma-separated, in the order profiled (default eager,gems; "
                             f"any of {', '.join(providers.PROVIDERS)})")
    args = run.ops_and_dtypes(parser, parser.parse_args(argv))
    args.names = [p for p in args.providers.split(",") if p]
    bad = [p for p in args.names if p not in providers.PROVIDERS]
    if bad or not args.names:
        parser.error(f"unknown providers: {', '.join(bad) or '(none given)'}")
    return args


def main(argv=None, log=sys.stdout):
    """The command line; returns the exit status and, with CUDA, the profiled calls."""
    args = parse_args(argv)
    if not timing.CUDA:
        print("profiling needs CUDA: Nsight Compute reads a GPU's counters", file=sys.stderr)
        return 2, []
    if "compile" in args.names:
        providers.configure_dynamo()
    done = []
    for op in args.ops:
        done += [(op.name, *call) for call in profile_op(op, args.dtypes, args.size, args.names,
                                                          log)]
    return 0, done


if __name__ == "__main__":
    sys.exit(main()[0])
