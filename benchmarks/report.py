"""REPORT.md (and PNG plots) from the benchmark CSV.

    python -m benchmarks.report                       # benchmarks/results/results.csv
    python -m benchmarks.report --csv other.csv --out some/dir
    python -m benchmarks.report --op sigmoid          # sigmoid.png: one op across sizes

Everything in the report is computed from the CSV: speedup is eager's (or compile's) p50 over
gems' p50 for the same op, dtype and size; per op and size it is the geometric mean over the
dtypes measured. Where a key appears more than once (appended runs), the last row counts.
Plots need matplotlib (the ``bench`` extra); without it the report says they were skipped.
"""
import argparse
import collections
import csv
import math
import pathlib
import statistics
import sys
import tempfile

import attrs

from . import explained

DEFAULT_CSV = pathlib.Path(__file__).resolve().parent / "results" / "results.csv"
SIZES = ("S", "M", "L")
DTYPE_ORDER = ("float16", "bfloat16", "float32", "float64")
_FLOATS = ("p20_ms", "p50_ms", "p80_ms", "gbps", "fraction", "host_us", "extra_bytes")
# diagnosis thresholds: a judgement on the measured numbers, not measurements themselves
_HOST_BOUND = 1.0  # host time per call at least the kernel's: the GPU waits on the host
_NEAR_CEILING = 0.7       # a bandwidth fraction this high is bandwidth-bound
_SCALES_WITH_BYTES = 0.75  # time ratio / bytes ratio across dtypes: memory-bound above this
_NOISE_RATIO = 1.2  # gems' float16 / bfloat16 time ratio past which one of the two is noise
# the kernels' targets: geomean speedup over eager per size; every op at L at least this
# fraction of torch.compile's speed (a 3% margin: rows of the same kernel move that much
# between runs); and at L at least this fraction of the copy ceiling, unless bound by its
# arithmetic
GEOMEAN_TARGETS = {"L": 1.35, "M": 1.2}
COMPILE_FLOOR = 0.97
CEILING_FLOOR = 0.8
BOUND_CEILING = 0.97  # the copy ceiling's fraction a bandwidth-bound kernel can reach
INSTRUCTIONS_CSV = "instructions.csv"  # benchmarks.instructions' table, beside results.csv
KERNEL_TIME_CSV = "kernel_time.csv"  # benchmarks.kernel_time's table, beside results.csv


