"""Small Triton helpers several op declarations share."""
import triton
import triton.language as tl

from ..runtime import libm


@triton.jit
def clamp(x, lo, hi):
    """min(max(x, lo), hi) as PyTorch's CUDA clamp: NaN in x or in a limit propagates, and the
    maximum and minimum order -0.0 below +0.0 as CUDA's fmaxf/fminf do (hardtanh(-0.0,
    min_val=0) is +0.0; its CPU kernel keeps the -0.0)."""
    # on two zeros the sum is +0.0 unless both are -0.0 (the maximum), and the negated sum of
    # the negations -0.0 unless both are +0.0 (the minimum); libm.neg, as compiled unary minus
    # loses the sign of a zero
    x = tl.where(x < lo, lo, tl.where(x == lo, tl.where(x == 0, x + lo, x), x))
    x = tl.where(x > hi, hi, tl.where(x == hi, tl.where(x == 0, libm.neg(libm.neg(x) - hi), x), x))
    x = tl.where(lo != lo, lo, x)
    return tl.where(hi != hi, hi, x)


@triton.jit
def sigmoid(x):
    return libm.div(1.0, 1.0 + libm.exp(-x))
