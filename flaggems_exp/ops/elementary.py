"""Unary math: exponentials, logarithms, trigonometric and hyperbolic functions, Bessel
functions, rounding and sign. Floating results are computed in opmath and rounded once."""
import torch
import triton
import triton.language as tl

from ..families import DISPATCH, PointwiseOp, Promotion, register
from ..runtime import errors, libm, special
from ..runtime.dtypes import FLOATING, HALF, REAL
from ._common import FLOAT16_TABLE_PAYS_FROM, opmath_scalars, sigmoid


class FloatUnary(PointwiseOp):
    """A unary function of the reals: integer and bool inputs compute in float32."""

    promotion = Promotion.INT_TO_FLOAT
    dtypes = FLOATING


# ``flushes_subnormals`` of the ops below whose float16 results cannot change with libdevice's
# flush-to-zero branches: a float16 input is a normal float32 (or 0, inf, NaN), and what each
# says of its intermediates and result. On the GPU, test_flushing_subnormals_changes_no_result
# compares every float16 input with PyTorch's CUDA kernel bit for bit.
_FLOAT16 = frozenset({torch.float16})


@register
class Exp(FloatUnary):
    math = staticmethod(libm.exp)


@register
class Exp2(FloatUnary):
    math = staticmethod(libm.exp2)
    # a subnormal float32 result (x below -126) rounds to float16's +0, as the flushed one is
    # (sm_90 SASS of a float16 launch: 72 -> 48 instructions)
    flushes_subnormals = _FLOAT16


@register
class Log(FloatUnary):
    math = staticmethod(libm.log)


@register
class Log2(FloatUnary):
    math = staticmethod(libm.log2)


@register
class Log1p(FloatUnary):
    math = staticmethod(special.log1p)
    # bfloat16 looked up: the gather beat the kernel (H100, 8192x8192: 95.3 µs against 99.6);
    # float16 did not (97.8 against 97.8)
    looks_up_16_bit = frozenset({torch.bfloat16})


@register
class Sin(FloatUnary):
    math = staticmethod(libm.sin)


@register
class Cos(FloatUnary):
    math = staticmethod(libm.cos)


# float16 inputs, widened to float32, meet no subnormal float32 in asinh and acosh (the
# smallest float16 squared is 2**-48); flushing spares the subnormal scaling in libdevice's
# log1pf, which both end in (sm_90 SASS of a float16 launch with libdevice's functions: asinh
# 632 -> 568 instructions, acosh 608 -> 584; their float32 math is since written out, counts
# in benchmarks/NOTES.md). sinh and cosh are written out whole, with the flushing forms of
# their approximate instructions where nvcc's take them (special._ex2_ftz): flushing would
# change none of their instructions.
@register
class Sinh(FloatUnary):
    math = staticmethod(special.sinh)


@register
class Cosh(FloatUnary):
    math = staticmethod(special.cosh)


@register
class Asinh(FloatUnary):
    aliases = ("arcsinh",)
    math = staticmethod(special.asinh)
    flushes_subnormals = _FLOAT16
    # looked up: the table's gather beat the kernel (H100, 8192x8192, float16 / bfloat16:
    # 97.4 / 95.8 µs against 105.6 / 107.1)
    looks_up_16_bit = HALF
    lookup_from = FLOAT16_TABLE_PAYS_FROM


@register
class Acosh(FloatUnary):
    aliases = ("arccosh",)
    math = staticmethod(special.acosh)
    flushes_subnormals = _FLOAT16
    # looked up: the table's gather beat the kernel (H100, 8192x8192, float16 / bfloat16:
    # 97.1 / 95.8 µs against 120.4 / 122.4)
    looks_up_16_bit = HALF
    lookup_from = FLOAT16_TABLE_PAYS_FROM


@register
class Atanh(FloatUnary):
    aliases = ("arctanh",)
    math = staticmethod(special.atanh)
    # looked up: the table's gather beat the kernel (H100, 8192x8192, float16 / bfloat16:
    # 97.8 / 95.7 µs against 111.0 / 114.9)
    looks_up_16_bit = HALF
    lookup_from = FLOAT16_TABLE_PAYS_FROM


