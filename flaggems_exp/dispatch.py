"""enable() / disable() / use_gems(): route PyTorch's own ops to ours through ``torch.library``.

Every registered op is registered for each of its aten names and overloads on the dispatch key
of the device in use (CUDA, or CPU where kernels run in Triton's interpreter). ``.out``
overloads get a wrapper that forwards ``out=``. Ops that PyTorch implements as a
CompositeImplicitAutograd decomposition have no autograd formula of their own: a backend kernel
alone would hide the decomposition from autograd, so for those an autograd-key kernel runs ours
when no gradient is needed and PyTorch's decomposition (which records the graph) when one is.
The dispatcher picks our kernel by the device of a call's tensors, so a factory that asks for
another device (``x.new_ones(size, device="cpu")`` of a GPU tensor) reaches it too: such a call
is PyTorch's own (its CompositeExplicitAutograd kernel, as copy_ hands over transfers between
devices), counted in ``DELEGATED``. A direct call of the op raises instead.
"""
import collections
import contextlib
import warnings

import torch

from .families.base import REGISTRY
from .runtime.device import DEVICE

_BACKEND_KEY = "CUDA" if DEVICE == "cuda" else "CPU"
_AUTOGRAD_KEY = "Autograd" + _BACKEND_KEY
_library = None
_routed = ()  # the op objects routed while enabled

DELEGATED = collections.Counter()
"""Calls routed to flaggems_exp that PyTorch's own kernel served, per op name: factories asked
for a device the kernels do not run on."""


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


def _factory_kernel(op, overload):
    def kernel(*args, **kwargs):
        device = kwargs.get("device")
        if device is not None and torch.device(device).type != DEVICE:
            DELEGATED[op.name] += 1
            return overload._op_dk(torch._C.DispatchKey.CompositeExplicitAutograd, *args, **kwargs)
        return op(*args, **kwargs)
    return kernel


def _registrations(ops):
    """(qualified aten name, kernel, dispatch key) for every name and overload of ``ops``."""
    seen = set()
    for op in ops:
        for name, overload_name in op.aten_overloads():
            overload = getattr(getattr(torch.ops.aten, name), overload_name)
            qualname = name if overload_name == "default" else f"{name}.{overload_name}"
            if qualname in seen:
                continue
            seen.add(qualname)
            keywords = {a.name for a in overload._schema.arguments if a.kwarg_only}
            kernel = (_out_kernel(op) if "out" in keywords
                      else _factory_kernel(op, overload) if "device" in keywords else op)
            yield qualname, kernel, _BACKEND_KEY
            if "out" not in keywords and torch._C._dispatch_has_kernel_for_dispatch_key(
                    overload.name(), "CompositeImplicitAutograd"):
                yield qualname, _composite_kernel(op, overload), _AUTOGRAD_KEY


def _ops(names):
    """The set of op objects serving ``names`` (aliases resolve to their op)."""
    unknown = sorted(set(names) - set(REGISTRY))
    if unknown:
        raise ValueError(f"not flaggems_exp ops: {', '.join(unknown)} "
                         "(see flaggems_exp.list_ops())")
    return {REGISTRY[n] for n in names}


def selection(include=None, exclude=None):
    """The ops ``enable(include, exclude)`` routes, in registry order: every op, or those
    ``include`` names, less those ``exclude`` names. A name is an op's aten name or alias;
    an in-place form is an op of its own (``exclude=["mul", "mul_"]`` leaves both to PyTorch)."""
    if isinstance(include, str) or isinstance(exclude, str):
        raise TypeError("include and exclude take a list of op names, not one string")
    chosen = _ops(include) if include is not None else None
    dropped = _ops(exclude or ())
    return tuple(op for op in dict.fromkeys(REGISTRY.values())
                 if (chosen is None or op in chosen) and op not in dropped)


def _route(ops):
    global _library, _routed
    disable()
    library = torch.library.Library("aten", "IMPL")
    with warnings.catch_warnings():
        # overriding PyTorch's kernels is the point: silence its warning that we do
        warnings.filterwarnings("ignore", message=".*[Oo]verrid")
        for qualname, kernel, key in _registrations(ops):
            library.impl(qualname, kernel, key)
    _library, _routed = library, ops


def enable(include=None, exclude=None):
    """Route PyTorch's aten ops to flaggems_exp's kernels until ``disable()``: every registered
    op, or only the ``include`` names, less the ``exclude`` names (see ``selection``). Calling
    it again with another choice replaces the first."""
    ops = selection(include, exclude)
    if _library is None or ops != _routed:
        _route(ops)


def disable():
    """Restore PyTorch's own kernels for every op ``enable()`` replaced."""
    global _library, _routed
    if _library is not None:
        _library._destroy()
        _library, _routed = None, ()


def is_enabled():
    return _library is not None


def routed():
    """The names of the aten ops routed to flaggems_exp now (sorted; empty when disabled)."""
    return sorted(n for op in _routed for n in op.names)


@contextlib.contextmanager
def use_gems(include=None, exclude=None):
    """Route aten ops to flaggems_exp inside the block only (``include``/``exclude`` as in
    ``enable``); restores the previous state, the previous choice of ops included."""
    previous = _routed if is_enabled() else None
    enable(include, exclude)
    try:
        yield
    finally:
        if previous is None:
            disable()
        elif previous != _routed:
            _route(previous)
