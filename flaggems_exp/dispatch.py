"""enable() / disable() / use_gems(): route PyTorch's own ops to ours through ``torch.library``.

Every registered op is registered for each of its aten names and overloads on the dispatch key
of the device in use (CUDA, or CPU where kernels run in Triton's interpreter). ``.out``
overloads get a wrapper that forwards ``out=``. Ops that PyTorch implements as a
CompositeImplicitAutograd decomposition have no autograd formula of their own: a backend kernel
alone would hide the decomposition from autograd, so for those an autograd-key kernel runs ours
when no gradient is needed and PyTorch's decomposition (which records the graph) when one is.
"""
import contextlib
import warnings

import torch

from .families.base import REGISTRY
from .runtime.device import DEVICE

_BACKEND_KEY = "CUDA" if DEVICE == "cuda" else "CPU"
_AUTOGRAD_KEY = "Autograd" + _BACKEND_KEY
_library = None


def _out_kernel(op):
    def kernel(*args, out, **kwargs):
        return op(*args, out=out, **kwargs)
    return kernel


def _needs_grad(args, kwargs):
    if not torch.is_grad_enabled():
        return False
    leaves = [*args, *kwargs.values()]
    return any(isinstance(a, torch.Tensor) and a.requires_grad for a in leaves)


def _composite_kernel(op, overload):
    def kernel(*args, **kwargs):
        if _needs_grad(args, kwargs):
            # PyTorch's C++ decomposition, recorded by autograd (``decompose()`` would prefer a
            # Python decomposition that may bypass our kernels, e.g. an index gather)
            return overload._op_dk(torch._C.DispatchKey.CompositeImplicitAutograd, *args, **kwargs)
        with torch._C._AutoDispatchBelowAutograd():
            return op(*args, **kwargs)
    return kernel


def _registrations():
    """(qualified aten name, kernel, dispatch key) for every op, name and overload."""
    seen = set()
    for op in dict.fromkeys(REGISTRY.values()):
        for name, overload_name in op.aten_overloads():
            overload = getattr(getattr(torch.ops.aten, name), overload_name)
            qualname = name if overload_name == "default" else f"{name}.{overload_name}"
            if qualname in seen:
                continue
            seen.add(qualname)
            is_out = any(a.kwarg_only and a.name == "out" for a in overload._schema.arguments)
            kernel = _out_kernel(op) if is_out else op
            yield qualname, kernel, _BACKEND_KEY
            if not is_out and torch._C._dispatch_has_kernel_for_dispatch_key(
                    overload.name(), "CompositeImplicitAutograd"):
                yield qualname, _composite_kernel(op, overload), _AUTOGRAD_KEY


def enable():
    """Route every registered aten op to flaggems_exp's kernels until ``disable()``."""
    global _library
    if _library is not None:
        return
    library = torch.library.Library("aten", "IMPL")
    with warnings.catch_warnings():
        # overriding PyTorch's kernels is the point: silence its warning that we do
        warnings.filterwarnings("ignore", message=".*[Oo]verrid")
        for qualname, kernel, key in _registrations():
            library.impl(qualname, kernel, key)
    _library = library


def disable():
    """Restore PyTorch's own kernels for every op ``enable()`` replaced."""
    global _library
    if _library is not None:
        _library._destroy()
        _library = None


def is_enabled():
    return _library is not None


@contextlib.contextmanager
def use_gems():
    """Route aten ops to flaggems_exp inside the block only; restores the previous state."""
    was_enabled = is_enabled()
    enable()
    try:
        yield
    finally:
        if not was_enabled:
            disable()
