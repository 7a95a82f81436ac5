"""Small helpers several op declarations share: Triton functions, and a reference."""
import types

import torch
import triton
import triton.language as tl

from ..runtime import libm, special
from ..runtime.device import INTERPRETED
from ..runtime.dtypes import HALF

FLOAT16_TABLE_PAYS_FROM = types.MappingProxyType({torch.float16: 1 << 22})
"""``PointwiseOp.lookup_from`` of a looked-up op whose math is cheap (a few libdevice calls):
below 4M float16 elements the cold table costs more than the math (at 1M: 7.8-8.4 µs looked up
against eager's 6.9-7.5 computing; at 64M the lookup is 1.09-1.24x faster; H100)."""


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


def stored_16bit_self(x):
    """``stored_operands`` of a clamp or minimum of ``x`` by Scalar limits: (0,) where x is
    float16 or bfloat16, compiled. PyTorch's kernel returns a NaN x as loaded (``if
    (_isnan(v)) return v;``), and x's float32 value rounded back would be the canonical NaN;
    the math takes x as stored and the limits rounded into its dtype, which gives the same
    values (rounding is monotone and x is exact in its dtype, so it commutes with min and
    max). The interpreter holds bfloat16 as its bits, with no arithmetic on them; its NaNs
    keep their payload through the float32 round trip, so it widens x as usual."""
    return (0,) if not INTERPRETED and x.dtype in HALF else ()


@triton.jit
def scalar_nan(wide, x):
    """The NaN PyTorch fills a result of x's dtype with for the NaN Scalar ``wide`` (its
    conversion on the host, c10's): float16 keeps the sign (0x7E00, 0xFE00), bfloat16 does
    not (0x7FC0); float32 and float64 keep wide as it arrives. Compiled, a conversion of a NaN
    into 16 bits gives the canonical 0x7FFF instead."""
    if x.dtype == tl.float16:
        sign = (wide.to(tl.int32, bitcast=True) >> 16) & 0x8000
        r = (sign | 0x7E00).to(tl.int16).to(tl.float16, bitcast=True)
    elif x.dtype == tl.bfloat16:
        r = special._constant(x, special.NAN)
    else:
        r = wide
    return r


@triton.jit
def _nan_bits_kept(x, r, INF_BITS: tl.constexpr):
    """``r``, or the 16-bit float x as loaded where x is NaN (its magnitude's bits above
    INF_BITS, its dtype's infinity), tested and selected on the bits."""
    bits = x.to(tl.int16, bitcast=True)
    return tl.where((bits & 0x7FFF) > INF_BITS, bits,
                    r.to(x.dtype).to(tl.int16, bitcast=True)).to(x.dtype, bitcast=True)


@triton.jit
def keep_nan(x, r):
    """``r``, or x as loaded where x is NaN. A 16-bit float x is tested and selected on its
    bits: compiled, bfloat16 clamp_max by a Scalar (x NaN-tested with ``setp.nan.bf16``, then
    ``selp.b16`` over ``min.bf16``) returned the minimum's canonical 0x7FFF for every NaN x on
    the GPU, though the SASS reads right; float16 kept its NaNs through the same steps."""
    if x.dtype == tl.float16:
        r = _nan_bits_kept(x, r, 0x7C00)
    elif x.dtype == tl.bfloat16:
        r = _nan_bits_kept(x, r, 0x7F80)
    else:
        r = tl.where(x != x, x, r)
    return r


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
def maximum(a, b):
    """max(a, b) as CUDA's fmaxf and ::max: -0.0 below +0.0, a NaN passed over; compiled,
    ``max.f32`` (one ``FMNMX``), interpreted, selects (see ``minimum``)."""
    if libm.LIBDEVICE:
        r = tl.maximum(a, b)
    else:
        r = tl.where(a != a, b, _higher(a, b))
    return r


@triton.jit
def clamp(x, lo, hi):
    """min(max(x, lo), hi) as PyTorch's CUDA clamp by Scalars: fmaxf then fminf (compiled,
    one FMNMX each, which order -0.0 below +0.0: hardtanh(-0.0, min_val=0) is +0.0, where its
    CPU kernel keeps the -0.0), a NaN x returned as it is (``if (_isnan(v)) return v;``; a
    16-bit x arrives as stored and ``keep_nan`` selects its bits: see there), and a NaN limit
    giving the quiet NaN that clamp_out fills the result with. The selects of ``_lower`` and
    ``_higher`` in place of the FMNMX took hardtanh to 150 SASS a float16 program of 8
    elements a thread (against 81), which an H200 issues slower than it moves the bytes: 80.4
    µs at L against eager's 72.2 (benchmarks/NOTES.md, "hardtanh's clamp by FMNMX")."""
    r = keep_nan(x, minimum(maximum(x, lo), hi))
    if r.dtype.is_floating():
        r = tl.where((lo != lo) | (hi != hi), special._constant(r, special.NAN), r)
    return r


@triton.jit
def sigmoid(x):
    # libm.neg, not -x: compiled, -x is 0 - x, one instruction more than a sign folded into
    # the exponential's first product (the same value: exp(+0) and exp(-0) are both 1)
    return libm.reciprocal(1.0 + libm.exp(libm.neg(x)))
