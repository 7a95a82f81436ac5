"""Kernel time per call of every registered op at one size (default M): eager and gems.

    python -m benchmarks.kernel_time                                  # every op, 3 dtypes, M
    python -m benchmarks.kernel_time --op exp --dtype bfloat16 --calls 30 --out DIR

At M a call's event time (the runner's p50: CUDA events around the call) is mostly its
launch. On an H100, events around a 1M-element unary kernel read 6-8 µs, of which the kernel
runs 3.3-4.6 by the profiler's timestamps; the rest is the launch's latency and the events'
own, and it moves by about half a µs between rounds for the same kernel, more than ours and
eager's kernels differ by. Kernel time is what a call's kernels take on the device: the
durations of every kernel, copy and fill the call issues (CUPTI's activity records, through
``torch.profiler``), summed per call, the median over ``--calls`` calls, the L2 flushed before
each call as the runner does. It leaves out the launch latency and the gaps between a call's
own kernels, so it flatters a call of several kernels: ``kernels`` says how many a call issued.

Each call is bracketed by two marker kernels (``torch.cuda._sleep(0)``, PyTorch's
``spin_kernel``) on the same stream: the activities between a pair are that call's, so the
flush and an in-place op's restore of its input (run before the flush) are left out. Beside
each row, ``event_us`` is the runner's p50 (``timing.bench``) of the same call in the same
process, for the comparison. Needs CUDA: without it the profiler records no device activity.

Writes ``kernel_time.csv`` and ``kernel_time.md`` (the summary, also printed) to ``--out``.
"""
import csv
import pathlib
import statistics
import sys
import tempfile
import time

import torch

import flaggems_exp

from . import cases, providers, run, timing, warmup
from .report import geomean

PROVIDERS = ("eager", "gems")
COLUMNS = ("op", "family", "dtype", "size", "provider", "kernel_us", "kernels", "event_us",
           "error", "gpu", "torch", "triton", "commit")
CSV_NAME, SUMMARY_NAME = "kernel_time.csv", "kernel_time.md"
MARKER = "spin_kernel"  # the kernel of torch.cuda._sleep, which no op under test launches
WARMUP_CALLS = 2
DEVICE = flaggems_exp.device


def calls_between_markers(activities):
    """[(summed duration, count)] of the activities between each pair of markers, in order;
    ``activities`` are (name, start, duration) of one stream, sorted by start."""
    spans, open_span = [], None
    for name, _, duration in activities:
        if MARKER in name:
            if open_span is None:
                open_span = []
            else:
                spans.append((sum(open_span), len(open_span)))
                open_span = None
        elif open_span is not None:
            open_span.append(duration)
    return spans