def load(path, gpu=None):
    """The CSV's rows as dicts with floats parsed and ``correct`` as True/False/None; the
    last row of each (op, provider, dtype, size), of one machine: ``gpu``, or by default the
    one with the most rows (a CPU test run in the same file stays out of the report).
    Returns (rows, {other machine: rows left out})."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    counts = collections.Counter(r["gpu"] for r in rows)
    gpu = gpu or (counts.most_common(1)[0][0] if counts else None)
    latest = {}
    for r in rows:
        if r["gpu"] != gpu:
            continue
        for k in _FLOATS:
            r[k] = float(r[k]) if r.get(k) not in (None, "") else None
        r["correct"] = {"True": True, "False": False}.get(r.get("correct", ""))
        latest[(r["op"], r["provider"], r["dtype"], r["size"])] = r
    return list(latest.values()), {g: n for g, n in counts.items() if g != gpu}


def geomean(values):
    values = [v for v in values if v and v > 0]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def _moved_bytes(row):
    """The bytes a row's call moved (its GB/s times its median time), or None where it has no
    byte count, no time, or moved none."""
    return row["gbps"] * row["p50_ms"] * 1e6 if row["gbps"] and row["p50_ms"] else None


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


@attrs.frozen
class Data:
    """The rows indexed by (op, provider, dtype, size), with the ops, providers, dtypes, sizes
    and families."""

    rows: list
    index: dict
    ops: list
    providers: list
    dtypes: list
    sizes: list
    family: dict

    @classmethod
    def of(cls, rows):
        index = {(r["op"], r["provider"], r["dtype"], r["size"]): r for r in rows}

        def present(key, order=()):
            found = list(dict.fromkeys(r[key] for r in rows))
            return [v for v in order if v in found] + [v for v in found if v not in order]
        return cls(rows, index, present("op"), present("provider"),
                   present("dtype", DTYPE_ORDER), present("size", SIZES),
                   {r["op"]: r["family"] for r in rows})

    def get(self, op, provider, dtype, size):
        return self.index.get((op, provider, dtype, size))

    def field(self, op, provider, dtype, size, key):
        """``key`` of one row, or None where the row is missing."""
        r = self.get(op, provider, dtype, size)
        return r[key] if r else None

    def p50(self, op, provider, dtype, size):
        return self.field(op, provider, dtype, size, "p50_ms")

    def speedup(self, op, dtype, size, versus="eager"):
        """``versus``' time over gems' time: above 1, gems is faster."""
        theirs, ours = self.p50(op, versus, dtype, size), self.p50(op, "gems", dtype, size)
        return theirs / ours if theirs and ours else None

    def op_speedup(self, op, size, versus="eager"):
        return geomean([self.speedup(op, d, size, versus) for d in self.dtypes])

    def geomean_speedup(self, size, dtypes=None, versus="eager"):
        """Over every op and each of ``dtypes`` (default all): the geomean of ``speedup``."""
        return geomean([self.speedup(op, d, size, versus) for op in self.ops
                        for d in dtypes or self.dtypes])

    def copy_fraction(self, dtype, size):
        """The fraction of the copy ceiling eager's ``copy_`` reached at ``size`` in ``dtype``,
        or None without that row: a copy of that size's bytes, which runs below the ceiling's
        2 GiB copy (H100, 64M float16 elements: 95%)."""
        return self.field("copy_", "eager", dtype, size, "fraction")

    def geomean_bound(self, size, ceiling=None):
        """The geomean speedup over eager that gems would reach, over the rows
        ``geomean_speedup`` takes, where each row ran at the fastest provider's time, and with
        ``ceiling`` (a fraction of the copy ceiling, or a function of the dtype giving one),
        where each row moving at least ``_SMALL_BYTES`` and slower than that ran at it
        (arithmetic-bound rows too: a bound)."""
        reach = ceiling if callable(ceiling) else (lambda dtype: ceiling)
        speedups = []
        for op in self.ops:
            for d in self.dtypes:
                gems, eager = self.get(op, "gems", d, size), self.p50(op, "eager", d, size)
                if not (gems and gems["p50_ms"] and eager):
                    continue
                best = min(t for t in (gems["p50_ms"], eager, self.p50(op, "compile", d, size))
                           if t)
                fraction, limit = gems["fraction"], reach(d) if ceiling else None
                if limit and fraction and _moved_bytes(gems) >= _SMALL_BYTES:
                    best = min(best, gems["p50_ms"] * fraction / limit)
                speedups.append(eager / best)
        return geomean(speedups)

    def value(self, op, provider, size, key):
        """``key`` of the op's rows at ``size``, median over dtypes."""
        return median([self.field(op, provider, d, size, key) for d in self.dtypes])

    def ceiling(self):
        """The copy ceiling the runs measured, recovered from gbps / fraction."""
        return median([r["gbps"] / r["fraction"] for r in self.rows if r["gbps"] and r["fraction"]])


# ---- the numbers --------------------------------------------------------------------------
def headline(data):
    """Per dtype (and over all): geomean speedups and the count of ops below 1.0× at L."""
    lines = []
    for dtype in data.dtypes + [None]:
        dts = [dtype] if dtype else data.dtypes
        every = [data.speedup(op, d, s) for op in data.ops for d in dts for s in SIZES]
        if dtype:
            per_op = {op: data.speedup(op, dtype, "L") for op in data.ops}
        else:
            per_op = {op: data.op_speedup(op, "L") for op in data.ops}
        measured = [s for s in per_op.values() if s is not None]
        lines.append({
            "dtype": dtype or "all dtypes",
            "eager_L": data.geomean_speedup("L", dts), "eager_M": data.geomean_speedup("M", dts),
            "eager_all": geomean(every), "compile_L": data.geomean_speedup("L", dts, "compile"),
            "below_L": sum(s < 1 for s in measured), "measured_L": len(measured),
        })
    return lines


def below_eager_at_l(data):
    return [op for op in data.ops if (s := data.op_speedup(op, "L")) is not None and s < 1]


def compile_wins_at_l(data):
    return [(op, s) for op in data.ops
            if (s := data.op_speedup(op, "L", "compile")) is not None and s < 1]


