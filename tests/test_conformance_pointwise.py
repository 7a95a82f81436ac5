"""Pointwise ops against PyTorch where dtypes meet: out= of another dtype, operands of several
dtypes, Scalar parameters out of range, signed zeros, and which error PyTorch raises first.
Every expectation is PyTorch's own answer on the CPU (or its CUDA kernel's, where said)."""
import struct

import pytest
import torch

import flaggems_exp
import ptx_census
from flaggems_exp import REGISTRY, testing
from flaggems_exp.families import PointwiseOp
from flaggems_exp.ops.activations import _cuda_hardtanh
from flaggems_exp.runtime import special
from flaggems_exp.runtime.device import DEVICE
from flaggems_exp.runtime.dtypes import every_16_bit_value
from flaggems_exp.testing import Call, check_call

DEV = flaggems_exp.device
F16 = torch.float16


def _same_as_torch(name, args, kwargs=None, reference=None, exact=True):
    """``name`` on our device and PyTorch's aten op on the CPU, on copies of the same inputs:
    the same error, or the same result and written tensors (bitwise, unless not ``exact``)."""
    kwargs = kwargs or {}
    reference = reference or getattr(torch.ops.aten, name)
    theirs_call = Call(tuple(args), dict(kwargs)).on("cpu")
    ours_call = Call(tuple(args), dict(kwargs)).on(DEV)
    theirs = testing.run(reference, theirs_call)
    ours = testing.run(REGISTRY[name], ours_call)
    if isinstance(theirs, Exception):
        testing.assert_same_error(ours, theirs)
    else:
        assert not isinstance(ours, Exception), f"raised {type(ours).__name__}: {ours}"
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    pairs = [(ours, theirs), *zip(ours_call.args, theirs_call.args)]
    for key, mine in ours_call.kwargs.items():
        its = theirs_call.kwargs[key]
        if isinstance(theirs, Exception) and isinstance(mine, torch.Tensor):
            assert mine.shape == its.shape  # an out= resized before the error: contents unset
        else:
            pairs.append((mine, its))
    for mine, its in pairs:
        if isinstance(mine, torch.Tensor) and isinstance(its, torch.Tensor):
            if exact:
                assert torch.equal(testing.bits(mine), testing.bits(its)), f"{mine} != {its}"
            else:
                testing.assert_close(mine, its)
    return ours


# ---- out= of another dtype: the result is rounded to the op's own dtype first --------------

@pytest.mark.parametrize("name, args", [
    ("exp2", [torch.tensor([16.5, 2.0], dtype=F16)]),
    ("i0", [torch.tensor([12.0, 1.5], dtype=F16)]),
    ("special_i1", [torch.tensor([12.0, -1.5], dtype=F16)]),
    ("xlogy", [torch.tensor([30000.0, 3.0], dtype=F16), torch.tensor([16.0, 2.0], dtype=F16)]),
    ("hypot", [torch.tensor([60000.0, 3.0], dtype=F16), torch.tensor([60000.0, 4.0], dtype=F16)]),
    ("addcdiv", [torch.tensor([60000.0, 1.0], dtype=F16), torch.tensor([60000.0, 1.0], dtype=F16),
                 torch.tensor([1.0, 3.0], dtype=F16)]),
])
@pytest.mark.parametrize("out_dtype", [torch.float32, torch.float64])
def test_out_of_a_wider_dtype_gets_the_result_rounded_first(name, args, out_dtype):
    """float16 math overflows to inf (and rounds to float16) even into a float32 out."""
    _same_as_torch(name, args, {"out": torch.empty(2, dtype=out_dtype)})


@pytest.mark.parametrize("op", [op for op in dict.fromkeys(REGISTRY.values())
                                if op.family in ("PointwiseOp", "ComparisonOp") and op.has_out],
                         ids=lambda op: op.name)
def test_out_of_a_wider_dtype_matches_torch(op):
    """Every pointwise op, float16 inputs into a float64 out: PyTorch's error, or its values,
    which are float16 values (the op's own rounding) wherever PyTorch's are."""
    for call in testing.sample_calls(op, F16, generator=torch.Generator().manual_seed(3)):
        call = Call(call.args, {**call.kwargs, "out": torch.empty(0, dtype=torch.float64)})
        theirs = testing.run(op.ref, call.on("cpu"))
        ours = testing.run(op, call.on(DEV))
        if isinstance(theirs, Exception):
            testing.assert_same_error(ours, theirs)
            continue
        assert not isinstance(ours, Exception), f"raised {type(ours).__name__}: {ours}"
        ours = ours.cpu()
        torch.testing.assert_close(ours, theirs, rtol=1e-3, atol=1e-3, equal_nan=True)
        representable = theirs.to(F16).double().eq(theirs)
        torch.testing.assert_close(ours.to(F16).double()[representable], ours[representable],
                                   rtol=0, atol=0, equal_nan=True)


# ---- operands of several dtypes: converted to the common dtype before the math -------------

@pytest.mark.parametrize("name", ["eq_", "ne_", "lt_", "le_", "gt_", "ge_", "greater_"])
def test_comparison_with_a_0dim_tensor_of_a_wider_dtype(name):
    """A 0-dim float32/float64 tensor does not widen a float16 comparison: it is rounded to
    float16 first (1.0001 and 1.0 compare equal in float16)."""
    x = torch.tensor([1.0, 1.0009765625, -3.66015625, 0.0], dtype=F16)
    for other in (torch.tensor(1.0001), torch.tensor(-3.6605, dtype=torch.float64),
                  torch.tensor(1.0004, dtype=torch.float64)):
        _same_as_torch(name, [x.clone(), other])


@pytest.mark.parametrize("name", ["eq_", "ne_", "lt_", "ge_"])
def test_comparison_converts_integers_to_the_float_dtype(name):
    """float16 self against an int32 tensor: the integers become float16 (2049 -> 2048)."""
    x = torch.tensor([2048.0, 2050.0, 4096.0, -2048.0], dtype=F16)
    other = torch.tensor([2049, 2049, 4097, -2049], dtype=torch.int32)
    _same_as_torch(name, [x.clone(), other])
    _same_as_torch(name, [x.clone(), other[0].clone()])


