"""Losses: the elementwise loss as math; LossOp fuses it with the none/mean/sum reduction."""
import torch
import triton
import triton.language as tl

from ..families import register
from ..families.loss import LossOp
from ..runtime import errors, libm, special
from ..runtime.dtypes import FLOATING, REAL
from ..runtime.promotion import Promotion, promote
from ..runtime.special import INF


@register
class HingeEmbeddingLoss(LossOp):
    nin = 2
    param_samples = ({"margin": 0.5, "reduction": 0}, {"margin": 2.0, "reduction": 2}, {"reduction": 7})
    scalars = {"margin": 1.0, "reduction": 1}
    dtypes = REAL

    def promote(self, operands, params):
        return promote(operands[:1], Promotion.DEFAULT)  # self's dtype; target's is irrelevant

    def check(self, operands, params, result_dtype, out):
        if result_dtype == torch.bool:
            raise errors.bool_subtraction()
        super().check(operands, params, result_dtype, out)

    def layout_operands(self, operands, params):
        # PyTorch's composite ends in where(target != 1, ...): the target's layout comes first
        x, target = operands
        return [target, x]

    @staticmethod
    @triton.jit
    def math(x, target, margin):
        # margin arrives in self's compute dtype (truncated for integer self, as in PyTorch)
        hinge = margin - x
        hinge = tl.where(hinge < 0, 0, hinge)  # clamp_min(0), NaN kept
        # target + 1 != 0 is target != -1, also for unsigned targets (where -1 is the maximum)
        return tl.where(target != 1, hinge, 0) + tl.where(target + 1 != 0, x, 0)


@register
class SoftMarginLoss(LossOp):
    nin = 2
    reference_in_float64 = False  # the overflow of exp in self's dtype is part of the result
    param_samples = ({"reduction": 0}, {"reduction": 2})
    exact_out_dtype = "found"
    scalars = {"reduction": 1}
    dtypes = FLOATING
    strict_reduction = True

    def promote(self, operands, params):
        x, target = operands
        # PyTorch computes -target, * x, exp, log1p in a buffer of self's dtype
        if target.dtype == torch.bool:
            raise errors.bool_negation()
        if not x.is_floating_point():
            raise errors.cast_error(target.dtype if target.is_floating_point() else torch.float32,
                                    x.dtype)
        return promote([x], Promotion.DEFAULT)

    def check(self, operands, params, result_dtype, out):
        x, target = operands
        shape = torch.broadcast_shapes(x.shape, target.shape)
        if shape != x.shape:  # target broadcasts to self, never the reverse
            raise errors.broadcast_mismatch(x.shape, shape)
        super().check(operands, params, result_dtype, out)

    def prepare(self, operands, params):
        # PyTorch evaluates exp(-target * x) in self's dtype: it is +inf once it passes the
        # largest value that dtype rounds to finitely, and then so is the loss
        info = torch.finfo(operands[0].dtype)
        limit = float(info.max) * (1 + info.eps / 4) if operands[0].dtype.itemsize < 4 else float("inf")
        return operands, (limit,)

    @staticmethod
    @triton.jit
    def math(x, target, overflow):
        e = libm.exp(libm.neg(target) * x)
        return tl.where(e >= overflow, INF, special.log1p(e))


def _margin_ranking_reference(input1, input2, target, *args, **kwargs):
    """PyTorch's loss with integer inputs promoted first: ours computes the whole expression in
    the promoted floating dtype, without PyTorch's integer wrap-around in ``input1 - input2``
    and ``-target`` (uint8 ``1 - 2`` is 255 there)."""
    dtype = torch.result_type(input1, input2)
    if not dtype.is_floating_point and dtype != torch.bool and target.dtype != torch.bool:
        input1, input2, target = (t.to(torch.float64) for t in (input1, input2, target))
        return torch.ops.aten.margin_ranking_loss(input1, input2, target, *args, **kwargs).float()
    return torch.ops.aten.margin_ranking_loss(input1, input2, target, *args, **kwargs)


@register
class MarginRankingLoss(LossOp):
    """Integer inputs are computed in float32 without integer wrap-around (see the reference)."""

    nin = 3
    ref = staticmethod(_margin_ranking_reference)
    param_samples = ({"margin": 0.3, "reduction": 0}, {"margin": -0.2, "reduction": 2})
    scalars = {"margin": 0.0, "reduction": 1}
    dtypes = FLOATING | REAL

    def promote(self, operands, params):
        return promote([*operands, float(params["margin"])], Promotion.DEFAULT)

    def check(self, operands, params, result_dtype, out):
        input1, input2, target = operands
        if input1.dtype == input2.dtype == torch.bool:
            raise errors.bool_subtraction()
        if target.dtype == torch.bool:
            raise errors.bool_negation()
        super().check(operands, params, result_dtype, out)

    def layout_operands(self, operands, params):
        # PyTorch's composite: -target * (input1 - input2) + margin, -target first
        input1, input2, target = operands
        return [target, input1, input2]

    @staticmethod
    @triton.jit
    def math(input1, input2, target, margin):
        loss = libm.neg(target) * (input1 - input2) + margin
        return tl.where(loss < 0, 0, loss)  # clamp_min(0), NaN kept


@register
class HuberLoss(LossOp):
    nin = 2
    param_samples = ({"reduction": 0, "delta": 0.5}, {"reduction": 2, "delta": 2.0})
    scalars = {"reduction": 1, "delta": 1.0}
    dtypes = FLOATING
    kernel = "huber"

    def promote(self, operands, params):
        x = operands[0]
        compute, result = promote(operands, Promotion.DEFAULT)
        if not torch.can_cast(result, x.dtype):  # computed in the promoted dtype, stored in self's
            raise errors.cast_error(result, x.dtype)
        return compute, x.dtype

    def check(self, operands, params, result_dtype, out):
        if params["delta"] <= 0:
            raise RuntimeError("huber_loss does not support non-positive values for delta.")
        super().check(operands, params, result_dtype, out)

    @staticmethod
    @triton.jit
    def math(x, target, delta):
        z = tl.abs(x - target)
        return tl.where(z < delta, 0.5 * z * z, delta * (z - 0.5 * delta))


@register
class SmoothL1Loss(LossOp):
    nin = 2
    param_samples = ({"reduction": 0, "beta": 0.5}, {"reduction": 2, "beta": 0.0})
    scalars = {"reduction": 1, "beta": 1.0}
    dtypes = FLOATING
    kernel = "smooth_l1"
    strict_reduction = True

    def check(self, operands, params, result_dtype, out):
        if params["beta"] < 0:
            raise RuntimeError("smooth_l1_loss does not support negative values for beta.")
        super().check(operands, params, result_dtype, out)

    @staticmethod
    @triton.jit
    def math(x, target, beta):
        z = tl.abs(x - target)
        # beta == 0 is pure L1: the quadratic branch is empty (z < 0 never holds)
        return tl.where(z < beta, libm.div(0.5 * z * z, beta), z - 0.5 * beta)