def load_instructions(folder):
    """{(op, dtype): (ours, PyTorch's)} SASS instructions per element from
    ``benchmarks.instructions``' table in ``folder``; {} where there is none."""
    path = pathlib.Path(folder) / INSTRUCTIONS_CSV
    if not path.exists():
        return {}
    with open(path, newline="") as f:
        return {(r["op"], r["dtype"]): (float(r["ours_per_element"]),
                                        float(r["pytorch_per_element"]))
                for r in csv.DictReader(f)
                if r.get("ours_per_element") and r.get("pytorch_per_element")}


def load_kernel_times(folder):
    """The line on ``benchmarks.kernel_time``'s table in ``folder`` (gems against eager by
    kernel time and by event time, over the same rows), or None where there is none."""
    path = pathlib.Path(folder) / KERNEL_TIME_CSV
    if not path.exists():
        return None
    from .kernel_time import speedups  # imports torch: only where the table is there

    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    by_kernel, by_event = speedups(rows), speedups(rows, "event_us")
    keys = [k for k in by_kernel if k in by_event]
    if not keys:
        return None
    size, gpu = rows[0]["size"], rows[0]["gpu"]
    return (f"By kernel time at {size} (`{KERNEL_TIME_CSV}`, {gpu}: the summed durations of a "
            "call's kernels, launch latency left out): gems vs eager "
            f"{_x(geomean(by_kernel[k] for k in keys))} over {len(keys)} (op, dtype) rows; by "
            f"event time over the same rows in that run {_x(geomean(by_event[k] for k in keys))}.")


def below_compile_at_l(data):
    """[(op, dtype, speedup over compile)] of gems' rows at L below ``COMPILE_FLOOR``, the
    slowest first."""
    rows = [(op, d, s) for op in data.ops for d in data.dtypes
            if (s := data.speedup(op, d, "L", "compile")) is not None and s < COMPILE_FLOOR]
    return sorted(rows, key=lambda row: row[2])


def below_ceiling_at_l(data):
    """[(op, dtype, fraction of the copy ceiling)] of gems' rows at L below
    ``CEILING_FLOOR``, the lowest first."""
    rows = [(op, d, r["fraction"]) for op in data.ops for d in data.dtypes
            if (r := data.get(op, "gems", d, "L")) and r["fraction"] is not None
            and r["fraction"] < CEILING_FLOOR]
    return sorted(rows, key=lambda row: row[2])


_SMALL_BYTES = 32e6  # moved in under 8 µs at the ceiling: launch latency, not bandwidth
_COUNT_MARGIN = 1.1   # our SASS count per element within this of PyTorch's: the same work
_ALIKE = 0.97         # gems within 3% of the faster of eager and compile: the op's own pace


def ceiling_reason(data, op, dtype, instruction_counts):
    """(kind, text) for gems' row at L below the ceiling:
    "arithmetic": an entry of ``explained`` says so, or its SASS instructions per element
        (an in-place form's are its op's) are within ``_COUNT_MARGIN`` of PyTorch's and it runs
        within 10% of eager's fraction of the ceiling (static counts miss branches: the time
        must agree);
    "alike": eager and torch.compile are below the ceiling too and gems within ``_ALIKE`` of
        the faster of them, or faster (a random gather, a fill: the access pattern; the text
        gives gems' speed against the faster where it is ahead);
    "explained": an entry gives another cause;
    "small": too few bytes for any kernel to reach the ceiling;
    "to fix": anything else, with what its numbers suggest (more instructions than
        PyTorch's; a time that does not grow with the bytes across dtypes, which hints at
        instructions or latency but proves neither)."""
    entry = explained.find(op, dtype)
    if entry is not None:
        return ("arithmetic" if entry.arithmetic else "explained"), entry.text
    row = data.get(op, "gems", dtype, "L")
    moved = _moved_bytes(row)
    if moved is not None and moved < _SMALL_BYTES:
        return "small", (f"{_memory(moved)} moved in {row['p50_ms'] * 1e3:.1f} µs: a launch's "
                         "latency, not bandwidth")
    eager_fraction = data.field(op, "eager", dtype, "L", "fraction")
    count = (instruction_counts.get((op, dtype))
             or instruction_counts.get((op.rstrip("_"), dtype)))
    if count:
        said = (f"{count[0]:.1f} SASS instructions per element against PyTorch's "
                f"{count[1]:.1f} ({INSTRUCTIONS_CSV})")
        if count[0] > _COUNT_MARGIN * count[1]:
            return "to fix", f"arithmetic-bound on more instructions than PyTorch's: {said}"
        if eager_fraction is not None and row["fraction"] < 0.9 * eager_fraction:
            return "to fix", (f"{said}, yet at {row['fraction']:.0%} of the ceiling where eager "
                              f"runs at {eager_fraction:.0%}: branches or latency")
        return "arithmetic", f"arithmetic-bound: {said}"
    others = [data.p50(op, p, dtype, "L") for p in ("eager", "compile")]
    fractions = [data.field(op, p, dtype, "L", "fraction") for p in ("eager", "compile")]
    if (all(fractions) and max(fractions) < CEILING_FLOOR and all(others)
            and min(others) / row["p50_ms"] >= _ALIKE):
        speed = min(others) / row["p50_ms"]
        ours = (f"ours {speed:.2f}x the faster's speed" if speed >= 1 / _ALIKE
                else "ours within 3% of the faster")
        return "alike", (f"eager and torch.compile at {fractions[0]:.0%} and {fractions[1]:.0%} "
                         f"of the ceiling, {ours}: neither reaches it on this access pattern")
    scaling = _bytes_scaling(data, op)
    if scaling and scaling[0] < _SCALES_WITH_BYTES * scaling[1]:
        return "to fix", (f"time ×{scaling[0]:.2f} for ×{scaling[1]:.2f} bytes across dtypes: "
                          "instructions or latency, not bytes; not read yet")
    return "to fix", "grows with its bytes: extra passes or uncoalesced accesses; not read yet"


