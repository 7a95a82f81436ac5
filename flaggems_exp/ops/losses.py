"""Losses: the elementwise loss as math; LossOp fuses it with the none/mean/sum reduction."""
import math

import torch
import triton
import triton.language as tl

from ..families import register
from ..families.loss import LossOp
from ..runtime import errors, geometry, libm, special
from ..runtime.dtypes import FLOATING, REAL
from ..runtime.promotion import Promotion, promote
from ..runtime.steps import rounded, step_spec, wrapped
from ..runtime.triton_types import rounded_as


def _like(dtype, zero_dim):
    """A tensor that PyTorch's type promotion sees as one of ``dtype`` and that dimensionality."""
    return torch.empty(() if zero_dim else (1,), dtype=dtype, device="meta")


@register
class HingeEmbeddingLoss(LossOp):
    nin = 2
    reference_in_float64 = False  # margin - self rounds to self's dtype before the sum
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
        # PyTorch compares the target with 1 and -1 in the target's own dtype; each step of its
        # composite leaves self's dtype
        return (0, 1)

    @staticmethod
    @triton.jit
    def math(x, target, margin):
        # margin arrives in self's compute dtype (truncated for integer self, as in PyTorch)
        self_value = x.to(margin.dtype)  # exactly
        hinge = rounded_as(margin - self_value, x.dtype)  # rounded, or wrapped
        hinge = tl.where(hinge < 0, 0, hinge)  # clamp_min(0), NaN kept
        if target.dtype == tl.int1:
            target = target.to(tl.int8)  # a bool target is compared as an integer
        elif target.dtype.is_fp16() or target.dtype.is_bf16():
            target = target.to(tl.float32)  # exactly (the interpreter has no bfloat16 arithmetic)
        if target.dtype.is_int():
            # -1 in its dtype, 255 in uint8 (a wrapping subtraction: Triton 3.6's interpreter
            # makes the all-ones constant of ~ from a Python -1, which numpy 2 refuses)
            minus_one = tl.zeros_like(target) - 1
        else:
            minus_one = -1.0
        # PyTorch's where(target != 1, hinge, 0) + where(target != -1, self, 0), with one select
        # per case: fewer live predicates (the compiled kernel holds fewer registers); each
        # case still adds 0 where PyTorch does (-0.0 becomes 0.0)
        return tl.where(target == 1, self_value + 0,
                        tl.where(target == minus_one, hinge + 0, hinge + self_value))


@register
class SoftMarginLoss(LossOp):
    nin = 2
    reference_in_float64 = False  # each step rounds to self's dtype (exp overflows there)
    param_samples = ({"reduction": 0}, {"reduction": 2})
    out_dtype_check = errors.OutDtypeCheck.TENSOR_ITERATOR
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
        if out is not None and out.dtype != x.dtype:  # neg_out(out, self) comes first
            raise errors.out_dtype_mismatch(
                out.dtype, x.dtype, errors.OutDtypeCheck.TENSOR_ITERATOR)
        shape = geometry.broadcast_shape([x.shape, target.shape])  # in-place mul_'s message
        if shape != tuple(x.shape):  # target broadcasts to self, never the reverse
            raise errors.broadcast_mismatch(x.shape, shape)
        if not (x.is_floating_point() or x.is_complex()):
            # the float product (or exp) cannot go back into self; PyTorch computes a complex
            # self, which our kernels do not cover
            raise errors.cast_error(target.dtype if target.is_floating_point() else torch.float32,
                                    x.dtype)
        super().check(operands, params, result_dtype, out)

    def prepare(self, operands, params):
        # the product is computed in the common dtype of the negated self (a tensor of self's
        # dtype and shape) and the target (a 0-dim target weighs less)
        x, target = operands
        product = torch.result_type(_like(x.dtype, x.dim() == 0), target)
        return operands, (step_spec(product),)

    def stored_operands(self, operands):
        return (0, 1)  # each step converts them into its own dtype

    @staticmethod
    @triton.jit
    def math(x, target, product_step):
        # PyTorch's steps, each rounded: -self * target into self's dtype, then exp (+inf past
        # the dtype's largest value), then log1p
        if x.dtype == tl.float64 or target.dtype == tl.float64:
            wide: tl.constexpr = tl.float64
        else:
            wide: tl.constexpr = tl.float32
        if x.dtype == tl.float64:
            compute: tl.constexpr = tl.float64
        else:
            compute: tl.constexpr = tl.float32
        negated = libm.neg(x.to(wide))  # exact
        product = rounded(rounded(negated, product_step, wide) * rounded(target, product_step, wide),
                          product_step, wide)
        product = rounded_as(product, x.dtype).to(compute)
        return special.log1p_nonnegative(rounded_as(libm.exp(product), x.dtype))


