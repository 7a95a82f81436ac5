"""Parallel warm-up: compile every case's kernels in worker processes before timing starts.

Compiling is most of a cold run's wall time (Inductor for ``compile``, Triton for ``gems``)
and almost all of it is host work, while the timing itself must run alone on the GPU. So the
runner first hands each (op, dtype, size) to a pool of processes that build the same inputs
and make the first ``gems`` call and the first ``torch.compile`` call; their results land in
Triton's and Inductor's on-disk caches, and the timing process then loads instead of
compiling. The workers do not store Inductor's autotuning choices (they benchmark kernel
configurations while sharing the GPU with each other): the timing process tunes alone.
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
    failures = {}
    if not tasks:
        return failures
    # the largest inputs first, so that no big case starts last on an otherwise idle pool
    order = sorted(tasks, key=lambda t: "LMS".find(t.size))
    start = time.perf_counter()
    context = multiprocessing.get_context("spawn")  # CUDA cannot be used in a forked child
    done, step = 0, max(1, len(order) // 20)
    tty = hasattr(log, "isatty") and log.isatty()
    try:
        with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context,
                                                    initializer=_init_worker) as pool:
            futures = [pool.submit(_warm, task) for task in order]
            for future in concurrent.futures.as_completed(futures):
                key, error, _ = future.result()
                done += 1
                if error:
                    failures[key] = error
                text = f"warm-up {done}/{len(order)} compiled, {time.perf_counter() - start:.0f} s"
                if tty:
                    print("\r" + text, end="", file=log, flush=True)
                elif done % step == 0 or done == len(order):  # about 20 lines in a log
                    print(text, file=log, flush=True)
    except concurrent.futures.process.BrokenProcessPool as exc:
        print(f"\nwarm-up stopped: {exc}", file=log)
    if tty:
        print(file=log)
    return failures
