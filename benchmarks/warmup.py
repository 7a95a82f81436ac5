"""Parallel warm-up: compile each case's kernels in worker processes before it is timed.

Compiling is most of a cold run's wall time (Inductor for ``compile``, Triton for ``gems``)
and almost all of it is host work, while the timing itself must run alone on the GPU. So the
runner hands each (op, dtype, size) to a pool of processes that build the same inputs and
make the first ``gems`` call and the first ``torch.compile`` call; their results land in
Triton's and Inductor's on-disk caches, and the timing process then loads instead of
compiling. The runner does this a stage of ops at a time (``Pool``), each stage just before
its timing, never both at once. The workers do not store Inductor's autotuning choices (they
benchmark kernel configurations while sharing the GPU with each other): the timing process
tunes alone.
"""
import concurrent.futures
import multiprocessing
import sys
import time

import attrs


@attrs.frozen
class Task:
    op: str  # a REGISTRY name
    dtype: str
    size: str
    compile: bool  # also warm torch.compile
    compile_timeout: float
    shapes: object = None  # the runner's shape table override, if any

    @property
    def key(self):
        return (self.op, self.dtype, self.size)


_LAYOUTS = {}


def _init_worker():
    import torch._inductor.config as inductor

    from . import providers
    inductor.compile_threads = 1  # the workers are the parallelism (not in Inductor's cache key)
    inductor.autotune_local_cache = False  # contended tuning stays out of the cache (idem)
    providers.configure_dynamo()


def _warm(task):
    """``_compile_case``, then the worker's cached GPU memory handed back: between two
    stages of a run the workers wait beside the timing process holding only their contexts."""
    import torch
    result = _compile_case(task)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return result


def _compile_case(task):
    """Build ``task``'s inputs, call gems once and the compiled eager call once.
    Returns (key, error of the compile or None, seconds)."""
    import torch

    import flaggems_exp
    from flaggems_exp import REGISTRY

    from . import cases, providers, timing
    start = time.perf_counter()
    op, dtype = REGISTRY[task.op], getattr(torch, task.dtype)
    try:
        if (task.op, task.dtype) not in _LAYOUTS:
            _LAYOUTS[task.op, task.dtype] = cases.find_layout(op, dtype, flaggems_exp.device,
                                                              task.shapes)
        layout = _LAYOUTS[task.op, task.dtype]
        case = cases.make_case(op, dtype, task.size, layout.index, task.shapes,
                               flaggems_exp.device)
        args, kwargs = cases.to_device(case.call, flaggems_exp.device)
    except Exception:  # noqa: BLE001 - the timing process records input errors itself
        return task.key, None, time.perf_counter() - start
    inplace = cases.mutates_self(op)

    def fresh():
        return cases.clone_args(args, kwargs) if inplace else (args, kwargs)
    try:
        a, k = fresh()
        op(*a, **k)
        timing.synchronize()
    except Exception:  # noqa: BLE001 - recorded by the timing process
        pass
    error = None
    if task.compile:
        torch._dynamo.reset()
        compiled = providers.compile_eager(layout.baseline.fn)
        try:
            a, k = fresh()
            with providers.time_limit(task.compile_timeout):
                compiled(*a, **k)
                timing.synchronize()
        except Exception as exc:  # noqa: BLE001 - reported back
            timed_out = providers.timed_out(exc)
            error = ("timeout" if timed_out else "error", cases.one_line(exc))
            torch._dynamo.reset()
    return task.key, error, time.perf_counter() - start


def warm(tasks, jobs, log=sys.stderr):
    """Run ``tasks`` on ``jobs`` processes. Returns {key: ("timeout"|"error", message)} for
    the compiles that failed; a broken pool ends the warm-up early (the timing process then
    compiles what is left itself)."""
    if not tasks:
        return {}
    with Pool(min(jobs, len(tasks)), log) as pool:
        return pool.warm(tasks)


class Pool:
    """Worker processes kept for several warm-ups: the runner warms each stage of its plan
    just before timing it, so its time budget bounds the compiling too, and the processes
    (each importing torch and Triton) start once. Used as a context manager."""

    def __init__(self, jobs, log=sys.stderr):
        self.jobs, self.log = jobs, log
        self._executor = None
        self.broken = False

    def __enter__(self):
        context = multiprocessing.get_context("spawn")  # CUDA cannot be used in a forked child
        self._executor = concurrent.futures.ProcessPoolExecutor(
            self.jobs, mp_context=context, initializer=_init_worker)
        return self

    def __exit__(self, *exc):
        self._executor.shutdown(cancel_futures=True)
        return False

    def warm(self, tasks):
        """Compile ``tasks`` and wait for all of them; returns the failed compiles as
        ``warm`` does. Once the pool has broken, nothing more is warmed."""
        failures = {}
        if not tasks or self.broken:
            return failures
        log = self.log
        # the largest inputs first, so that no big case starts last on an otherwise idle pool
        order = sorted(tasks, key=lambda t: "LMS".find(t.size))
        start = time.perf_counter()
        done, step = 0, max(1, len(order) // 4)
        tty = hasattr(log, "isatty") and log.isatty()
        try:
            futures = [self._executor.submit(_warm, task) for task in order]
            for future in concurrent.futures.as_completed(futures):
                key, error, _ = future.result()
                done += 1
                if error:
                    failures[key] = error
                text = f"warm-up {done}/{len(order)} compiled, {time.perf_counter() - start:.0f} s"
                if tty:
                    print("\r" + text, end="", file=log, flush=True)
                elif done % step == 0 or done == len(order):  # about 4 lines a stage in a log
                    print(text, file=log, flush=True)
        except concurrent.futures.process.BrokenProcessPool as exc:
            self.broken = True
            print(f"\nwarm-up stopped: {exc}", file=log)
        if tty:
            print(file=log)
        return failures
