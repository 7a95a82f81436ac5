"""Named dtype sets for the ``dtypes`` an op's kernel accepts, and every value of a 16-bit one."""
import torch

HALF = frozenset({torch.float16, torch.bfloat16})  # the 16-bit floats, computed in float32
FLOATING = HALF | {torch.float32, torch.float64}
INTEGRAL = frozenset({torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64})
REAL = FLOATING | INTEGRAL
ALL = REAL | {torch.bool}


def every_16_bit_value(dtype, device=None):
    """Each of the 2**16 values of a 16-bit dtype, in the order of its bits read as int16
    (0x8000 first), NaN payloads included."""
    return torch.arange(-2**15, 2**15, dtype=torch.int16, device=device).view(dtype)