@register
class Rsqrt(FloatUnary):
    math = staticmethod(libm.rsqrt)
    # results of float16 inputs lie in [2**-8, 2**12], 0, inf or NaN (SASS 72 -> 48)
    flushes_subnormals = _FLOAT16


@register
class Reciprocal(FloatUnary):
    @staticmethod
    @triton.jit
    def math(x):
        return libm.reciprocal(x)


@register
class Sigmoid(FloatUnary):
    math = staticmethod(sigmoid)  # glu computes with it too
    # exp(-x) below float32's normal range only beside 1, whose sum it cannot change (sm_90
    # SASS of a float16 launch: 280 -> 264 instructions)
    flushes_subnormals = _FLOAT16


@register
class Logit(FloatUnary):
    ref = staticmethod(opmath_scalars(torch.ops.aten.logit))
    complex_error = DISPATCH
    domain = (-0.2, 1.2)
    param_samples = ({"eps": -1.0}, {"eps": 0.0}, {"eps": 0.2}, {"eps": 0.5}, {"eps": 0.7})
    scalars = {"eps": None}
    scalar_check = "compute"  # PyTorch's CUDA kernel: eps.to<acc_type>(), float below float64

    # looked up without eps: the table's gather against the kernel's log of a division (H100,
    # 8192x8192, float16 / bfloat16: about 95 µs against 109.3 / 116.2, eager 110.8 / 118.5)
    looks_up_16_bit = HALF
    lookup_from = FLOAT16_TABLE_PAYS_FROM

    def prepare(self, operands, params):
        # eps < 0 (converted to the compute dtype, as PyTorch tests it) means no clamping;
        # without eps (the default, in the call's signature) the kernel has no clamp at all,
        # and no scalar but constexprs: such a call may look its results up
        eps = params["eps"]
        if eps is None:
            return operands, (tl.constexpr(-1.0), tl.constexpr(False))
        return operands, (eps, tl.constexpr(True))

    @staticmethod
    @triton.jit
    def math(x, eps, MAY_CLAMP: tl.constexpr):
        if MAY_CLAMP:
            # the lower test first: for eps > 0.5 it wins, as in PyTorch
            z = tl.where(eps < 0, x, tl.where(x < eps, eps, tl.where(x > 1 - eps, 1 - eps, x)))
        else:
            z = x
        return libm.log(libm.div(z, 1.0 - z))


@register
class Erfinv(FloatUnary):
    complex_error = DISPATCH
    math = staticmethod(special.erfinv)
    # bfloat16 looked up: the gather beat the kernel (H100, 8192x8192: 95.3 µs against 101.6,
    # eager 93.7); float16's kernel is at eager's time and the gather behind it (97.8 against
    # 94.1)
    looks_up_16_bit = frozenset({torch.bfloat16})


@register
class Digamma(FloatUnary):
    complex_error = DISPATCH
    math = staticmethod(special.digamma)
    # 4 elements a thread, 2 warps a program: the step count is one OR across the block, where
    # its warps wait for each other. float32 on an H100 at 8192x8192 (do_bench p50, µs), with
    # (elements a program, warps): uniform in (-4, 4), (1024, 4) 958, (1024, 8) 825, (1024, 16)
    # 836, (512, 4) 787, (256, 2) 783, eager 790; with no step, in (10, 20): 284, 272, 314,
    # 245, 241, eager 216 (float64 takes the same shape, not measured)
    block = 256
    warps = 2
    # a float16 or bfloat16 result costs hundreds of instructions, a lookup one gather
    looks_up_16_bit = HALF


@register
class I0(FloatUnary):
    complex_error = DISPATCH
    math = staticmethod(special.i0)
    looks_up_16_bit = HALF  # a Chebyshev series of 30 terms or more, against one gather


@register
class SpecialI0e(FloatUnary):
    complex_error = DISPATCH
    math = staticmethod(special.i0e)
    looks_up_16_bit = HALF  # a Chebyshev series of 30 terms or more, against one gather


@register
class SpecialI1(FloatUnary):
    complex_error = DISPATCH
    math = staticmethod(special.i1)
    looks_up_16_bit = HALF  # a Chebyshev series of 30 terms or more, against one gather


