"""bfloat16 conversions and subnormal numbers, as PyTorch has them, in every op.

Triton's interpreter (the library's CPU mode) keeps bfloat16 values as uint16 bits; its own
conversions got float64 and integer results into bfloat16 as raw bits, read bfloat16 subnormals
as 0 and truncated float32 instead of rounding it. Here: the conversions themselves, then every
registered op with a bfloat16 ``out=``, a bfloat16 self updated in place from float64 operands,
and bfloat16 inputs holding subnormals, each compared with PyTorch on the CPU.

Subnormal float32 operands too, in every pointwise op: compiled, libdevice's flush-to-zero
branches read them as 0 (rsqrt(1e-40) inf) unless kernels are built without them; run on the
GPU, these tests check that.
"""
import pytest
import torch
import triton
import triton.language as tl

import flaggems_exp
from flaggems_exp import REGISTRY, testing
from flaggems_exp.families import InplaceOp, PointwiseOp
from flaggems_exp.runtime import triton_types
from flaggems_exp.testing import Call, assert_same_error, reference, run

OPS = list(dict.fromkeys(REGISTRY.values()))
FUNCTIONAL = [op for op in OPS if not isinstance(op, InplaceOp)]
INPLACE = [op for op in OPS if isinstance(op, InplaceOp)]
BF16 = torch.bfloat16
TINY = 2.0 ** -133  # the smallest bfloat16 subnormal (float32's smallest normal is 2**-126)


def ids(op):
    return op.name


@triton.jit
def _store_kernel(src_ptr, dst_ptr, n, BLOCK: tl.constexpr):
    """dst[i] = src[i], converted into dst's dtype as every kernel's last store converts."""
    offsets = tl.arange(0, BLOCK)
    mask = offsets < n
    value = tl.load(src_ptr + offsets, mask=mask)
    tl.store(dst_ptr + offsets, triton_types.converted(value, dst_ptr.dtype.element_ty),
             mask=mask)


def converted(src, dtype):
    """``src`` converted to ``dtype`` by a Triton store (on the kernels' device)."""
    src = src.to(flaggems_exp.device)
    dst = torch.empty(src.shape, dtype=dtype, device=src.device)
    _store_kernel[(1,)](src, dst, src.numel(), BLOCK=triton.next_power_of_2(src.numel()))
    return dst.cpu()


def same_values(ours, theirs):
    """Equal dtype and values, NaN where NaN, and the sign of every zero."""
    assert ours.dtype == theirs.dtype, (ours.dtype, theirs.dtype)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0, equal_nan=True)
    assert torch.equal(torch.signbit(ours[ours == 0]), torch.signbit(theirs[theirs == 0]))


# float32 values around bfloat16's edges: ties to even (1 + 2**-8 down, 1 + 3 * 2**-8 up), just
# above a tie, the largest bfloat16 and what rounds past it to inf, subnormals and their ties
ROUNDING = [0.0, -0.0, 1.0, 1 + 2**-8, 1 + 3 * 2**-8, 1 + 2**-8 + 2**-20, -(1 + 2**-8 + 2**-20),
            3.3895313892515355e38, 3.3961775292304e38, 3.4e38, -3.4e38, float("inf"),
            float("-inf"), float("nan"), 1e-40, -1e-40, 9.2e-41, TINY, TINY * 1.5, TINY * 0.5,
            TINY * 0.75, 1.1754942e-38, 1.17549435e-38, 2.0**-126 * (1 - 2**-8), 65504.0]


@pytest.mark.parametrize("src_dtype", [torch.float32, torch.float64], ids=str)
def test_float_to_bfloat16_rounds_to_nearest_even(src_dtype):
    """Round to nearest, ties to even; inf beyond the largest bfloat16; NaN stays NaN;
    subnormals kept. float64 goes through float32 as in PyTorch (1 + 2**-8 + 2**-30 rounds to
    the tie 1 + 2**-8, then to even)."""
    src = torch.tensor(ROUNDING + [1 + 2**-8 + 2**-30, 1e39, -1e300], dtype=src_dtype)
    same_values(converted(src, BF16), src.to(BF16))


def test_integers_to_bfloat16_round():
    """Integers reach bfloat16 rounded (through float32, as PyTorch converts them), not as the
    integer's bits."""
    values = [0, 1, -1, 3, 255, 257, -257, 2**24 + 1, 2**31 - 1, -2**31, 2**40 + 2**32 + 1,
              2**63 - 1, -2**63]
    for dtype in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool):
        info = torch.iinfo(dtype) if dtype != torch.bool else None
        kept = [v for v in values if info is None or info.min <= v <= info.max]
        src = torch.tensor(kept, dtype=torch.int64).to(dtype)
        same_values(converted(src, BF16), src.to(BF16))


@pytest.mark.parametrize("dst_dtype", [torch.float32, torch.float64, torch.float16, torch.int32],
                         ids=str)