def _cuda_mul(x, y):
    """PyTorch's CUDA mul: a 0-dim tensor on the device is loaded as the common dtype like any
    operand (its CPU kernel multiplies by the original value of a tensor of one element)."""
    return torch.mul(x, y.to(torch.result_type(x, y)))


@pytest.mark.parametrize("name, reference", [
    ("mul", _cuda_mul), ("hypot", None), ("fmin", None), ("xlogy", None), ("logaddexp", None)])
def test_arithmetic_with_a_0dim_tensor_of_a_wider_dtype(name, reference):
    """The 0-dim float64 tensor is rounded to float16 (the common dtype) before the math."""
    x = torch.tensor([1.0, 2049.0, 0.5, 3.0], dtype=F16)
    _same_as_torch(name, [x, torch.tensor(1.00048828125 + 2**-12, dtype=torch.float64)],
                   reference=reference)


# ---- Scalars PyTorch converts with its overflow check --------------------------------------

I8, NAN = torch.int8, float("nan")
SCALAR_CASES = [  # (op, self dtype, the call's other tensors, a good and a bad {parameter: value})
    ("hardtanh_", I8, 0, {"min_val": -100, "max_val": 1}, {"min_val": -200, "max_val": 1}),
    ("hardtanh", I8, 0, {"min_val": -1, "max_val": 127.5}, {"min_val": -1, "max_val": 128}),
    ("hardtanh", torch.int32, 0, {"min_val": -1.5, "max_val": 1}, {"min_val": NAN, "max_val": 1}),
    ("hardshrink", F16, 0, {"lambd": 60000.0}, {"lambd": 1e6}),
    ("leaky_relu", torch.float32, 0, {"negative_slope": 1e38}, {"negative_slope": 1e300}),
    ("softplus", F16, 0, {"beta": 2.0, "threshold": 1e30}, {"beta": 2.0, "threshold": 1e300}),
    ("addcmul_", F16, 2, {"value": 100.0}, {"value": 1e39}),
    ("addcmul", torch.float64, 2, {"value": 2 + 0j}, {"value": 1j}),
    ("addcdiv", torch.float32, 2, {"value": 0.5}, {"value": 1j}),
    ("logit", torch.float32, 0, {"eps": 1e38}, {"eps": 1e39}),
    ("logit_", torch.float32, 0, {"eps": -1e38}, {"eps": -1e39}),
    ("rrelu_with_noise_backward", torch.float32, 2,
     {"lower": 0.1, "upper": 0.2, "training": False, "self_is_result": False},
     {"lower": 1e300, "upper": 0.2, "training": False, "self_is_result": False}),
]


@pytest.mark.parametrize("name, dtype, others, good, bad", SCALAR_CASES,
                         ids=[f"{c[0]}-{list(c[4].values())[0]}" for c in SCALAR_CASES])
@pytest.mark.parametrize("size", [6, 0])
def test_scalar_out_of_range_raises_before_any_write(name, dtype, others, good, bad, size):
    """PyTorch's overflow error on the first call of a signature and on a call its plan
    replays (numbers reach the kernel per call there), with every tensor left unchanged; an
    empty result is no exception."""
    op = REGISTRY[name]
    op.plans.clear()

    def tensors():
        gen = torch.Generator().manual_seed(0)
        return [testing.random_tensor((size,), dtype, (-3, 3), gen) for _ in range(1 + others)]

    _same_as_torch(name, tensors(), bad)                # the first call of its signature
    _same_as_torch(name, tensors(), good, exact=False)  # makes a plan...
    _same_as_torch(name, tensors(), bad)                # ...which must not let it through
    _same_as_torch(name, tensors(), good, exact=False)


@pytest.mark.parametrize("dtype", [torch.uint8, I8, torch.int16, torch.int32, torch.int64])
@pytest.mark.parametrize("value", [3, 300, 2**40, 2.5, True, 1e30])
def test_addcmul_computes_integers_in_int64_as_cuda_does(dtype, value):
    """PyTorch's CUDA addcmul converts ``value`` into int64 and computes there, the sum cast to
    the tensors' type (its CPU kernel rejects int8's 300): ours does so on every device, the
    same result in place, and on the GPU the same as PyTorch's own CUDA kernel."""
    op = REGISTRY["addcmul"]
    gen = torch.Generator().manual_seed(3)
    args = [testing.random_tensor((7,), dtype, (0, 9) if dtype == torch.uint8 else (-9, 9), gen)
            for _ in range(3)]
    ours = _same_as_torch("addcmul", args, {"value": value}, reference=op.ref)
    in_place = Call(tuple(args), {"value": value}).on(DEV)
    written = testing.run(REGISTRY["addcmul_"], in_place)
    if isinstance(ours, Exception):
        testing.assert_same_error(written, ours)
    else:
        assert written is in_place.args[0] and torch.equal(written, ours)
    if DEVICE == "cuda":
        theirs = testing.run(torch.addcmul, Call(tuple(args), {"value": value}).on(DEV))
        if isinstance(theirs, Exception):
            testing.assert_same_error(ours, theirs)
        else:
            assert torch.equal(ours, theirs)


@pytest.mark.parametrize("dtype", [torch.uint8, I8, F16, torch.float32])
@pytest.mark.parametrize("lower", [0.0, -1.0, 1e300, NAN])
def test_rrelu_with_noise_backward_converts_no_slope_in_training(dtype, lower):
    """In training PyTorch computes noise * grad: the slope (lower + upper) / 2, which its eval
    branch converts with the overflow check (leaky_relu_backward's), is never converted there,
    whatever its value and the dtype."""
    gen = torch.Generator().manual_seed(12)
    grad, x, noise = (testing.random_tensor((6,), dtype, (-3, 3), gen) for _ in range(3))
    for upper in (-1.0, 0.5):
        params = {"lower": lower, "upper": upper, "training": True, "self_is_result": False}
        assert check_call(REGISTRY["rrelu_with_noise_backward"],
                          Call((grad, x, noise), params)) is not None


