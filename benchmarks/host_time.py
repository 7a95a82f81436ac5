"""Host time per call at S of every registered op: eager, gems and gems_dispatch.

    python -m benchmarks.host_time                                   # every op, 3 dtypes
    python -m benchmarks.host_time --op sigmoid --op mul_ --dtype float16 --calls 200 --repeats 5
    python -m benchmarks.host_time --out DIR                         # default: a fresh temp dir

For each distinct op of ``flaggems_exp.REGISTRY`` (the runner's set and order) and each dtype
it supports, the runner's S case is called ``--calls`` times back to back with one device
synchronize at the end; the µs per call is the median of ``--repeats`` such loops. This is
the host path alone, without the runner's device timing, so a change to it can be checked
across every op in about a minute. In-place ops write the same self on every call (its
values may drift to inf/NaN; the host path does not care), so no clone enters the loop.
Writes ``host_time.csv`` and ``host_time.md`` (the summary, also printed) to ``--out``.
"""
import argparse
import csv
import pathlib
import statistics
import sys
import tempfile
import time

import torch

import flaggems_exp
from flaggems_exp import REGISTRY

from . import cases, providers, run, timing

PROVIDERS = ("eager", "gems", "gems_dispatch")  # compile's host path is Dynamo's guards
COLUMNS = ("op", "dtype", "provider", "host_us", "calls", "error", "gpu", "torch", "triton",
           "commit")
CSV_NAME, SUMMARY_NAME = "host_time.csv", "host_time.md"
WARMUP_CALLS = 3  # the first compiles the kernel and fills the op's call-plan cache
GEMS_LIMIT, DISPATCH_LIMIT = 1.5, 2.0  # ratios to eager the summary lists ops above
DEVICE = flaggems_exp.device


def host_us(provider, args, kwargs, calls, repeats):
    """Median over ``repeats`` loops of the µs per call of ``calls`` back-to-back calls,
    after a warm-up; ``use_gems()`` (gems_dispatch) is entered once, outside every loop."""
    with provider.context():
        for _ in range(WARMUP_CALLS):
            provider.fn(*args, **kwargs)
        timing.synchronize()
        arg_sets = [args] * calls
        return statistics.median(timing.host_us(provider.fn, arg_sets, kwargs)
                                 for _ in range(repeats))


def measure_op(op, dtypes, calls, repeats):
    """Yields (dtype name, provider, µs or None, error) for ``op`` in each of ``dtypes`` it
    supports; a failure is recorded in its own rows and the others are still measured."""
    dtypes = cases.op_dtypes(op, dtypes)
    if not dtypes:
        return

    def failed(dtype, what, exc):
        for name in PROVIDERS:
            yield cases.dtype_name(dtype), name, None, f"{what}: {_error(exc)}"
    try:
        layout = cases.find_layout(op, dtypes[0], DEVICE)  # once per op, as the runner does
    except Exception as exc:  # noqa: BLE001 - recorded in every row of the op
        for dtype in dtypes:
            yield from failed(dtype, "inputs", exc)
        return
    for dtype in dtypes:
        try:
            case = cases.make_case(op, dtype, "S", layout.index, None, DEVICE)
            args, kwargs = cases.to_device(case.call, DEVICE)
        except Exception as exc:  # noqa: BLE001
            yield from failed(dtype, "inputs", exc)
            continue
        for name in PROVIDERS:
            provider = providers.make(name, op, layout.baseline)
            try:
                us, error = host_us(provider, args, kwargs, calls, repeats), ""
            except Exception as exc:  # noqa: BLE001 - recorded, never fatal
                us, error = None, f"{name}: {_error(exc)}"
            yield cases.dtype_name(dtype), name, us, error


def _error(exc):
    return f"{type(exc).__name__}: {cases.one_line(exc)}"