_KINDS = ("arithmetic", "alike", "small", "explained", "to fix")


def _missing_at_l(data, provider):
    """(op, dtype) pairs measured at L by some provider but without a time for ``provider``."""
    return [(op, d) for op in data.ops for d in data.dtypes
            if any(data.get(op, p, d, "L") for p in data.providers)
            and not data.p50(op, provider, d, "L")]


def targets(data, instruction_counts):
    """[(target, measured, met)]: the geomean speedups over eager at L and M, the rows at L
    below ``COMPILE_FLOOR`` × torch.compile's speed, and those below ``CEILING_FLOOR`` of the
    copy ceiling that nothing explains. A row proved slower for a reason (``explained``) meets
    its target: the report says why next to it. A row without a time (an error) cannot show
    it meets one: where there are such rows, the target is not met."""
    rows = []
    missing = _missing_at_l(data, "gems")
    gap = f"; {len(missing)} without a gems time" if missing else ""
    for size, goal in GEOMEAN_TARGETS.items():
        value = data.geomean_speedup(size)
        rows.append((f"geomean speedup over eager at {size} ≥ {goal:.2f}×", _x(value),
                     None if value is None else value >= goal))
    if "compile" in data.providers:
        slow = below_compile_at_l(data)
        unexplained = [row for row in slow if explained.find(row[0], row[1]) is None]
        measured = sum(data.speedup(op, d, "L", "compile") is not None
                       for op in data.ops for d in data.dtypes)
        rows.append((f"every row at L ≥ {COMPILE_FLOOR:.2f}× torch.compile's speed, or why not",
                     f"{len(slow)} of {measured} rows below; {len(unexplained)} not "
                     f"explained{gap}", not unexplained and not missing))
    low = below_ceiling_at_l(data)
    kinds = collections.Counter(ceiling_reason(data, op, d, instruction_counts)[0]
                                for op, d, _ in low)
    # a row with 0 GB/s moved no bytes (an uninitialised result): no ceiling to reach
    unmeasured = [(op, d) for op in data.ops for d in data.dtypes
                  if (r := data.get(op, "gems", d, "L")) and r["fraction"] is None
                  and r["gbps"] is None]
    rows.append((f"every row at L ≥ {CEILING_FLOOR:.0%} of the copy ceiling unless "
                 "arithmetic-bound", f"{len(low)} rows below: " + ", ".join(
                     f"{kinds[k]} {k}" for k in _KINDS)
                 + (f"; {len(unmeasured)} without a byte count" if unmeasured else "") + gap,
                 not kinds["to fix"] and not missing and not unmeasured))
    return rows