@pytest.mark.parametrize("lower, upper", [(NAN, 0.2), (-0.5, 0.2), (0.0, -0.0), (-1e308, -1e308)])
def test_rrelu_with_noise_backward_self_is_result_needs_a_slope_not_below_zero(lower, upper):
    """In eval with self_is_result, PyTorch requires (lower + upper) / 2 >= 0: a NaN slope fails
    it (raised before the dtype's own error, a bool one's say), -0.0 passes."""
    gen = torch.Generator().manual_seed(13)
    for dtype in (F16, torch.bool):
        grad, x, noise = (testing.random_tensor((6,), dtype, (-3, 3), gen) for _ in range(3))
        params = {"lower": lower, "upper": upper, "training": False, "self_is_result": True}
        check_call(REGISTRY["rrelu_with_noise_backward"], Call((grad, x, noise), params))


OPMATH_SCALARS = [  # (op, its Scalars as (args, kwargs) of a value)
    ("hardtanh", lambda v: ((), {"min_val": -v, "max_val": v})),
    ("hardtanh_", lambda v: ((), {"min_val": -2.0, "max_val": v})),
    ("clamp_max", lambda v: ((v,), {})), ("clamp_max_", lambda v: ((-v,), {})),
    ("logit", lambda v: ((), {"eps": v})), ("logit_", lambda v: ((v,), {}))]


@pytest.mark.parametrize("name, params", OPMATH_SCALARS, ids=[c[0] for c in OPMATH_SCALARS])
@pytest.mark.parametrize("value", [1e5, 1e30, 1e39])
def test_float16_takes_scalars_of_float32s_range(name, params, value):
    """PyTorch's CUDA kernels of these convert their Scalars with to<opmath_t>(): a float16
    self takes 1e5 and 1e30, not 1e39 (float32 overflows); their CPU kernels convert to float16
    and refuse 1e5. The reference stands for the CUDA kernel, in place too."""
    x = torch.tensor([-70000.0, -3.0, -0.0, 0.25, 0.5, 2.0, 60000.0, float("inf")]).half()
    args, kwargs = params(value)
    check_call(REGISTRY[name], Call((x, *args), kwargs))


@pytest.mark.parametrize("dtype, limit", [(torch.uint8, -1), (torch.uint8, -200), (torch.uint8, -256),
                                          (I8, 1000), (I8, -129), (torch.int32, 2**31),
                                          (torch.float32, 1e39)])
def test_clamp_max_scalar_conversion(dtype, limit):
    """A negative int limit wraps into uint8 (-1 is 255) as c10's checked conversion allows,
    on CUDA and CPU alike. (A float16 self takes a limit up to float32's range on CUDA, up to
    65504 on the CPU, so float16 is not compared here.)"""
    x = torch.tensor([0, 5, 100, 200, 255]).to(dtype)
    _same_as_torch("clamp_max_", [x, limit])
    _same_as_torch("clamp_max", [x, limit])


# ---- signed zeros: PyTorch's CUDA clamp orders -0.0 below +0.0 -----------------------------

