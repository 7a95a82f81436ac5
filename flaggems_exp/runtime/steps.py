"""The steps of a composite: PyTorch computes some ops as several aten ops in a row, and each
step leaves its result in its own dtype (a float one rounds it, an integer one wraps it) before
the next step reads it. A kernel fusing the steps does the same between its own.

The dtype of a step can depend on which operand is a 0-dim tensor (it weighs less in type
promotion), which a compiled kernel does not see, so the host names each step's dtype with
``step_spec`` and hands it to the kernel as a constexpr (fixed by the call's signature: the
kernel is compiled for that step alone, not with every dtype's rounding and a select between
them); ``rounded`` and ``wrapped`` apply it.
"""
import torch
import triton
import triton.language as tl

from .triton_types import converted

_FLOAT_STEPS = {torch.float64: 0, torch.float32: 1, torch.float16: 2, torch.bfloat16: 3}


def step_spec(dtype):
    """How a step in ``dtype`` leaves its result, as a kernel constexpr: a float dtype rounds
    (0 float64, 1 float32, 2 float16, 3 bfloat16); an integer dtype narrower than int64 wraps
    (2**bits for a signed one, -2**bits for an unsigned one), int64 is 0 (its own arithmetic).
    Whether a step is integer or float the kernel knows from its operands' dtypes."""
    if dtype.is_floating_point:
        return tl.constexpr(_FLOAT_STEPS[dtype])
    if dtype.itemsize == 8:
        return tl.constexpr(0)
    modulus = 1 << 8 * dtype.itemsize
    return tl.constexpr(modulus if dtype.is_signed else -modulus)


@triton.jit
def rounded(x, spec, WIDE: tl.constexpr):
    """``x`` (a float or an integer) converted to the float dtype ``spec`` names, as c10
    converts (to a 16-bit float through float32), held in ``WIDE``: float32, or float64 where
    a step may be float64. Either holds a float16, bfloat16 or float32 step's sum or product of
    two values of its dtype closely enough that rounding it gives the correctly rounded result,
    as PyTorch's float32 opmath does."""
    return tl.where(spec == 2, converted(x, tl.float16).to(WIDE),
                    tl.where(spec == 3, converted(x, tl.bfloat16).to(WIDE),
                             tl.where(spec == 1, x.to(tl.float32).to(WIDE), x.to(WIDE))))


@triton.jit
def wrapped(x, spec):
    """int64 ``x`` as a step in the integer dtype ``spec`` names leaves it: its low bits,
    sign-extended for a signed dtype."""
    spec = tl.full((), spec, tl.int64)
    modulus = tl.abs(spec)
    low = tl.where(spec > 0, -(modulus >> 1), 0)
    return ((x - low) & (modulus - 1)) + low