def profiled_calls(sequence, calls):
    """For each (fn, setup) of ``sequence``: (median µs, median count) of the device
    activities of one ``fn()``, over ``calls`` calls, all in one profiler session."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    flush = timing.l2_flush()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for fn, setup in sequence:
            for _ in range(calls):
                if setup:
                    setup()
                flush()
                torch.cuda._sleep(0)
                fn()
                torch.cuda._sleep(0)
        torch.cuda.synchronize()
    activities = sorted(((e.name, e.time_range.start, e.time_range.elapsed_us())
                         for e in prof.events() if e.device_type == DeviceType.CUDA),
                        key=lambda a: a[1])
    spans = calls_between_markers(activities)
    if len(spans) != calls * len(sequence):
        raise RuntimeError(f"{len(spans)} marked calls recorded, {calls * len(sequence)} made")
    return [(statistics.median(t for t, _ in chunk), statistics.median(n for _, n in chunk))
            for chunk in (spans[i * calls:(i + 1) * calls] for i in range(len(sequence)))]


def measure_op(op, dtypes, size, calls):
    """Yields (dtype name, provider, kernel µs, kernels, event µs, error) for ``op`` in each
    of ``dtypes`` it supports: every (dtype, provider) warmed up and event-timed first, then
    the ones that ran profiled together."""
    dtypes = cases.op_dtypes(op, dtypes)
    if not dtypes:
        return
    try:
        layout = cases.find_layout(op, dtypes[0], DEVICE)
    except Exception as exc:  # noqa: BLE001 - recorded in every row of the op
        for dtype in dtypes:
            for name in PROVIDERS:
                yield (cases.dtype_name(dtype), name, None, None, None,
                       f"inputs: {cases.error_line(exc)}")
        return
    inplace = cases.mutates_self(op)
    ready, failed = [], []
    for dtype in dtypes:
        try:
            case = cases.make_case(op, dtype, size, layout.index, None, DEVICE)
            args, kwargs = cases.to_device(case.call, DEVICE)
        except Exception as exc:  # noqa: BLE001
            failed += [(dtype, name, f"inputs: {cases.error_line(exc)}") for name in PROVIDERS]
            continue
        for name in PROVIDERS:
            fn, setup = run.timed_call(providers.make(name, op, layout.baseline), args, kwargs,
                                       inplace)
            try:
                for _ in range(WARMUP_CALLS):
                    if setup:
                        setup()
                    fn()
                timing.synchronize()
                event_us = timing.bench(fn, setup)[1] * 1e3
            except Exception as exc:  # noqa: BLE001 - recorded, never fatal
                failed.append((dtype, name, f"{name}: {cases.error_line(exc)}"))
                continue
            ready.append((dtype, name, fn, setup, event_us))
    for dtype, name, error in failed:
        yield cases.dtype_name(dtype), name, None, None, None, error
    if not ready:
        return
    try:
        measured = profiled_calls([(fn, setup) for _, _, fn, setup, _ in ready], calls)
    except Exception as exc:  # noqa: BLE001
        for dtype, name, *_, event_us in ready:
            yield (cases.dtype_name(dtype), name, None, None, event_us,
                   f"profiler: {cases.error_line(exc)}")
        return
    for (dtype, name, *_, event_us), (kernel_us, count) in zip(ready, measured):
        yield cases.dtype_name(dtype), name, kernel_us, count, event_us, ""


# ---- the summary --------------------------------------------------------------------------
def speedups(rows, column="kernel_us"):
    """{(op, family, dtype): eager's ``column`` / gems'} where both rows have it (a call that
    issues nothing, as empty_permuted's, has no kernel time to compare)."""
    times = {(r["op"], r["dtype"], r["provider"]): float(r[column]) for r in rows
             if r[column] and float(r[column]) > 0}
    family = {r["op"]: r["family"] for r in rows}
    return {(op, family[op], d): times[op, d, "eager"] / times[op, d, "gems"]
            for op, d, p in times if p == "gems" and (op, d, "eager") in times}


def summary(rows, env, size, calls):
    """The markdown summary of ``rows`` (CSV dicts): gems against eager by kernel time and by
    event time over the same rows, overall and per family, and the rows furthest behind."""
    by_kernel, by_event = speedups(rows), speedups(rows, "event_us")
    both = [key for key in by_kernel if key in by_event]
    families = sorted({f for _, f, _ in both})
    kernels = {(r["op"], r["dtype"], r["provider"]): r["kernels"] for r in rows}
    lines = [f"# Kernel time per call at {size}", "",
             f"{env.gpu}, torch {env.torch}, triton {env.triton}, commit {env.commit}; the "
             f"median over {calls} calls of the summed durations of each call's kernels, "
             "copies and fills (CUPTI), the L2 flushed before each; event time is the "
             "runner's p50 of the same call in the same process.", "",
             "| rows | gems vs eager, kernel time | gems vs eager, event time |",
             "| --- | --- | --- |",
             f"| all ({len(both)}) | {_x(geomean(by_kernel[k] for k in both))} | "
             f"{_x(geomean(by_event[k] for k in both))} |"]
    for family in families:
        keys = [k for k in both if k[1] == family]
        lines.append(f"| {family} ({len(keys)}) | {_x(geomean(by_kernel[k] for k in keys))} | "
                     f"{_x(geomean(by_event[k] for k in keys))} |")
    lowest = sorted(both, key=lambda k: by_kernel[k])[:12]
    lines += ["", "Lowest by kernel time (kernels a call: gems / eager):", ""]
    lines += [f"- `{op}` {d}: {by_kernel[op, f, d]:.2f}× kernel, {by_event[op, f, d]:.2f}× "
              f"event ({kernels.get((op, d, 'gems'))} / {kernels.get((op, d, 'eager'))})"
              for op, f, d in lowest]
    errors = sum(1 for r in rows if r["error"])
    lines += ["", f"Rows with an error instead of a time: {errors}.", ""]
    return "\n".join(lines)


def _x(value):
    return f"{value:.3f}×" if value else "–"


# ---- the run ------------------------------------------------------------------------------
def parse_args(argv):
    parser = run.op_parser("benchmarks.kernel_time", __doc__.split("\n")[0])
    parser.add_argument("--size", default="M", choices=cases.SIZES)
    parser.add_argument("--calls", type=int, default=30, metavar="N",
                        help="profiled calls per (op, dtype, provider) (default 30)")
    parser.add_argument("--out", type=pathlib.Path, default=None, metavar="DIR",
                        help="where kernel_time.csv and kernel_time.md go (default: a fresh "
                             "temporary directory)")
    parser.add_argument("--jobs", type=int, default=16, metavar="N",
                        help="processes compiling every case's kernels first, as the runner's "
                             "warm-up does (default 16; 0: none)")
    parser.add_argument("--commit", default="", help="the commit to record (default: git's HEAD)")
    args = run.ops_and_dtypes(parser, parser.parse_args(argv))
    if args.calls < 1:
        parser.error("--calls takes a positive count")
    return args


def main(argv=None, log=sys.stderr):
    """The command line: measures each op, writes the CSV row by row, then the summary."""
    args = parse_args(argv)
    if not timing.CUDA:
        print("kernel time needs CUDA: without it the profiler records no device activity",
              file=log)
        return 2
    out = args.out or pathlib.Path(tempfile.mkdtemp(prefix="kernel_time-"))
    out.mkdir(parents=True, exist_ok=True)
    env = run.environment(args.commit)
    start = time.perf_counter()
    print(f"kernel time on {env.gpu} at {args.size}: {len(args.ops)} ops, {args.calls} calls",
          file=log, flush=True)
    if args.jobs > 0:
        tasks = [warmup.Task(op.name, cases.dtype_name(d), args.size, False, 0)
                 for op in args.ops for d in cases.op_dtypes(op, args.dtypes)]
        warmup.warm(tasks, args.jobs, log)
    rows = []
    with open(out / CSV_NAME, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for op in args.ops:
            for dtype, name, kernel_us, count, event_us, error in measure_op(
                    op, args.dtypes, args.size, args.calls):
                row = {"op": op.name, "family": op.family, "dtype": dtype, "size": args.size,
                       "provider": name, "kernel_us": run.csv_cell(kernel_us),
                       "kernels": run.csv_cell(count), "event_us": run.csv_cell(event_us),
                       "error": error, "gpu": env.gpu, "torch": env.torch,
                       "triton": env.triton, "commit": env.commit}
                writer.writerow(row)
                rows.append(row)
            f.flush()
    text = summary(rows, env, args.size, args.calls)
    (out / SUMMARY_NAME).write_text(text)
    print(text, file=log)
    print(f"{len(rows)} rows in {time.perf_counter() - start:.0f} s: {out / CSV_NAME}, "
          f"{out / SUMMARY_NAME}", file=log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
