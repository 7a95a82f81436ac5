"""Host time per call at S of every registered op: eager, gems and gems_dispatch.

    python -m benchmarks.host_time                                   # every op, 3 dtypes
    python -m benchmarks.host_time --op sigmoid --op mul_ --dtype float16 --calls 200 --repeats 5
    python -m benchmarks.host_time --out DIR                         # default: a fresh temp dir

For each distinct op of ``flaggems_exp.REGISTRY`` (the runner's set and order) and each dtype
it supports, the runner's S case is called ``--calls`` times back to back with one device
synchronize at the end. This is the host path alone, without the runner's device timing, so a
change to it can be checked across every op in about a minute. In-place ops write the same
self on every call (its values may drift to inf/NaN; the host path does not care), so no clone
enters the loop.

Interleaved rounds: every provider is warmed up first; then each of ``--repeats`` rounds times
one loop per provider, the order rotated from round to round, so a slow spell of a shared host
falls on all providers alike instead of on whichever ran then. A row's figures are medians
over its rounds, and its ``ratio`` and ``issue_ratio`` to eager are paired: the median over
rounds of (its loop / eager's loop in the same round), which cancels what a round's host load
did to both. Each timed loop is warmed again inside its provider's context (leaving
``use_gems()`` drops the routes' plans), so no loop times a plan's first call.

Issue vs wall: each loop gives ``issue_us``, the µs per call until the last call returned (what
the host took to issue them), and ``host_us``, the µs per call after the final synchronize
(wall: N back-to-back calls and one synchronize, the figure compared with eager's). When the kernels
are slower than the host path, the queue backs up and wall is the device's time: a row whose
wall is more than ``DEVICE_BOUND`` times its issue is device-bound, and the summary names such
rows among those above the limits, since they say nothing about the host path. It also counts
the rows above the limits by issue time.

Writes ``host_time.csv`` and ``host_time.md`` (the summary, also printed) to ``--out``; the
summary is computed from the CSV's rows alone.
"""
import collections
import csv
import pathlib
import statistics
import sys
import tempfile
import time

import flaggems_exp

from . import cases, providers, run, timing

PROVIDERS = ("eager", "gems", "gems_dispatch")  # compile's host path is Dynamo's guards
COLUMNS = ("op", "dtype", "provider", "host_us", "issue_us", "ratio", "issue_ratio", "calls",
           "error", "gpu", "torch", "triton", "commit")
CSV_NAME, SUMMARY_NAME = "host_time.csv", "host_time.md"
WARMUP_CALLS = 3  # the first compiles the kernel and fills the op's call-plan cache
GEMS_LIMIT, DISPATCH_LIMIT = 1.5, 2.0  # ratios to eager the summary lists ops above
# wall / issue above which a row is device-bound: when the host is the bottleneck the final
# synchronize waits for the last kernel alone, a few µs spread over the loop's calls; a wall a
# quarter above issue means the queue stayed behind through the loop, so wall timed the kernels
DEVICE_BOUND = 1.25
DEVICE = flaggems_exp.device

# host_us is the wall time; the ratios are None for eager itself
Figures = collections.namedtuple("Figures", "host_us issue_us ratio issue_ratio")


def measure_rounds(named, args, kwargs, calls, repeats):
    """Times the providers of ``named`` (name -> Provider, in rotation order) on one input:
    all warmed up first, then ``repeats`` rounds of one loop each, round r starting at the
    r-th. Returns ({name: [(wall, issue) µs per call, one per round]}, {name: error}); a
    provider that fails keeps the rounds it finished and sits out the later ones, and the
    others go on."""
    errors = {}
    for name, provider in named.items():
        try:
            with provider.context():
                _warm(provider, args, kwargs)
        except Exception as exc:  # noqa: BLE001 - recorded, never fatal
            errors[name] = f"{name}: {cases.error_line(exc)}"
    rounds = {name: [] for name in named if name not in errors}
    arg_sets = [args] * calls
    order = list(named)
    for r in range(repeats):
        start = r % len(order)
        for name in order[start:] + order[:start]:
            if name in errors:
                continue
            provider = named[name]
            try:
                # use_gems() is entered outside the timed region: its cost is not per call.
                # Leaving it drops its routes and their plans, so each loop's context is
                # warmed again before the timing: no loop times a plan's first call.
                with provider.context():
                    _warm(provider, args, kwargs)
                    loop = timing.host_and_issue_us(provider.fn, arg_sets, kwargs)
            except Exception as exc:  # noqa: BLE001
                errors[name] = f"{name}: {cases.error_line(exc)}"
                continue
            rounds[name].append(loop)
    return {name: loops for name, loops in rounds.items() if loops}, errors


def _warm(provider, args, kwargs):
    for _ in range(WARMUP_CALLS):
        provider.fn(*args, **kwargs)
    timing.synchronize()


def figures(rounds):
    """{name: Figures} of ``measure_rounds``'s rounds: medians of wall and issue, and the
    medians over rounds of the wall and issue ratios to eager's loop of the same round (rounds
    count from the first, so a provider that stopped early pairs the rounds it has)."""
    eager = rounds.get("eager")
    result = {}
    for name, loops in rounds.items():
        ratio = issue_ratio = None
        if eager and name != "eager":
            pairs = list(zip(loops, eager))
            ratio = statistics.median(wall / base for (wall, _), (base, _) in pairs)
            issue_ratio = statistics.median(issue / base for (_, issue), (_, base) in pairs)
        result[name] = Figures(statistics.median(wall for wall, _ in loops),
                               statistics.median(issue for _, issue in loops), ratio,
                               issue_ratio)
    return result