@pytest.mark.parametrize("name", ["hardtanh", "hardtanh_"])
@pytest.mark.parametrize("dtype", [F16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("limits", [(0, 1), (0.0, 6.0), (-0.0, 1.0), (-1.0, 0.0), (-1.0, -0.0),
                                    (-0.0, -0.0), (-1, 1)])
def test_hardtanh_zeros_follow_the_cuda_kernel(name, dtype, limits):
    """hardtanh(-0.0, min_val=0) is +0.0 on CUDA (fmaxf), -0.0 on the CPU; PyTorch's CPU op
    with the CUDA kernel's ordering of zeros stands for the reference."""
    x = torch.tensor([-0.0, 0.0, -2.0, 2.0, 0.5], dtype=dtype)
    reference = _cuda_hardtanh if name == "hardtanh" else (
        lambda t, *limits: t.copy_(_cuda_hardtanh(t, *limits)))
    ours = _same_as_torch(name, [x, *limits], reference=reference)
    if repr(limits) == "(0, 1)":
        assert not torch.signbit(ours[0].cpu()), "hardtanh(-0.0, 0, 1) is +0.0 on CUDA"


@pytest.mark.parametrize("name", ["fmin", "clamp_max"])
@pytest.mark.parametrize("dtype", [F16, torch.bfloat16, torch.float32, torch.float64])
def test_minimum_of_zeros_follows_the_cuda_kernel(name, dtype):
    """fmin(+0.0, -0.0) and clamp_max(+0.0, -0.0) are -0.0 on CUDA (fminf, ::min: one FMNMX),
    +0.0 on the CPU (the first operand's); of two +0.0, +0.0. A tensor limit and a Scalar one
    (clamp_max) alike."""
    x = torch.tensor([0.0, -0.0, 0.0, -0.0, 1.0, -0.0, NAN], dtype=dtype)
    other = torch.tensor([-0.0, 0.0, 0.0, -0.0, -0.0, 2.0, -0.0], dtype=dtype)
    ours = _same_as_torch(name, [x, other], reference=REGISTRY[name].ref)
    assert torch.signbit(ours[:4].cpu()).tolist() == [True, True, False, True], ours
    if name == "clamp_max":
        for limit, signs in ((-0.0, [True] * 4), (0.0, [False, True, False, True])):
            ours = _same_as_torch(name, [x, limit], reference=REGISTRY[name].ref)
            assert torch.signbit(ours[:4].cpu()).tolist() == signs, (limit, ours)


def test_addcmul_rounds_the_product_of_the_tensors_alone():
    """addcmul as PyTorch's CUDA kernel: value == 1 gives fma(t1, t2, x); any other value
    fma(value, t1 * t2, x), t1 * t2 rounded first (x + value * t1 * t2 fused would round value *
    t1 instead). Checked on float32 elements whose exact value rounds the same through
    float64; among them some where the other rounding differs, so this can fail."""
    gen = torch.Generator().manual_seed(3)
    x, t1, t2 = (torch.randn(1 << 14, generator=gen) for _ in range(3))
    for value in (1.0, 2.5, 0.1):
        ours = REGISTRY["addcmul"](x.to(DEV), t1.to(DEV), t2.to(DEV), value=value).cpu()
        v = torch.tensor(value, dtype=torch.float32).double()
        # the product, exact in float64 (two float32 significands)
        product = v * (t1 * t2).double() if value != 1 else t1.double() * t2.double()
        wide = product + x.double()
        # where the float64 sum is exact (TwoSum's error is zero), rounding it to float32 is
        # the fused multiply-add's one rounding
        back = wide - product
        exact = ((product - (wide - back)) + (x.double() - back)) == 0
        assert int(exact.sum()) > 1000
        assert torch.equal(ours[exact], wide.float()[exact]), value
        if value != 1:
            other = (((v * t1.double()).float().double() * t2.double()) + x.double()).float()
            assert bool((other[exact] != ours[exact]).any()), value


# ---- which error comes first -----------------------------------------------------------------

C64 = torch.complex64


def _x(dtype=torch.float32, shape=(2, 3)):
    return testing.random_tensor(shape, dtype, (-2, 2), torch.Generator().manual_seed(1)) \
        if not dtype.is_complex else torch.randn(shape, dtype=dtype)


@pytest.mark.parametrize("value", [2**64, -2**63 - 1, 2**70])
@pytest.mark.parametrize("name, args, kwargs", [
    ("mul", [_x()], {}), ("mul_", [_x(torch.int32)], {}), ("hardtanh", [_x(), -1.0], {}),
    ("mul", [_x()], {"out": torch.empty(0, dtype=torch.int8)}), ("clamp_max", [_x(C64)], {}),
])
def test_an_int_beyond_64_bits_is_the_bindings_overflow_error(value, name, args, kwargs):
    """PyTorch's binding cannot hold the int as a Scalar and raises Python's OverflowError
    before any check of the op's (a bad out= or a complex self comes after it); a call whose
    plan a smaller int made raises it too (the plan's replay reads the new value)."""
    _same_as_torch(name, [*args, 3], kwargs)  # the plan of an int Scalar
    _same_as_torch(name, [*args, value], kwargs)


@pytest.mark.parametrize("name, args", [
    ("hypot_", [_x(), _x(C64)]), ("xlogy_", [_x(), _x(C64)]), ("xlogy_", [_x(F16), _x(C64, ())]),
    ("clamp_max_", [_x(), _x(C64)]), ("addcmul_", [_x(), _x(C64), _x()]),
    ("hypot_", [_x(), _x(C64, (4, 2, 3))]),   # self's shape, then the cast
    ("lt_", [_x(torch.int32), _x(C64)]),
])
def test_a_complex_result_into_a_real_self_is_a_cast_error(name, args):
    _same_as_torch(name, args)


@pytest.mark.parametrize("name, args, kwargs", [
    ("hypot", [_x(C64), _x(C64)], {}), ("xlogy", [_x(C64), _x(torch.bool)], {}),
    ("logaddexp2", [_x(torch.bool), _x(C64)], {"out": torch.empty(0)}),
    ("softshrink", [_x(C64)], {}), ("softshrink", [_x(C64)], {"out": torch.empty(0)}),
    ("lt", [_x(), _x(C64)], {}), ("ge", [_x(), 1j], {}),
    ("hardsigmoid", [_x(C64)], {"out": torch.empty(0)}),
    ("clamp_max", [_x(), _x(C64)], {}), ("clamp_max", [_x(C64), 1.0], {}),
    ("clamp_max_", [_x(), 1j], {}), ("hardtanh", [_x(C64)], {"out": torch.empty(0)}),
    ("glu", [_x(C64)], {"dim": 1}), ("prelu", [_x(), _x(C64, (3,))], {}),
    ("hardswish_backward", [_x(), _x(C64)], {"out": torch.empty(0)}),
    ("rrelu_with_noise_backward", [_x(), _x(), _x(C64)], {
        "lower": 0.1, "upper": 0.3, "training": False, "self_is_result": False}),
])
def test_complex_rejected_in_torchs_order(name, args, kwargs):
    """Complex where PyTorch's kernel has no complex case: its own checks, then out=, then
    its dtype dispatch error (or the op's own complex check, which comes first)."""
    _same_as_torch(name, args, kwargs)


@pytest.mark.parametrize("name, args, out_dtype", [
    ("softshrink", [_x(torch.int16)], torch.float64), ("softshrink", [_x(torch.bool)], F16),
    ("hardswish_backward", [_x(torch.bool), _x(torch.bool)], torch.float32),
    ("hardswish_backward", [_x(torch.int32), _x(torch.int32)], torch.float32),
])
def test_unsupported_dtype_and_out_dtype_in_torchs_order(name, args, out_dtype):
    """softshrink's lambd check dispatches on the dtype before any out= check; ops whose out=
    form computes first (hardswish_backward) raise the kernel's dtype error before the out's."""
    _same_as_torch(name, args, {"out": torch.empty(0, dtype=out_dtype)})


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool], ids=str)
def test_softshrinks_dtype_error_names_its_meta_dispatch(dtype):
    """PyTorch checks lambd in softshrink's meta function, whose dtype dispatch names no
    device ("softshrink_check", where device kernels say "abs_cuda"): the whole message is
    PyTorch's CPU one on every device (the shared checks blank kernel names out)."""
    x = torch.ones(3, dtype=dtype)
    with pytest.raises(NotImplementedError) as theirs:
        torch.ops.aten.softshrink(x, 0.5)
    with pytest.raises(NotImplementedError) as ours:
        REGISTRY["softshrink"](x.to(DEVICE), 0.5)
    assert str(ours.value) == str(theirs.value) == (
        f'"softshrink_check" not implemented for \'{"Long" if dtype == torch.int64 else "Bool"}\'')


# ---- complex Python numbers and malformed calls ----------------------------------------------