def _ranking_steps(input1, input2, target):
    """PyTorch's ``-target * (input1 - input2)`` one step at a time: the dtype of the difference
    and the product, as tensors promotion sees (a 0-dim operand weighs less)."""
    zero_dim = input1.dim() == input2.dim() == 0
    diff = _like(torch.result_type(input1, input2), zero_dim)
    return diff, _like(torch.result_type(target, diff), zero_dim and target.dim() == 0)


@register
class MarginRankingLoss(LossOp):
    """PyTorch's ``(-target * (input1 - input2) + margin).clamp_min_(0)``: each step in its own
    dtype, its operands converted to that dtype first. Integer steps wrap (uint8 ``1 - 2`` is
    255, ``-1`` is 255); float steps round (float16 ``input1 - input2`` is computed in float32
    and rounded to float16, as PyTorch's CUDA kernels do each op, before the product)."""

    nin = 3
    reference_in_float64 = False  # a float16 step rounds before a float32 one, say
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
        return operands, (params["margin"], step_spec(diff.dtype), step_spec(product.dtype))

    def stored_operands(self, operands):
        return (0, 1, 2)  # the math converts each operand into its step's dtype

    @staticmethod
    @triton.jit
    def math(input1, input2, target, margin, diff_step, product_step):
        # float steps are held in float64 where an operand is float64 (a step may be float64
        # then, whatever the result's dtype), else in float32; both hold a float16, bfloat16
        # or float32 step's sum or product of two values of its dtype exactly enough that
        # rounding it gives the correctly rounded result, as PyTorch's float32 opmath does
        if input1.dtype == tl.float64 or input2.dtype == tl.float64 or target.dtype == tl.float64:
            wide: tl.constexpr = tl.float64
        else:
            wide: tl.constexpr = tl.float32
        if input1.dtype.is_int() and input2.dtype.is_int():
            diff = wrapped(input1.to(tl.int64) - input2.to(tl.int64), diff_step)
        else:
            diff = rounded(rounded(input1, diff_step, wide) - rounded(input2, diff_step, wide),
                          diff_step, wide)
        if target.dtype.is_int():
            negated = libm.neg(target)  # in the target's own dtype (uint8 -1 is 255)
        else:
            negated = libm.neg(target.to(wide))  # exact
        if negated.dtype.is_int() and diff.dtype.is_int():
            loss = wrapped(negated.to(tl.int64) * diff, product_step) + margin
        else:
            # the product rounded before the margin is added, as PyTorch's two kernels do (no
            # fused multiply-add)
            product = rounded(libm.mul(rounded(negated, product_step, wide),
                                       rounded(diff, product_step, wide)), product_step, wide)
            loss = product + margin  # rounded to the result's dtype by the skeleton
        return tl.where(loss < 0, 0, loss)  # clamp_min(0), NaN kept