def diagnose(data, op):
    """One line on why ``op`` is below eager at L, in its slowest dtype (see ``why_slower``)."""
    speeds = {d: s for d in data.dtypes if (s := data.speedup(op, d, "L")) is not None}
    if not speeds:
        return "no gems and eager times at L to compare"
    dtype = min(speeds, key=speeds.get)
    return f"{dtype} {speeds[dtype]:.2f}× eager: " + why_slower(data, op, dtype)


def why_slower(data, op, dtype, versus="eager"):
    """Why gems' row of ``op`` in ``dtype`` at L is slower than ``versus``', from its own
    numbers: noise (float16 and bfloat16 disagree, for a row of either, or its fastest runs,
    p20, match the other's median), host overhead (its host time per call is at least the
    kernel's, so launches cannot keep the GPU busy), bandwidth-bound (near the copy ceiling), or
    far from the ceiling, where the way its time scales with the bytes across dtypes tells
    extra passes over memory (time grows with bytes) from computation (it does not)."""
    gems, other = data.get(op, "gems", dtype, "L"), data.get(op, versus, dtype, "L")
    kernel_us = gems["p50_ms"] * 1e3
    twins = _same_bytes_disagree(data, op, versus=versus) if dtype in _SAME_WIDTH else ""
    if twins:
        return twins
    if gems["p20_ms"] is not None and gems["p20_ms"] <= other["p50_ms"]:
        return (f"timing spread, not the kernel: gems' p20 {gems['p20_ms'] * 1e3:.1f} µs "
                f"is within {versus}'s p50 {other['p50_ms'] * 1e3:.1f} µs; its median is "
                "pulled up by runs whose host launch outlasted the L2 flush")
    host = (data.field(op, "gems", dtype, "S", "host_us")
            or data.value(op, "gems", "S", "host_us"))
    if host and host >= _HOST_BOUND * kernel_us:
        return f"host overhead: {host:.1f} µs/call vs kernel {kernel_us:.1f} µs"
    fraction, other_fraction = gems["fraction"], other["fraction"]
    if fraction is None:
        return f"kernel {kernel_us:.1f} µs (no byte count)"
    beside = f" ({versus} at {other_fraction:.0%})" if other_fraction is not None else ""
    if fraction >= _NEAR_CEILING:
        return f"bandwidth-bound at {fraction:.0%} of ceiling{beside}"
    where = f"{fraction:.0%} of ceiling{beside}"
    scaling = _bytes_scaling(data, op)
    if scaling:
        time_ratio, bytes_ratio = scaling
        grows = f"time ×{time_ratio:.2f} for ×{bytes_ratio:.2f} bytes across dtypes"
        if time_ratio >= _SCALES_WITH_BYTES * bytes_ratio:
            return f"extra passes: moves {1 / fraction:.1f}× the minimal bytes; {where}; {grows}"
        return f"compute-bound: {grows}; {where}"
    return (f"{where}: its time would move {1 / fraction:.1f}× the minimal bytes at the "
            "ceiling")


_SAME_WIDTH = ("float16", "bfloat16")


def _same_bytes_disagree(data, op, pair=_SAME_WIDTH, versus="eager"):
    """A note when gems' times at L for two dtypes of the same width (same bytes, same code)
    differ by more than ``_NOISE_RATIO`` while ``versus``' agree: one of them is timing noise."""
    times = [(data.p50(op, "gems", d, "L"), data.p50(op, versus, d, "L")) for d in pair]
    if not all(g and e for g, e in times):
        return ""
    (g0, e0), (g1, e1) = times
    if max(g0, g1) / min(g0, g1) > _NOISE_RATIO and max(e0, e1) / min(e0, e1) < 1.05:
        return (f"not reproduced: {pair[0]} and {pair[1]} move the same bytes, yet gems took "
                f"{g0 * 1e3:.1f} and {g1 * 1e3:.1f} µs ({versus} {e0 * 1e3:.1f} and "
                f"{e1 * 1e3:.1f}): the slower one is timing noise")
    return ""


def _bytes_scaling(data, op):
    """(time ratio, bytes ratio) of gems at L between its dtypes with the fewest and the most
    bytes moved; None without two such dtypes."""
    points = []
    for d in data.dtypes:
        r = data.get(op, "gems", d, "L")
        if r and _moved_bytes(r):
            points.append((_moved_bytes(r), r["p50_ms"]))  # bytes, ms
    if len(points) < 2:
        return None
    (b_lo, t_lo), (b_hi, t_hi) = min(points), max(points)
    return (t_hi / t_lo, b_hi / b_lo) if b_hi > b_lo else None


