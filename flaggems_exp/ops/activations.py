"""Activation functions and the backward formulas of two of them."""
import math

import torch
import triton
import triton.language as tl

from ..families import DISPATCH, REQUIRED, PointwiseOp, register
from ..runtime import errors, libm, special
from ..runtime.dtypes import FLOATING, HALF, REAL
from ..runtime.promotion import promote
from ..runtime.triton_types import checked_scalar
from ._common import FLOAT16_TABLE_PAYS_FROM, clamp, opmath_scalars, sigmoid, stored_16bit_self

_FINFO_MAX = {torch.float16: "65504", torch.bfloat16: "3.38953e+38",
              torch.float32: "3.40282e+38", torch.float64: "1.79769e+308"}


# PyTorch's CUDA kernels multiply by float32(1/6) (``1.0f / 6.0f``), widened for float64
_ONE_SIXTH = tl.constexpr(0.1666666716337204)


def _cuda_hardswish_backward(grad_output, x, **kwargs):
    """PyTorch's CUDA formula, whose NaN input takes the last branch (grad) where the CPU
    kernel returns NaN; PyTorch's own op runs first for its dtype rules and errors."""
    native = torch.ops.aten.hardswish_backward(grad_output, x, **kwargs)
    third = grad_output * (x / 3 + 0.5)
    # written into PyTorch's own result: its dtype and its layout (TensorIterator's)
    return native.copy_(torch.where(x <= -3, torch.zeros_like(third),
                                    torch.where(x < 3, third, grad_output.expand_as(third))))


def _positive_zeros(op):
    """PyTorch's ``op`` with -0.0 results made +0.0, as its CUDA kernel returns them (a
    max(x, 0) or a literal 0 where the CPU kernel keeps the sign of x)."""
    def reference(*args, **kwargs):
        result = op(*args, **kwargs)
        return result + 0 if result.is_floating_point() else result  # -0.0 + 0 is +0.0
    return reference


def _float64_as_cuda(op, formula):
    """PyTorch's ``op``; for float64, its CUDA kernel's ``formula``, which multiplies by
    float32(1/6) widened where the CPU kernel divides by 6 (the last bits differ)."""
    def reference(x, *args, **kwargs):
        result = op(x, *args, **kwargs)
        return formula(x) if result.dtype == torch.float64 else result
    return reference


_hardtanh = opmath_scalars(torch.ops.aten.hardtanh)


def _cuda_hardtanh(x, min_val=-1, max_val=1, **kwargs):
    """PyTorch's hardtanh with the zeros of its CUDA kernel, whose maximum and minimum order
    -0.0 below +0.0 (its CPU kernel keeps x's zero): a +0.0 min_val makes every zero result
    +0.0, then a -0.0 max_val makes it -0.0."""
    result = _hardtanh(x, min_val, max_val, **kwargs)  # its dtypes and errors
    if result.is_floating_point():
        for limit, zero in ((min_val, 0.0), (max_val, -0.0)):
            if float(limit) == 0 and math.copysign(1, float(limit)) == math.copysign(1, zero):
                result.copy_(torch.where(result == 0, torch.full_like(result, zero), result))
    return result


class FloatActivation(PointwiseOp):
    dtypes = FLOATING
    complex_error = DISPATCH


@register
class Silu(FloatActivation):
    complex_error = None  # PyTorch's silu computes in complex
    out_dtype_check = errors.OutDtypeCheck.TENSOR_ITERATOR
    @staticmethod
    @triton.jit
    def math(x):
        return libm.div(x, 1.0 + libm.exp(libm.neg(x)))  # see sigmoid


@register
class Selu(FloatActivation):
    dispatch_name = "elu"
    # a float16 input's expm1 meets no subnormal float32 (sm_90 SASS of a float16 launch:
    # 288 -> 264 instructions); a subnormal bfloat16 input would be flushed to zero
    flushes_subnormals = frozenset({torch.float16})
    # looked up: the table's gather beat the kernel (H100, 8192x8192, float16 / bfloat16:
    # 97.4 / 95.2 µs against 101.8 / 104.4)
    looks_up_16_bit = HALF
    lookup_from = FLOAT16_TABLE_PAYS_FROM

    @staticmethod
    @triton.jit
    def math(x):
        # scale = 1.0507009873554804934193349852946, alpha = 1.6732632423543772848170429916717
        return tl.where(x > 0, x * 1.0507009873554804934193349852946,
                        special.expm1(x) * (1.6732632423543772848170429916717 * 1.0507009873554804934193349852946))


