"""Numerically careful special functions as ``@triton.jit`` device functions,
callable on block tensors from inside other Triton kernels. They exist because
``triton.language.extra.libdevice`` is a no-op under ``TRITON_INTERPRET=1``
(its functions return None) and the textbook ``tl.*`` formulas overflow or
cancel where the C library does not, so everything here is built from
``tl.*`` primitives and the accurate elementary functions of ``libm``. Every function takes and returns the
compute dtype (float32 or float64; ``trunc`` also passes integers through):
nothing casts its input, literals are materialised in the dtype of the tensor
they meet, and where the method has to differ by precision it branches on
``x.dtype`` at compile time.
"""

import triton
import triton.language as tl
from triton.language.extra import libdevice as _cuda

from . import bessel_ptx, libm

# Compiled (``libm.LIBDEVICE``), float32 atanh, expm1, and float64 sinh, cosh, hypot and erfinv
# are the CUDA math library's (libdevice): the functions PyTorch's
# CUDA kernels call, so results agree with PyTorch's to the bit, and faster than the portable
# versions the interpreter takes. float32 sinh, cosh, asinh, acosh and hypot are written out
# as nvcc compiles them into PyTorch's kernels (read from their SASS), without libdevice's
# branches (``_sinhf`` takes libdevice's own steps, ``_coshf``, ``_asinhf``, ``_acoshf`` and
# ``_hypotf`` others), float32 log1p in libdevice's own steps without its branch
# (``_log1p_f32``), and float32 erfinv as CUDA 13's erfinvf (``_erfinvf``). Their
# approximate exponentials, logarithms, reciprocal roots and divisions take the flushing forms
# that nvcc's take, on arguments whose values those forms do not change (``_ex2_ftz``). They
# run in the interpreter too, numpy's operations standing in for the approximate
# instructions, so the CPU suite checks their steps (exact stand-ins under Triton 3.9; 3.6's
# interpreter computes ``tl.fma`` as a product and a sum). float64 log1p, atanh, asinh and
# acosh are written out as nvcc 13 compiles them (``_log1p_f64``): Triton compiles libdevice's
# float64 log1p with other products and sums fused than nvcc does. float32 digamma, the Bessel
# functions and sinc take the steps of PyTorch's run-time compiled (jiterator) code.

INF = tl.constexpr(float("inf"))  # public, as NAN: the ops' kernels use them too
# a NaN global read by two jit functions of one call tree: Triton 3.9 refuses it (it compares
# each callee's captured globals, and NaN != NaN); read it in one of them (see digamma)
NAN = tl.constexpr(float("nan"))
_PI = tl.constexpr(3.141592653589793)
_LN2 = tl.constexpr(0.6931471805599453)
# digamma(10), the value Cephes/ATen return when the recurrence lands on 10.
_PSI_10 = tl.constexpr(2.25175258906672110764)

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
_I0E_B_PADDED = tl.constexpr((0.0,) * 5 + tuple(_I0E_B.value))  # aligned to the A series' length

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
_I1E_B_PADDED = tl.constexpr((0.0,) * 4 + tuple(_I1E_B.value))  # aligned to the A series' length

# Compiled float32: the series in PTX with a branch per warp on each lane's side, as nvcc's code
# of ATen's kernels takes (``bessel_ptx``); interpreted and in float64, ``_bessel_per_block``.
_I0_PTX = tl.constexpr(bessel_ptx.program(_I0E_A.value, _I0E_B.value, "i0"))
_I0E_PTX = tl.constexpr(bessel_ptx.program(_I0E_A.value, _I0E_B.value, "i0e"))
_I1_PTX = tl.constexpr(bessel_ptx.program(_I1E_A.value, _I1E_B.value, "i1"))

# Cephes ndtri rational approximations (as in ATen calc_ndtri): P0/Q0 for
# |p - 1/2| <= 1/2 - exp(-2), P1/Q1 and P2/Q2 in z = 1/sqrt(-2 log p) for
# sqrt(-2 log p) in [2, 8) and [8, 64).
_NDTRI_P0 = tl.constexpr((
    -5.99633501014107895267e1, 9.80010754185999661536e1,
    -5.66762857469070293439e1, 1.39312609387279679503e1,
    -1.23916583867381258016e0,
))
_NDTRI_Q0 = tl.constexpr((
    1.0, 1.95448858338141759834e0, 4.67627912898881538453e0,
    8.63602421390890590575e1, -2.25462687854119370527e2,
    2.00260212380060660359e2, -8.20372256168333339912e1,
    1.59056225126211695515e1, -1.18331621121330003142e0,
))
_NDTRI_P1 = tl.constexpr((
    4.05544892305962419923e0, 3.15251094599893866154e1,
    5.71628192246421288162e1, 4.40805073893200834700e1,
    1.46849561928858024014e1, 2.18663306850790267539e0,
    -1.40256079171354495875e-1, -3.50424626827848203418e-2,
    -8.57456785154685413611e-4,
))
_NDTRI_Q1 = tl.constexpr((
    1.0, 1.57799883256466749731e1, 4.53907635128879210584e1,
    4.13172038254672030440e1, 1.50425385692907503408e1,
    2.50464946208309415979e0, -1.42182922854787788574e-1,
    -3.80806407691578277194e-2, -9.33259480895457427372e-4,
))
_NDTRI_P2 = tl.constexpr((
    3.23774891776946035970e0, 6.91522889068984211695e0,
    3.93881025292474443415e0, 1.33303460815807542389e0,
    2.01485389549179081538e-1, 1.23716634817820021358e-2,
    3.01581553508235416007e-4, 2.65806974686737550832e-6,
    6.23974539184983293730e-9,
))
_NDTRI_Q2 = tl.constexpr((
    1.0, 6.02427039364742014255e0, 3.67983563856160859403e0,
    1.37702099489081330271e0, 2.16236993594496635890e-1,
    1.34204006088543189037e-2, 3.28014464682127739104e-4,
    2.89247864745380683936e-6, 6.79019408009981274425e-9,
))
_SQRT_PI = tl.constexpr(1.7724538509055159)
_SQRT_HALF = tl.constexpr(0.7071067811865476)
# 1 - 2 exp(-2): where ndtri((1 + y) / 2) leaves its central branch.
_ERFINV_F64_CENTRAL = tl.constexpr(0.7293294335267746)


@triton.jit
def _signbit(x):
    if x.dtype == tl.float64:
        s = x.to(tl.int64, bitcast=True) < 0
    else:
        s = x.to(tl.int32, bitcast=True) < 0
    return s