@pytest.mark.parametrize("name", ["eq", "ne", "eq_", "ne_", "not_equal_"])
@pytest.mark.parametrize("dtype", [F16, torch.float32, torch.float64, torch.int64, torch.bool])
@pytest.mark.parametrize("number", [1j, 1 + 0j, 2.0 + 0j, 1 + 1e-30j, 16777217 + 0j, -0.0 + 0j])
def test_eq_ne_with_a_complex_number(name, dtype, number):
    """PyTorch compares in complex: real parts, and the imaginary part with 0 (rounded to the
    compared dtype: 1e-30j is 0 in complex32, 16777217 rounds in complex64)."""
    x = torch.tensor([1.0, 2.0, 0.0, 16777217, 16777216, -1.0], dtype=torch.float64).to(dtype)
    _same_as_torch(name, [x, number])


@pytest.mark.parametrize("call", [
    ("xlogy", (), {}), ("xlogy", (_x(),), {}), ("addcmul", (_x(), _x()), {}),
    ("eq", (_x(),), {}), ("hardtanh", (), {}), ("hypot", (), {"other": _x()}),
], ids=lambda c: c[0] + str(len(c[1])))
def test_a_missing_operand_names_it(call):
    name, args, kwargs = call
    op = REGISTRY[name]
    missing = op.operand_names[len(args):]
    missing = [m for m in missing if m not in kwargs][0]
    with pytest.raises(TypeError, match=rf"{name}\(\) missing required argument '{missing}'"):
        op(*args, **kwargs)


@pytest.mark.parametrize("name, args, kwargs", [
    ("xlogy", [_x()], {"other": _x().abs()}), ("xlogy", [], {"self": _x(), "other": 2.0}),
    ("addcmul", [_x()], {"tensor1": _x(), "tensor2": _x(), "value": 2}),
])
def test_operands_by_keyword(name, args, kwargs):
    """Operands may be passed by their schema names, as PyTorch accepts; a second call with
    another number replays with that number."""
    _same_as_torch(name, args, kwargs, exact=False)
    kwargs = {k: (v + 1 if isinstance(v, (int, float)) else v) for k, v in kwargs.items()}
    _same_as_torch(name, args, kwargs, exact=False)


@pytest.mark.parametrize("dtype", [F16, torch.bfloat16])
@pytest.mark.parametrize("lambd", [0.49999, 0.50001, 0.4990234375 + 2**-13, 1 / 3])
def test_hardshrink_compares_with_lambd_in_the_input_dtype(dtype, lambd):
    """hardshrink's lambd is Scalar::to<scalar_t>(): 0.49999 is 0.5 in float16, so 0.5 is
    shrunk; on a replay of the plan too."""
    x = torch.tensor([0.5, -0.5, 0.4990234375, 0.333251953125, 0.3359375, -0.3330078125])
    REGISTRY["hardshrink"].plans.clear()
    for value in (lambd, lambd):  # the first call, then its plan's replay
        _same_as_torch("hardshrink", [x.to(dtype), value])


@pytest.mark.parametrize("dtype, limit, out_dtype", [
    (torch.bool, True, torch.float32), (torch.bool, 1e300, torch.float64),
    (torch.uint8, 300, torch.float32), (torch.uint8, 300, torch.uint8),
    (torch.bool, True, torch.bool)])
def test_clamp_max_checks_out_before_its_kernel(dtype, limit, out_dtype):
    """clamp_max(Scalar): out='s dtype first, then the kernel's dtype dispatch (bool), then the
    conversion of the limit."""
    _same_as_torch("clamp_max", [_x(dtype), limit], {"out": torch.empty(0, dtype=out_dtype)})


def test_divisions_compile_as_pytorch_rounds_them_and_no_more():
    """Compiled for the H200 (sm_90): a reciprocal (sigmoid's, reciprocal's) is one correctly
    rounded ``rcp.rn``, which rounds 1 / y as ``div.rn`` does; softplus at its default beta 1
    and logit without eps compile without the division by beta and without the clamp, which
    leave their values as they are; other values keep them. (At these constants softplus and
    logit look their float16 results up at L: their kernel's launch is the one making the
    table, under the same constants.)"""
    launches = {launch["case"]: launch for launch in ptx_census.compiled_launches(
        "sigmoid", "reciprocal", "softplus", "softplus_beta_2", "logit", "logit_eps")
        if launch["kernel"] == "_pointwise_kernel"}
    for case in ("sigmoid", "reciprocal"):
        assert launches[case]["reciprocals"] > 0 and launches[case]["divisions"] == 0, launches[case]
    assert launches["softplus"]["divisions"] == 0, launches["softplus"]
    assert launches["softplus_beta_2"]["divisions"] > 0, launches["softplus_beta_2"]
    assert launches["logit"]["selects"] < launches["logit_eps"]["selects"], launches
    assert launches["logit"]["divisions"] == launches["logit_eps"]["divisions"] > 0, launches


def test_relu6_compiles_for_its_fixed_limits():
    """Compiled for the H200 (sm_90): relu6's limits 0 and 6 are constants of its kernel, so
    it neither converts runtime limits from float64 nor tests them for NaN, as hardtanh, whose
    limits are the caller's, must."""
    launches = {launch["case"]: launch
                for launch in ptx_census.compiled_launches("relu6", "hardtanh")}
    assert launches["relu6"]["float64_conversions"] == 0, launches["relu6"]
    assert launches["hardtanh"]["float64_conversions"] > 0, launches["hardtanh"]
    assert launches["relu6"]["selects"] < launches["hardtanh"]["selects"], launches


def test_clamps_take_the_minimum_and_maximum_instructions():
    """Compiled for the H200 (sm_90): hardtanh and relu6 clamp with the minimum and maximum
    instructions (CUDA's fminf and fmaxf), selecting only a NaN x's bits and a NaN limit's
    result: at most two selects an element of their float16 programs (8 elements a thread),
    not the eight of a maximum and minimum by selects, which an H200 issued slower than it
    moved hardtanh's bytes."""
    for launch in ptx_census.compiled_launches("relu6", "hardtanh"):
        assert launch["selects"] <= 2 * 8, launch


def test_log1p_compiles_without_a_branch():
    """Compiled for the H200 (sm_90): float32 log1p (and logaddexp, asinh and acosh through
    it) takes CUDA's ``log1pf`` steps with its rare inputs selected, not branched to, so that
    the compiler interleaves a thread's elements; bit for bit PyTorch's on every float32
    (``test_log1p_float32_matches_pytorch_on_every_value``, a GPU test)."""
    cases = ("log1p_float32", "logaddexp", "asinh_float32", "acosh_float32")
    for launch in ptx_census.compiled_launches(*cases):
        assert launch["branches"] == 0, launch