@register
class Hardsigmoid(FloatActivation):
    out_dtype_check = errors.OutDtypeCheck.TENSOR_ITERATOR
    ref = staticmethod(_float64_as_cuda(torch.ops.aten.hardsigmoid,
                                        lambda x: (x + 3).clamp(0, 6) * _ONE_SIXTH.value))
    @staticmethod
    @triton.jit
    def math(x):
        return clamp(x + 3.0, 0.0, 6.0) * _ONE_SIXTH


@register
class Hardswish(FloatActivation):
    out_dtype_check = errors.OutDtypeCheck.TENSOR_ITERATOR
    ref = staticmethod(_float64_as_cuda(torch.ops.aten.hardswish,
                                        lambda x: x * (x + 3).clamp(0, 6) * _ONE_SIXTH.value))
    @staticmethod
    @triton.jit
    def math(x):
        return x * clamp(x + 3.0, 0.0, 6.0) * _ONE_SIXTH


@register
class Hardtanh(PointwiseOp):
    ref = staticmethod(_cuda_hardtanh)
    param_samples = ({"min_val": -0.5, "max_val": 2}, {"min_val": 2, "max_val": 1},
                     {"min_val": -1.5, "max_val": 2.5}, {"min_val": 0, "max_val": True})
    out_dtype_check = errors.OutDtypeCheck.TENSOR_ITERATOR
    scalars = {"min_val": -1, "max_val": 1}
    # PyTorch's CUDA clamp converts its limits with Scalar::to<opmath_t>() (float16 accepts
    # 1e5), its CPU kernel with to<scalar_t>()
    scalar_check = "compute"
    dtypes = REAL
    complex_error = (NotImplementedError, "clamp is not supported for complex types")

    @staticmethod
    def integer_limits(params):
        """The limits as PyTorch's hardtanh hands them to clamp for integer inputs: made int64
        first (Scalar::toLong(), checked, truncating)."""
        return tuple(int(checked_scalar(v, torch.int64)) for v in params.values())

    def check(self, operands, params, result_dtype, out):
        if result_dtype == torch.bool:
            raise RuntimeError("Bool inputs not supported for hardtanh")
        if not result_dtype.is_floating_point:
            limits = self.integer_limits(params)  # relu6 has none: its limits are (0, 6)
            if result_dtype == torch.uint8 and min(limits, default=0) < 0:
                raise RuntimeError("cannot do hardtanh on an unsigned type with negative limits")

    def prepare(self, operands, params):
        if operands[0].is_floating_point():
            return operands, tuple(params.values())
        return operands, self.integer_limits(params)

    def stored_operands(self, operands):
        return stored_16bit_self(operands[0])

    @staticmethod
    @triton.jit
    def math(x, lo, hi):
        # a 16-bit x arrives as stored (its NaN's bits kept), the limits rounded into its dtype
        return clamp(x, lo.to(x.dtype), hi.to(x.dtype))


@register
class Relu6(Hardtanh):
    name = "relu6"
    ref = staticmethod(_positive_zeros(torch.ops.aten.relu6))
    scalars = {}
    param_samples = ()

    def prepare(self, operands, params):
        # limits fixed by the op reach the math as constexprs: the tests of a NaN limit and
        # of a limit equal to x, and the conversion of runtime limits, fold away
        if operands[0].is_floating_point():
            return operands, (tl.constexpr(0.0), tl.constexpr(6.0))
        return operands, (tl.constexpr(0), tl.constexpr(6))

    math = staticmethod(clamp)  # constexpr limits take a stored x's dtype


@register
class LeakyRelu(FloatActivation):
    param_samples = ({"negative_slope": 0.2}, {"negative_slope": -1.5}, {"negative_slope": 2},
                     {"negative_slope": True})
    scalar_check = "compute"
    out_dtype_check = errors.OutDtypeCheck.TENSOR_ITERATOR
    scalars = {"negative_slope": 0.01}

    @staticmethod
    @triton.jit
    def math(x, negative_slope):
        return tl.where(x > 0, x, x * negative_slope)