@triton.jit
def _signed_like(r, x):
    """float32 ``r`` (not negative) with ``x``'s sign bit set into it, as CUDA's float32
    functions give an odd function's result its sign."""
    sign = x.to(tl.int32, bitcast=True) & -2147483648
    return (r.to(tl.int32, bitcast=True) | sign).to(tl.float32, bitcast=True)


@triton.jit
def _sqrt(x):
    # tl.sqrt is the approximate instruction for float32 on NVIDIA GPUs.
    if x.dtype == tl.float32:
        r = tl.sqrt_rn(x)
    else:
        r = libm.sqrt(x)
    return r


@triton.jit
def _polevl(x, coeffs: tl.constexpr, n: tl.constexpr):
    # Horner, highest power first (Cephes order).
    r = tl.zeros_like(x) + coeffs[0]
    for i in tl.static_range(1, n):
        r = r * x + coeffs[i]
    return r


# nvcc 13's float64 log1p (CUDA's ``log1p``, the same steps inside its ``asinh``, ``acosh`` and
# ``atanh``): for y within about (-0.3, 0.8), the series in u = y / (y + 2), highest power
# first; otherwise log(1 + y) of mantissa m in [0.707, 1.414) and exponent e, the series in
# s = (m - 1) / (m + 1), e ln 2 in two parts.
_LOG1P_F64_SMALL = tl.constexpr((1.1592593968945531e-06, 3.941356435158717e-06,
                                 1.881270924625768e-05, 8.87736089951566e-05,
                                 0.0004340281868625582, 0.0022321428379086373,
                                 0.012500000000436613, 0.08333333333332996))
_LOG_F64_SERIES = tl.constexpr((1.0263276909458365e-06, 4.036488625710656e-06,
                                1.8784407018835667e-05, 8.877807196497797e-05,
                                0.00043402779293201976, 0.0022321428567665586,
                                0.012500000000004514, 0.08333333333333331))
_LN2_LOW = tl.constexpr(2.3190468138462996e-17)  # ln 2 less _LN2, rounded


@triton.jit
def _constant(like, value: tl.constexpr):
    """value as a tensor of like's shape and dtype. A bare float literal given to ``tl.fma`` or
    ``tl.where`` is float32 in Triton 3.6 (3.9 takes the other operands' dtype): a float64
    constant there would lose its last 29 bits."""
    return tl.full(like.shape, value, like.dtype)


@triton.jit
def _horner_fma(w, COEFFS: tl.constexpr, n: tl.constexpr):
    """The polynomial of w with COEFFS, highest power first, each step one fused multiply-add
    (as the CUDA math library evaluates its series)."""
    r = tl.fma(w, _constant(w, COEFFS[0]), _constant(w, COEFFS[1]))
    for i in tl.static_range(2, n):
        r = tl.fma(r, w, _constant(w, COEFFS[i]))
    return r


@triton.jit
def _high_word(x):
    """The upper 32 bits of a float64's, as an int32: the word CUDA's float64 functions test."""
    return (x.to(tl.int64, bitcast=True) >> 32).to(tl.int32)


@triton.jit
def _log1p_f64(y):
    """float64 log1p as PyTorch's CUDA kernels compute it (nvcc 13's ``log1p``, read from its
    PTX). Triton's libdevice ``__nv_log1p`` has these steps too, but Triton contracts every
    product and sum it can into fused multiply-adds, pairs nvcc keeps apart (y - y u, where
    y u is also negated): other last bits. Written out with each rounding nvcc's: products
    that meet a sum are ``libm.mul`` (``mul.rn``, never contracted), the fused ones ``tl.fma``.
    Both branches are computed and selected (nvcc's code branches per element)."""
    # y's high word read as a float32: nvcc's test for the series branch
    high = _high_word(y).to(tl.float32, bitcast=True)
    series_branch = (high < 1.7916666269302368) & (high > -1.6999999284744263)
    # the series: log1p(y) = y - y u + (y - y u)**3 p((y - y u)**2), u = y / (y + 2)
    product = libm.mul(y, libm.div(y, y + 2.0))
    v = y - product
    w = v * v
    small = y + tl.fma(libm.mul(w, _horner_fma(w, _LOG1P_F64_SMALL, 8)), v, libm.neg(product))
    # log(z) of z = 1 + y from its exponent and mantissa; subnormal z first scaled by 2**54
    z = y + 1.0
    tiny = _high_word(z) <= 0xFFFFF
    z = tl.where(tiny, z * 1.8014398509481984e16, z)  # exact
    bits = z.to(tl.int64, bitcast=True)
    exponent = (bits >> 52).to(tl.int32) + tl.where(tiny, -1077, -1023)
    # (nvcc keeps the sign bit, set only where the special branch below is taken)
    mantissa = (bits & 0x000FFFFFFFFFFFFF) | 0x3FF0000000000000
    upper = mantissa >= 0x3FF6A09F00000000  # mantissa above sqrt(2): halved
    mantissa = tl.where(upper, mantissa - 0x0010000000000000, mantissa)
    exponent = tl.where(upper, exponent + 1, exponent)
    m = mantissa.to(tl.float64, bitcast=True)
    inverse = _reciprocal_f64(m + 1.0)
    below = m - 1.0
    s = tl.fma(below, inverse, libm.mul(below, inverse))  # 2 (m - 1) / (m + 1)
    s2 = libm.mul(s, s)
    # the rounding error of s, divided by m + 1
    error = libm.mul(inverse, tl.fma(libm.neg(s), below, (below - s) + (below - s)))
    low = tl.fma(libm.mul(s2, _horner_fma(s2, _LOG_F64_SERIES, 8)), s, error)
    e = exponent.to(tl.float64)
    ln2 = _constant(e, _LN2)
    high_part = tl.fma(e, ln2, s)
    low = tl.fma(e, _constant(e, _LN2_LOW), low - (tl.fma(libm.neg(e), ln2, high_part) - s))
    general = high_part + low
    # z zero, negative, subnormal after scaling (none is), infinite or NaN
    high_z = _high_word(z)
    special = (high_z - 1).to(tl.uint32, bitcast=True) >= 0x7FEFFFFF
    edge = tl.where(high_z.to(tl.float32, bitcast=True) == 0.0, -INF, tl.fma(z, INF, INF))
    return tl.where(series_branch, small, tl.where(special, edge, general))


# __nv_log1pf's polynomial in m (float32 values of its PTX's constants, highest power first)
_LOG1P_F32 = tl.constexpr((-0.04534861445426941, 0.10546888411045074, -0.13229703903198242,
                           0.14491446316242218, -0.16641564667224884, 0.199888676404953,
                           -0.2500019669532776, 0.33333510160446167, -0.5))