def test_bfloat16_reads_exactly(dst_dtype):
    """Every bfloat16 (subnormals, infinities, NaN included) reads as its value."""
    every = torch.arange(0, 2**16, dtype=torch.int32).to(torch.int16).view(BF16)
    if not dst_dtype.is_floating_point:  # in the integer's range only
        every = every[every.float().abs() < 2**31 - 128]
    same_values(converted(every, dst_dtype), every.to(dst_dtype))


@triton.jit
def _rounded_as_kernel(src_ptr, dst_ptr, n, BLOCK: tl.constexpr):
    """dst[i] = src[i] (float32) rounded as a bfloat16 holds it, read on in float32."""
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    value = tl.load(src_ptr + offsets, mask=mask)
    tl.store(dst_ptr + offsets, triton_types.rounded_as(value, tl.bfloat16), mask=mask)


def test_bfloat16_rounding_in_float32_is_a_conversion():
    """A kernel's bfloat16 step read on in float32 (``rounded_as``; compiled, pairs of elements
    through one packed conversion) holds what PyTorch's conversion to bfloat16 gives, on the
    same device: the edges above and every bfloat16 with the low halves that decide a rounding
    (0, 1, a tie, either side of it, all ones), NaN payloads and subnormals among them. An odd
    count leaves the last pair half empty."""
    low = torch.tensor([0, 1, 0x7FFF, 0x8000, 0x8001, 0xFFFF], dtype=torch.int64)
    high = torch.arange(0, 2**16, dtype=torch.int64) << 16
    bits = (high[:, None] | low[None, :]).flatten()
    bits = torch.where(bits >= 2**31, bits - 2**32, bits).to(torch.int32)
    src = torch.cat([torch.tensor(ROUNDING), bits.view(torch.float32)]).to(flaggems_exp.device)
    assert src.numel() % 2 == 1
    dst = torch.empty_like(src)
    _rounded_as_kernel[(triton.cdiv(src.numel(), 1024),)](src, dst, src.numel(), BLOCK=1024)
    same_values(dst.cpu(), src.to(BF16).float().cpu())


# ---- every registered op --------------------------------------------------------------------
def _with_subnormals(t):
    """A copy of the float tensor ``t`` whose first elements are subnormal in bfloat16."""
    flat = t.flatten().clone()
    tiny = torch.tensor([9.2e-41, -1e-39, TINY, 3e-39, -TINY], dtype=t.dtype)[:flat.numel()]
    flat[:tiny.numel()] = tiny
    return t.clone().copy_(flat.view(t.shape))


def _has_out(op):
    """Whether aten has an ``out=`` overload for ``op`` (then so has ours)."""
    schemas = (getattr(getattr(torch.ops.aten, name), o)._schema for name, o in op.aten_overloads())
    return any(any(a.name == "out" for a in schema.arguments) for schema in schemas)


# out= takes the result's dtype and place: a factory's own dtype/device arguments go
_FACTORY_KWARGS = ("dtype", "device", "layout", "pin_memory")


@pytest.mark.parametrize("op", [op for op in FUNCTIONAL if _has_out(op)], ids=ids)
def test_bfloat16_out(op):
    """A float64, integer or bool result written into a bfloat16 ``out=``: PyTorch's values
    rounded as PyTorch rounds them (exactly), or PyTorch's error with out untouched."""
    gen = torch.Generator().manual_seed(11)
    for dtype in (torch.float64, torch.int64):
        for call in testing.sample_calls(op, dtype, generator=gen):
            call = Call(call.args, {k: v for k, v in call.kwargs.items()
                                    if k not in _FACTORY_KWARGS}, call.label)
            native, _ = reference(op, call)
            if isinstance(native, Exception) or not torch.can_cast(native.dtype, BF16):
                continue
            # PyTorch's op, or the op's reference where that stands for its CUDA kernel
            aten = op.ref if hasattr(op.ref, "__wrapped__") else getattr(torch.ops.aten, op.name)
            theirs = run(lambda *a, **k: aten(*a, **k, out=torch.empty(0, dtype=BF16)), call)
            if isinstance(theirs, RuntimeError) and "failed to match any schema" in str(theirs):
                continue  # an overload without an out= form (upsample's scale_factors)
            dev = testing.on_device(call)
            out = torch.full(native.shape, 7.0, dtype=BF16, device=flaggems_exp.device)
            ours = run(lambda *a, **k: op(*a, **k, out=out), dev)
            if isinstance(theirs, Exception):  # sign: "Found dtype BFloat16 but expected Double"
                assert_same_error(ours, theirs)
                assert torch.equal(out.cpu(), torch.full(native.shape, 7.0, dtype=BF16))
                continue
            assert ours is out
            same_values(out.cpu(), theirs)


