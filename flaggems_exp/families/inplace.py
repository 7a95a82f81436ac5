"""InplaceOp: the in-place form ``op_`` of any registered op, derived, never written by hand.

``op_(self, *args)`` is ``op(self, *args, out=self)`` under PyTorch's in-place rules, which the
twin's family enforces before anything is written: the result dtype must cast safely to self's
dtype, self is never broadcast to a bigger shape, self must not overlap itself or partially
overlap another input; self is written through its own strides and returned (the same object).
"""
import torch

from ..runtime import coverage
from .base import Op


class InplaceOp(Op):
    family = "InplaceOp"
    twin = None  # the out-of-place op this form is derived from
    inplace = False

    # the twin's reference and test inputs serve the in-place form too
    ref = property(lambda self: self.twin.ref)
    domain = property(lambda self: self.twin.domain)
    param_samples = property(lambda self: self.twin.param_samples)
    special_values = property(lambda self: self.twin.special_values)
    reference_in_float64 = property(lambda self: self.twin.reference_in_float64)

    writes_self = True
    runtime_numbers = property(lambda self: self.twin.runtime_numbers)

    def call(self, args, kwargs, out):
        if out is not None:
            raise TypeError(f"{self.name}() got an unexpected keyword argument 'out'")
        if not args and "self" in kwargs:  # aten's schema names it: as good as positional
            kwargs = dict(kwargs)
            args = (kwargs.pop("self"),)
        if not args:
            raise TypeError(f"{self.name}() missing required argument 'self'")
        if not isinstance(args[0], torch.Tensor):  # a number may be a tensor operand (mul)
            raise TypeError(f"{self.name}(): argument 'self' (position 1) must be Tensor, not "
                            f"{type(args[0]).__name__}")
        coverage.check(self.twin, args, kwargs, None)
        return self.twin.call_out(args, kwargs, out=args[0], inplace=True)