def measure_op(op, dtypes, calls, repeats):
    """Yields (dtype name, provider, Figures or None, error) for ``op`` in each of ``dtypes``
    it supports; a failure is recorded in its own rows and the others are still measured."""
    dtypes = cases.op_dtypes(op, dtypes)
    if not dtypes:
        return

    def failed(dtype, what, exc):
        for name in PROVIDERS:
            yield cases.dtype_name(dtype), name, None, f"{what}: {cases.error_line(exc)}"
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
        named = {name: providers.make(name, op, layout.baseline) for name in PROVIDERS}
        rounds, errors = measure_rounds(named, args, kwargs, calls, repeats)
        measured = figures(rounds)
        for name in PROVIDERS:
            yield cases.dtype_name(dtype), name, measured.get(name), errors.get(name, "")


# ---- the summary --------------------------------------------------------------------------
def summary(rows, env, calls, repeats):
    """The markdown summary of ``rows`` (CSV dicts): medians per provider, paired ratios to
    eager per (op, dtype), the rows above ``GEMS_LIMIT`` and ``DISPATCH_LIMIT`` (by wall, the
    device-bound among them, and by issue time)."""
    def column(name):
        return {(r["op"], r["dtype"], r["provider"]): float(r[name]) for r in rows if r[name]}
    times, issues = column("host_us"), column("issue_us")
    paired, paired_issue = column("ratio"), column("issue_ratio")
    cells = list(dict.fromkeys((r["op"], r["dtype"]) for r in rows))
    lines = ["# Host time per call at S", "",
             f"{env.gpu}, torch {env.torch}, triton {env.triton}, commit {env.commit}; "
             f"{calls} calls per loop, {repeats} interleaved rounds of one loop per provider; "
             f"medians over rounds, ratios to eager paired per round; "
             f"{len({op for op, _ in cells})} ops, {len(cells)} (op, dtype) cases.", "",
             "| provider | median µs/call | median issue µs/call | rows |",
             "| --- | --- | --- | --- |"]
    for name in PROVIDERS:
        values = [t for (_, _, p), t in times.items() if p == name]
        issued = [t for (_, _, p), t in issues.items() if p == name]
        median = f"{statistics.median(values):.1f}" if values else "–"
        issue = f"{statistics.median(issued):.1f}" if issued else "–"
        lines.append(f"| {name} | {median} | {issue} | {len(values)} |")
    lines += ["", "| ratio to eager | median | max |", "| --- | --- | --- |"]
    above = []
    for name, limit in (("gems", GEMS_LIMIT), ("gems_dispatch", DISPATCH_LIMIT)):
        ratios = {(op, d): paired[op, d, name] for op, d in cells if (op, d, name) in paired}
        by_issue = {(op, d): paired_issue[op, d, name] for op, d in cells
                    if (op, d, name) in paired_issue}
        for label, values in ((name, ratios), (f"{name} issue", by_issue)):
            lines.append(f"| {label} / eager | {_median_and_max(values)} |")
        over = [cell for cell, ratio in ratios.items() if ratio > limit]
        bound = [(op, d) for op, d in over if (op, d, name) in issues
                 and times.get((op, d, name), 0) > DEVICE_BOUND * issues[op, d, name]]
        over_issue = [cell for cell, ratio in by_issue.items() if ratio > limit]
        above += [f"- {name} above {limit:g}× eager: {len(over)} of {len(ratios)} rows; "
                  f"ops: {_ops(over)}",
                  f"  - device-bound (wall > {DEVICE_BOUND:g}× issue; they time the kernels, "
                  f"not the host path): {len(bound)} of {len(over)}; rows: "
                  + (", ".join(f"`{op}` {d}" for op, d in bound) or "none"),
                  f"  - by issue time: {len(over_issue)} of {len(by_issue)} rows; "
                  f"ops: {_ops(over_issue)}"]
    errors = sum(1 for r in rows if r["error"])
    lines += ["", *above, f"- rows with an error instead of a time: {errors}", ""]
    return "\n".join(lines)


def _median_and_max(ratios):
    if not ratios:
        return "– | –"
    (op, d), top = max(ratios.items(), key=lambda kv: kv[1])
    return f"{statistics.median(ratios.values()):.2f}× | {top:.2f}× (`{op}` {d})"


def _ops(cells):
    return ", ".join(f"`{op}`" for op in dict.fromkeys(op for op, _ in cells)) or "none"


# ---- the run ------------------------------------------------------------------------------
def parse_args(argv):
    parser = run.op_parser("benchmarks.host_time", __doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=200, metavar="N",
                        help="back-to-back calls per timed loop (default 200)")
    parser.add_argument("--repeats", type=int, default=5, metavar="N",
                        help="rounds of one timed loop per provider; medians are kept "
                             "(default 5)")
    parser.add_argument("--out", type=pathlib.Path, default=None, metavar="DIR",
                        help="where host_time.csv and host_time.md go (default: a fresh "
                             "temporary directory)")
    args = run.ops_and_dtypes(parser, parser.parse_args(argv))
    if args.calls < 1 or args.repeats < 1:
        parser.error("--calls and --repeats take a positive count")
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
            for dtype, name, measured, error in measure_op(op, args.dtypes, args.calls,
                                                           args.repeats):
                row = {"op": op.name, "dtype": dtype, "provider": name, "calls": args.calls,
                       "error": error, "gpu": env.gpu, "torch": env.torch,
                       "triton": env.triton, "commit": env.commit}
                for column in Figures._fields:
                    row[column] = run.csv_cell(getattr(measured, column) if measured else None)
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
