"""Numerically careful special functions as ``@triton.jit`` device functions.

They exist because the ``triton.language.extra.libdevice`` versions return
None under ``TRITON_INTERPRET=1`` and do not exist on every backend, while
the plain ``tl.*`` algebra usually overflows or cancels where the C library
does not. Everything here is built from ``tl.*`` / ``tl.math.*`` primitives
only, works on block tensors inside other Triton kernels, and takes and
returns the compute dtype (float32 or float64; ``trunc`` also passes
integers through): no function casts its input, and every literal is
materialised in the dtype of the tensor it meets.
"""

import triton
import triton.language as tl

_INF = tl.constexpr(float("inf"))
_NAN = tl.constexpr(float("nan"))
_PI = tl.constexpr(3.141592653589793)
_LN2 = tl.constexpr(0.6931471805599453)
_TWO_OVER_SQRT_PI = tl.constexpr(1.1283791670955126)
# digamma(10), the value Cephes/ATen return when the recurrence lands on 10.
_PSI_10 = tl.constexpr(2.25175258906672110764)
# Above 2**28, sqrt(x*x +- 1) == |x| in float64, so asinh/acosh = log(2|x|).
_BIG_ARG = tl.constexpr(268435456.0)

# Cephes asymptotic-series coefficients for digamma (as in ATen calc_digamma).
_DIGAMMA_A = tl.constexpr((
    8.33333333333333333333e-2, -2.10927960927960927961e-2,
    7.57575757575757575758e-3, -4.16666666666666666667e-3,
    3.96825396825396825397e-3, -8.33333333333333333333e-3,
    8.33333333333333333333e-2,
))

# Cephes Chebyshev coefficients for exp(-x) I0(x) on [0, 8].
_I0E_A = tl.constexpr((
    -4.41534164647933937950e-18, 3.33079451882223809783e-17,
    -2.43127984654795469359e-16, 1.71539128555513303061e-15,
    -1.16853328779934516808e-14, 7.67618549860493561688e-14,
    -4.85644678311192946090e-13, 2.95505266312963983461e-12,
    -1.72682629144155570723e-11, 9.67580903537323691224e-11,
    -5.18979560163526290666e-10, 2.65982372468238665035e-9,
    -1.30002500998624804212e-8, 6.04699502254191894932e-8,
    -2.67079385394061173391e-7, 1.11738753912010371815e-6,
    -4.41673835845875056359e-6, 1.64484480707288970893e-5,
    -5.75419501008210370398e-5, 1.88502885095841655729e-4,
    -5.76375574538582365885e-4, 1.63947561694133579842e-3,
    -4.32430999505057594430e-3, 1.05464603945949983183e-2,
    -2.37374148058994688156e-2, 4.93052842396707084878e-2,
    -9.49010970480476444210e-2, 1.71620901522208775349e-1,
    -3.04682672343198398683e-1, 6.76795274409476084995e-1,
))

# Cephes Chebyshev coefficients for exp(-x) sqrt(x) I0(x) on (8, inf).
_I0E_B = tl.constexpr((
    -7.23318048787475395456e-18, -4.83050448594418207126e-18,
    4.46562142029675999901e-17, 3.46122286769746109310e-17,
    -2.82762398051658348494e-16, -3.42548561967721913462e-16,
    1.77256013305652638360e-15, 3.81168066935262242075e-15,
    -9.55484669882830764870e-15, -4.15056934728722208663e-14,
    1.54008621752140982691e-14, 3.85277838274214270114e-13,
    7.18012445138366623367e-13, -1.79417853150680611778e-12,
    -1.32158118404477131188e-11, -3.14991652796324136454e-11,
    1.18891471078464383424e-11, 4.94060238822496958910e-10,
    3.39623202570838634515e-9, 2.26666899049817806459e-8,
    2.04891858946906374183e-7, 2.89137052083475648297e-6,
    6.88975834691682398426e-5, 3.36911647825569408990e-3,
    8.04490411014108831608e-1,
))

