"""Device timing: ``triton.testing.do_bench`` quantiles, host time per call, the copy ceiling.

On CUDA every kernel time comes from CUDA events with the L2 cache flushed before each run
(``do_bench``'s own method). Without CUDA (CI, Triton's interpreter) the same calls are timed
with ``time.perf_counter``: enough to exercise the runner, meaningless as performance.
"""
import inspect
import time

import torch

import flaggems_exp  # noqa: F401  (sets up Triton's interpreter before triton is used)
import triton
import triton.testing

QUANTILES = (0.2, 0.5, 0.8)
CUDA = torch.cuda.is_available() and flaggems_exp.device == "cuda"
# time budgets (ms) of every timed call, do_bench's and the in-place loop's alike: under half
# of do_bench's defaults (25, 100), so that the whole matrix fits one device session; 40 ms
# still holds 40 runs of a 1 ms case and hundreds of a 64M-element unary op (~0.1 ms).
_WARMUP_MS, _REP_MS = 10, 40
# the CPU fallback: a few runs within a small budget (interpreted kernels are slow)
_CPU_BUDGET_S, _CPU_MIN_REPS, _CPU_MAX_REPS = 0.2, 3, 20


def synchronize():
    if CUDA:
        torch.cuda.synchronize()


def bench(fn, setup=None):
    """(p20, p50, p80) in ms of ``fn()``. ``setup()``, when given, runs before each timed run
    and outside its timed region: in-place ops restore their input there, so no run times a
    clone and no run sees the previous run's output as its input."""
    if not CUDA:
        return _bench_cpu(fn, setup)
    if setup is None:
        return _do_bench(fn)
    return _bench_with_setup(fn, setup)


def _do_bench(fn):
    params = inspect.signature(triton.testing.do_bench).parameters
    if "quantiles" in params:  # triton >= 2.1, including 3.6 and 3.9
        result = triton.testing.do_bench(fn, warmup=_WARMUP_MS, rep=_REP_MS,
                                         quantiles=list(QUANTILES))
    else:  # older releases named them percentiles and returned the median first
        median, *rest = triton.testing.do_bench(fn, warmup=_WARMUP_MS, rep=_REP_MS,
                                                percentiles=[QUANTILES[0], QUANTILES[2]])
        result = [rest[0], median, rest[1]]
    return tuple(float(t) for t in result)


def l2_flush():
    """A function flushing the L2 as do_bench does before each run: Triton's own buffer and
    clear, where this Triton has them."""
    driver = triton.runtime.driver.active
    get = getattr(driver, "get_empty_cache_for_benchmark", None)
    cache = get() if get else torch.empty(256 * 1024 * 1024 // 4, dtype=torch.int32, device="cuda")
    clear = getattr(driver, "clear_cache", None)
    return (lambda: clear(cache)) if clear else cache.zero_


def _bench_with_setup(fn, setup):
    """``do_bench``'s method (time budgets, flushed L2, per-run CUDA events, quantiles) with
    ``setup()`` run before the flush of every run: do_bench has no hook for it."""
    setup()
    fn()
    torch.cuda.synchronize()
    flush = l2_flush()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(5):
        setup()
        flush()
        fn()
    end.record()
    torch.cuda.synchronize()
    estimate_ms = start.elapsed_time(end) / 5
    n_warmup = max(1, int(_WARMUP_MS / estimate_ms))
    n_repeat = max(1, int(_REP_MS / estimate_ms))
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(n_repeat)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(n_repeat)]
    for _ in range(n_warmup):
        setup()
        fn()
    for i in range(n_repeat):
        setup()
        flush()
        starts[i].record()
        fn()
        ends[i].record()
    torch.cuda.synchronize()
    times = torch.tensor([s.elapsed_time(e) for s, e in zip(starts, ends)], dtype=torch.float)
    return tuple(torch.quantile(times, torch.tensor(QUANTILES)).tolist())


def _bench_cpu(fn, setup):
    if setup:
        setup()
    fn()  # warm-up (the interpreter's first launch of a kernel traces it)
    times, spent = [], 0.0
    while len(times) < _CPU_MIN_REPS or (spent < _CPU_BUDGET_S and len(times) < _CPU_MAX_REPS):
        if setup:
            setup()
        t0 = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - t0
        times.append(elapsed * 1e3)
        spent += elapsed
    return tuple(_quantile(times, q) for q in QUANTILES)


def _quantile(values, q):
    """Linear interpolation between closest ranks: torch.quantile's default."""
    values = sorted(values)
    pos = q * (len(values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


def host_us(fn, arg_sets, kwargs):
    """Host wall time per call in µs: ``host_and_issue_us``'s first figure."""
    return host_and_issue_us(fn, arg_sets, kwargs)[0]


def host_and_issue_us(fn, arg_sets, kwargs):
    """(wall, issue) µs per call of ``fn`` over every argument tuple of ``arg_sets`` in a tight
    loop with one synchronize at the end (so queued device work is waited for once). Issue
    stops when the last call returns: the host's own time. Wall stops after the synchronize:
    the same when the device keeps up, the kernels' time when they are slower than the host."""
    synchronize()
    t0 = time.perf_counter()
    for args in arg_sets:
        fn(*args, **kwargs)
    issued = time.perf_counter()
    synchronize()
    done = time.perf_counter()
    return (done - t0) / len(arg_sets) * 1e6, (issued - t0) / len(arg_sets) * 1e6


def extra_bytes(fn, args, kwargs):
    """The memory one call ``fn(*args, **kwargs)`` needs beyond its inputs and its result: the
    peak of ``torch.cuda.max_memory_allocated`` during the call (peak statistics reset before
    it) less what was allocated before it (the inputs) and what the call left allocated (its
    result). None without CUDA: the interpreter's CPU tensors have no such counter."""
    if not CUDA:
        return None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    result = fn(*args, **kwargs)
    torch.cuda.synchronize()
    extra = torch.cuda.max_memory_allocated() - torch.cuda.memory_allocated()
    del result
    return extra


def copy_ceiling_gbps(nbytes=None):
    """The device's copy bandwidth, the roofline's ceiling: (bytes read + bytes written) per
    second of one large device-to-device copy, p50 of ``bench``. 2 GiB copied on CUDA."""
    nbytes = nbytes or (2 << 30 if CUDA else 64 << 20)
    p50 = _copy_ms(nbytes)
    if CUDA:
        torch.cuda.empty_cache()  # hand the 4 GiB back before the ops need it
    return 2 * nbytes / (p50 * 1e-3) / 1e9


def _copy_ms(nbytes):
    src = torch.ones(nbytes, dtype=torch.uint8, device="cuda" if CUDA else "cpu")
    dst = torch.empty_like(src)
    return bench(lambda: dst.copy_(src))[1]