# ---- markdown -----------------------------------------------------------------------------
def _x(v):
    if v is None:
        return "–"
    return f"{v:.2f}×" if v >= 0.01 else f"{v:.2g}×"


def _us(ms):
    return f"{ms * 1e3:.1f}" if ms is not None else "–"


def _why_compile(data, op, dtype):
    entry = explained.find(op, dtype)
    if entry is not None:
        return entry.text
    return "*not explained*: " + why_slower(data, op, dtype, "compile")


def _pct(v):
    return f"{v:.0%}" if v is not None else "–"


def _num(v, digits=1):
    return f"{v:.{digits}f}" if v is not None else "–"


def _memory(nbytes):
    """Bytes as B, KiB or MiB; – where not measured (no CUDA)."""
    if nbytes is None:
        return "–"
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(nbytes) >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes:.0f} B"


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def _check(data, op):
    rows = [r for r in data.rows if r["op"] == op and r["provider"] != "eager"]
    wrong = sum(r["correct"] is False for r in rows)
    failed = sum(bool(r["error"]) and r["p50_ms"] is None for r in data.rows if r["op"] == op)
    parts = ([f"✗ {wrong} mismatch"] if wrong else []) + ([f"{failed} error"] if failed else [])
    return ", ".join(parts) or "ok"