# Cephes Chebyshev coefficients for exp(-x) I1(x) / x on [0, 8].
_I1E_A = tl.constexpr((
    2.77791411276104639959e-18, -2.11142121435816608115e-17,
    1.55363195773620046921e-16, -1.10559694773538630805e-15,
    7.60068429473540693410e-15, -5.04218550472791168711e-14,
    3.22379336594557470981e-13, -1.98397439776494371520e-12,
    1.17361862988909016308e-11, -6.66348972350202774223e-11,
    3.62559028155211703701e-10, -1.88724975172282928790e-9,
    9.38153738649577178388e-9, -4.44505912879632808065e-8,
    2.00329475355213526229e-7, -8.56872026469545474066e-7,
    3.47025130813767847674e-6, -1.32731636560394358279e-5,
    4.78156510755005422638e-5, -1.61760815825896745588e-4,
    5.12285956168575772895e-4, -1.51357245063125314899e-3,
    4.15642294431288815669e-3, -1.05640848946261981558e-2,
    2.47264490306265168283e-2, -5.29459812080949914269e-2,
    1.02643658689847095384e-1, -1.76416518357834055153e-1,
    2.52587186443633654823e-1,
))

# Cephes Chebyshev coefficients for exp(-x) sqrt(x) I1(x) on (8, inf).
_I1E_B = tl.constexpr((
    7.51729631084210481353e-18, 4.41434832307170791151e-18,
    -4.65030536848935832153e-17, -3.20952592199342395980e-17,
    2.96262899764595013876e-16, 3.30820231092092828324e-16,
    -1.88035477551078244854e-15, -3.81440307243700780478e-15,
    1.04202769841288027642e-14, 4.27244001671195135429e-14,
    -2.10154184277266431302e-14, -4.08355111109219731823e-13,
    -7.19855177624590851209e-13, 2.03562854414708950722e-12,
    1.41258074366137813316e-11, 3.25260358301548823856e-11,
    -1.89749581235054123450e-11, -5.58974346219658380687e-10,
    -3.83538038596423702205e-9, -2.63146884688951950684e-8,
    -2.51223623787020892529e-7, -3.88256480887769039346e-6,
    -1.10588938762623716291e-4, -9.76109749136146840777e-3,
    7.78576235018280120474e-1,
))

# Giles, "Approximating the erfinv function" (GPU Computing Gems, 2011),
# single-precision branches in w - 2.5 (w < 5) and sqrt(w) - 3 (w >= 5).
_ERFINV_CENTRAL = tl.constexpr((
    2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06,
    0.00021858087, -0.00125372503, -0.00417768164, 0.246640727, 1.50140941,
))
_ERFINV_TAIL = tl.constexpr((
    -0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844,
    0.00573950773, -0.0076224613, 0.00943887047, 1.00167406, 2.83297682,
))


@triton.jit
def _signbit(x):
    if x.dtype == tl.float64:
        s = x.to(tl.int64, bitcast=True) < 0
    else:
        s = x.to(tl.int32, bitcast=True) < 0
    return s


@triton.jit
def _sqrt(x):
    # tl.sqrt is the approximate instruction for float32 on NVIDIA GPUs.
    if x.dtype == tl.float32:
        r = tl.sqrt_rn(x)
    else:
        r = tl.sqrt(x)
    return r


@triton.jit
def _polevl(x, coeffs: tl.constexpr, n: tl.constexpr):
    # Horner, highest power first (Cephes order).
    r = tl.zeros_like(x) + coeffs[0]
    for i in tl.static_range(1, n):
        r = r * x + coeffs[i]
    return r


@triton.jit
def _chbevl(x, coeffs: tl.constexpr, n: tl.constexpr):
    # Clenshaw recurrence for a Cephes Chebyshev series at argument x / 2.
    b0 = tl.zeros_like(x) + coeffs[0]
    b1 = tl.zeros_like(x)
    b2 = tl.zeros_like(x)
    for i in tl.static_range(1, n):
        b2 = b1
        b1 = b0
        b0 = x * b1 - b2 + coeffs[i]
    return 0.5 * (b0 - b2)


