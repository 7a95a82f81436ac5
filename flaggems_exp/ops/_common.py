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
    # libm.neg, not -x: compiled, -x is 0 - x, one instruction more than a sign folded into
    # the exponential's first product (the same value: exp(+0) and exp(-0) are both 1)
    return libm.reciprocal(1.0 + libm.exp(libm.neg(x)))