def render(data, plots=(), plot_message="", others=None, instruction_counts=None,
           kernel_time=None):
    providers = data.providers
    out = ["# flaggems_exp benchmarks", ""]
    def meta(key):
        return ", ".join(sorted({r[key] for r in data.rows if r.get(key)})) or "–"
    stamps = sorted(r["timestamp"] for r in data.rows if r.get("timestamp"))
    out += [f"{len(data.ops)} ops, {len(data.rows)} rows; GPU: {meta('gpu')}; torch {meta('torch')}; "
            f"triton {meta('triton')}; commit {meta('commit')}"
            + (f"; measured {stamps[0]} to {stamps[-1]}" if stamps else "") + ".",
            f"Copy ceiling (device-to-device copy, bytes read + written): "
            f"{_num(data.ceiling())} GB/s. Speedup = other provider's p50 / gems' p50 "
            "(above 1.00× gems is faster); per op, the geometric mean over dtypes."]
    if others:
        out.append("Left out: rows of other machines (" + ", ".join(
            f"{gpu}: {n}" for gpu, n in sorted(others.items())) + "; see --gpu).")
    out.append("")

    out += ["## Headline", ""]
    out += _table(["dtype", "gems vs eager, L", "gems vs eager, M", "gems vs eager, all sizes",
                   "gems vs compile, L", "ops below 1.0× eager at L"],
                  [[h["dtype"], _x(h["eager_L"]), _x(h["eager_M"]), _x(h["eager_all"]),
                    _x(h["compile_L"]), f"{h['below_L']} of {h['measured_L']}"]
                   for h in headline(data)])
    slow = below_eager_at_l(data)
    wins = compile_wins_at_l(data)
    out += ["", f"- **Ops below 1.0× eager at L**: {len(slow)} of "
                f"{sum(data.op_speedup(op, 'L') is not None for op in data.ops)}"
                + (": " + ", ".join(f"`{op}`" for op in slow) if slow else "") + "."]
    if "compile" in providers:
        out.append(f"- **torch.compile beats gems at L** on {len(wins)} ops"
                   + (": " + ", ".join(f"`{op}` ({1 / s:.2f}× faster)" for op, s in wins)
                      if wins else "")
                   + ".")
    fractions = {p: median([r["fraction"] for r in data.rows if r["provider"] == p and r["size"] == "L"])
                 for p in providers}
    out.append("- **Median bandwidth fraction at L**: " + (", ".join(
        f"{p} {v:.0%}" for p, v in fractions.items() if v is not None) or "–") + ".")
    hosts = {p: median([r["host_us"] for r in data.rows if r["provider"] == p and r["size"] == "S"])
             for p in providers}
    out.append("- **Median host time per call at S**: " + (", ".join(
        f"{p} {v:.1f} µs" for p, v in hosts.items() if v is not None) or "–") + ".")
    extras = {p: median([r.get("extra_bytes") for r in data.rows if r["provider"] == p
                         and r["size"] == "L"]) for p in ("gems", "eager")}
    out.append("- **Median extra memory per call at L** (beyond inputs and result; CUDA "
               "only): " + ", ".join(f"{p} {_memory(v)}" for p, v in extras.items()) + ".")
    wrong = [r for r in data.rows if r["correct"] is False]
    out.append(f"- **Outputs not matching eager**: {len(wrong)} rows" + (":" if wrong else "."))
    out += [f"  - `{r['op']}` {r['provider']} {r['dtype']} {r['size']}: {r['error']}" for r in wrong]
    failed = [r for r in data.rows if r["error"] and r["p50_ms"] is None]
    out.append(f"- **Rows without a time (errors)**: {len(failed)}" + (":" if failed else "."))
    out += [f"  - `{r['op']}` {r['provider']} {r['dtype']} {r['size']}: {r['error']}" for r in failed]

    instruction_counts = instruction_counts or {}
    out += ["", "## Targets", ""]
    out += _table(["target", "measured", "met"],
                  [[goal, value, {True: "yes", False: "**no**", None: "–"}[met]]
                   for goal, value, met in targets(data, instruction_counts)])
    def copy_speed(size):
        # a row can move its bytes no faster than a copy of that size does
        return lambda dtype: data.copy_fraction(dtype, size) or BOUND_CEILING
    sizes = [size for size in GEOMEAN_TARGETS if data.geomean_speedup(size)]
    bounds = [(size, data.geomean_bound(size), data.geomean_bound(size, copy_speed(size)))
              for size in sizes]
    if bounds:
        copies = "; ".join(
            f"{size} " + ", ".join(f"{d} {_pct(data.copy_fraction(d, size))}" for d in data.dtypes
                                   if data.copy_fraction(d, size))
            for size in sizes if any(data.copy_fraction(d, size) for d in data.dtypes))
        out += ["", "What the geomeans could reach on these rows: with every row at the fastest "
                "provider's time, " + ", ".join(f"{size} {_x(fastest)}" for size, fastest, _
                                                in bounds)
                + f"; with every row of at least {_SMALL_BYTES / 1e6:.0f} MB also at the speed "
                "of a copy of its size (eager `copy_`'s fraction of the copy ceiling in its "
                f"dtype there{': ' + copies if copies else ''}; {BOUND_CEILING:.0%} where that "
                "row is missing; arithmetic-bound rows too: an upper bound), "
                + ", ".join(f"{size} {_x(at_copy)}" for size, _, at_copy in bounds) + "."]
    if kernel_time:
        out += ["", kernel_time]

    out += ["", "## Per op", ""]
    out += _table(["op", "family", "×eager S", "×eager M", "×eager L", "×compile L",
                   "gems % ceiling L", "eager % ceiling L", "host µs S gems", "host µs S eager",
                   "host µs S dispatch", "extra mem L gems", "extra mem L eager", "check"],
                  [[f"`{op}`", data.family[op], _x(data.op_speedup(op, "S")),
                    _x(data.op_speedup(op, "M")), _x(data.op_speedup(op, "L")),
                    _x(data.op_speedup(op, "L", "compile")),
                    _pct(data.value(op, "gems", "L", "fraction")),
                    _pct(data.value(op, "eager", "L", "fraction")),
                    _num(data.value(op, "gems", "S", "host_us")),
                    _num(data.value(op, "eager", "S", "host_us")),
                    _num(data.value(op, "gems_dispatch", "S", "host_us")),
                    _memory(data.value(op, "gems", "L", "extra_bytes")),
                    _memory(data.value(op, "eager", "L", "extra_bytes")), _check(data, op)]
                   for op in data.ops])

    out += ["", "## Below 1.0× eager at L: diagnosis", ""]
    out += [f"- `{op}`: {diagnose(data, op)}" for op in slow] or ["None."]

    if "compile" in providers:
        out += ["", f"## Below {COMPILE_FLOOR:.2f}× torch.compile at L", "",
                "Why: an entry of `benchmarks/explained.py` (a cause proved in "
                "`benchmarks/NOTES.md`), else what the row's own numbers suggest, marked "
                "*not explained*.", ""]
        slow_rows = below_compile_at_l(data)
        out += _table(["op", "dtype", "gems µs", "compile µs", "eager µs", "×compile",
                       "gems % ceiling", "why"],
                      [[f"`{op}`", d, _us(data.p50(op, "gems", d, "L")),
                        _us(data.p50(op, "compile", d, "L")), _us(data.p50(op, "eager", d, "L")),
                        _x(s), _pct(data.get(op, "gems", d, "L")["fraction"]),
                        _why_compile(data, op, d)] for op, d, s in slow_rows]) \
            if slow_rows else ["None."]

    out += ["", f"## Below {CEILING_FLOOR:.0%} of the copy ceiling at L", ""]
    low = below_ceiling_at_l(data)
    out += _table(["op", "dtype", "gems % ceiling", "eager % ceiling", "compile % ceiling",
                   "kind", "why"],
                  [[f"`{op}`", d, _pct(f), _pct(data.field(op, "eager", d, "L", "fraction")),
                    _pct(data.field(op, "compile", d, "L", "fraction")),
                    *ceiling_reason(data, op, d, instruction_counts)] for op, d, f in low]) \
        if low else ["None."]

    out += ["", "## Plots", ""]
    # a blank line after each image: images on consecutive lines render side by side
    out += [line for p in plots for line in (f"![{p.stem}]({p.name})", "")] or [
        plot_message or "No plots.", ""]
    return "\n".join(out)