def _cuda_distance_loss(aten_op, written_dtype, loss_of):
    """``aten_op`` (huber_loss, smooth_l1_loss) as PyTorch's CUDA kernel computes it, for the
    tests' CPU reference: PyTorch's own op for its checks, errors, result dtype and shape, with
    the values of the CUDA kernel's steps (``_DistanceLoss``) replayed in PyTorch's float ops:
    in the dtype it writes, ``written_dtype(input, common dtype, reduction, out)``, each operand
    cast to it, the difference and the parameter rounded to it, the rest in its opmath dtype
    (``loss_of(z, parameter, half of it)``); its CPU kernel computes in the common dtype with
    no rounding between steps."""
    def reference(*args, **kwargs):
        names = ("input", "target", "reduction", "parameter")
        values = dict(zip(names, args), **{k: v for k, v in kwargs.items() if k != "out"})
        x, target = values.get("input", values.get("self")), values["target"]
        reduction = values.get("reduction", 1)
        parameter = next((v for k, v in values.items() if k in ("parameter", "delta", "beta")),
                         1.0)
        common = torch.result_type(x, target)
        written = written_dtype(x, common, reduction, kwargs.get("out"))
        if torch.can_cast(common, written):  # else PyTorch's cast error
            # the operands as the CUDA kernel reads them: its dtype dispatch names this dtype
            args = [a.to(written) if i < 2 else a for i, a in enumerate(args)]
            kwargs = {k: v.to(written) if k in ("input", "self", "target") else v
                      for k, v in kwargs.items()}
        result = aten_op(*args, **kwargs)  # PyTorch's checks, dtype, shape and out= handling
        if not written.is_floating_point:
            return result
        opmath = torch.float64 if written == torch.float64 else torch.float32
        a, b = x.to(written).to(opmath), target.to(written).to(opmath)
        z = (a - b).to(written).to(opmath).abs()
        p = torch.tensor(parameter, dtype=opmath).to(written).to(opmath)  # scalar_t(parameter)
        loss = loss_of(z, p, (0.5 * p).to(written).to(opmath)).to(written)
        if reduction == 1:
            loss = loss.mean()
        elif reduction == 2:
            loss = loss.sum()
        return result.copy_(loss) if "out" in kwargs else loss.to(result.dtype)
    reference.__name__ = reference.__qualname__ = f"{aten_op.__name__}_cuda"
    reference.__wrapped__ = aten_op  # PyTorch's own op, for the benchmarks' eager baseline
    return reference


def _huber_written(x, common, reduction, out):
    # huber_loss writes the elementwise loss into out=, or into a new tensor like self, and
    # reduces that
    return out.dtype if out is not None else x.dtype


def _smooth_l1_written(x, common, reduction, out):
    # smooth_l1_loss writes into out= for reduction none; otherwise into a new tensor of the
    # common dtype, which it then reduces into out
    return out.dtype if out is not None and reduction == 0 else common


class _DistanceLoss(LossOp):
    """huber_loss and smooth_l1_loss. PyTorch's CUDA kernels dispatch on the dtype of the tensor
    their TensorIterator writes (``iter.dtype()``) and compute in it, casting the operands to it
    as they read them, where its CPU kernels promote the operands to the common dtype, compute
    in it and cast the result: we follow CUDA. ``written`` names that dtype."""

    nin = 2
    dtypes = FLOATING
    reference_in_float64 = False  # the reference replays the CUDA kernel's steps, exactly

    @staticmethod
    def written(x, common, reduction, out):
        raise NotImplementedError

    def validate(self, operands, params, out):
        x = operands[0]
        operands, kernel_scalars, compute, common, shape = super().validate(operands, params, out)
        written = self.written(x, common, params["reduction"], out)
        if not torch.can_cast(common, written):
            raise errors.cast_error(common, written)
        self.check_dtype(written)
        compute = promote([_like(written, False)], Promotion.DEFAULT)[0]  # its opmath
        return operands, (*kernel_scalars, step_spec(written)), compute, written, shape


