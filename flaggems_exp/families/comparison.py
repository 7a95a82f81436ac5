"""ComparisonOp: comparisons and logical ops, on the pointwise skeleton.

The operands are compared in their promoted dtype (PyTorch's ALWAYS_BOOL kind: int64 values
above 2**24 compare exactly, a Scalar is first converted into that dtype, so uint8 ``ge_(-1)``
compares with 255); the result is bool, and the derived in-place form stores it into self's
dtype as 1/0 through self's strides. A comparison needs nothing of its own beyond that dtype
rule, so the family reuses ``PointwiseOp``'s skeleton and hooks unchanged.
"""
import torch

from ..runtime.promotion import Promotion, promote
from .pointwise import PointwiseOp


class ComparisonOp(PointwiseOp):
    """A binary predicate: ``math(x, y)`` receives both operands in the promoted dtype and
    returns a bool block."""

    family = "ComparisonOp"
    nin = 2
    promotion = Promotion.ALWAYS_BOOL

    def common_dtype(self, operands, result_dtype):
        return promote(operands, Promotion.DEFAULT)[1]

    def prepare(self, operands, params):
        # a Scalar is first rounded to the promoted dtype (float16 ``eq_(1.0000001)`` compares
        # 1.0 with 1.0); the compare itself runs in opmath, which is exact for these dtypes
        promoted = promote(operands, Promotion.DEFAULT)[1]
        if promoted in (torch.float16, torch.bfloat16):
            operands = [torch.tensor(o, dtype=promoted).item()
                        if not isinstance(o, torch.Tensor) else o for o in operands]
        return super().prepare(operands, params)
