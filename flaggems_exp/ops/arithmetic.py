"""Binary and ternary arithmetic: products, fused multiply-adds, minima, logs of sums."""
import torch
import triton
import triton.language as tl

from ..families import DISPATCH, Dispatch, PointwiseOp, Promotion, register
from ..runtime import errors, libm, special
from ..runtime.dtypes import FLOATING, INTEGRAL, REAL
from ..runtime.special import INF
from ..runtime.triton_types import checked_scalar
from ._common import (cuda_zero_minimum, keep_nan, minimum, opmath_scalars, scalar_nan,
                      stored_16bit_self)


@register
class Mul(PointwiseOp):
    aliases = ("multiply",)
    nin = 2

    @staticmethod
    @triton.jit
    def math(x, y):
        if x.dtype == tl.int1:
            return x & y  # bool * bool is logical and
        else:
            return x * y


def _cuda_addcmul(self, tensor1, tensor2, *, value=1, **kwargs):
    """PyTorch's addcmul as its CUDA kernel computes integers: in int64 (``acc_type<scalar_t,
    true>``), ``value`` converted with ``Scalar::to<int64_t>()``, the sum cast to the result's
    type (its CPU kernel converts ``value`` into that type, checked: int8's ``value=300`` is an
    error there and not on CUDA)."""
    # its checks, its dtype and out= (1 converts into every type)
    result = torch.ops.aten.addcmul(self, tensor1, tensor2, value=1, **kwargs)
    if result.dtype not in INTEGRAL:
        return torch.ops.aten.addcmul(self, tensor1, tensor2, value=value, **kwargs)
    wide = torch.ops.aten.addcmul(self.long(), tensor1.long(), tensor2.long(), value=value)
    return result.copy_(wide)


@register
class Addcmul(PointwiseOp):
    ref = staticmethod(_cuda_addcmul)
    param_samples = ({"value": 2}, {"value": 2.5}, {"value": True})
    nin = 3
    scalar_check = "compute"  # value.to<accscalar_t>()
    # PyTorch's CUDA kernel (acc_type<scalar_t, true>); its CPU kernel checks value into the
    # tensors' own type and computes there
    integer_compute = torch.int64
    scalars = {"value": 1}
    dtypes = REAL

    @staticmethod
    @triton.jit
    def math(x, tensor1, tensor2, value):
        if x.dtype.is_floating():
            # PyTorch's CUDA kernel (pointwise_op_impl): value == 1 ? fma(t1, t2, x) : fma(value,
            # t1 * t2, x), the product rounded alone; x + value * t1 * t2 would round value * t1
            r = tl.where(value == 1, tl.fma(tensor1, tensor2, x),
                         tl.fma(libm.mul(tensor1, tensor2), value, x))
        else:
            r = x + value * tensor1 * tensor2
        return r


@register
class Addcdiv(PointwiseOp):
    param_samples = ({"value": 2}, {"value": -0.5}, {"value": True})
    nin = 3
    scalar_check = "compute"  # value.to<opmath_t>()
    scalars = {"value": 1}

    def check(self, operands, params, result_dtype, out):
        _, tensor1, tensor2 = operands
        integral = [not (t.is_floating_point() or t.is_complex()) for t in (tensor1, tensor2)]
        if all(integral):
            raise RuntimeError(_INTEGER_ADDCDIV)

    @staticmethod
    @triton.jit
    def math(x, tensor1, tensor2, value):
        return x + value * libm.div(tensor1, tensor2)


@register
class Xlogy(PointwiseOp):
    complex_error = DISPATCH
    nin = 2
    promotion = Promotion.INT_TO_FLOAT

    @staticmethod
    @triton.jit
    def math(x, y):
        return tl.where(y != y, y, tl.where(x == 0, 0.0, x * libm.log(y)))


@register
class Hypot(PointwiseOp):
    complex_error = DISPATCH
    nin = 2
    dtypes = FLOATING
    math = staticmethod(special.hypot)


@triton.jit
def _log_add(a, b, BASE2: tl.constexpr):
    """log(e**a + e**b) (base 2 with BASE2) as PyTorch: max + log1p(exp(-|a - b|)), and equal
    infinities returned as they are (their difference would be NaN)."""
    larger = tl.where(a > b, a, b)
    if BASE2:
        # times 1 / ln 2
        spread = special.log1p_nonnegative(libm.exp2(-tl.abs(a - b))) * 1.4426950408889634
    else:
        spread = special.log1p_nonnegative(libm.exp(-tl.abs(a - b)))
    return tl.where((a == b) & (tl.abs(a) == INF), a, larger + spread)


@register
class Logaddexp(PointwiseOp):
    nin = 2
    dtypes = FLOATING

    @staticmethod
    @triton.jit
    def math(a, b):
        return _log_add(a, b, False)


