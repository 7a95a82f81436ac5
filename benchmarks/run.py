"""Benchmark every registered op against PyTorch; rows go to one tidy CSV.

    python -m benchmarks.run                                   # everything (long: see README)
    python -m benchmarks.run --op sigmoid --op mul_ --size S --dtype float32
    python -m benchmarks.run --quick                           # S and L, float16
    python -m benchmarks.run --shard 2/8 --resume --time-budget 540

For each distinct op of ``flaggems_exp.REGISTRY`` (in-place forms included), each dtype and
size, the family's natural first call is timed with every provider (eager, compile, gems,
gems_dispatch) on the same inputs, checked against eager, and written as one CSV row per
provider: quantiles of the device time, the bandwidth it reaches against this run's copy
ceiling, the host time per call at S, the memory a call needs beyond its inputs and result
(CUDA only), and whether its output matched eager's.
``--resume`` skips the (op, provider, dtype, size) rows the CSV already has, so a long run
can be split into commands that each fit a time limit.
"""
import argparse
import contextlib
import csv
import datetime
import pathlib
import subprocess
import sys
import tempfile
import time

import attrs
import torch

import flaggems_exp
import triton
from flaggems_exp import REGISTRY, testing

from . import cases, providers, timing, warmup

PUBLISHED = pathlib.Path(__file__).resolve().parent / "results"  # written only when named
CSV_NAME = "results.csv"
DEVICE = flaggems_exp.device


def csv_cell(value):
    """A CSV cell: empty where nothing was measured, a float to 6 significant digits."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


@attrs.frozen
class Row:
    """One CSV row: one op, provider, dtype and size. Empty cells where nothing was measured."""

    op: str
    family: str
    provider: str
    dtype: str
    size: str
    shape: str
    p20_ms: object = None
    p50_ms: object = None
    p80_ms: object = None
    gbps: object = None
    fraction: object = None
    host_us: object = None
    extra_bytes: object = None  # memory a call needs beyond its inputs and result (CUDA only)
    correct: object = None  # None for eager (the baseline) and where eager itself failed
    error: str = ""
    gpu: str = ""
    torch: str = ""
    triton: str = ""
    commit: str = ""
    timestamp: str = ""

    def cells(self):
        return {k: csv_cell(v) for k, v in attrs.asdict(self).items()}


COLUMNS = tuple(f.name for f in attrs.fields(Row))


@attrs.frozen
class Config:
    ops: tuple
    sizes: tuple = cases.SIZES
    dtypes: tuple = ()  # () -> each op's defaults (cases.op_dtypes)
    providers: tuple = providers.PROVIDERS
    out_dir: pathlib.Path = None  # None: a fresh temporary folder
    resume: bool = False
    retry_errors: bool = False
    compile_timeout: float = 120.0
    jobs: int = 0
    time_budget: float = 0.0  # seconds; 0: none
    host_calls: int = 200
    shapes: object = None  # a shape table replacing cases.SHAPES (tests use tiny ones)
    commit: str = ""
    log: object = sys.stderr


# ---- the CSV ------------------------------------------------------------------------------
class Results:
    """The CSV: appended row by row (flushed, so a killed run keeps what it measured)."""

    def __init__(self, path, resume=False, retry_errors=False, gpu=None):
        """With ``resume``, the rows already measured on ``gpu`` (any, if None) count as done:
        rows of another machine (a CPU test run) never stand in for this one's."""
        self.path = pathlib.Path(path)
        self.done = set()
        if self.path.exists() and self.path.stat().st_size:
            with self.path.open(newline="") as f:
                reader = csv.DictReader(f)
                if tuple(reader.fieldnames or ()) != COLUMNS:
                    raise SystemExit(f"{self.path} has other columns than {', '.join(COLUMNS)}: "
                                     "move it away or pass another --out")
                for r in reader:
                    failed = r["error"] and not r["p50_ms"]
                    if resume and (gpu is None or r["gpu"] == gpu) and not (retry_errors and failed):
                        self.done.add((r["op"], r["provider"], r["dtype"], r["size"]))
        self.written = 0

    def write(self, row):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists() or not self.path.stat().st_size
        with self.path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            if new:
                writer.writeheader()
            writer.writerow(row.cells())
        self.written += 1