@triton.jit
def _one_plus_toward_zero(x):
    """1 + x (float32) rounded toward zero. Interpreted: the float64 sum rounded to float32,
    stepped one ulp back where that rounded away from zero; log1p reads only its exponent,
    which the float64 sum's own rounding can move only where that sum is exact."""
    if libm.LIBDEVICE:
        u = _cuda.add_rz(x, 1.0)
    else:
        exact = x.to(tl.float64) + 1.0
        u = exact.to(tl.float32)
        away = tl.abs(u.to(tl.float64)) > tl.abs(exact)
        u = tl.where(away, (u.to(tl.int32, bitcast=True) - 1).to(tl.float32, bitcast=True), u)
    return u


@triton.jit
def _log1p_f32_steps(x):
    """float32 log1p in the steps of CUDA's ``log1pf`` (libdevice's ``__nv_log1pf``, read in
    its PTX), which PyTorch's kernels call: 1 + x rounded toward zero gives an exponent e
    relative to 3/4, x is scaled by 2**-e in its bits, a polynomial of degree 10 and e ln 2
    follow. Right for x not negative and finite; the rare inputs are the callers'."""
    u = _one_plus_toward_zero(x)
    e = (u.to(tl.int32, bitcast=True) - 0x3F400000) & -8388608  # 0xFF800000
    bits = x.to(tl.int32, bitcast=True)
    m = tl.fma((0x40800000 - e).to(tl.float32, bitcast=True), 0.25, -1.0)
    m = m + (bits - e).to(tl.float32, bitcast=True)
    scale = e.to(tl.float32) * 1.1920928955078125e-07  # e as an exponent: times 2**-23
    p = tl.fma(m, _LOG1P_F32[0], _LOG1P_F32[1])
    for i in tl.static_range(2, 9):
        p = tl.fma(p, m, _LOG1P_F32[i])
    r = tl.fma(libm.mul(m, p), m, m)
    return tl.fma(scale, 0.6931471824645996, r)  # ln 2 in float32


@triton.jit
def _log1p_f32(x):
    """float32 log1p as CUDA's ``log1pf`` (``_log1p_f32_steps``). The library branches per
    element to its rare inputs (negative bits, +inf, NaN); here they are selected, the same
    values: in Triton's code the branch fenced each of a thread's elements off from the
    others' (16-bit logaddexp at L 146.5 -> 139.9 µs)."""
    r = _log1p_f32_steps(x)
    bits = x.to(tl.int32, bitcast=True)
    # negative (-1 and below, -0 and the negative zeros' neighbours), +inf or NaN
    rare = (bits < 0) | (bits >= 0x7F800000)
    # -0 down to -1 (signed bits at most -1's): the polynomial's value (-inf at -1), -0 at -0
    inside = bits < -1082130431  # 0xBF800001
    edge = tl.where(inside, tl.where(x == 0.0, x, r), tl.fma(x, INF, INF))
    return tl.where(rare, edge, r)


@triton.jit
def log1p(x):
    if x.dtype == tl.float64:  # interpreted too, with exact stand-ins for the approximations
        r = _log1p_f64(x)
    else:
        r = _log1p_f32(x)
    return r


@triton.jit
def log1p_nonnegative(x):
    """log1p of an x that is not negative (+inf and NaN included: an exponential, |x| plus
    more), as ``log1p``: float32 without the selects of negative arguments, +inf and NaN
    returned as they are (CUDA's log1pf gives them; a NaN's payload is no result PyTorch
    fixes). Float16 logaddexp2 45.1 -> 39.8 SASS an element, which an H200 issues slower than
    it moves the bytes."""
    if x.dtype == tl.float64:
        r = _log1p_f64(x)
    else:
        r = tl.where(x < INF, _log1p_f32_steps(x), x)
    return r


@triton.jit
def expm1(x):
    if libm.LIBDEVICE:
        r = _cuda.expm1(x)
    else:
        u = libm.exp(x)
        um1 = u - 1.0
        # Kahan: (u - 1) * x / log(u) cancels the rounding error of exp(x).
        r = um1 * (x / libm.log(u))
        r = tl.where(u == 1.0, x, r)
        r = tl.where(um1 == -1.0, um1, r)
        r = tl.where(u == INF, u, r)
    return r


@triton.jit
def _flushing_approximation(x, INSTRUCTION: tl.constexpr, STAND_IN: tl.constexpr):
    """The GPU's approximate ``INSTRUCTION`` (ex2, lg2, rsqrt in float32; rsqrt, rcp in
    float64) of x in its flushing form (``.approx.ftz``): the forms nvcc's code in PyTorch's
    kernels takes where no argument or result can be subnormal. The float64 forms give the
    high word only (the low one is zero): a start for Newton steps. Interpreted, ``STAND_IN``
    (numpy's exact function), so the written-out functions' steps run on the CPU too."""
    if not libm.LIBDEVICE:
        r = STAND_IN(x)
    elif x.dtype == tl.float64:
        r = tl.inline_asm_elementwise(INSTRUCTION + ".approx.ftz.f64 $0, $1;", "=d,d", [x],
                                      dtype=tl.float64, is_pure=True, pack=1)
    else:
        r = tl.inline_asm_elementwise(INSTRUCTION + ".approx.ftz.f32 $0, $1;", "=f,f", [x],
                                      dtype=tl.float32, is_pure=True, pack=1)
    return r


@triton.jit
def _ex2_ftz(x):
    """2**x by the GPU's approximate ``ex2`` in its flushing form. nvcc's sinhf and coshf take
    it on a reduced argument (|x| less t ln 2, never below about 0), whose
    power is never subnormal, so the flushing form's value is the other's; libdevice's
    ``exp2f`` without flushing (float32 and bfloat16 launches) adds a subnormal fix-up per
    element: 3 instructions more. Interpreted: numpy's 2**x (the written-out functions run
    there too, their steps checked on the CPU)."""
    return _flushing_approximation(x, "ex2", libm.exp2)


@triton.jit
def _rsqrt_ftz(x):
    """``rsqrt.approx`` in its flushing form, as nvcc's asinhf and acoshf take
    it: their arguments (x**2 + 1, and x**2 - 1 of a float32 x, zero or above 2**-23 in
    magnitude) are never subnormal; float64 asinh and acosh take it as the start of their
    Newton steps. Interpreted: numpy's 1 / sqrt(x)."""
    return _flushing_approximation(x, "rsqrt", libm.rsqrt)