@pytest.mark.parametrize("op", INPLACE, ids=ids)
def test_bfloat16_self_float64_operands(op):
    """In place on a bfloat16 self whose other operands are float64: the float64 result is
    rounded into self as PyTorch rounds it."""
    gen = torch.Generator().manual_seed(12)
    for call in testing.sample_calls(op, torch.float64, generator=gen):
        call = Call((call.args[0].to(BF16),) + call.args[1:], call.kwargs, call.label)
        testing.check_call(op, call, exact=True)


@pytest.mark.parametrize("op", OPS, ids=ids)
def test_bfloat16_subnormal_inputs(op):
    """bfloat16 inputs holding subnormals are read as their values (not as 0)."""
    gen = torch.Generator().manual_seed(13)
    for call in testing.sample_calls(op, BF16, generator=gen):
        args = tuple(_with_subnormals(a) if isinstance(a, torch.Tensor) and a.dtype == BF16
                     and a.numel() else a for a in call.args)
        testing.check_call(op, Call(args, call.kwargs, call.label))


def _takes_dtype(op):
    """Whether an overload of ``op`` has a tensor ``self`` and a result ``dtype`` argument."""
    return any(schema.arguments and schema.arguments[0].name == "self"
               and any(a.name == "dtype" for a in schema.arguments)
               for schema in (getattr(getattr(torch.ops.aten, name), overload)._schema
                              for name, overload in op.aten_overloads()))


@pytest.mark.parametrize("op", [op for op in FUNCTIONAL if _takes_dtype(op)], ids=ids)
def test_dtype_bfloat16_from_float64(op):
    """``dtype=torch.bfloat16`` on float64 input (``_safe_softmax``): bfloat16 values, within
    bfloat16's tolerance of the float64 reference (not exactly PyTorch's CPU kernel, which
    rounds intermediates to bfloat16 off the last dim where its CUDA kernel keeps float32)."""
    gen = torch.Generator().manual_seed(14)
    for call in testing.sample_calls(op, torch.float64, generator=gen):
        testing.check_call(op, Call(call.args, {**call.kwargs, "dtype": BF16}, call.label))


# ---- subnormal numbers in the math -----------------------------------------------------------
# float32 subnormals (and their neighbours): each op's math must neither read them as 0 nor
# flush a subnormal result (rsqrt(1e-40) is 1e20, log(1e-40) -92.1, sin(1e-40) 1e-40)
SUBNORMALS = (1e-40, -1e-40, 2.0**-149, -(2.0**-149), 3e-39, -1.1e-38, 2.0**-126, 0.0, -0.0,
              1.0, -0.5)
POINTWISE = [op for op in OPS if isinstance(testing.twin(op), PointwiseOp)]


@pytest.mark.parametrize("op", POINTWISE, ids=ids)
@pytest.mark.parametrize("dtype", [torch.float32, BF16], ids=str)
def test_subnormal_operands(op, dtype):
    """Every combination of subnormal operands: PyTorch's values within a relative tolerance
    and one step of the subnormal range (a larger absolute tolerance would pass a subnormal
    flushed to 0). The step covers ties at the very bottom, which a fused multiply-add
    (PyTorch's, and compiled Triton's) rounds once and the interpreter twice, and PyTorch's
    CPU log1p(2**-149), 0 where its CUDA log1pf keeps 2**-149. Where PyTorch's CPU kernel
    rounds in another order than its CUDA kernel, which ours follow (addcdiv: CPU
    ``value * t1 / t2``, CUDA ``value * (t1 / t2)``), the float64 reference decides."""
    values = torch.tensor(SUBNORMALS, dtype=torch.float32).to(dtype)
    rtol, atol = (1e-5, 2.0**-149) if dtype == torch.float32 else (testing.TOLERANCE[BF16][0], TINY)
    for call in testing.grid_calls(op, values):
        native, expected = reference(op, call)
        if isinstance(native, Exception):
            continue  # errors are test_dtypes' business
        ours = run(op, testing.on_device(call))
        assert not isinstance(ours, Exception), ours
        ours = ours.cpu()
        assert ours.dtype == native.dtype and ours.shape == native.shape
        off = ~(torch.isclose(ours, native, rtol, atol, equal_nan=True)
                | torch.isclose(ours, expected, rtol, atol, equal_nan=True))
        assert not off.any(), (f"{params}: operands {[g.reshape(-1)[off] for g in grids]} give "
                               f"{ours[off]}, PyTorch {native[off]}, float64 {expected[off]}")


@pytest.mark.skipif(flaggems_exp.device == "cpu", reason="compiled launches only")
def test_compiled_launches_keep_subnormals():
    """Compiled kernels are built with libdevice's flush-to-zero branches off, and with
    multiplies and adds contracted into fused ones as nvcc builds PyTorch's."""
    from triton.backends.nvidia.compiler import CUDAOptions

    from flaggems_exp.runtime import launch
    options = CUDAOptions(**launch.COMPILE_OPTIONS)
    assert options.enable_reflect_ftz is False and options.enable_fp_fusion is True