@triton.jit
def log1p(x):
    u = 1.0 + x
    # log(u) * x / (u - 1) cancels the rounding error committed in 1 + x.
    r = tl.log(u) * (x / (u - 1.0))
    r = tl.where(u == 1.0, x, r)
    return tl.where(x == _INF, x, r)


@triton.jit
def expm1(x):
    u = tl.exp(x)
    um1 = u - 1.0
    # Kahan: (u - 1) * x / log(u) cancels the rounding error of exp(x).
    r = um1 * (x / tl.log(u))
    r = tl.where(u == 1.0, x, r)
    r = tl.where(um1 == -1.0, um1, r)
    return tl.where(u == _INF, u, r)


@triton.jit
def sinh(x):
    a = tl.abs(x)
    t = expm1(a)
    small = 0.5 * (t + t / (t + 1.0))
    e = tl.exp(a)
    h = tl.exp(0.5 * a)
    # exp(a) overflows up to ln(2) before sinh does: square exp(a/2).
    big = tl.where(e == _INF, (0.5 * h) * h, 0.5 * e - 0.5 / e)
    r = tl.where(a < 1.0, small, big)
    return tl.where(_signbit(x), -r, r)


@triton.jit
def cosh(x):
    a = tl.abs(x)
    e = tl.exp(a)
    h = tl.exp(0.5 * a)
    return tl.where(e == _INF, (0.5 * h) * h, 0.5 * e + 0.5 / e)


@triton.jit
def asinh(x):
    a = tl.abs(x)
    a2 = a * a
    huge = tl.log(a) + _LN2
    mid = tl.log(2.0 * a + 1.0 / (_sqrt(a2 + 1.0) + a))
    small = log1p(a + a2 / (1.0 + _sqrt(1.0 + a2)))
    r = tl.where(a > _BIG_ARG, huge, tl.where(a > 2.0, mid, small))
    return tl.where(_signbit(x), -r, r)


@triton.jit
def acosh(x):
    t = x - 1.0
    huge = tl.log(x) + _LN2
    mid = tl.log(2.0 * x - 1.0 / (x + _sqrt(x * x - 1.0)))
    small = log1p(t + _sqrt(2.0 * t + t * t))
    r = tl.where(x > _BIG_ARG, huge, tl.where(x > 2.0, mid, small))
    return tl.where(x < 1.0, _NAN, r)


@triton.jit
def atanh(x):
    a = tl.abs(x)
    t = a + a
    # Both are log1p(2a / (1 - a)); the first keeps full accuracy below 1/2.
    small = 0.5 * log1p(t + t * a / (1.0 - a))
    large = 0.5 * log1p(t / (1.0 - a))
    r = tl.where(a < 0.5, small, large)
    r = tl.where(a > 1.0, _NAN, r)
    return tl.where(_signbit(x), -r, r)


@triton.jit
def trunc(x):
    r = x
    if x.dtype.is_floating():
        # ceil(-0.5) is -0.0 and floor keeps -0.0, infinities and NaN.
        r = tl.where(x < 0, tl.ceil(x), tl.floor(x))
    return r


@triton.jit
def hypot(x, y):
    a = tl.abs(x)
    b = tl.abs(y)
    # A NaN lands in big or in small, so it reaches the result either way.
    a_big = a > b
    big = tl.where(a_big, a, b)
    small = tl.where(a_big, b, a)
    q = small / big
    r = big * _sqrt(1.0 + q * q)
    r = tl.where(big == 0.0, big, r)
    return tl.where((a == _INF) | (b == _INF), _INF, r)


