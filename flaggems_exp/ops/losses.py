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
    scalar_check = "result"  # PyTorch fills a tensor of self's dtype with margin

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

    def stored_operands(self, operands):
        return (1,)  # PyTorch compares the target with 1 and -1 in the target's own dtype

    @staticmethod
    @triton.jit
    def math(x, target, margin):
        # margin arrives in self's compute dtype (truncated for integer self, as in PyTorch)
        hinge = margin - x
        hinge = tl.where(hinge < 0, 0, hinge)  # clamp_min(0), NaN kept
        if target.dtype == tl.int1:
            target = target.to(tl.int8)  # a bool target is compared as an integer
        elif target.dtype.is_fp16() or target.dtype.is_bf16():
            target = target.to(tl.float32)  # exactly (the interpreter has no bfloat16 arithmetic)
        if target.dtype.is_int():
            minus_one = ~tl.zeros_like(target)  # all bits set: -1 in its dtype, 255 in uint8
        else:
            minus_one = -1.0
        return tl.where(target != 1, hinge, 0) + tl.where(target != minus_one, x, 0)


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
        # PyTorch negates self into a buffer of self's dtype, then multiplies it by the target in
        # place (a bool target is 0 or 1), then exp and log1p in place
        if operands[0].dtype == torch.bool:
            raise errors.bool_negation()
        return promote(operands[:1], Promotion.DEFAULT)

    def check(self, operands, params, result_dtype, out):
        x, target = operands
        shape = torch.broadcast_shapes(x.shape, target.shape)
        if shape != x.shape:  # target broadcasts to self, never the reverse
            raise errors.broadcast_mismatch(x.shape, shape)
        if not (x.is_floating_point() or x.is_complex()):
            # the float product (or exp) cannot go back into self; PyTorch computes a complex
            # self, which our kernels do not cover
            raise errors.cast_error(target.dtype if target.is_floating_point() else torch.float32,
                                    x.dtype)
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


def _wrap_spec(dtype):
    """How integer arithmetic in ``dtype`` wraps: 2**bits for a signed integer dtype narrower
    than int64, -2**bits for an unsigned one; 0 for int64 (its own arithmetic) and floats."""
    if dtype.is_floating_point or dtype.itemsize == 8:
        return 0
    modulus = 1 << 8 * dtype.itemsize
    return modulus if dtype.is_signed else -modulus


@triton.jit
def _wrap(x, spec):
    """int64 ``x`` as integer arithmetic in the dtype ``spec`` describes leaves it (see
    ``_wrap_spec``): its low bits, sign-extended for a signed dtype."""
    spec = spec.to(tl.int64)
    modulus = tl.abs(spec)
    low = tl.where(spec > 0, -(modulus >> 1), 0)
    return ((x - low) & (modulus - 1)) + low


def _like(dtype, zero_dim):
    """A tensor that PyTorch's type promotion sees as one of ``dtype`` and that dimensionality."""
    return torch.empty(() if zero_dim else (1,), dtype=dtype, device="meta")


def _ranking_steps(input1, input2, target):
    """PyTorch's ``-target * (input1 - input2)`` one step at a time: the dtype of the difference
    and the product, as tensors promotion sees (a 0-dim operand weighs less)."""
    zero_dim = input1.dim() == input2.dim() == 0
    diff = _like(torch.result_type(input1, input2), zero_dim)
    return diff, _like(torch.result_type(target, diff), zero_dim and target.dim() == 0)


@register
class MarginRankingLoss(LossOp):
    """PyTorch's ``(-target * (input1 - input2) + margin).clamp_min_(0)``, each step in its own
    dtype: integer steps wrap (uint8 ``1 - 2`` is 255, ``-1`` is 255) before the float margin."""

    nin = 3
    param_samples = ({"margin": 0.3, "reduction": 0}, {"margin": -0.2, "reduction": 2})
    scalars = {"margin": 0.0, "reduction": 1}
    dtypes = FLOATING | REAL

    def promote(self, operands, params):
        product = _ranking_steps(*operands)[1]
        return promote([product, float(params["margin"])], Promotion.DEFAULT)

    def check(self, operands, params, result_dtype, out):
        input1, input2, target = operands
        if input1.dtype == input2.dtype == torch.bool:
            raise errors.bool_subtraction()
        if torch.bool in (input1.dtype, input2.dtype):
            raise errors.bool_operand_subtraction()
        if target.dtype == torch.bool:
            raise errors.bool_negation()
        super().check(operands, params, result_dtype, out)

    def layout_operands(self, operands, params):
        # PyTorch's composite: -target * (input1 - input2) + margin, -target first
        input1, input2, target = operands
        return [target, input1, input2]

    def prepare(self, operands, params):
        diff, product = _ranking_steps(*operands)
        return operands, (params["margin"], _wrap_spec(diff.dtype), _wrap_spec(product.dtype))

    def common_dtype(self, operands, result_dtype):
        # float steps run in the compute dtype and round once at the end (PyTorch rounds each
        # step in its own dtype: a float16 difference differs by an ulp of the loss)
        return torch.float32 if result_dtype in (torch.float16, torch.bfloat16) else result_dtype

    def stored_operands(self, operands):
        # integer steps are computed from the integers as stored, in int64, then wrapped
        return tuple(i for i, t in enumerate(operands) if not t.is_floating_point())

    @staticmethod
    @triton.jit
    def math(input1, input2, target, margin, diff_wrap, product_wrap):
        if input1.dtype.is_int() and input2.dtype.is_int():
            diff = _wrap(input1.to(tl.int64) - input2.to(tl.int64), diff_wrap)
        else:
            diff = input1 - input2
        negated = libm.neg(target)  # in an integer target's own dtype
        if negated.dtype.is_int() and diff.dtype.is_int():
            loss = _wrap(negated.to(tl.int64) * diff, product_wrap) + margin
        else:
            loss = negated * diff + margin
        return tl.where(loss < 0, 0, loss)  # clamp_min(0), NaN kept


@register
class HuberLoss(LossOp):
    nin = 2
    param_samples = ({"reduction": 0, "delta": 0.5}, {"reduction": 2, "delta": 2.0})
    scalars = {"reduction": 1, "delta": 1.0}
    dtypes = FLOATING
    kernel = "huber"

    def validate(self, operands, params, out):
        # PyTorch computes in the common dtype (its kernel dispatches on it) and writes the loss
        # into out=, or into a new tensor of self's dtype; mean and sum then reduce that
        x = operands[0]
        operands, kernel_scalars, compute, common, shape = super().validate(operands, params, out)
        written = out.dtype if out is not None else x.dtype
        if not torch.can_cast(common, written):
            raise errors.cast_error(common, written)
        self.check_dtype(common)
        return operands, kernel_scalars, compute, written, shape

    def common_dtype(self, operands, result_dtype):
        # the loss is computed in the operands' common dtype, whatever out='s dtype
        return torch.result_type(*operands)

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
