"""ComparisonOp: comparisons and logical ops, on the pointwise skeleton.

The operands are compared in their promoted dtype (PyTorch's ALWAYS_BOOL kind: int64 values
above 2**24 compare exactly, a Scalar is first converted into that dtype, so uint8 ``ge_(-1)``
compares with 255); the result is bool, and the derived in-place form stores it into self's
dtype as 1/0 through self's strides. A comparison needs nothing of its own beyond that dtype
rule, so the family reuses ``PointwiseOp``'s skeleton and hooks unchanged.
"""
import math

import torch

from ..runtime.promotion import Promotion, promote
from .pointwise import PointwiseOp, _cpu_scalar_to_number


class ComparisonOp(PointwiseOp):
    """A binary predicate: ``math(x, y)`` receives both operands in the promoted dtype and
    returns a bool block."""

    family = "ComparisonOp"
    nin = 2
    promotion = Promotion.ALWAYS_BOOL

    def promote(self, operands, params):
        compute, result = promote(operands, self.promotion)
        if compute.is_complex and self.complex_error is None:
            # a complex Python number beside real tensors: PyTorch compares in complex, which
            # for real tensors is comparing real parts (and imaginary parts with 0)
            compute = self.common_dtype(operands, result)
            compute = torch.float32 if compute in (torch.float16, torch.bfloat16) else compute
        return compute, result

    def common_dtype(self, operands, result_dtype):
        common = promote(operands, Promotion.DEFAULT)[1]
        return common.to_real() if common.is_complex and self.complex_error is None else common

    def prepare(self, operands, params):
        # a Python number is first converted to the compared dtype, as PyTorch's kernel converts
        # it (float16 ``eq_(1.0000001)`` compares 1.0 with 1.0); the compare itself runs in
        # opmath, which is exact for these dtypes
        common = self.common_dtype(operands, None)
        operands = [o if isinstance(o, torch.Tensor) else _compared(o, common)
                    for o in map(_cpu_scalar_to_number, operands)]
        return super().prepare(operands, params)


def _compared(number, dtype):
    """A Python number as PyTorch compares it in ``dtype``: rounded to a half-precision dtype;
    a complex one (eq, ne) by its real part when its imaginary part rounds to 0 in ``dtype``,
    else NaN, which equals nothing, as no real value equals it."""
    if dtype.is_complex:  # an ordering comparison, rejected after its checks
        return number
    if isinstance(number, complex):
        imag = torch.tensor(number.imag, dtype=dtype).item()
        number = number.real if imag == 0 else math.nan
    if dtype in (torch.float16, torch.bfloat16):
        return torch.tensor(number, dtype=dtype).item()
    return number