@register
class Softplus(FloatActivation):
    param_samples = ({"beta": 2, "threshold": 5}, {"beta": 0.5, "threshold": 1},
                     {"beta": -1, "threshold": 20}, {"beta": 0}, {"beta": True, "threshold": 1.5})
    scalar_check = "compute"
    out_dtype_check = errors.OutDtypeCheck.TENSOR_ITERATOR
    scalars = {"beta": 1, "threshold": 20}
    # looked up at the defaults (beta 1, threshold 20): the table's gather against the kernel's
    # exponential and log1p (H100, 8192x8192, float16 / bfloat16: about 96 µs against 111.3 /
    # 114.0, torch.compile's approximate exponential 104.6 / 106.0)
    looks_up_16_bit = HALF
    lookup_from = FLOAT16_TABLE_PAYS_FROM

    def prepare(self, operands, params):
        # beta's value is in the call's signature: for the default 1 the kernel is compiled
        # without the product and the correctly rounded division by it (x * 1 and y / 1 are x
        # and y exactly), which PyTorch's kernel computes and rounds to the same values; with
        # the default threshold too, both are constants, and a 16-bit call may look up
        beta, threshold = params["beta"], params["threshold"]
        if beta == 1 and threshold == 20:
            return operands, (tl.constexpr(1.0), tl.constexpr(20.0), tl.constexpr(True))
        return operands, (beta, threshold, tl.constexpr(beta == 1))

    @staticmethod
    @triton.jit
    def math(x, beta, threshold, BETA_IS_ONE: tl.constexpr):
        if BETA_IS_ONE:
            r = tl.where(x > threshold, x, special.log1p_nonnegative(libm.exp(x)))
        else:
            r = tl.where(x * beta > threshold, x,
                         libm.div(special.log1p_nonnegative(libm.exp(x * beta)), beta))
        return r


@register
class Softshrink(FloatActivation):
    ref = staticmethod(_positive_zeros(torch.ops.aten.softshrink))
    param_samples = ({"lambd": 0}, {"lambd": 1.5}, {"lambd": -1}, {"lambd": 2}, {"lambd": float("nan")})
    out_dtype_check = errors.OutDtypeCheck.TENSOR_ITERATOR
    scalars = {"lambd": 0.5}
    dispatch_name = "softshrink_check"

    def check(self, operands, params, result_dtype, out):
        lambd, dtype = params["lambd"], operands[0].dtype
        if dtype not in FLOATING:  # PyTorch's check of lambd dispatches on the dtype, before
            # out=, in its meta function: one kernel name on every device
            raise errors.not_implemented(self.dispatch_name, dtype, device_suffix=False)
        if not 0 <= lambd <= torch.finfo(dtype).max:
            raise RuntimeError(f"lambda must be in range [0, {_FINFO_MAX[dtype]}] for input dtype "
                               f"{errors.scalar_type_name(dtype)}, but found {lambd:g}")

    @staticmethod
    @triton.jit
    def math(x, lambd):
        # PyTorch's CUDA formula: +0.0 inside [-lambd, lambd] (its CPU kernel gives x * 0)
        return tl.where((x >= -lambd) & (x <= lambd), 0, tl.where(x > 0, x - lambd, x + lambd))


@register
class Hardshrink(FloatActivation):
    param_samples = ({"lambd": 1}, {"lambd": -0.5}, {"lambd": 0}, {"lambd": True})
    scalar_check = "result"
    out_dtype_check = errors.OutDtypeCheck.TENSOR_ITERATOR
    scalars = {"lambd": 0.5}

    @staticmethod
    @triton.jit
    def math(x, lambd):
        return tl.where((x >= -lambd) & (x <= lambd), 0, x)