def test_float32_erfinv_takes_its_tail_per_warp():
    """Compiled for the H200 (sm_90): float32 erfinv (float16's too, computed in float32)
    decides its tail per warp, one vote and one branch for each element of a thread, as nvcc's
    erfinvf branches per element, with no barrier (deciding per block took one in every
    program). Its bits against PyTorch's CUDA kernel: the GPU test
    ``test_unary_float32_results_are_pytorchs_cuda_bits``."""
    (launch,) = ptx_census.compiled_launches("erfinv_float32")
    elements = 1024 // (launch["num_warps"] * 32)
    assert launch["votes"] == launch["branches"] == elements, launch
    assert launch["barriers"] == 0, launch


def test_log1p_of_an_argument_not_negative_selects_less():
    """Compiled for the H200 (sm_90): logaddexp's and float32 asinh's log1p, whose arguments
    are never negative, pass +inf and NaN through and select nothing for negative ones: 4
    selects an element of their programs (8 elements a thread), where log1p's own 6 took them
    to instructions an H200 issues slower than it moves 16-bit logaddexp's bytes."""
    for launch in ptx_census.compiled_launches("logaddexp", "asinh_float32"):
        assert launch["selects"] <= 4 * 8, launch


def test_float32_bessel_functions_choose_their_series_per_warp():
    """Compiled for the H200 (sm_90): float32 i0, i0e and i1 take Cephes' series per warp on
    each lane's side (two votes and two predicated branches for each element of a thread), as
    nvcc's code of ATen's kernels branches per element, not per block; float64 keeps the
    block's choice (no vote). Their bits against PyTorch's CUDA kernels: the GPU test
    ``test_float32_bessel_functions_match_pytorch_on_warps_of_either_side``."""
    cases = ("i0_float32", "special_i0e_float32", "special_i1_float32", "i0_float64")
    launches = {launch["case"]: launch for launch in ptx_census.compiled_launches(*cases)}
    for case in cases[:3]:
        launch = launches[case]
        assert launch["votes"] > 0 and launch["votes"] == launch["branches"], launch
        assert launch["votes"] % 2 == 0, launch  # all on the lane's side, and any
    assert launches["i0_float64"]["votes"] == 0, launches["i0_float64"]


def test_written_out_float32_math_takes_the_flushing_approximations_nvcc_takes():
    """Compiled for the H200 (sm_90): float32 sinh, cosh, asinh, acosh and erfinv take their
    approximate exponential, logarithm, reciprocal root and division in the flushing forms, as
    nvcc's code in PyTorch's kernels does (``special._ex2_ftz``), and none in the non-flushing
    forms, whose subnormal fix-ups libdevice's functions pay (the launches do not flush
    otherwise)."""
    cases = [f"{name}_float32" for name in ("sinh", "cosh", "asinh", "acosh", "erfinv")]
    launches = {launch["case"]: launch for launch in ptx_census.compiled_launches(*cases)}
    for case in cases:
        launch = launches[case]
        assert launch["flushes_subnormals"] is False, launch
        assert launch["approximations_flushing"] > 0, launch
        assert launch["approximations_keeping"] == 0, launch


def test_float64_log1p_keeps_the_roundings_nvcc_keeps():
    """Compiled for the H200 (sm_90): float64 log1p, asinh, acosh and atanh run the written-out
    log1p (``special._log1p_f64``), whose six products that meet a sum are rounded on their own
    (``mul.rn``, which nothing fuses), as in nvcc's code; libdevice's, compiled by Triton,
    fuses them. asinh and acosh take the float64 approximate reciprocal root their Newton
    steps start from, asinh an approximate reciprocal besides log1p's; the constants keep
    every bit."""
    approximations = {"log1p": 1, "atanh": 1, "asinh": 3, "acosh": 2}  # per element
    # log1p's series coefficients and ln 2 in two parts, every bit of them: Triton 3.6 makes
    # a bare float literal given to tl.fma float32 (the CI's lowest-Triton job runs this test)
    constants = {"0d%016X" % struct.unpack("<Q", struct.pack("<d", value))[0]
                 for value in (*special._LOG1P_F64_SMALL.value, *special._LOG_F64_SERIES.value,
                               special._LN2.value, special._LN2_LOW.value)}
    cases = [f"{name}_float64" for name in approximations]
    launches = {launch["case"]: launch for launch in ptx_census.compiled_launches(*cases)}
    for name, count in approximations.items():
        launch = launches[f"{name}_float64"]
        elements, rest = divmod(launch["float64_approximations"], count)  # a thread's
        assert elements > 0 and rest == 0, launch
        assert launch["float64_products_rounded"] >= 6 * elements, launch
        assert constants <= set(launch["float64_constants"]), (
            name, sorted(constants - set(launch["float64_constants"])))


