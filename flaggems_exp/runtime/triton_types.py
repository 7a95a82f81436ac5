"""torch dtype <-> Triton dtype, Python numbers encoded as kernel scalars, and the conversion
every kernel's store makes."""
import math
import struct
import typing

import torch
import triton
import triton.language as tl

from . import errors
from .libm import LIBDEVICE

TL_DTYPE = {
    torch.bool: tl.int1, torch.uint8: tl.uint8, torch.int8: tl.int8, torch.int16: tl.int16,
    torch.int32: tl.int32, torch.int64: tl.int64, torch.float16: tl.float16,
    torch.bfloat16: tl.bfloat16, torch.float32: tl.float32, torch.float64: tl.float64,
}

_INT_BITS = {torch.uint8: 8, torch.int8: 8, torch.int16: 16, torch.int32: 32, torch.int64: 64}


class CheckedScalar(typing.NamedTuple):
    """A Scalar parameter that PyTorch's kernel converts with c10's overflow check
    (``Scalar::to<scalar_t>()`` or ``to<opmath_t>()``): checked against ``checked``, then
    encoded for ``compute``. ``encode_scalar`` takes it in place of a compute dtype, so a call
    plan that encodes its numbers per call checks them on every call."""

    compute: torch.dtype
    checked: torch.dtype


def scalar_binding(value):
    """Python's OverflowError where PyTorch's binding cannot hold int ``value`` as a Scalar
    (an int64, or a uint64 above int64's range), before any check of the op's own."""
    if type(value) is int and not -2**63 <= value < 2**64:
        raise OverflowError("int too big to convert" if value > 0
                            else "can't convert negative int to unsigned")


def checked_scalar(value, dtype):
    """``value`` (a Python number) as c10's ``checked_convert`` lets it into ``dtype``, or
    PyTorch's RuntimeError: a complex needs a zero imaginary part; an integer into an unsigned
    type may be negative down to -max (it wraps); inf fits a floating type, NaN only a floating
    one; anything else must lie within the type's range."""
    scalar_binding(value)
    if isinstance(value, bool) or dtype == torch.bool:
        return value  # c10 checks nothing into bool (2+1j is True)
    if isinstance(value, complex):
        if value.imag != 0:
            raise errors.scalar_overflow(dtype)
        value = value.real
    info = torch.finfo(dtype) if dtype.is_floating_point else torch.iinfo(dtype)
    if isinstance(value, int):
        lowest = -info.max if dtype == torch.uint8 else info.min
    elif math.isinf(value) and dtype.is_floating_point:
        return value
    elif math.isnan(value):
        if dtype.is_floating_point:
            return value
        raise errors.scalar_overflow(dtype)
    else:
        lowest = info.min
    if not lowest <= value <= info.max:
        raise errors.scalar_overflow(dtype)
    return _rounded(value, dtype) if dtype in (torch.float16, torch.bfloat16) else value


def _rounded(value, dtype):
    """A float in range of ``dtype`` (float16 or bfloat16) rounded to it as c10 rounds: to
    float32 first, then to nearest even (a kernel comparing with the Scalar sees this value)."""
    single = struct.unpack("<f", struct.pack("<f", value))[0]
    if dtype == torch.float16 or not math.isfinite(single):
        return struct.unpack("<e", struct.pack("<e", single))[0] if dtype == torch.float16 \
            else single
    bits = struct.unpack("<I", struct.pack("<f", single))[0]
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return struct.unpack("<f", struct.pack("<I", bits))[0]


def encode_scalar(value, compute_dtype):
    """A Python number as the int64 a kernel scalar slot carries (``compute_dtype`` may be a
    ``CheckedScalar``, whose check comes first).

    Triton passes a Python float as float32, which would round float64 parameters, so a
    floating compute dtype gets the IEEE-754 bits of the float64 value (the kernel bitcasts
    them back); an integer compute dtype gets the value itself, wrapped into 64 bits (the kernel
    then narrows it, as PyTorch's Scalar conversion does: int32 * 2**40 multiplies by 0).
    """
    if type(compute_dtype) is CheckedScalar:
        value = checked_scalar(value, compute_dtype.checked)
        compute_dtype = compute_dtype.compute
    elif type(value) is int and not -2**63 <= value < 2**64:
        scalar_binding(value)  # a plan's replay: the full path raised it before every check
    if compute_dtype.is_floating_point:
        return struct.unpack("<q", struct.pack("<d", float(value)))[0]
    if compute_dtype == torch.bool:
        return int(bool(value))
    if isinstance(value, float):
        if not math.isfinite(value):
            return 0  # undefined in C++ too; any value will do
        value = int(value)  # truncation toward zero, as C++ does
    value = int(value) & (2**64 - 1)
    return value - 2**64 if value >= 2**63 else value


@triton.jit
def converted(value, dtype):
    """``value`` in ``dtype`` as PyTorch converts it: c10's Half and BFloat16 are made from a
    float, so anything but a float32 (float64, integers, bool) reaches a 16-bit float through
    float32, rounding twice where a direct conversion (Triton's, compiled) would round once."""
    if (dtype == tl.float16 or dtype == tl.bfloat16) and value.dtype != tl.float32:
        if value.dtype != dtype:
            if dtype == tl.bfloat16 and value.dtype.is_int():
                # compiled, an integer's conversion to float32 and the one on to bfloat16 fuse
                # into one direct conversion (2**40 + 2**32 + 1 rounds up instead of to even)
                return _bfloat16_of_float32(value.to(tl.float32))
            value = value.to(tl.float32)
    return value.to(dtype)


@triton.jit
def rounded_as(value, dtype):
    """``value`` rounded as a tensor of ``dtype`` holds it (``converted``), in ``value``'s own
    dtype again: a step of PyTorch's that leaves a 16-bit tensor, read on in float32.
    Compiled, a float32 ``value`` reaches bfloat16 in pairs of elements, one packed conversion
    each (``cvt.rn.bf16x2.f32``, sm_90's F2FP) as Triton's stores convert: Triton converts a
    value it goes on computing with one element at a time (F2F, a quarter-rate instruction,
    one an element), where float16's pairs merge anyway. The same rounding, so the same bits.
    Not for a step of values already in bfloat16 (``a - b`` of two loaded ones): the compiler
    computes that one in bfloat16 itself (``sub.bf16x2``), which the PTX here would hide."""
    if LIBDEVICE and dtype == tl.bfloat16 and value.dtype == tl.float32:
        # the pair's first element is the low half: shifted up, then the high half masked
        return tl.inline_asm_elementwise(
            "{ .reg .b32 pair; cvt.rn.bf16x2.f32 pair, $3, $2; shl.b32 $0, pair, 16; "
            "and.b32 $1, pair, 0xffff0000; }", "=f,=f,f,f", [value], dtype=tl.float32,
            is_pure=True, pack=2)
    return converted(value, dtype).to(value.dtype)


@triton.jit
def _bfloat16_of_float32(value):
    """float32 to bfloat16 on the bits, round to nearest even as c10's BFloat16 does (NaN its
    0x7FC0): integer operations the compiler cannot merge into the conversion before."""
    bits = value.to(tl.uint32, bitcast=True)
    rounded = (bits + (0x7FFF + ((bits >> 16) & 1))) >> 16
    rounded = tl.where(value != value, 0x7FC0, rounded)
    return rounded.to(tl.uint16).to(tl.bfloat16, bitcast=True)