@attrs.frozen
class Environment:
    gpu: str
    torch: str
    triton: str
    commit: str


def environment(commit=""):
    gpu = torch.cuda.get_device_name() if timing.CUDA else "cpu (Triton interpreter)"
    return Environment(gpu, torch.__version__, triton.__version__, commit or _git_commit())


def _git_commit():
    """HEAD's short hash, '+dirty' with uncommitted changes; 'unknown' without git."""
    root = pathlib.Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        # --no-optional-locks: a read-only look, never a refresh of the index
        dirty = subprocess.run(["git", "--no-optional-locks", "status", "--porcelain",
                                "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


# ---- planning -----------------------------------------------------------------------------
def planned(op, config):
    """The (dtype, size, provider) rows ``op`` should have, in the order they are measured.
    ``gems_dispatch`` is a sample: the dispatch cost is per call, so it is measured at the
    sizes of ``providers.DISPATCH_SIZES`` in the op's first dtype only."""
    dtypes = cases.op_dtypes(op, config.dtypes)
    keys = []
    for size in config.sizes:
        for dtype in dtypes:
            for name in config.providers:
                if name == "gems_dispatch" and (size not in providers.DISPATCH_SIZES
                                                 or dtype != dtypes[0]):
                    continue
                keys.append((dtype, size, name))
    return keys


def pending(op, config, results):
    return [(d, s, p) for d, s, p in planned(op, config)
            if (op.name, p, cases.dtype_name(d), s) not in results.done]


# ---- measuring ----------------------------------------------------------------------------
def bench_op(op, keys, config, ceiling, env, warm_failures):
    """Measure ``keys`` [(dtype, size, provider)] of ``op``; yields rows."""
    torch._dynamo.reset()  # each op starts with an empty compile cache (recompile limits)

    def row(dtype, size, shape, name, **values):
        return Row(op.name, op.family, name, cases.dtype_name(dtype), size, shape,
                   gpu=env.gpu, torch=env.torch, triton=env.triton, commit=env.commit,
                   timestamp=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                   **values)
    try:
        layout = cases.find_layout(op, keys[0][0], DEVICE, config.shapes)
    except Exception as exc:  # noqa: BLE001 - recorded in every row of the op
        for d, s, p in keys:
            yield row(d, s, "", p, error=f"inputs: {cases.one_line(exc)}")
        return
    wants_compile = any(p == "compile" for *_, p in keys)
    compiled = providers.compile_eager(layout.baseline.fn) if wants_compile else None
    cases_order = list(dict.fromkeys((d, s) for d, s, _ in keys))
    try:
        for dtype, size in cases_order:
            names = [p for d, s, p in keys if (d, s) == (dtype, size)]
            try:
                case = cases.make_case(op, dtype, size, layout.index, config.shapes, DEVICE)
            except Exception as exc:  # noqa: BLE001
                for name in names:
                    yield row(dtype, size, "", name, error=f"inputs: {cases.one_line(exc)}")
                continue
            shape = cases.shape_name(case.shape)
            measured = {}
            try:
                for name, values in measure_case(op, case, layout.baseline, names, compiled,
                                                 config, ceiling, warm_failures):
                    measured[name] = values
            except Exception as exc:  # noqa: BLE001 - e.g. out of memory moving the inputs
                for name in names:
                    measured.setdefault(name, {"error": cases.error_line(exc)})
                if timing.CUDA:
                    torch.cuda.empty_cache()
            for name in names:
                yield row(dtype, size, shape, name, **measured[name])
            del case
    finally:
        torch._dynamo.reset()


def measure_case(op, case, baseline, names, compiled, config, ceiling, warm_failures):
    """Yields (provider, row values) for each provider of ``names`` on one case."""
    inplace = cases.mutates_self(op)
    args, kwargs = cases.to_device(case.call, DEVICE)

    def fresh():
        # in place: a new copy of the inputs per use; otherwise the inputs are never written
        return cases.clone_args(args, kwargs) if inplace else (args, kwargs)

    expected, eager_error = None, ""
    try:
        a, k = fresh()
        expected = baseline.fn(*a, **k)
        timing.synchronize()
    except Exception as exc:  # noqa: BLE001
        eager_error = f"eager: {cases.error_line(exc)}"
    nbytes = cases.op_bytes(op, args, kwargs, expected) if expected is not None else None
    for name in names:
        if name == "eager" and eager_error:
            yield name, {"error": eager_error}
            continue
        values = measure_provider(op, case, baseline, name, compiled, config, args, kwargs, fresh,
                                  expected, warm_failures)
        if eager_error and not values.get("error"):
            values["error"] = f"not checked ({eager_error})"
        p50 = values.get("p50_ms")
        if p50 and nbytes is not None:
            # a call that moves no bytes (an uninitialised or empty result) gets 0 GB/s and
            # no fraction: it has no ceiling to reach
            values["gbps"] = nbytes / (p50 * 1e-3) / 1e9
            if nbytes:
                values["fraction"] = values["gbps"] / ceiling
        if case.note and not values.get("error"):
            values["error"] = case.note
        yield name, values


def measure_provider(op, case, baseline, name, compiled, config, args, kwargs, fresh, expected,
                     warm_failures):
    """Row values of one provider: first call (compiled here for ``compile``) and check
    against eager, host time per call at S, then the kernel-time quantiles."""
    inplace = cases.mutates_self(op)
    warm = warm_failures.get((op.name, cases.dtype_name(case.dtype), case.size))
    if name == "compile" and warm and warm[0] == "timeout":
        return {"error": f"compile: {warm[1]} (in the warm-up; not retried)"}
    provider = providers.make(name, op, baseline, compiled)
    values = {}
    try:
        a, k = fresh()
        limit = config.compile_timeout if name == "compile" else 0
        with provider.context(), providers.time_limit(limit):
            out = provider.fn(*a, **k)
            timing.synchronize()
    except Exception as exc:  # noqa: BLE001 - recorded, never fatal
        if name == "compile":
            torch._dynamo.reset()  # a compile interrupted half-way leaves Dynamo's state unsure
            if providers.timed_out(exc):
                return {"error": f"compile: {cases.one_line(exc)}"}
        return {"error": f"{name}: {cases.error_line(exc)}"}
    if name != "eager" and expected is not None:
        comparable = cases.values_comparable(op, baseline)
        values["correct"], why = cases.compare(out, expected, values=comparable)
        if why or not comparable:
            values["error"] = why or "note: values not compared (uninitialised or random output)"
    del out, a, k
    try:
        a, k = fresh()
        with provider.context():
            values["extra_bytes"] = timing.extra_bytes(provider.fn, a, k)
        del a, k
        if case.size == "S":
            values["host_us"] = _host_time(provider, args, kwargs, inplace, config.host_calls)
        fn, setup = timed_call(provider, args, kwargs, inplace)
        with provider.context():
            values["p20_ms"], values["p50_ms"], values["p80_ms"] = timing.bench(fn, setup)
    except Exception as exc:  # noqa: BLE001
        values["error"] = f"{name} timing: {cases.error_line(exc)}"
    return values


def timed_call(provider, args, kwargs, inplace):
    """(fn, setup) to time one call of ``provider``: in place, on a copy of the inputs whose
    self ``setup()`` restores from ``args`` before each run; otherwise on ``args`` themselves."""
    if inplace:
        work, work_kwargs = cases.clone_args(args, kwargs)
        source = args[0]
        return (lambda: provider.fn(*work, **work_kwargs)), (lambda: work[0].copy_(source))
    return (lambda: provider.fn(*args, **kwargs)), None


def _host_time(provider, args, kwargs, inplace, calls):
    """µs per call over ``calls`` calls; in place, each call gets its own pre-made copy of
    self (a pool made outside the timed loop), so no call sees another's output."""
    if inplace:
        arg_sets = [(args[0].clone(), *args[1:]) for _ in range(calls)]
    else:
        arg_sets = [args] * calls
    with provider.context():
        return timing.host_us(provider.fn, arg_sets, kwargs)


# ---- the run ------------------------------------------------------------------------------
class Progress:
    """A text progress bar on stderr, one line per op: op i/N and the elapsed time."""

    def __init__(self, total, log, start):
        self.total, self.log, self.start = total, log, start

    def show(self, i, name):
        e = int(time.perf_counter() - self.start)
        width = 20
        filled = width * i // max(self.total, 1)
        print(f"[{'#' * filled}{'.' * (width - filled)}] op {i + 1}/{self.total} {name:<24} "
              f"elapsed {e // 3600}:{e // 60 % 60:02d}:{e % 60:02d}", file=self.log, flush=True)


# a stage's warm-up cases: this many rounds of every worker, so that a stage's last compiles
# leave few workers idle, while a time budget still bounds how much is compiled
STAGE_ROUNDS = 4


def warm_stages(tasks, jobs):
    """{index of the plan's op that opens a stage: the stage's warm-up cases}, for ``tasks``
    (each op's cases, in the plan's order) cut into stages of at least ``STAGE_ROUNDS * jobs``
    cases; the last stage holds what is left."""
    stages, start, stage = {}, 0, []
    for i, op_tasks in enumerate(tasks):
        stage += op_tasks
        if len(stage) >= STAGE_ROUNDS * jobs or i == len(tasks) - 1:
            stages[start], start, stage = stage, i + 1, []
    return stages


def run(config):
    """Measure every pending row of ``config``. Returns 0 when nothing is left to measure,
    3 when ``time_budget`` stopped the run early (run it again with --resume)."""
    log, run_start = config.log, time.perf_counter()
    out = pathlib.Path(config.out_dir or tempfile.mkdtemp(prefix="flaggems-bench-"))
    env = environment(config.commit)
    results = Results(out / CSV_NAME, config.resume, config.retry_errors, env.gpu)
    plan = [(op, keys) for op in config.ops if (keys := pending(op, config, results))]
    total_rows = sum(len(k) for _, k in plan)
    if not plan:
        print(f"nothing to measure: {out / CSV_NAME} has every row asked for", file=log)
        return 0
    providers.configure_dynamo()
    ceiling = timing.copy_ceiling_gbps()
    print(f"flaggems_exp benchmarks on {env.gpu} (torch {env.torch}, triton {env.triton}, "
          f"commit {env.commit}): {len(plan)} ops, {total_rows} rows; copy ceiling "
          f"{ceiling:.1f} GB/s", file=log)
    tasks = [[warmup.Task(op.name, cases.dtype_name(d), size, "compile" in config.providers,
                          config.compile_timeout, config.shapes)
              for d, size in dict.fromkeys((d, size) for d, size, _ in keys)]
             for op, keys in plan]
    task_count = sum(map(len, tasks))
    jobs = min(config.jobs, task_count)
    stages = warm_stages(tasks, jobs) if jobs > 0 else {}
    if stages:
        print(f"warm-up: {task_count} cases on {jobs} processes, in {len(stages)} stages, "
              "each just before its timing", file=log)
    warm_failures = {}
    progress = Progress(len(plan), log, run_start)
    slowest, slowest_warm, stopped = 0.0, 0.0, False
    incorrect, failed = [], []
    with warmup.Pool(jobs, log) if stages else contextlib.nullcontext() as pool:
        for i, (op, keys) in enumerate(plan):
            # an op starts only if it (and the warm-up of the stage it opens) likely fits
            stage = stages.get(i)
            likely_end = time.perf_counter() - run_start + slowest
            if stage:
                likely_end += slowest_warm
            if config.time_budget and i and likely_end > config.time_budget:
                stopped = True
                break
            if stage:
                warm_start = time.perf_counter()
                warm_failures.update(pool.warm(stage))
                slowest_warm = max(slowest_warm, time.perf_counter() - warm_start)
            progress.show(i, op.name)
            op_start = time.perf_counter()
            rows = []
            for row in bench_op(op, keys, config, ceiling, env, warm_failures):
                results.write(row)
                rows.append(row)
                if row.correct is False:
                    incorrect.append(row)
                elif row.error and row.p50_ms is None:
                    failed.append(row)
            seconds = time.perf_counter() - op_start
            slowest = max(slowest, seconds)
            print(f"    {op.name}: {len(rows)} rows in {seconds:.1f} s; {_speedups(rows)}",
                  file=log)
    print(f"{results.written} rows written to {out / CSV_NAME} in "
          f"{time.perf_counter() - run_start:.0f} s",
          file=log)
    for title, rows in (("outputs not matching eager", incorrect), ("rows without timing", failed)):
        if rows:
            print(f"{len(rows)} {title}:", file=log)
            for r in rows:
                print(f"  {r.op} {r.provider} {r.dtype} {r.size}: {r.error}", file=log)
    if stopped:
        left = sum(len(k) for _, k in plan[i:])
        print(f"INCOMPLETE: --time-budget reached with {len(plan) - i} ops ({left} rows) left; "
              "run the same command again with --resume", file=log)
        return 3
    return 0


def _speedups(rows):
    """'gems vs eager at <largest size>: float16 1.02×, ...' for one op's rows."""
    p50 = {(r.provider, r.dtype, r.size): r.p50_ms for r in rows if r.p50_ms}
    size = max((r.size for r in rows), key=cases.SIZES.index, default=None)
    parts = [f"{r.dtype} {p50[('eager', r.dtype, size)] / p50[('gems', r.dtype, size)]:.3g}×"
             for r in rows if r.provider == "gems" and r.size == size
             and ("eager", r.dtype, size) in p50 and ("gems", r.dtype, size) in p50]
    return f"gems vs eager at {size}: " + (", ".join(parts) or "–")


# ---- command line -------------------------------------------------------------------------
def add_op_and_dtype_options(parser):
    """``--op`` and ``--dtype``, as every benchmark command takes them."""
    parser.add_argument("--op", action="append", default=[], metavar="NAME",
                        help="an op name or alias (repeatable); default: every registered op")
    parser.add_argument("--dtype", action="append", default=[], metavar="D",
                        help="a dtype (repeatable); default: float16, bfloat16, float32 where "
                             "the op supports them (integer dtypes for integer-only ops)")


def op_parser(module, description):
    """The parser of the command ``python -m module``: ``--op``, ``--dtype`` and @file
    arguments; ``ops_and_dtypes`` reads them back."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", fromfile_prefix_chars="@",
                                     description=description)
    add_op_and_dtype_options(parser)
    return parser


def ops_and_dtypes(parser, args):
    """``args`` with ``ops`` and ``dtypes``, the registered ops and torch dtypes its ``--op``
    and ``--dtype`` name (an unknown one is the parser's error)."""
    args.ops = chosen_ops(parser, args.op)
    args.dtypes = chosen_dtypes(parser, args.dtype)
    return args


def chosen_ops(parser, names):
    """The registered ops ``names`` name, each once in their order (every op for none); an
    unknown name is the parser's error."""
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        parser.error(f"unknown op(s): {', '.join(unknown)}")
    return list(dict.fromkeys([REGISTRY[n] for n in names] if names else REGISTRY.values()))


def chosen_dtypes(parser, names):
    """The torch dtypes ``names`` name; an unknown one is the parser's error."""
    dtypes = [getattr(torch, d, None) for d in names]
    if not all(isinstance(d, torch.dtype) for d in dtypes):
        parser.error(f"unknown dtype in {names}")
    return tuple(dtypes)


def parse_args(argv, **overrides):
    parser = op_parser("benchmarks.run", __doc__.split("\n")[0])
    parser.add_argument("--family", help="only ops of this family (e.g. PointwiseOp, InplaceOp)")
    parser.add_argument("--size", action="append", default=[], choices=cases.SIZES,
                        help="S (~4K elements), M (~1M), L (~64M) (repeatable); default: all")
    parser.add_argument("--quick", action="store_true",
                        help="sizes S and L, float16 only (every run times the first call form)")
    parser.add_argument("--out", type=pathlib.Path, default=None, metavar="DIR",
                        help="where results.csv goes (default: a fresh temporary folder; "
                             f"--out {PUBLISHED} updates the published results)")
    parser.add_argument("--resume", action="store_true",
                        help="skip (op, provider, dtype, size) rows the CSV already has")
    parser.add_argument("--retry-errors", action="store_true",
                        help="with --resume: measure again the rows that have an error and no time")
    default_providers = providers.PROVIDERS if timing.CUDA else providers.CPU_PROVIDERS
    parser.add_argument("--providers", action="append", default=[], metavar="LIST",
                        help="comma-separated providers (repeatable): "
                             f"{', '.join(providers.PROVIDERS)}; default: {','.join(default_providers)}")
    parser.add_argument("--compile-timeout", type=float, default=120.0, metavar="SECONDS",
                        help="limit of one torch.compile warm-up call (default 120)")
    parser.add_argument("--jobs", type=int, default=None, metavar="N",
                        help="processes compiling every case before timing (default: the CPU "
                             "count up to 16 with CUDA, none without)")
    parser.add_argument("--time-budget", type=float, default=0.0, metavar="SECONDS",
                        help="start no op that would likely end after this many seconds; "
                             "exit status 3 when ops are left (then run again with --resume)")
    parser.add_argument("--shard", metavar="K/N",
                        help="only the K-th of N interleaved slices of the selected ops")
    parser.add_argument("--host-calls", type=int, default=None, metavar="N",
                        help="calls in the host-time loop at S (default 200; 5 without CUDA)")
    parser.add_argument("--commit", default="", help="the commit to record (default: git's HEAD)")
    args = parser.parse_args(argv)

    ops = chosen_ops(parser, args.op)
    if args.family:
        ops = [op for op in ops if args.family in (op.family, testing.twin(op).family)]
    if args.shard:
        try:
            k, n = (int(x) for x in args.shard.split("/"))
            assert 1 <= k <= n
        except (ValueError, AssertionError):
            parser.error("--shard takes K/N with 1 <= K <= N")
        ops = ops[k - 1::n]
    dtypes = chosen_dtypes(parser, args.dtype or (["float16"] if args.quick else []))
    sizes = tuple(dict.fromkeys(args.size)) or (("S", "L") if args.quick else cases.SIZES)
    names = [p for spec in args.providers for p in spec.split(",") if p] or list(default_providers)
    bad = [p for p in names if p not in providers.PROVIDERS]
    if bad:
        parser.error(f"unknown provider(s) {', '.join(bad)}; known: {', '.join(providers.PROVIDERS)}")
    jobs = args.jobs if args.jobs is not None else (min(16, _cpu_count()) if timing.CUDA else 0)
    host_calls = args.host_calls or (200 if timing.CUDA else 5)
    values = dict(ops=tuple(ops), sizes=tuple(s for s in cases.SIZES if s in sizes),
                  dtypes=tuple(dtypes), providers=tuple(dict.fromkeys(names)), out_dir=args.out,
                  resume=args.resume, retry_errors=args.retry_errors,
                  compile_timeout=args.compile_timeout, jobs=jobs, time_budget=args.time_budget,
                  host_calls=host_calls, commit=args.commit)
    values.update(overrides)
    return Config(**values)


def _cpu_count():
    import os
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def main(argv=None, **overrides):
    """The command line; ``overrides`` replace Config fields (tests pass a tiny shape table)."""
    import warnings
    # the interpreter computes in numpy, which warns on the inf/NaN some inputs produce
    warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"triton\.")
    return run(parse_args(argv, **overrides))


if __name__ == "__main__":
    sys.exit(main())