@register
class Sinc(FloatUnary):
    math = staticmethod(special.sinc)
    # looked up: the table's gather beat the kernel (H100, 8192x8192, float16 / bfloat16:
    # 97.4 / 95.9 µs against 108.3 / 108.5)
    looks_up_16_bit = HALF
    lookup_from = FLOAT16_TABLE_PAYS_FROM


@register
class Deg2rad(FloatUnary):
    complex_error = (RuntimeError, "deg2rad is not supported for complex tensors.")

    @staticmethod
    @triton.jit
    def math(x):
        return x * 0.017453292519943295  # pi / 180, rounded to the compute dtype


@register
class Rad2deg(FloatUnary):
    complex_error = (RuntimeError, "rad2deg is not supported for complex tensors.")

    @staticmethod
    @triton.jit
    def math(x):
        return x * 57.29577951308232  # 180 / pi, rounded to the compute dtype


@register
class Sign(PointwiseOp):
    out_dtype_check = errors.OutDtypeCheck.TENSOR_ITERATOR
    complex_error = (NotImplementedError, "Unlike NumPy, torch.sign is not intended to support "
                     "complex numbers. Please use torch.sgn instead.")

    @staticmethod
    @triton.jit
    def math(x):
        # (x > 0) - (x < 0): NaN and both zeros give +0; bool and unsigned keep their values
        if x.dtype == tl.int1:
            return x
        else:
            return (x > 0).to(x.dtype) - (x < 0).to(x.dtype)


@register
class Sgn(Sign):
    """For real dtypes sgn is sign (they differ only for complex, which we do not support)."""

    name = "sgn"
    complex_error = None


def _cuda_abs(x, *, out=None):
    """PyTorch's CUDA abs, whose bool case is the identity (its CPU kernel rejects bool), with
    its out= rules (out must be bool too)."""
    if x.dtype != torch.bool:
        return torch.abs(x) if out is None else torch.abs(x, out=out)
    if out is None:
        return x.clone()
    if out.dtype != torch.bool:
        raise errors.out_dtype_mismatch(out.dtype, torch.bool, errors.OutDtypeCheck.TENSOR_ITERATOR)
    return out.resize_(x.shape).copy_(x)


@register
class Abs(PointwiseOp):
    out_dtype_check = errors.OutDtypeCheck.TENSOR_ITERATOR
    aliases = ("absolute",)
    promotion = Promotion.COMPLEX_TO_FLOAT
    ref = staticmethod(_cuda_abs)

    @staticmethod
    @triton.jit
    def math(x):
        if x.dtype == tl.int1:
            return x  # PyTorch's CUDA abs of a bool is the identity
        else:
            return tl.abs(x)


@register
class Neg(PointwiseOp):
    out_dtype_check = errors.OutDtypeCheck.TENSOR_ITERATOR
    aliases = ("negative",)
    dtypes = REAL

    def check(self, operands, params, result_dtype, out):
        if operands[0].dtype == torch.bool:
            raise errors.bool_negation()

    math = staticmethod(libm.neg)


@register
class Square(PointwiseOp):
    promotion = Promotion.BOOL_TO_LONG

    @staticmethod
    @triton.jit
    def math(x):
        return x * x


@register
class Trunc(PointwiseOp):
    out_dtype_check = errors.OutDtypeCheck.TENSOR_ITERATOR
    aliases = ("fix",)
    dtypes = REAL
    dispatch_name = "trunc"
    complex_error = (NotImplementedError, "trunc is not supported for complex inputs")
    math = staticmethod(special.trunc)


@register
class Floor(PointwiseOp):
    out_dtype_check = errors.OutDtypeCheck.TENSOR_ITERATOR
    dtypes = REAL
    complex_error = (NotImplementedError, "floor is not supported for complex inputs")

    @staticmethod
    @triton.jit
    def math(x):
        if x.dtype.is_floating():
            return libm.floor(x)
        else:
            return x


@register
class Frac(PointwiseOp):
    complex_error = DISPATCH
    out_dtype_check = errors.OutDtypeCheck.TENSOR_ITERATOR
    dtypes = FLOATING

    @staticmethod
    @triton.jit
    def math(x):
        return x - special.trunc(x)