@triton.jit
def erfinv(x):
    a = tl.abs(x)
    w = -tl.log((1.0 - a) * (1.0 + a))
    p_central = _polevl(w - 2.5, _ERFINV_CENTRAL, 9)
    p_tail = _polevl(_sqrt(w) - 3.0, _ERFINV_TAIL, 9)
    r = tl.where(w < 5.0, p_central, p_tail) * x
    if x.dtype == tl.float64:
        # Giles is a float32 approximation (~1e-7); two Newton steps on erf
        # bring it to float64 precision, as ATen calc_erfinv does.
        for _ in tl.static_range(2):
            r = r - (tl.math.erf(r) - x) / (_TWO_OVER_SQRT_PI * tl.exp(-r * r))
    r = tl.where(a == 1.0, tl.where(x > 0, _INF, -_INF), r)
    return tl.where(a > 1.0, _NAN, r)


@triton.jit
def digamma(x):
    neg = x < 0
    xt = trunc(x)
    # pi / tan(pi x) from the fractional part only; fold it into [-1/2, 1/2]
    # and use cot(pi r) = tan(pi (1/2 - r)) past 1/4 so that no rounded
    # multiple of pi is ever taken near a pole or zero of tan.
    r = x - xt
    r = tl.where(r < -0.5, r + 1.0, r)
    ar = tl.abs(r)
    flip = ar > 0.25
    s = tl.where(flip, 0.5 - ar, ar) * _PI
    sn = tl.sin(s)
    cs = tl.cos(s)
    cot = tl.where(flip, sn / cs, cs / sn)
    cot = tl.where(r < 0, -cot, cot)

    # Reflection psi(x) = psi(1 - x) - pi cot(pi x) for x < 0.
    z = tl.where(neg, 1.0 - x, x)
    acc = tl.zeros_like(z)
    # Recurrence psi(z) = psi(z + 1) - 1/z until z >= 10 (10 steps always do).
    for _ in tl.static_range(10):
        below = z < 10.0
        acc = tl.where(below, acc - 1.0 / z, acc)
        z = tl.where(below, z + 1.0, z)
    iz2 = 1.0 / (z * z)
    series = iz2 * _polevl(iz2, _DIGAMMA_A, 7)
    res = acc + tl.log(z) - 0.5 / z - series
    res = tl.where(z == 10.0, acc + _PSI_10, res)
    res = tl.where(neg, res - _PI * cot, res)
    res = tl.where(neg & (x == xt), _NAN, res)
    # C: digamma(+-0) = -+inf.
    return tl.where(x == 0, tl.where(_signbit(x), _INF, -_INF), res)


@triton.jit
def i0e(x):
    a = tl.abs(x)
    lo = _chbevl(a * 0.5 - 2.0, _I0E_A, 30)
    hi = _chbevl(32.0 / a - 2.0, _I0E_B, 25) / _sqrt(a)
    return tl.where(a <= 8.0, lo, hi)


@triton.jit
def i0(x):
    a = tl.abs(x)
    e = tl.exp(a)
    lo = e * _chbevl(a * 0.5 - 2.0, _I0E_A, 30)
    # Same operation order as ATen: i0(inf) = inf / inf = NaN, like torch.
    hi = e * _chbevl(32.0 / a - 2.0, _I0E_B, 25) / _sqrt(a)
    return tl.where(a <= 8.0, lo, hi)


@triton.jit
def i1(x):
    a = tl.abs(x)
    e = tl.exp(a)
    lo = e * a * _chbevl(a * 0.5 - 2.0, _I1E_A, 29)
    hi = e * _chbevl(32.0 / a - 2.0, _I1E_B, 25) / _sqrt(a)
    r = tl.where(a <= 8.0, lo, hi)
    # Sign from x < 0 (not the sign bit), so i1(-0) = +0 as in torch.
    return tl.where(x < 0, -r, r)


@triton.jit
def sinc(x):
    # pi * x rounded in the compute dtype, as torch does: f32 sinc(1) = -2.78e-8.
    y = x * _PI
    r = tl.sin(y) / y
    return tl.where(x == 0, 1.0, r)