@register
class Logaddexp2(PointwiseOp):
    complex_error = DISPATCH
    nin = 2
    dtypes = FLOATING

    @staticmethod
    @triton.jit
    def math(a, b):
        return _log_add(a, b, True)


@register
class Fmin(PointwiseOp):
    ref = staticmethod(cuda_zero_minimum(torch.ops.aten.fmin))
    nin = 2
    complex_error = (RuntimeError, "fmin not implemented for complex tensors.")

    @staticmethod
    @triton.jit
    def math(a, b):
        # NaN-ignoring; fmin(+0.0, -0.0) is -0.0 as CUDA's fminf gives it
        return minimum(a, b)


@register
class ClampMax(PointwiseOp):
    ref = staticmethod(cuda_zero_minimum(opmath_scalars(torch.ops.aten.clamp_max)))
    nin = 2
    out_dtype_check = errors.OutDtypeCheck.TENSOR_ITERATOR
    complex_error = (NotImplementedError, "clamp is not supported for complex types")

    def complex_error_of(self, operands):
        # .Tensor runs PyTorch's minimum kernel, whose dispatch rejects complex after out=
        return Dispatch("minimum") if isinstance(operands[1], torch.Tensor) else self.complex_error

    def out_dtype_check_of(self, tensors):
        return self.out_dtype_check if len(tensors) == 1 else None  # .Tensor casts into out

    def check(self, operands, params, result_dtype, out):
        x, limit = operands
        if out is x and not isinstance(limit, torch.Tensor) and not torch.can_cast(
                result_dtype, x.dtype):
            # the Scalar overload prints the C++ type of self
            raise RuntimeError(f"result type {errors.scalar_type_name(result_dtype)} can't be "
                               f"cast to the desired output type {errors.cpp_type_name(x.dtype)}")

    def check_kernel(self, operands, result_dtype):
        limit = operands[1]
        if not isinstance(limit, torch.Tensor):
            if result_dtype == torch.bool:
                raise errors.not_implemented("clamp_max_scalar", result_dtype)
            # PyTorch's CUDA kernel converts max with Scalar::to<opmath_t>() (its CPU kernel
            # with to<scalar_t>(): float16 rejects 1e5 there), checked: a negative int wraps
            # into an unsigned type (uint8 clamp_max_(-1) clamps by 255)
            checked_scalar(limit, torch.float32 if result_dtype in (torch.float16, torch.bfloat16)
                           else result_dtype)
        super().check_kernel(operands, result_dtype)

    def prepare(self, operands, params):
        # which NaN wins differs by overload: .Tensor runs PyTorch's minimum (a NaN self
        # first), the Scalar overload fills the result with a NaN limit (clamp_max_out)
        return operands, (tl.constexpr(not isinstance(operands[1], torch.Tensor)),)

    def stored_operands(self, operands):
        # the .Tensor overload computes in self's dtype already
        return () if isinstance(operands[1], torch.Tensor) else stored_16bit_self(operands[0])

    @staticmethod
    @triton.jit
    def math(x, limit, SCALAR_LIMIT):
        # -0.0 below +0.0 as CUDA's ::min (_common.minimum); a 16-bit x with a Scalar limit
        # arrives as stored (its NaN's bits kept), the limit rounded into its dtype
        smaller = minimum(x, limit.to(x.dtype))
        if SCALAR_LIMIT:
            r = tl.where(limit != limit, scalar_nan(limit, x), keep_nan(x, smaller))
        else:
            r = tl.where(x != x, x, tl.where(limit != limit, limit, smaller))
        return r


@register
class Heaviside(PointwiseOp):
    nin = 2
    complex_error = (RuntimeError, "heaviside is not yet implemented for complex tensors.")

    def check(self, operands, params, result_dtype, out):
        dtypes = {operands[0].dtype, operands[1].dtype, (out if out is not None else operands[0]).dtype}
        if len(dtypes) > 1:
            raise RuntimeError("heaviside is not yet implemented for tensors with different dtypes.")

    @staticmethod
    @triton.jit
    def math(x, values):
        return tl.where(x == 0, values, (x > 0).to(values.dtype))


_INTEGER_ADDCDIV = (
    "Integer division with addcdiv is no longer supported, and in a future  release addcdiv will "
    "perform a true division of tensor1 and tensor2. The historic addcdiv behavior can be "
    "implemented as (input + value * torch.trunc(tensor1 / tensor2)).to(input.dtype) for integer "
    "inputs and as (input + value * tensor1 / tensor2) for float inputs. The future addcdiv "
    "behavior is just the latter implementation: (input + value * tensor1 / tensor2), for all "
    "dtypes.")
