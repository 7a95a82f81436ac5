"""Elementary functions with the accuracy of PyTorch's CUDA kernels.

Compiled, ``tl.exp``/``tl.log``/``tl.sin``... lower to the GPU's approximate instructions
(``ex2.approx`` and friends: several ulp off, worse for large arguments), while PyTorch calls the
CUDA math library. libdevice is that library, but in Triton's interpreter its functions return
None, so each function here picks libdevice when compiled and ``tl`` (numpy, correctly rounded)
when interpreted. Every function takes and returns the compute dtype (float32 or float64).

Subnormal float32 numbers: libdevice's functions have flush-to-zero branches (rsqrt.approx.ftz,
ex2.approx.ftz...) that Triton takes by default; compiled kernels are built with them off
(``launch.COMPILE_OPTIONS``), as nvcc builds PyTorch's, so rsqrt(1e-40) is 1e20, not inf.
"""
import triton
import triton.language as tl

from .device import INTERPRETED

if INTERPRETED:
    _lib = tl
else:
    from triton.language.extra import libdevice as _lib
LIBDEVICE = tl.constexpr(not INTERPRETED)
"""Whether kernels call the CUDA math library (compiled) or its stand-ins (interpreted): a
constexpr, so that a function choosing by it compiles one of its two bodies."""


@triton.jit
def div(x, y):
    """x / y correctly rounded, as PyTorch's kernels divide (nvcc's default -prec-div=true):
    compiled, Triton's ``/`` on float32 is ``div.full.f32``, up to 2 ulp off, which changes one
    sigmoid in seven and, through a network's batch norms, its gradients (interpreted, ``/`` is
    numpy's, correctly rounded). libdevice has no mixed-dtype division: a Python constant (a
    small integer or half here, exact in float32) takes the other operand's dtype."""
    if LIBDEVICE:
        if isinstance(x, float):
            x = tl.cast(x, y.dtype)
        if isinstance(y, float):
            y = tl.cast(y, x.dtype)
        if x.dtype != y.dtype:
            x = x.to(tl.float64)
            y = y.to(tl.float64)
        r = _lib.div_rn(x, y)
    else:
        r = x / y
    return r


@triton.jit
def reciprocal(x):
    """1 / x correctly rounded: ``div(1.0, x)``'s value (both round the exact reciprocal once),
    compiled as one ``rcp.rn`` instead of a general division."""
    if LIBDEVICE:
        r = _lib.rcp_rn(x)
    else:
        r = 1.0 / x
    return r


@triton.jit
def div_by_reciprocal(x, y, r):
    """x / y correctly rounded (``div``'s value), given r, y's reciprocal correctly rounded: a
    product and two fused multiply-adds an element (Markstein's correction: the remainder
    x - y * q of the product q is exact, and q + remainder * r rounds to the quotient), where
    ``div`` takes a reciprocal, its refinement, a range check and a branch to a slow path for
    every element. Many elements dividing by one y pay for the reciprocal once.

    float32 only, and exact only where nothing leaves the normal range: x zero or at least
    2**-100, y in [1, 2**24], which the caller checks, or shows its result cannot tell (a tiny
    x's remainder or quotient is subnormal and may round). Checked bit for bit against
    division for every float32 x in [0.5, 1) with 2,000 y in [1, 2) and for 10**9 random pairs
    across the range; scaling x or y by a power of two scales every step exactly, which covers
    the rest of it.
    Interpreted, the fused steps are exact only where the interpreter's fma is (Triton 3.9
    computes it exactly, 3.6 rounds the product first)."""
    q = mul(x, r)
    return tl.fma(r, tl.fma(-y, q, x), q)


@triton.jit
def mul(x, y):
    """x * y rounded on its own (operands of one float dtype): compiled, ``mul.rn``, which the
    compiler never contracts with an addition that follows into one fused multiply-add. Where
    PyTorch computes a product and a sum in two kernels (a composite's steps), the product is
    rounded before the sum; with the step's rounding a no-op (a float32 step held in float32),
    Triton's ``*`` then ``+`` would become an fma and round once."""
    if LIBDEVICE:
        r = _lib.mul_rn(x, y)
    else:
        r = x * y
    return r


@triton.jit
def exp(x):
    return _lib.exp(x)


@triton.jit
def exp2(x):
    return _lib.exp2(x)


@triton.jit
def log(x):
    return _lib.log(x)


@triton.jit
def log2(x):
    return _lib.log2(x)


@triton.jit
def sin(x):
    return _lib.sin(x)


@triton.jit
def cos(x):
    return _lib.cos(x)


@triton.jit
def rsqrt(x):
    return _lib.rsqrt(x)


@triton.jit
def sqrt(x):
    return _lib.sqrt(x)


@triton.jit
def floor(x):
    return _lib.floor(x)


@triton.jit
def neg(x):
    """-x keeping IEEE signed zeros: compiled Triton lowers a float's unary minus to 0 - x,
    which turns -(+0.0) into +0.0."""
    if x.dtype.is_floating():
        return x * -1.0
    else:
        return -x