# ---- the summary --------------------------------------------------------------------------
def summary(rows, env, calls, repeats):
    """The markdown summary of ``rows`` (CSV dicts): medians per provider, ratios to eager
    per (op, dtype), and the ops above ``GEMS_LIMIT`` and ``DISPATCH_LIMIT``."""
    times = {(r["op"], r["dtype"], r["provider"]): float(r["host_us"]) for r in rows if r["host_us"]}
    cells = list(dict.fromkeys((r["op"], r["dtype"]) for r in rows))
    lines = ["# Host time per call at S", "",
             f"{env.gpu}, torch {env.torch}, triton {env.triton}, commit {env.commit}; "
             f"{calls} calls per loop, median of {repeats} loops; "
             f"{len({op for op, _ in cells})} ops, {len(cells)} (op, dtype) cases.", "",
             "| provider | median µs/call | rows |", "| --- | --- | --- |"]
    for name in PROVIDERS:
        values = [t for (_, _, p), t in times.items() if p == name]
        median = f"{statistics.median(values):.1f}" if values else "–"
        lines.append(f"| {name} | {median} | {len(values)} |")
    lines += ["", "| ratio to eager | median | max |", "| --- | --- | --- |"]
    above = []
    for name, limit in (("gems", GEMS_LIMIT), ("gems_dispatch", DISPATCH_LIMIT)):
        ratios = {(op, d): times[op, d, name] / times[op, d, "eager"] for op, d in cells
                  if (op, d, name) in times and times.get((op, d, "eager"))}
        if ratios:
            (op, d), top = max(ratios.items(), key=lambda kv: kv[1])
            lines.append(f"| {name} / eager | {statistics.median(ratios.values()):.2f}× | "
                         f"{top:.2f}× (`{op}` {d}) |")
        else:
            lines.append(f"| {name} / eager | – | – |")
        over = [cell for cell, ratio in ratios.items() if ratio > limit]
        ops = ", ".join(f"`{op}`" for op in dict.fromkeys(op for op, _ in over)) or "none"
        above.append(f"- {name} above {limit:g}× eager: {len(over)} of {len(ratios)} rows; "
                     f"ops: {ops}")
    errors = sum(1 for r in rows if r["error"])
    lines += ["", *above, f"- rows with an error instead of a time: {errors}", ""]
    return "\n".join(lines)


# ---- the run ------------------------------------------------------------------------------
def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.host_time",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--op", action="append", default=[], metavar="NAME",
                        help="an op name or alias (repeatable); default: every registered op")
    parser.add_argument("--dtype", action="append", default=[], metavar="D",
                        help="a dtype (repeatable); default: float16, bfloat16, float32 where "
                             "the op supports them (integer dtypes for integer-only ops)")
    parser.add_argument("--calls", type=int, default=200, metavar="N",
                        help="back-to-back calls per timed loop (default 200)")
    parser.add_argument("--repeats", type=int, default=5, metavar="N",
                        help="timed loops per row; the median is kept (default 5)")
    parser.add_argument("--out", type=pathlib.Path, default=None, metavar="DIR",
                        help="where host_time.csv and host_time.md go (default: a fresh "
                             "temporary directory)")
    args = parser.parse_args(argv)
    unknown = [n for n in args.op if n not in REGISTRY]
    if unknown:
        parser.error(f"unknown op(s): {', '.join(unknown)}")
    dtypes = [getattr(torch, d, None) for d in args.dtype]
    if not all(isinstance(d, torch.dtype) for d in dtypes):
        parser.error(f"unknown dtype in {args.dtype}")
    if args.calls < 1 or args.repeats < 1:
        parser.error("--calls and --repeats take a positive count")
    args.ops = list(dict.fromkeys([REGISTRY[n] for n in args.op] if args.op else REGISTRY.values()))
    args.dtypes = tuple(dtypes)
    return args


def main(argv=None, log=sys.stderr):
    """The command line: measures, writes the CSV row by row, then the summary."""
    import warnings
    # the interpreter computes in numpy, which warns on the inf/NaN in-place loops produce
    warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"triton\.")
    args = parse_args(argv)
    out = args.out or pathlib.Path(tempfile.mkdtemp(prefix="host_time-"))
    out.mkdir(parents=True, exist_ok=True)
    env = run.environment()
    start = time.perf_counter()
    print(f"host time on {env.gpu}: {len(args.ops)} ops, {args.calls} calls x {args.repeats}",
          file=log, flush=True)
    rows = []
    with (out / CSV_NAME).open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for i, op in enumerate(args.ops):
            print(f"  op {i + 1}/{len(args.ops)} {op.name}", file=log, flush=True)
            for dtype, name, us, error in measure_op(op, args.dtypes, args.calls, args.repeats):
                row = {"op": op.name, "dtype": dtype, "provider": name,
                       "host_us": "" if us is None else f"{us:.6g}", "calls": args.calls,
                       "error": error, "gpu": env.gpu, "torch": env.torch,
                       "triton": env.triton, "commit": env.commit}
                writer.writerow(row)
                f.flush()  # a killed run keeps what it measured
                rows.append(row)
    text = summary(rows, env, args.calls, args.repeats)
    (out / SUMMARY_NAME).write_text(text)
    print(text)
    print(f"{len(rows)} rows in {time.perf_counter() - start:.0f} s: {out / CSV_NAME}, "
          f"{out / SUMMARY_NAME}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
