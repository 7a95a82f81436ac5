"""Direct calls that autograd must record: the aten op's call, with our kernels below autograd.

A direct call needs a gradient when grad mode is on and one of its tensors requires grad (that
bit is part of a call's signature, so such a call never reaches a plan), or when one carries a
forward-mode tangent (no call is planned while a dual level is open). It is then made as the
call of the aten op of the same name inside ``_OurKernels``, a dispatch mode that hands every
aten overload a registered op serves to that op. PyTorch's autograd kernel runs first, as for any
call of the aten op: it raises PyTorch's errors before anything is written (in place on a leaf
that requires grad or on a view of one, ``out=`` with arguments that require grad), redispatches
below autograd, where the mode runs our kernel, and records PyTorch's own derivative formula on
our result. An op that PyTorch implements as a CompositeImplicitAutograd decomposition (``relu6``,
``selu``, ``square``, ``diag``, ``prelu``, the margin and hinge losses, the ``.vec`` upsampling
overloads) has no formula of its own: its decomposition runs above autograd as in PyTorch, and
the steps a registered op serves run our kernels (``relu6`` is ``hardtanh``), the others
PyTorch's (``selu`` is ``elu``). Backward runs PyTorch's kernels (ours where ``enable()`` routes
them).
"""
import functools

import torch
from torch.autograd import forward_ad
from torch.utils._python_dispatch import TorchDispatchMode

from ..runtime.plans import autograd_records, below_autograd

_Tensor = torch.Tensor


def needs_grad(args, kwargs, out):
    """Whether autograd must record this call (only asked of calls no plan served): in reverse
    mode, grad mode is on and a tensor requires grad; in forward mode (which grad mode does not
    switch off), a dual level is open and a tensor carries a tangent."""
    values = (*args, *kwargs.values(), out)
    if autograd_records() and any(isinstance(v, _Tensor) and v.requires_grad for v in values):
        return True
    level = forward_ad._current_level
    return level >= 0 and not below_autograd() and any(
        isinstance(v, _Tensor) and forward_ad.unpack_dual(v, level=level).tangent is not None
        for v in values)


@functools.cache
def served():
    """Every aten overload a registered op serves -> that op."""
    from .base import REGISTRY
    return {getattr(getattr(torch.ops.aten, name), overload): op
            for op in dict.fromkeys(REGISTRY.values())
            for name, overload in op.aten_overloads()}


class _OurKernels(TorchDispatchMode):
    """Below autograd, the aten overloads registered ops serve run those ops."""

    @classmethod
    def _should_skip_dynamo(cls):
        return False  # nothing here is compiled: no need to import Dynamo to wrap the handler

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        op = served().get(func)
        if op is None:
            return func(*args, **kwargs)
        with torch.no_grad():  # below autograd: the signature of a call autograd has recorded
            return op(*args, **kwargs)


def recorded_call(op, args, kwargs, out):
    """``op``'s call as the aten op's, recorded by PyTorch's autograd, our kernel below it."""
    aten_op = getattr(torch.ops.aten, op.name, None)
    if aten_op is None:
        raise RuntimeError(f"{op.name} has no aten twin, so no derivative formula: call it on "
                           "tensors that do not require grad, or under torch.no_grad()")
    if out is not None:
        kwargs = {**kwargs, "out": out}
    with _OurKernels():
        return aten_op(*args, **kwargs)