def test_an_op_declares_its_programs_block_and_warps():
    """Compiled for the H200 (sm_90): digamma declares 256 elements a program on 2 warps
    (``PointwiseOp.block``, ``warps``), 4 a thread, so an 8192x8192 call takes 262144
    programs; sinh keeps the default, 1024 elements on 4 warps."""
    launches = {launch["case"]: launch
                for launch in ptx_census.compiled_launches("digamma_float32", "sinh_float32")}
    digamma, sinh = launches["digamma_float32"], launches["sinh_float32"]
    assert (digamma["grid"], digamma["num_warps"], digamma["constexprs"]["BLOCK"]) == (
        [8192 * 8192 // 256], 2, 256), digamma
    assert (sinh["grid"], sinh["num_warps"], sinh["constexprs"]["BLOCK"]) == (
        [8192 * 8192 // 1024], 4, 1024), sinh


def test_subnormals_are_flushed_only_where_declared():
    """Compiled for the H200 (sm_90): asinh declares float16 (``flushes_subnormals``), so its
    float16 launch takes libdevice's flush-to-zero branches (in log1pf) and its bfloat16 one
    does not."""
    launches = {launch["case"]: launch  # the kernel's launch (a lookup's table is made by it)
                for launch in ptx_census.compiled_launches("asinh", "asinh_bfloat16")
                if launch["kernel"] == "_pointwise_kernel"}
    assert launches["asinh"]["flushes_subnormals"] is True, launches["asinh"]
    assert launches["asinh_bfloat16"]["flushes_subnormals"] is False, launches["asinh_bfloat16"]
    assert launches["asinh"]["flushing"] > launches["asinh_bfloat16"]["flushing"], launches


def _differing_bits(ours, theirs):
    """Where two contiguous float results differ in their bits (a NaN's payload aside)."""
    bits = {2: torch.int16, 4: torch.int32, 8: torch.int64}[ours.element_size()]
    return ~((ours.view(bits) == theirs.view(bits)) | (ours.isnan() & theirs.isnan()))


def _pytorchs(op):
    """PyTorch's own op of ``op``'s name (its reference where aten has none of that name)."""
    return getattr(torch.ops.aten, op.name, None) or op.ref


_UNARY_FLOAT32 = [op for op in dict.fromkeys(REGISTRY.values())
                  if isinstance(op, PointwiseOp) and op.nin == 1 and not op.scalars
                  and torch.float32 in op.dtypes]


@pytest.mark.skipif(DEVICE == "cpu", reason="PyTorch's CUDA kernels: a GPU only")
@pytest.mark.parametrize("op", _UNARY_FLOAT32, ids=lambda op: op.name)
def test_unary_float32_results_are_pytorchs_cuda_bits(op):
    """Each unary float32 op on 2**22 bit patterns over every exponent, 2**22 values in [-100,
    100], every float16 value and the edges (0, 1, 90, inf, NaN) gives PyTorch's CUDA results
    bit for bit (a NaN's payload aside). sinh, cosh, asinh, acosh and erfinv are written out
    as PyTorch's kernels compute them (``special._sinhf``, ``_coshf``, ``_asinhf``,
    ``_acoshf``, ``_erfinvf``);
    the others' math is libdevice's or our own formulas, which this compares with nvcc's code
    in PyTorch's kernels."""
    gen = torch.Generator().manual_seed(0)
    patterns = torch.randint(-2**31, 2**31, (1 << 22,), generator=gen).to(torch.int32)
    # 89.41599 is where sinh and cosh overflow, 87.33655 where their scale stops growing
    edges = [0.0, -0.0, 1.0, -1.0, 0.99999994, 1.0000001, 89.99999, 90.0, -90.0, 88.72284,
             89.41598, 89.41599, 89.416, -89.416, 87.33654, 87.33655, 87.3366,
             float("inf"), float("-inf"), NAN]
    x = torch.cat([patterns.view(torch.float32), torch.rand(1 << 22, generator=gen) * 200 - 100,
                   every_16_bit_value(F16).float(), torch.tensor(edges)]).to(DEVICE)
    differ = _differing_bits(op(x), _pytorchs(op)(x))
    assert not differ.any(), f"{int(differ.sum())} inputs differ, e.g. {x[differ][:8].tolist()}"


_UNARY_FLOAT64 = [op for op in dict.fromkeys(REGISTRY.values())
                  if isinstance(op, PointwiseOp) and op.nin == 1 and not op.scalars
                  and torch.float64 in op.dtypes and op.name != "digamma"]
# digamma's float64 reflection is our own, more accurate than PyTorch's next to the negative
# integers (tests/test_special.py compares it with mpmath)


@pytest.mark.skipif(DEVICE == "cpu", reason="PyTorch's CUDA kernels: a GPU only")
@pytest.mark.parametrize("op", _UNARY_FLOAT64, ids=lambda op: op.name)
def test_unary_float64_results_are_pytorchs_cuda_bits(op):
    """Each unary float64 op on 2**22 bit patterns over every exponent, 2**22 values in [-100,
    100], 2**20 in [-1, 1], every float16 value and the edges gives PyTorch's CUDA results bit
    for bit (a NaN's payload aside). log1p, and through it asinh, acosh and atanh, are written
    out as nvcc compiles them (``special._log1p_f64``, ``_asinh_f64``, ``_acosh_f64``):
    libdevice's log1p compiled by Triton contracts other products and sums."""
    gen = torch.Generator().manual_seed(2)
    patterns = torch.randint(-2**63, 2**63 - 1, (1 << 22,), generator=gen, dtype=torch.int64)
    edges = [0.0, -0.0, 1.0, -1.0, 1.0 + 2**-52, 1.0 - 2**-53, -0.3, 0.79, 2.0**52,
             2.0**52 + 1.0, 2.0**63, 2.0**64, 5e-324, -5e-324, 1e308,
             float("inf"), float("-inf"), NAN]
    x = torch.cat([patterns.view(torch.float64),
                   torch.rand(1 << 22, generator=gen, dtype=torch.float64) * 200 - 100,
                   torch.rand(1 << 20, generator=gen, dtype=torch.float64) * 2 - 1,
                   every_16_bit_value(F16).double(),
                   torch.tensor(edges, dtype=torch.float64)]).to(DEVICE)
    differ = _differing_bits(op(x), _pytorchs(op)(x))
    assert not differ.any(), f"{int(differ.sum())} inputs differ, e.g. {x[differ][:8].tolist()}"


_NAN_PAYLOADS = {F16: [0x7E00, 0x7E01, 0xFE00, 0x7C01],
                 torch.bfloat16: [0x7FC0, 0x7FC1, 0xFFC0, 0x7F81],
                 torch.float32: [0x7FC00000, 0x7FC00001, 0xFFC00000, 0x7F800001],
                 torch.float64: [0x7FF8000000000000, 0x7FF8000000000001, 0xFFF8000000000000,
                                 0x7FF0000000000001]}


@pytest.mark.skipif(DEVICE == "cpu", reason="PyTorch's CUDA kernels: a GPU only")
@pytest.mark.parametrize("dtype", [F16, torch.bfloat16, torch.float32, torch.float64], ids=str)
def test_clamps_keep_pytorchs_nan_bits(dtype):
    """PyTorch's clamp kernels return a NaN x as loaded (its payload and sign kept, in 16 bits
    too, where a float32 value rounded back would be the canonical NaN), fill the result with
    a NaN Scalar limit as the host converts it (clamp_out), and the minimum of .Tensor takes
    self's NaN first: bit for bit, NaNs included."""
    bits = {2: torch.int16, 4: torch.int32, 8: torch.int64}[dtype.itemsize]
    width = 8 * dtype.itemsize
    payloads = [v - (1 << width) if v >> (width - 1) else v for v in _NAN_PAYLOADS[dtype]]
    x = torch.cat([torch.tensor(payloads, dtype=bits).view(dtype),
                   torch.tensor([-0.0, 0.5, 3.0, 7.0], dtype=dtype)]).to(DEV)
    limits = torch.tensor([NAN, 1.0] * 4, dtype=dtype).to(DEV)
    calls = [("hardtanh", (x,), {}), ("hardtanh", (x, -0.5, 2.0), {}),
             ("hardtanh", (x, NAN, 2.0), {}), ("hardtanh", (x, -1.0, NAN), {}),
             ("relu6", (x,), {}), ("clamp_max", (x, 2.0), {}), ("clamp_max", (x, NAN), {}),
             ("clamp_max", (x, -NAN), {}), ("clamp_max", (x, limits), {})]
    for name, args, kwargs in calls:
        ours = REGISTRY[name](*args, **kwargs)
        theirs = getattr(torch.ops.aten, name)(*args, **kwargs)
        assert torch.equal(ours.view(bits), theirs.view(bits)), (name, args[1:], ours.view(bits),
                                                                 theirs.view(bits))


# binary ops of float results whose operands share a shape (prelu's weight is per channel)
_BINARY_FLOAT32 = [op for op in dict.fromkeys(REGISTRY.values())
                   if isinstance(op, PointwiseOp) and op.nin == 2 and not op.scalars
                   and torch.float32 in op.dtypes and op.name != "prelu"
                   and op.ref(torch.ones(1), torch.ones(1)).is_floating_point()]


@pytest.mark.skipif(DEVICE == "cpu", reason="PyTorch's CUDA kernels: a GPU only")
@pytest.mark.parametrize("op", _BINARY_FLOAT32, ids=lambda op: op.name)
def test_binary_float32_results_are_pytorchs_cuda_bits(op):
    """Each binary float32 op on 2**22 pairs of bit patterns over every exponent, 2**22 pairs
    of values in [-100, 100] and every pair of edges (zeros, ones, 8, 1e-40, the largest float,
    inf, NaN, either sign) gives PyTorch's CUDA results bit for bit (a NaN's payload aside):
    ``hypot`` is written out as PyTorch's kernel computes it (``special._hypotf``), the others'
    math is libdevice's or our own formulas."""
    gen = torch.Generator().manual_seed(1)
    edges = torch.tensor([0.0, 1.0, 8.0, 1e-40, 3.4028234663852886e38, float("inf"), NAN])
    edges = torch.cat([edges, -edges])
    pairs = torch.cartesian_prod(edges, edges)

    def operand(column):
        patterns = torch.randint(-2**31, 2**31, (1 << 22,), generator=gen).to(torch.int32)
        return torch.cat([patterns.view(torch.float32),
                          torch.rand(1 << 22, generator=gen) * 200 - 100, pairs[:, column]])

    x, y = operand(0).to(DEVICE), operand(1).to(DEVICE)
    differ = _differing_bits(op(x, y), _pytorchs(op)(x, y))
    assert not differ.any(), (f"{int(differ.sum())} pairs differ, e.g. "
                              f"{torch.stack([x[differ][:8], y[differ][:8]], 1).tolist()}")


_UNARY_HALF = [(op, dtype) for op in _UNARY_FLOAT32 for dtype in (F16, torch.bfloat16)
               if dtype in op.dtypes]


@pytest.mark.skipif(DEVICE == "cpu", reason="PyTorch's CUDA kernels: a GPU only")
@pytest.mark.parametrize("op, dtype", _UNARY_HALF, ids=[f"{o.name}-{d}" for o, d in _UNARY_HALF])
def test_unary_16_bit_results_are_pytorchs_cuda_bits(op, dtype):
    """Each unary op on every one of the 2**16 values of float16 and of bfloat16 gives PyTorch's
    CUDA results bit for bit (a NaN's payload aside)."""
    x = every_16_bit_value(dtype).to(DEVICE)
    differ = _differing_bits(op(x), _pytorchs(op)(x))
    assert not differ.any(), f"{int(differ.sum())} inputs differ, e.g. {x[differ][:8].tolist()}"


_FLUSHING = [(op, dtype) for op in dict.fromkeys(REGISTRY.values())
             if isinstance(op, PointwiseOp) for dtype in sorted(op.flushes_subnormals, key=str)]


@pytest.mark.skipif(DEVICE == "cpu", reason="compiled launches only: the interpreter has no "
                    "libdevice and no flush-to-zero branches")
@pytest.mark.parametrize("op, dtype", _FLUSHING, ids=[f"{o.name}-{d}" for o, d in _FLUSHING])
def test_flushing_subnormals_changes_no_result(op, dtype, monkeypatch):
    """Every input of a dtype an op flushes subnormals for (each of the 2**16 bit patterns of a
    16-bit float) gives PyTorch's CUDA result bit for bit. A failure says whether the inputs
    that differ differ without flushing too (then flushing is not the cause)."""
    assert op.nin == 1 and dtype.itemsize == 2
    x = every_16_bit_value(dtype).to(DEVICE)
    theirs = op.ref(x)
    flushed = _differing_bits(op(x), theirs)
    if bool(flushed.any()):
        monkeypatch.setattr(op, "flushes_subnormals", frozenset())
        op.plans.clear()  # a plan holds the flushing kernel
        kept = _differing_bits(op(x), theirs)
        op.plans.clear()
        raise AssertionError(f"{int(flushed.sum())} inputs differ flushed, {int(kept.sum())} "
                             f"without flushing; flushed: {x[flushed][:8].tolist()}")