@triton.jit
def _reciprocal_f64(x):
    """1 / x for a float64 x as nvcc's asinh takes it: the flushing ``rcp.approx`` and one
    cubic Newton step (e = 1 - x r; r + r (e + e**2)), within an ulp; its argument (1 +
    sqrt(1 + a**2)) is at least 2. Interpreted: numpy's 1 / x, correctly rounded."""
    if libm.LIBDEVICE:
        r = _flushing_approximation(x, "rcp", libm.reciprocal)
        e = tl.fma(libm.neg(x), r, 1.0)
        r = tl.fma(tl.fma(e, e, e), r, r)
    else:
        r = 1.0 / x
    return r


@triton.jit
def _divide_ftz(x, y):
    """``div.approx`` in its flushing form, libdevice's ``fast_dividef`` when it
    flushes, as nvcc's sinhf, coshf and asinhf divide: asinhf's quotients are above 2**-25,
    and one of sinhf's or coshf's that would be subnormal is added to a number above 2**124,
    which it cannot change. Interpreted: numpy's x / y."""
    if libm.LIBDEVICE:
        r = tl.inline_asm_elementwise("div.approx.ftz.f32 $0, $1, $2;", "=f,f,f", [x, y],
                                      dtype=tl.float32, is_pure=True, pack=1)
    else:
        r = x / y
    return r


@triton.jit
def _quarter_exp(a):
    """e**a / 4 for a float32 a >= 0 (or NaN) as nvcc's sinhf and coshf compute it: 2**(t - 2)
    * e**(a - t ln 2), t the integer part of a / ln 2 and at most 126, so the scale stays
    finite (the product overflows where e**a / 4 does)."""
    t = trunc(a * 1.4426950216293335)
    t = tl.where(t > 126.0, 126.0, t)
    reduced = tl.fma(t, -0.6931471824645996, a)
    reduced = tl.fma(t, 1.9046542121259336e-09, reduced)
    scale = (((t + 12583037.0).to(tl.int32, bitcast=True)) << 23).to(tl.float32, bitcast=True)
    return _ex2_ftz(reduced * 1.4426950216293335) * scale


@triton.jit
def _sinhf(x):
    """CUDA's float32 ``sinhf`` as nvcc compiles it into PyTorch's kernels, step for step,
    both of its ranges computed and one selected (libdevice's ``__nv_sinhf`` takes the same
    steps, but branches on |x| < 1, which a warp of mixed inputs runs both sides of, one
    after the other, adds a test that changes no value and takes the approximations' non-
    flushing forms: PyTorch's float16 sinh is a fifth faster than it). The same operations in
    the same order: the same bits."""
    a = tl.abs(x)
    # |x| < 1 (and NaN): x + x * x^2 * p(x^2)
    x2 = x * x
    p = tl.fma(2.8169511097075883e-06, x2, 0.0001983615948120132)
    p = tl.fma(p, x2, 0.008333349600434303)
    p = tl.fma(p, x2, 0.1666666716337204)
    small = tl.fma(x2 * p, x, x)
    # else 2 (e**a / 4) - 1 / (8 (e**a / 4)); the quotient's sign folded into its dividend (an
    # exact negation; a negated result compiles to 0 - q, one instruction more). libdevice
    # then sets a >= 90 to inf, which nvcc's code leaves out: there e**a / 4 is at least
    # 2**127.8, so the sum overflows to inf by itself
    quarter = _quarter_exp(a)
    big = tl.fma(2.0, quarter, _divide_ftz(-0.125, quarter))
    return tl.where(a >= 1.0, _signed_like(big, x), small)


@triton.jit
def sinh(x):
    if x.dtype == tl.float32:  # interpreted too, with exact stand-ins for the approximations
        r = _sinhf(x)
    elif libm.LIBDEVICE:
        r = _cuda.sinh(x)
    else:
        a = tl.abs(x)
        t = expm1(a)
        small = 0.5 * (t + t / (t + 1.0))
        e = libm.exp(a)
        h = libm.exp(0.5 * a)
        # exp(a) overflows up to ln(2) before sinh does: square exp(a/2).
        big = tl.where(e == INF, (0.5 * h) * h, 0.5 * e - 0.5 / e)
        r = tl.where(a < 1.0, small, big)
        r = tl.where(_signbit(x), libm.neg(r), r)
    return r


@triton.jit
def _coshf(x):
    """float32 cosh as PyTorch's CUDA kernels compute it (read from their SASS: nvcc's
    ``coshf``, a third fewer instructions than libdevice's ``__nv_coshf``): 2 (e**|x| / 4) +
    1 / (8 (e**|x| / 4)), with no branch; infinite where e**|x| / 4 overflows."""
    quarter = _quarter_exp(tl.abs(x))
    return tl.fma(2.0, quarter, _divide_ftz(0.125, quarter))


@triton.jit
def cosh(x):
    if x.dtype == tl.float32:  # interpreted too, with exact stand-ins for the approximations
        r = _coshf(x)
    elif libm.LIBDEVICE:
        r = _cuda.cosh(x)
    else:
        a = tl.abs(x)
        e = libm.exp(a)
        h = libm.exp(0.5 * a)
        r = tl.where(e == INF, (0.5 * h) * h, 0.5 * e + 0.5 / e)
    return r


@triton.jit
def _asinhf(x):
    """float32 asinh as PyTorch's CUDA kernels compute it (read from their SASS: nvcc's
    ``asinhf``, not libdevice's ``__nv_asinhf``, which reaches the same log1p through a
    correctly rounded 1 / |x| and branches on |x| > 2**126): log1p(|x| + x**2 / (1 +
    sqrt(x**2 + 1))) with approximate reciprocal square root and reciprocal; above 2**23,
    log1p(|x|) + ln 2. No branch; log1p's argument is not negative."""
    a = tl.abs(x)
    squared = tl.fma(x, x, 1.0)
    denominator = tl.fma(squared, _rsqrt_ftz(squared), 1.0)
    big = a > 8388608.0
    r = log1p_nonnegative(tl.where(big, a, tl.fma(a, a * _divide_ftz(1.0, denominator), a)))
    r = tl.where(big, r + 0.6931471824645996, r)
    return tl.where(x != x, r, _signed_like(r, x))


@triton.jit
def _copysign_f64(r, x):
    """r's magnitude with x's sign, float64 (``copysign.f64``: NaN's sign too)."""
    magnitude = r.to(tl.int64, bitcast=True) & 0x7FFFFFFFFFFFFFFF
    sign = x.to(tl.int64, bitcast=True) & (-0x7FFFFFFFFFFFFFFF - 1)
    return (magnitude | sign).to(tl.float64, bitcast=True)