# ---- plots --------------------------------------------------------------------------------
def plot(data, out_dir):
    """The overview and one figure per family, next to the report; ([paths], message)."""
    from benchmarks import plots  # here, not at the top: plots uses this module
    try:
        plt = plots.pyplot()
    except plots.Unavailable as exc:
        return [], f"Plots skipped: {exc}."
    out_dir = pathlib.Path(out_dir)
    files = [plots.overview(plt, data, out_dir / "overview_L.png")]
    for family in sorted(set(data.family.values()), key=plots.family_label):
        files.append(plots.family_figure(
            plt, data, family, out_dir / f"family_{plots.family_label(family)}.png"))
    return [f for f in files if f], ""


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--csv", type=pathlib.Path, default=DEFAULT_CSV, help=f"default {DEFAULT_CSV}")
    parser.add_argument("--out", type=pathlib.Path,
                        help="where REPORT.md and the PNGs go (default: the CSV's folder, unless "
                             "that is the published results: then a fresh temporary folder; "
                             "name it with --out to rewrite the published report)")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--op", action="append", default=[], metavar="NAME",
                        help="instead of the report, plot this op's time and speedup against "
                             "size into NAME.png (repeatable)")
    parser.add_argument("--gpu", help="report the rows of this machine (the CSV's gpu column); "
                                      "default: the one with the most rows")
    args = parser.parse_args(argv)
    if not args.csv.exists():
        parser.error(f"{args.csv} does not exist: run python -m benchmarks.run first")
    rows, others = load(args.csv, args.gpu)
    if not rows:
        parser.error(f"{args.csv} has no rows" + (f" of {args.gpu}" if args.gpu else ""))
    data = Data.of(rows)
    unknown = [op for op in args.op if op not in data.family]
    if unknown:
        parser.error(f"no rows for op(s) {', '.join(unknown)} in {args.csv}")
    if args.op and args.no_plots:
        parser.error("--op draws plots: it cannot go with --no-plots")
    out_dir = args.out or args.csv.parent
    if args.out is None and args.csv.resolve().parent == DEFAULT_CSV.parent:
        out_dir = pathlib.Path(tempfile.mkdtemp(prefix="flaggems-report-"))
    if args.op:
        return _plot_ops(parser, data, args.op, out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files, message = ([], "Plots skipped (--no-plots).") if args.no_plots else plot(data, out_dir)
    report = out_dir / "REPORT.md"
    report.write_text(render(data, files, message, others, load_instructions(args.csv.parent),
                                   load_kernel_times(args.csv.parent)))
    print(f"wrote {report}" + "".join(f", {f.name}" for f in files))
    if message:
        print(message)
    return 0


def _plot_ops(parser, data, ops, out_dir):
    """``--op``: one figure per named op, and nothing else."""
    from benchmarks import plots
    try:
        plt = plots.pyplot()
    except plots.Unavailable as exc:
        parser.error(f"--op: {exc}")
    out_dir.mkdir(parents=True, exist_ok=True)
    files = [plots.op_figure(plt, data, op, out_dir / f"{op}.png") for op in ops]
    print("wrote " + ", ".join(str(f) for f in files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