@register
class Glu(FloatActivation):
    param_samples = ({"dim": 0}, {"dim": 1}, {"dim": -2}, {"dim": 2})
    scalars = {"dim": -1}

    def prepare(self, operands, params):
        x = operands[0]
        if x.dim() == 0:
            raise RuntimeError("glu does not support 0-dimensional tensors")
        dim = errors.wrap_dim(params["dim"], x.dim())
        size = x.shape[dim]
        if size % 2:
            raise RuntimeError(
                f"Halving dimension must be even, but dimension {dim} is size {size}")
        return [x.narrow(dim, 0, size // 2), x.narrow(dim, size // 2, size // 2)], ()

    @staticmethod
    @triton.jit
    def math(a, b):
        return a * sigmoid(b)


@register
class Prelu(FloatActivation):
    nin = 2
    sample_operand_dims = (slice(None), slice(1, 2))  # the weight: one value per channel

    def check(self, operands, params, result_dtype, out):
        x, weight = operands
        if x.dtype != weight.dtype:
            raise RuntimeError(f"prelu: Type promoting not supported. Got "
                               f"{errors.scalar_type_name(x.dtype)} and "
                               f"{errors.scalar_type_name(weight.dtype)}")
        if weight.numel() != 1:
            if x.dim() == 0:
                raise RuntimeError("Not allow zero-dim input tensor.")
            channels = x.shape[1] if x.dim() > 1 else 1
            if channels != weight.numel():
                raise RuntimeError(
                    f"Mismatch of parameter numbers and input channel size. Found parameter "
                    f"numbers = {weight.numel()} and channel size = {channels}.")
        if weight.dim() > 1:
            raise RuntimeError(f"prelu: Expected `weight` to be a scalar or 1D tensor, but got: "
                               f"ndim = {weight.dim()}")

    def prepare(self, operands, params):
        x, weight = operands
        # the weight runs along dim 1 (the channels): a view that broadcasts against x there
        if weight.numel() == 1:
            return [x, weight.reshape(())], ()
        return [x, weight.reshape((-1,) + (1,) * (x.dim() - 2))], ()

    @staticmethod
    @triton.jit
    def math(x, weight):
        return tl.where(x > 0, x, weight * x)


@register
class HardswishBackward(FloatActivation):
    nin = 2
    out_dtype_check = errors.OutDtypeCheck.OUT_WRAPPER
    out_is_copied = True
    inplace = False
    ref = staticmethod(_cuda_hardswish_backward)

    @staticmethod
    @triton.jit
    def math(grad, x):
        return tl.where(x <= -3.0, 0.0, tl.where(x < 3.0, grad * (libm.div(x, 3.0) + 0.5), grad))


@register
class RreluWithNoiseBackward(PointwiseOp):
    """training: noise * grad; eval: leaky_relu_backward with slope (lower + upper) / 2."""

    nin = 3
    out_dtype_check = errors.OutDtypeCheck.OUT_WRAPPER
    scalar_check = "compute"  # leaky_relu_backward's negval.to<opmath_t>()
    scalars = {"lower": REQUIRED, "upper": REQUIRED, "training": REQUIRED,
               "self_is_result": REQUIRED}
    param_samples = ({"lower": 0.1, "upper": 0.3, "training": True, "self_is_result": False},
                     {"lower": 0.1, "upper": 0.3, "training": False, "self_is_result": False},
                     {"lower": -0.5, "upper": 0.2, "training": False, "self_is_result": True},
                     {"lower": 0.2, "upper": 0.4, "training": False, "self_is_result": True})

    def promote(self, operands, params):
        grad, x, noise = operands
        return promote([grad, noise] if params["training"] else [grad, x], self.promotion)

    def check(self, operands, params, result_dtype, out):
        if params["training"]:
            return
        # leaky_relu_backward's check: negval >= 0, which a NaN slope fails too
        if params["self_is_result"] and not (params["lower"] + params["upper"]) / 2 >= 0:
            raise RuntimeError(_NEGATIVE_SLOPE_INPLACE_BACKWARD)
        if result_dtype not in FLOATING:
            raise errors.not_implemented("leaky_relu_backward", result_dtype)

    out_is_copied = True

    def layout_operands(self, operands, params):
        # PyTorch's composite: noise * grad in training, else leaky_relu_backward(self, grad)
        grad, x, noise = operands
        return [noise, grad] if params["training"] else [x, grad]

    def prepare(self, operands, params):
        grad, x, noise = operands
        # the unused operand becomes the number 0, so it neither loads nor broadcasts; so does
        # the slope in training, which PyTorch never converts then (uint8 takes lower=-1.0)
        if params["training"]:
            return [grad, 0, noise], (0, 1)
        return [grad, x, 0], ((params["lower"] + params["upper"]) / 2, 0)

    @staticmethod
    @triton.jit
    def math(grad, x, noise, slope, training):
        return tl.where(training != 0, noise * grad, tl.where(x > 0, grad, grad * slope))


_NEGATIVE_SLOPE_INPLACE_BACKWARD = (
    "In-place leakyReLu backward calculation is triggered with a negative slope which is not "
    "supported. This is caused by calling in-place forward function with a negative slope, "
    "please call out-of-place version instead. File an issue at "
    "https://github.com/pytorch/pytorch if you do require supporting in-place leakRelu backward "
    "calculation with negative slope")
