"""Small helpers several op declarations share: Triton functions, and a reference."""
import torch
import triton
import triton.language as tl

from ..runtime import libm


def opmath_scalars(op):
    """PyTorch's ``op`` with its CUDA kernel's Scalar conversion, ``Scalar::to<opmath_t>()``:
    a float16 self takes a Scalar up to float32's range (1e5), which its CPU kernel, converting
    to float16, refuses. Such a call's values are the CPU kernel's on float32 copies of the
    float16 tensors, rounded to float16 (and written into out=, which PyTorch's own call has
    checked and resized before refusing the Scalar)."""
    def reference(*args, **kwargs):
        try:
            return op(*args, **kwargs)
        except RuntimeError as exc:
            if "c10::Half without overflow" not in str(exc):
                raise
        single = [a.float() if isinstance(a, torch.Tensor) and a.dtype == torch.float16 else a
                  for a in args]
        out = kwargs.pop("out", None)
        result = op(*single, **kwargs).to(torch.float16)
        return result if out is None else out.copy_(result)
    return reference


def cuda_zero_minimum(op):
    """PyTorch's two-operand ``op`` (a minimum: fmin, clamp_max) with the zeros of its CUDA
    kernel, whose minimum (``fminf``, ``::min``: one ``FMNMX``) orders -0.0 below +0.0: of two
    zeros, -0.0 where either is. Its CPU kernel keeps the first operand's zero."""
    def reference(x, other, *args, **kwargs):
        result = op(x, other, *args, **kwargs)
        if result.is_floating_point():
            other = torch.as_tensor(other, dtype=torch.float64) if not isinstance(
                other, torch.Tensor) else other
            zeros = (x == 0) & (other == 0)
            negative = zeros & (torch.signbit(x) | torch.signbit(other))
            result.copy_(torch.where(negative, torch.full_like(result, -0.0),
                                     torch.where(zeros, torch.zeros_like(result), result)))
        return result
    return reference


def cuda_scalar_tensor(s, **options):
    """PyTorch's scalar_tensor with the Scalar check of its CUDA kernel, ``empty({}).fill_(s)``
    (checked_convert: float16 1e39 raises); its CPU kernel writes one element unchecked. A
    fill of two elements on the CPU checks as CUDA's fill does."""
    dtype = options.get("dtype") or torch.get_default_dtype()
    torch.empty(2, dtype=dtype).fill_(s)
    return torch.ops.aten.scalar_tensor(s, **options)


@triton.jit
def _lower(a, b):
    """min(a, b) by selects, -0.0 below +0.0 (CUDA's order): of two zeros the negated sum of
    their negations, -0.0 unless both are +0.0 (libm.neg: unary minus is 0 - x, which loses a
    zero's sign). A NaN a is kept, a NaN b passed over."""
    return tl.where(b < a, b, tl.where((b == a) & (a == 0), libm.neg(libm.neg(a) - b), a))


@triton.jit
def _higher(a, b):
    """max(a, b) by selects, -0.0 below +0.0: of two zeros their sum, +0.0 unless both are
    -0.0. A NaN a is kept, a NaN b passed over."""
    return tl.where(b > a, b, tl.where((b == a) & (a == 0), a + b, a))


@triton.jit
def minimum(a, b):
    """min(a, b) as CUDA's fminf and ::min: -0.0 below +0.0, a NaN passed over (callers that
    propagate NaN test for it first). Compiled, ``min.f32``: the one ``FMNMX`` PyTorch's
    kernels take; interpreted (numpy's minimum keeps the first of two zeros), selects."""
    if libm.LIBDEVICE:
        r = tl.minimum(a, b)
    else:
        r = tl.where(a != a, b, _lower(a, b))
    return r


@triton.jit
def clamp(x, lo, hi):
    """min(max(x, lo), hi) as PyTorch's CUDA clamp: NaN in x or in a limit propagates, and the
    maximum and minimum order -0.0 below +0.0 as CUDA's fmaxf/fminf do (hardtanh(-0.0,
    min_val=0) is +0.0; its CPU kernel keeps the -0.0)."""
    x = _lower(_higher(x, lo), hi)
    x = tl.where(lo != lo, lo, x)
    return tl.where(hi != hi, hi, x)


@triton.jit
def sigmoid(x):
    # libm.neg, not -x: compiled, -x is 0 - x, one instruction more than a sign folded into
    # the exponential's first product (the same value: exp(+0) and exp(-0) are both 1)
    return libm.reciprocal(1.0 + libm.exp(libm.neg(x)))