@triton.jit
def _asinh_f64(x):
    """float64 asinh as PyTorch's CUDA kernels compute it (nvcc 13's ``asinh``, read from its
    PTX and from PyTorch's SASS; Triton's bundled libdevice ``__nv_asinh`` takes other steps):
    log1p(|x| + x**2 / (1 + sqrt(x**2 + 1))), sqrt(x**2 + 1) from an approximate reciprocal
    root and one Newton step, the reciprocal from ``_reciprocal_f64``; from 2**63 on,
    log1p(|x|) + ln 2; x's sign copied onto the result (NaN's too). No branch but log1p's."""
    a = tl.abs(x)
    squared = tl.fma(x, x, 1.0)
    inverse = _rsqrt_ftz(squared)
    error = tl.fma(squared, libm.neg(inverse * inverse), 1.0)
    inverse = tl.fma(tl.fma(error, 0.375, 0.5), error * inverse, inverse)
    denominator = tl.fma(squared, inverse, 1.0)  # sqrt(x**2 + 1) + 1
    # |x|'s bits above 2**63's less one (NaN's too): nvcc compares the high word unsigned
    big = a.to(tl.int64, bitcast=True) > 0x43DFFFFFFFFFFFFF
    r = log1p(tl.where(big, a, tl.fma(a, a * _reciprocal_f64(denominator), a)))
    return _copysign_f64(tl.where(big, r + _LN2, r), x)


@triton.jit
def asinh(x):
    # interpreted too, with exact stand-ins for the approximations
    if x.dtype == tl.float32:
        r = _asinhf(x)
    else:
        r = _asinh_f64(x)
    return r


@triton.jit
def _acoshf(x):
    """float32 acosh as PyTorch's CUDA kernels compute it (read from their SASS: nvcc's
    ``acoshf``, not libdevice's ``__nv_acoshf``): log1p(x - 1 + sqrt(x**2 - 1)), the root from
    an approximate reciprocal square root and one correction; where x - 1 exceeds 2**23 (or
    is negative, or NaN: its bits compared unsigned) log1p(x - 1 - 1.0000001) + ln 2 (NaN below
    1). No branch but log1p's own rare one."""
    squared = tl.fma(x, x, -1.0)
    inverse = _rsqrt_ftz(squared)
    root = squared * inverse
    # libm.neg: -root compiles to 0 - root, one instruction nvcc's code does not take
    root = tl.fma(inverse * 0.5, tl.fma(libm.neg(root), root, squared), root)
    root = tl.where(squared != 0.0, root, 0.0)
    t = x - 1.0
    big = t.to(tl.uint32, bitcast=True) > tl.full(t.shape, 0x4B000000, tl.uint32)
    r = log1p(t + tl.where(big, -1.0000001192092896, root))
    return tl.where(big, r + 0.6931471824645996, r)


@triton.jit
def _acosh_f64(x):
    """float64 acosh as PyTorch's CUDA kernels compute it (nvcc 13's ``acosh``, read from its
    PTX; Triton's bundled libdevice ``__nv_acosh`` takes other steps): log1p(x - 1 +
    sqrt(x**2 - 1)), the root from an approximate reciprocal root and two Newton steps; where
    x - 1 reaches 2**52 (or is negative, or NaN: its bits compared unsigned) log1p(x - 1 - (1
    + 2**-52)) + ln 2 (NaN below 1). No branch but log1p's."""
    t = x - 1.0
    squared = tl.fma(x, x, -1.0)
    inverse = _rsqrt_ftz(squared)
    half_inverse = inverse * 0.5  # nvcc subtracts one from the exponent: the same value
    root = squared * inverse
    root = tl.fma(tl.fma(root, libm.neg(root), squared), half_inverse, root)
    half_inverse = tl.fma(tl.fma(inverse, libm.neg(root), 1.0), half_inverse, half_inverse)
    root = tl.fma(tl.fma(root, libm.neg(root), squared), half_inverse, root)
    root = tl.where(t == 0.0, 0.0, root)
    big = t.to(tl.uint64, bitcast=True) > tl.full(t.shape, 0x432FFFFFFFFFFFFF, tl.uint64)
    r = log1p(t + tl.where(big, _constant(t, -1.0000000000000002), root))
    return tl.where(big, r + _LN2, r)


@triton.jit
def acosh(x):
    # interpreted too, with exact stand-ins for the approximations
    if x.dtype == tl.float32:
        r = _acoshf(x)
    else:
        r = _acosh_f64(x)
    return r


@triton.jit
def atanh(x):
    if x.dtype == tl.float64:
        # nvcc 13's atanh: 0.5 log1p(2|x| / (1 - |x|)), the quotient correctly rounded, with
        # x's sign; written out for its log1p (see _log1p_f64). Interpreted too.
        a = tl.abs(x)
        r = _copysign_f64(0.5 * log1p(libm.div(a + a, 1.0 - a)), x)
    elif libm.LIBDEVICE:
        r = _cuda.atanh(x)
    else:
        a = tl.abs(x)
        t = a + a
        # Both are log1p(2a / (1 - a)); the first keeps full accuracy below 1/2.
        small = 0.5 * log1p(t + t * a / (1.0 - a))
        large = 0.5 * log1p(t / (1.0 - a))
        r = tl.where(a < 0.5, small, large)
        r = tl.where(a > 1.0, NAN, r)
        r = tl.where(_signbit(x), libm.neg(r), r)
    return r


@triton.jit
def trunc(x):
    """x rounded toward zero; integers pass through. Compiled, libdevice's: one instruction
    (``FRND.TRUNC``) where the portable select takes three."""
    r = x
    if x.dtype.is_floating():
        if libm.LIBDEVICE:
            r = _cuda.trunc(x)
        else:
            # ceil(-0.5) is -0.0 and floor keeps -0.0, infinities and NaN.
            r = tl.where(x < 0, tl.ceil(x), libm.floor(x))
    return r