@triton.jit
def _distance_and_parameter(x, target, parameter, step):
    """``|x - target|``, the parameter and half of it, as PyTorch's CUDA huber and smooth_l1
    kernels have them in the dtype ``scalar_t`` they compute in (``step`` says how a step in it
    rounds): the difference of two scalar_t is a scalar_t (rounded to float16/bfloat16, c10's
    operator-), ``::abs`` of it a float; the parameter is ``scalar_t(parameter)`` and
    ``scalar_t(0.5) * parameter`` a scalar_t product; every later step mixes in a float, so it
    is float math (the skeleton rounds the result)."""
    z = tl.abs(rounded(x - target, step, x.dtype))
    parameter = rounded(parameter, step, x.dtype)
    return z, parameter, rounded(0.5 * parameter, step, x.dtype)


@register
class HuberLoss(_DistanceLoss):
    param_samples = ({"reduction": 0, "delta": 0.5}, {"reduction": 2, "delta": 2.0})
    scalars = {"reduction": 1, "delta": 1.0}
    dispatch_name = "huber"
    written = staticmethod(_huber_written)
    ref = staticmethod(_cuda_distance_loss(
        torch.ops.aten.huber_loss, _huber_written,
        lambda z, delta, half_delta: torch.where(z < delta, 0.5 * z * z, delta * (z - half_delta))))

    def check(self, operands, params, result_dtype, out):
        if not params["delta"] > 0:  # PyTorch's check, which NaN fails
            raise RuntimeError("huber_loss does not support non-positive values for delta.")
        super().check(operands, params, result_dtype, out)

    @staticmethod
    @triton.jit
    def math(x, target, delta, step):
        z, delta, half_delta = _distance_and_parameter(x, target, delta, step)
        return tl.where(z < delta, 0.5 * z * z, delta * (z - half_delta))


def _exact_reciprocal(divisor, dtype):
    """Whether dividing by ``divisor`` in ``dtype`` is multiplying by its reciprocal, exactly:
    a power of two whose reciprocal is a normal number of ``dtype`` (both then round the same
    real number once, subnormal results included)."""
    info = torch.finfo(dtype)
    return divisor > 0 and math.frexp(divisor)[0] == 0.5 and info.tiny <= 1 / divisor <= info.max


@register
class SmoothL1Loss(_DistanceLoss):
    param_samples = ({"reduction": 0, "beta": 0.5}, {"reduction": 2, "beta": 0.0})
    scalars = {"reduction": 1, "beta": 1.0}
    dispatch_name = "smooth_l1"
    strict_reduction = True
    written = staticmethod(_smooth_l1_written)
    ref = staticmethod(_cuda_distance_loss(
        torch.ops.aten.smooth_l1_loss, _smooth_l1_written,
        lambda z, beta, half_beta: torch.where(z < beta, 0.5 * z * z / beta, z - half_beta)))

    def check(self, operands, params, result_dtype, out):
        if not params["beta"] >= 0:  # PyTorch's check, which NaN fails
            raise RuntimeError("smooth_l1_loss does not support negative values for beta.")
        super().check(operands, params, result_dtype, out)

    def validate(self, operands, params, out):
        operands, kernel_scalars, compute, written, shape = super().validate(operands, params, out)
        # scalar_t(beta) as the kernel has it: the float64 Scalar in the compute dtype, then
        # rounded to the written dtype
        beta = torch.tensor(float(params["beta"]), dtype=torch.float64).to(compute).to(written)
        exact = _exact_reciprocal(beta.item(), compute)
        return operands, (*kernel_scalars, tl.constexpr(exact)), compute, written, shape

    @staticmethod
    @triton.jit
    def math(x, target, beta, step, EXACT_RECIPROCAL: tl.constexpr):
        z, beta, half_beta = _distance_and_parameter(x, target, beta, step)
        if EXACT_RECIPROCAL:  # beta a power of two (the default 1): no division per element
            quadratic = 0.5 * z * z * libm.div(1.0, beta)
        else:
            quadratic = libm.div(0.5 * z * z, beta)
        # beta == 0 is pure L1: the quadratic branch is empty (z < 0 never holds)
        return tl.where(z < beta, quadratic, z - half_beta)
