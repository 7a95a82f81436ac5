"""Small Triton helpers several op declarations share."""
import triton
import triton.language as tl

from ..runtime import libm


@triton.jit
def clamp(x, lo, hi):
    """min(max(x, lo), hi) as PyTorch's clamp: NaN in x or in a limit propagates, -0.0 is kept."""
    x = tl.where(x < lo, lo, x)
    x = tl.where(lo != lo, lo, x)
    x = tl.where(x > hi, hi, x)
    return tl.where(hi != hi, hi, x)


@triton.jit
def clamp_positive_zero(x, lo, hi):
    """``clamp`` whose lower limit 0 turns -0.0 into +0.0, as CUDA's fmaxf does in PyTorch."""
    return clamp(tl.where(x == lo, lo, x), lo, hi)


@triton.jit
def sigmoid(x):
    return libm.div(1.0, 1.0 + libm.exp(-x))
