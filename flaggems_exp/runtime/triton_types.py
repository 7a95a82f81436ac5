"""torch dtype <-> Triton dtype, Python numbers encoded as kernel scalars, and the conversion
every kernel's store makes."""
import math
import struct

import torch
import triton
import triton.language as tl

TL_DTYPE = {
    torch.bool: tl.int1, torch.uint8: tl.uint8, torch.int8: tl.int8, torch.int16: tl.int16,
    torch.int32: tl.int32, torch.int64: tl.int64, torch.float16: tl.float16,
    torch.bfloat16: tl.bfloat16, torch.float32: tl.float32, torch.float64: tl.float64,
}

_INT_BITS = {torch.uint8: 8, torch.int8: 8, torch.int16: 16, torch.int32: 32, torch.int64: 64}


def encode_scalar(value, compute_dtype):
    """A Python number as the int64 a kernel scalar slot carries.

    Triton passes a Python float as float32, which would round float64 parameters, so a
    floating compute dtype gets the IEEE-754 bits of the float64 value (the kernel bitcasts
    them back); an integer compute dtype gets the value itself, wrapped into 64 bits (the kernel
    then narrows it, as PyTorch's Scalar conversion does: int32 * 2**40 multiplies by 0).
    """
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
            value = value.to(tl.float32)
    return value.to(dtype)