@triton.jit
def _hypotf(x, y):
    """float32 hypot as PyTorch's CUDA kernels compute it (read from their SASS: nvcc's
    ``hypotf``, whose square root is correctly rounded, where libdevice's ``__nv_hypotf`` takes
    the approximate one): both magnitudes scaled by a power of two taken from the larger one's
    exponent (a multiple of 4 steps), sqrt(big**2 + small**2) of the scaled pair, scaled back;
    the larger itself where the smaller is 0, inf where the smaller is inf (the larger wins a
    NaN: magnitudes ordered by their bits)."""
    a = tl.abs(x).to(tl.int32, bitcast=True)
    b = tl.abs(y).to(tl.int32, bitcast=True)
    big_bits = tl.maximum(a, b)
    small = tl.minimum(a, b).to(tl.float32, bitcast=True)
    big = big_bits.to(tl.float32, bitcast=True)
    exponent = big_bits & 0x7E000000  # the sign bit is clear: 0xfe000000's bits that matter
    scale = (0x7E800000 - exponent).to(tl.float32, bitcast=True)
    scaled_small = small * scale
    scaled_big = big * scale
    root = tl.sqrt_rn(tl.fma(scaled_big, scaled_big, scaled_small * scaled_small))
    r = tl.where(small != 0.0, (exponent | 0x00800000).to(tl.float32, bitcast=True) * root, big)
    return tl.where(small != INF, r, INF)


@triton.jit
def hypot(x, y):
    if x.dtype == tl.float32:  # interpreted too: its steps are plain arithmetic
        r = _hypotf(x, y)
    elif libm.LIBDEVICE:
        r = _cuda.hypot(x, y)
    else:
        a = tl.abs(x)
        b = tl.abs(y)
        # A NaN lands in big or in small, so it reaches the result either way
        # (big + small keeps it when big is 0).
        a_big = a > b
        big = tl.where(a_big, a, b)
        small = tl.where(a_big, b, a)
        q = small / big
        r = big * _sqrt(1.0 + q * q)
        r = tl.where(big == 0.0, big + small, r)
        r = tl.where((a == INF) | (b == INF), INF, r)
    return r


@triton.jit
def _erfinv_f64(x):
    # erfinv(y) = ndtri((1 + y) / 2) / sqrt(2), without ever forming
    # (1 + y) / 2: the central branch needs p - 1/2 = y / 2 and the tail
    # needs 1 - p = (1 - |y|) / 2, both exact, so full accuracy reaches
    # |y| -> 1 (Newton on erf cannot: erf(x) - y is all rounding there).
    a = tl.abs(x)
    c = 0.5 * x
    c2 = c * c
    central = (c + c * (c2 * _polevl(c2, _NDTRI_P0, 5) / _polevl(c2, _NDTRI_Q0, 9))) * _SQRT_PI
    v = _sqrt(-2.0 * libm.log(0.5 * (1.0 - a)))
    iv = 1.0 / v
    x1 = tl.where(v < 8.0,
                  iv * _polevl(iv, _NDTRI_P1, 9) / _polevl(iv, _NDTRI_Q1, 9),
                  iv * _polevl(iv, _NDTRI_P2, 9) / _polevl(iv, _NDTRI_Q2, 9))
    tail = (v - libm.log(v) / v - x1) * _SQRT_HALF
    tail = tl.where(x < 0, -tail, tail)
    return tl.where(a < _ERFINV_F64_CENTRAL, central, tail)


@triton.jit
def _lg2_ftz(x):
    """log2 by the GPU's approximate ``lg2`` in its flushing form, as CUDA 13's erfinvf takes it:
    its argument, 1 - x**2 of a float32 x, is 0, negative or at least 2**-24, never subnormal.
    Interpreted: numpy's log2."""
    return _flushing_approximation(x, "lg2", libm.log2)


_NEGATIVE_BIT = tl.constexpr(1 << 11)  # above digamma's step bits 0..10


@triton.jit
def _either(a, b):
    return a | b


@triton.jit
def _in_block(mask):
    """Whether an element of the program's block holds ``mask``: the condition of a side
    taken by the whole block. PyTorch's kernels branch per element, so a warp whose elements
    agree skips the other side; here a block whose elements agree does."""
    return tl.max(tl.where(mask, 1, 0)) == 1


# CUDA 13's erfinvf: the central polynomial in w = -log2(1 - x**2), highest power first, and the
# tail's in 1 / sqrt(w)
_ERFINV_CENTRAL = tl.constexpr((
    -2.5172708362219964e-10, 9.427428615538247e-09, -1.2054752573931182e-07,
    2.1697005081477982e-07, 8.062148481258191e-06, -3.1675492209615186e-05,
    -0.0007743631140328944, 0.005546587985008955, 0.16082023084163666, 0.8862268924713135))
_ERFINV_TAIL = tl.constexpr((
    -0.5899143815040588, -0.6630042195320129, 1.5970110893249512, -0.6752155423164368,
    -0.0952247902750969, 0.835353434085846))
_ERFINV_TAIL_FROM = tl.constexpr(8.199999809265137)  # w beyond it: |x| beyond 0.9983, and 1


def _erfinv_tail_program(coefficients, threshold):
    """The PTX of one element's tail (``tl.inline_asm_elementwise``): $0 the result, $1 = w,
    $2 the central result, $3 = x. A warp with a lane beyond the threshold (a vote) computes
    the tail, q(1 / sqrt(w)) * sqrt(w) with the root as w times the flushing approximate
    reciprocal root, w itself at w = inf, x's sign set, and each such lane takes it; a warp
    without one skips it, as nvcc's code of erfinvf branches per element. Each step is the one
    ``_erfinvf`` takes interpreted (``.rn``, never contracted), so the bits are the same."""
    f32 = bessel_ptx.f32_immediate
    c = list(coefficients)
    lines = ["{", ".reg .pred p, some, infinite;", ".reg .f32 root, q, t;",
             f"setp.gt.f32 p, $1, {f32(threshold)};",  # NaN: false, the central side
             "vote.sync.any.pred some, p, 0xffffffff;", "mov.f32 $0, $2;", "@!some bra DONE;",
             "rsqrt.approx.ftz.f32 root, $1;",
             f"fma.rn.f32 q, root, {f32(c[0])}, {f32(c[1])};"]
    lines += [f"fma.rn.f32 q, q, root, {f32(coefficient)};" for coefficient in c[2:]]
    lines += ["mul.rn.f32 t, root, $1;", "mul.rn.f32 t, t, q;",
              "setp.eq.f32 infinite, $1, 0f7F800000;", "selp.f32 t, $1, t, infinite;",
              "copysign.f32 t, $3, t;", "selp.f32 $0, t, $2, p;", "DONE:", "}"]
    return "\n".join(lines)


_ERFINV_TAIL_PTX = tl.constexpr(_erfinv_tail_program(_ERFINV_TAIL.value, _ERFINV_TAIL_FROM.value))


