"""The providers timed on the same inputs in one run.

  eager          PyTorch: the op's reference resolved to its concrete OpOverload (cases.py)
  compile        ``torch.compile(..., dynamic=False)`` of that same eager call
  gems           the flaggems_exp op object, called directly
  gems_dispatch  the eager call under ``flaggems_exp.use_gems()``: PyTorch's dispatcher routes
                 it to our kernel, so the difference to ``gems`` is the dispatch cost
"""
import contextlib
import signal
import threading

import attrs
import torch

import flaggems_exp

PROVIDERS = ("eager", "compile", "gems", "gems_dispatch")
# without CUDA: compile would time Inductor's C++ CPU backend, which says nothing about ours
CPU_PROVIDERS = ("eager", "gems", "gems_dispatch")
DISPATCH_SIZES = ("S",)  # the dispatch cost is per call: the small size shows it


@attrs.frozen
class Provider:
    name: str
    fn: object  # called as fn(*args, **kwargs)
    routed: bool = False  # call inside use_gems()

    def context(self):
        return flaggems_exp.use_gems() if self.routed else contextlib.nullcontext()


def make(name, op, baseline, compiled=None):
    """The provider ``name`` for ``op``; ``compiled`` is the op's torch.compile wrapper."""
    if name == "eager":
        return Provider(name, baseline.fn)
    if name == "compile":
        return Provider(name, compiled)
    if name == "gems":
        return Provider(name, op)
    if name == "gems_dispatch":
        return Provider(name, baseline.fn, routed=True)
    raise ValueError(f"unknown provider {name!r}; known: {', '.join(PROVIDERS)}")


# ---- torch.compile ------------------------------------------------------------------------
def configure_dynamo():
    """Let one op compile for every (dtype, size) without hitting Dynamo's recompile limit,
    and fail loudly if it is hit anyway: past it Dynamo silently runs eager, which would be
    timed as 'compile'."""
    cfg = torch._dynamo.config
    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(cfg, name):
            setattr(cfg, name, max(getattr(cfg, name), 64))
    for name in ("accumulated_recompile_limit", "accumulated_cache_size_limit"):
        if hasattr(cfg, name):
            setattr(cfg, name, max(getattr(cfg, name), 4096))
    if hasattr(cfg, "fail_on_recompile_limit_hit"):
        cfg.fail_on_recompile_limit_hit = True


def compile_eager(fn):
    """``torch.compile`` of the eager call ``fn(*args, **kwargs)``; compiles on first call."""
    def eager_call(*args, **kwargs):
        return fn(*args, **kwargs)
    return torch.compile(eager_call, dynamic=False)


class CompileTimeout(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds):
    """Raise ``CompileTimeout`` in the block after ``seconds`` (SIGALRM: main thread, POSIX);
    elsewhere, or without a limit, the block runs unbounded."""
    usable = (seconds and hasattr(signal, "SIGALRM")
              and threading.current_thread() is threading.main_thread())
    if not usable:
        yield
        return

    def expire(signum, frame):
        raise CompileTimeout(f"compile took longer than {seconds:g} s (--compile-timeout)")
    previous = signal.signal(signal.SIGALRM, expire)
    # and again every second after: code under torch.compile may catch (and drop) one raise
    signal.setitimer(signal.ITIMER_REAL, seconds, 1.0)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def timed_out(exc):
    """Whether ``exc`` is, or wraps, our timeout (Dynamo re-raises backend errors wrapped)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, CompileTimeout):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False