@triton.jit
def _erfinvf(x):
    """float32 erfinv as PyTorch's CUDA kernel computes it: its jiterator code calls CUDA's
    erfinvf, here CUDA 13's, read from nvcc 13's PTX (Triton's libdevice holds an older one,
    with other polynomials). With l = log2(1 - x**2) by the approximate lg2 and w = -l:
    x * p(w), p of degree 9; where l < -8.2 the tail q(1 / sqrt(w)) * sqrt(w) (q of degree 5,
    the root as w times its approximate reciprocal root), with x's sign; inf at |x| = 1 (w is
    inf there), NaN beyond. Compiled, the tail is PTX that a warp without a tail lane skips
    (``_erfinv_tail_program``): deciding per block took a block-wide reduction and its barrier
    in every program, and float16 erfinv at L ran 16% behind eager's on an H200; interpreted,
    the block decides."""
    log2 = _lg2_ftz(tl.fma(x, libm.neg(x), 1.0))
    w = libm.neg(log2)
    p = tl.fma(_ERFINV_CENTRAL[0], w, _ERFINV_CENTRAL[1])
    for i in tl.static_range(2, 10):
        p = tl.fma(p, w, _ERFINV_CENTRAL[i])
    r = x * p
    if libm.LIBDEVICE:
        r = tl.inline_asm_elementwise(_ERFINV_TAIL_PTX, "=f,f,f,f", [w, r, x],
                                      dtype=tl.float32, is_pure=True, pack=1)
    else:
        tail = w > _ERFINV_TAIL_FROM  # NaN (|x| > 1) is not
        if _in_block(tail):
            root = _rsqrt_ftz(w)
            q = tl.fma(_ERFINV_TAIL[0], root, _ERFINV_TAIL[1])
            for i in tl.static_range(2, 6):
                q = tl.fma(q, root, _ERFINV_TAIL[i])
            far = tl.where(w == INF, w, (root * w) * q)
            r = tl.where(tail, _signed_like(tl.abs(far), x), r)
    return r


@triton.jit
def erfinv(x):
    if x.dtype == tl.float32:  # interpreted too, with exact stand-ins for the approximations
        r = _erfinvf(x)
    elif libm.LIBDEVICE:
        r = _cuda.erfinv(x)
    else:
        a = tl.abs(x)
        r = _erfinv_f64(x)
        r = tl.where(a == 1.0, tl.where(x > 0, INF, -INF), r)
        r = tl.where(a > 1.0, NAN, r)
    return r


@triton.jit
def _tan_f64(x):
    """tan of a float64 x: libdevice's (the CUDA math library's) compiled; interpreted, the
    quotient of numpy's sine and cosine (the interpreter has no tan)."""
    if libm.LIBDEVICE:
        r = _cuda.tan(x)
    else:
        r = libm.sin(x) / libm.cos(x)
    return r


@triton.jit
def _digamma_f32(x):
    """float32 digamma as PyTorch's CUDA kernel computes it (ATen's jiterator code,
    ``digamma_string``, step for step; its CPU kernel orders the sums otherwise): the
    reflection -pi / tan(pi r) of a negative x in float64, from x's fractional part r, rounded
    to float32 first; the recurrence subtracting 1 / x from it until x reaches 10; then
    log(x) - 0.5 / x - the asymptotic series + that, left to right. Every division correctly
    rounded, the series' Horner steps fused as nvcc fuses them."""
    neg = x < 0
    xt = trunc(x)
    result = tl.zeros_like(x)
    z = tl.where(neg, 1.0 - x, x)
    # PyTorch's `while (x < 10)`, per block: a loop, not ten unrolled steps (fewer registers,
    # and a block of arguments all at 10 or beyond takes none). An element below 10 takes
    # ceil(10 - z) steps: that brings every z >= 0 to 10 or beyond, float32's rounding of each
    # z + 1 included (checked for every float32 in [0, 10)); a NaN z takes none. The block's
    # count is its elements' most, so no step needs a block-wide vote and its barriers; the
    # bound is a runtime value, which keeps the loop rolled. Each element's count is a bit of
    # a mask and a negative x bit 11: one OR across the block gives the count (its highest
    # step bit) and whether the reflection is needed, one exchange between warps where a
    # minimum and a vote took two (each with its barriers)
    steps = tl.where(z < 10.0, tl.math.ceil(10.0 - z), 0.0).to(tl.int32)
    block = tl.reduce((1 << steps) | tl.where(neg, _NEGATIVE_BIT, 0), 0, _either)
    # the float64 tangent only in a block holding a negative x (PyTorch branches per element;
    # digamma's arguments are mostly positive: concentrations, counts)
    if (block & _NEGATIVE_BIT) != 0:
        fraction = (x - xt).to(tl.float64)  # exact: modf's fractional part
        # -pi as a float64 tensor: -_PI / t fails in Triton's interpreter (a constexpr on the
        # left of an operator wraps the tensor result)
        minus_pi = tl.zeros_like(fraction) - _PI
        result = tl.where(neg, (minus_pi / _tan_f64(fraction * _PI)).to(tl.float32), 0.0)
    # the highest step bit: the exponent of the mask as a float32 (exact below 2**24)
    count = ((block & (_NEGATIVE_BIT - 1)).to(tl.float32).to(tl.int32, bitcast=True) >> 23) - 127
    for _ in range(0, count):
        below = z < 10.0
        result = tl.where(below, result - libm.reciprocal(z), result)
        z = tl.where(below, z + 1.0, z)
    inverse_square = libm.reciprocal(z * z)
    series = tl.where(z < 1.0e17, libm.mul(inverse_square, _polevl(inverse_square, _DIGAMMA_A, 7)),
                      0.0)
    r = ((libm.log(z) - libm.div(0.5, z)) - series) + result
    return tl.where(z == 10.0, result + _PSI_10, r)


@triton.jit
def _digamma_f64(x):
    """float64 digamma, more accurate than PyTorch's kernels next to the negative integers:
    they take tan(pi r) of the unfolded fractional part r (off by about ulp(pi) / |tan(pi r)|
    just above one); here cot(pi r) comes from a folded argument (see the test against
    mpmath)."""
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
    sn = libm.sin(s)
    cs = libm.cos(s)
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
    res = acc + libm.log(z) - 0.5 / z - series
    res = tl.where(z == 10.0, acc + _PSI_10, res)
    return tl.where(neg, res - _PI * cot, res)


@triton.jit
def digamma(x):
    if x.dtype == tl.float32:
        r = _digamma_f32(x)
    else:
        r = _digamma_f64(x)
    # here, not in each helper: Triton 3.9 refuses a NaN-valued global (NAN) read by two
    # functions of one call tree (it compares their captured values, and NaN != NaN)
    r = tl.where((x < 0) & (x == trunc(x)), NAN, r)  # a negative integer (or -inf)
    return tl.where(x == 0, tl.where(_signbit(x), INF, -INF), r)  # C: digamma(+-0) = -+inf


@triton.jit
def _chbevl_either(x, first, A: tl.constexpr, B: tl.constexpr, b_start: tl.constexpr,
                   n: tl.constexpr):
    """``_chbevl`` of A where ``first``, else of B, in ONE recurrence (both of n coefficients):
    Bessel functions pick their series by |x| <= 8 per element, and evaluating both series
    everywhere would double the arithmetic. B is padded with b_start leading zeros, which
    leave the recurrence exactly as if it started at its first coefficient."""
    zero = tl.zeros_like(x)  # coefficients in x's dtype (a bare float literal is float32)
    b0 = tl.where(first, zero + A[0], zero + B[0])
    b1 = zero
    b2 = zero
    for i in tl.static_range(1, n):
        b2 = b1
        b1 = b0
        if i == b_start + 1:
            # B's first step: its b2 is 0, which B's own recurrence (and nvcc's) folds away,
            # x * b1 + B[i] then fused into one fma; fused here too, so both round once
            b0 = tl.where(first, x * b1 - b2 + (zero + A[i]), x * b1 + (zero + B[i]))
        else:
            b0 = x * b1 - b2 + tl.where(first, zero + A[i], zero + B[i])
    return 0.5 * (b0 - b2)


@triton.jit
def _chbevl(x, C: tl.constexpr, start: tl.constexpr, n: tl.constexpr):
    """Cephes' chbevl of the coefficients C[start:n]: ``_chbevl_either``'s recurrence for one
    series (the same operations, so the same bits; the leading zeros of a padded series, which
    leave the recurrence as it was, skipped)."""
    zero = tl.zeros_like(x)
    b0 = zero + C[start]
    b1 = zero
    b2 = zero
    for i in tl.static_range(start + 1, n):
        b2 = b1
        b1 = b0
        b0 = x * b1 - b2 + (zero + C[i])
    return 0.5 * (b0 - b2)


@triton.jit
def _bessel(a, A: tl.constexpr, B: tl.constexpr, b_start: tl.constexpr, n: tl.constexpr,
            FINISH: tl.constexpr, PTX: tl.constexpr, EXP: tl.constexpr):
    """Cephes' series of |x| = a and the op's finish (see ``_bessel_per_block``): compiled
    float32 in ``PTX`` (``bessel_ptx.program``; exp(a) its second operand where ``EXP``),
    which branches per warp as nvcc's code of ATen's kernels does; else per block."""
    if libm.LIBDEVICE and a.dtype == tl.float32:
        if EXP:
            r = tl.inline_asm_elementwise(PTX, "=f,f,f", [a, libm.exp(a)], dtype=tl.float32,
                                          is_pure=True, pack=1)
        else:
            r = tl.inline_asm_elementwise(PTX, "=f,f", [a], dtype=tl.float32, is_pure=True,
                                          pack=1)
    else:
        r = _bessel_per_block(a, A, B, b_start, n, FINISH)
    return r


@triton.jit
def _bessel_per_block(a, A: tl.constexpr, B: tl.constexpr, b_start: tl.constexpr,
                      n: tl.constexpr, FINISH: tl.constexpr):
    """Cephes' series for |x| = a, chbevl(a/2 - 2, A) up to 8, chbevl(32/a - 2, B) beyond (B:
    padded to A's length with b_start leading zeros; 32 / a correctly rounded, as PyTorch's
    kernels divide), as ATen's calc_i0e / calc_i1e evaluate them, then ``FINISH(a, series,
    SMALL)``: the op's own steps after the series, on its side of 8 (a division by sqrt(a)
    beyond). ATen branches per element, so a warp whose elements agree evaluates one series
    and one finish; here (interpreted, and float64) a block whose elements all take one side
    evaluates that side alone, and only a block holding both (or NaN) runs the two series in
    one recurrence (``_chbevl_either``) and both finishes. Compiled float32 branches per warp
    instead (``bessel_ptx``): the block's choice cost 30-40 µs at 8192x8192 against eager."""
    small = a <= 8.0
    side = tl.where(small, 1, 2)
    if tl.max(side) == 1:
        r = FINISH(a, _chbevl(a * 0.5 - 2.0, A, 0, n), True)
    elif tl.min(side) == 2:
        r = FINISH(a, _chbevl(libm.div(32.0, a) - 2.0, B, b_start, n), False)
    else:
        either = _chbevl_either(tl.where(small, a * 0.5 - 2.0, libm.div(32.0, a) - 2.0), small,
                                A, B, b_start, n)
        r = tl.where(small, FINISH(a, either, True), FINISH(a, either, False))
    return r


@triton.jit
def _i0e_finish(a, series, SMALL: tl.constexpr):
    if SMALL:
        r = series
    else:
        r = libm.div(series, _sqrt(a))
    return r


@triton.jit
def _i0_finish(a, series, SMALL: tl.constexpr):
    # ATen's order: exp(a) times the series, then divided by sqrt(a) (i0(inf) = inf / inf =
    # NaN, like torch)
    r = libm.exp(a) * series
    if not SMALL:
        r = libm.div(r, _sqrt(a))
    return r


@triton.jit
def _i1_finish(a, series, SMALL: tl.constexpr):
    # ATen's order: exp(a) * a * series, exp(a) * series / sqrt(a) beyond 8
    if SMALL:
        r = libm.exp(a) * a * series
    else:
        r = libm.div(libm.exp(a) * series, _sqrt(a))
    return r


@triton.jit
def i0e(x):
    return _bessel(tl.abs(x), _I0E_A, _I0E_B_PADDED, 5, 30, _i0e_finish, _I0E_PTX, False)


@triton.jit
def i0(x):
    return _bessel(tl.abs(x), _I0E_A, _I0E_B_PADDED, 5, 30, _i0_finish, _I0_PTX, True)


@triton.jit
def i1(x):
    r = _bessel(tl.abs(x), _I1E_A, _I1E_B_PADDED, 4, 29, _i1_finish, _I1_PTX, True)
    # Sign from x < 0 (not the sign bit), so i1(-0) = +0 as in torch; libm.neg keeps the sign
    # of a zero (i1 of a tiny negative x rounds to -0.0)
    return tl.where(x < 0, libm.neg(r), r)


@triton.jit
def sinc(x):
    # pi * x rounded in the compute dtype, as torch does: f32 sinc(1) = -2.78e-8; the quotient
    # correctly rounded, as PyTorch's kernel divides (Triton's / is div.full)
    y = x * _PI
    r = libm.div(libm.sin(y), y)
    return tl.where(x == 0, 1.0, r)
