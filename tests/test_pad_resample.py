"""PadOp and ResampleOp against PyTorch: pure data movement, so every result must equal
PyTorch's bit for bit, for every dtype PyTorch accepts, any input strides and both layouts;
every overload; errors (type and message) as data; out=; enable() routing and autograd.

PyTorch's CPU kernels differ from its CUDA ones in two places, and CUDA is the contract:
pixel (un)shuffle is compared with PyTorch's device-generic kernel (the op's ``ref``), and
output layouts with PyTorch's meta kernels, which lay outputs out as the CUDA kernels do.
"""
import warnings

import pytest
import torch

import flaggems_exp
import gather_claims
import ptx_census
from flaggems_exp import LAUNCHES, REGISTRY, testing
from flaggems_exp.families import PadOp
from flaggems_exp.ops.padding import reflect_index
from flaggems_exp.runtime import errors
from flaggems_exp.runtime.indexing import block_size
from flaggems_exp.runtime.plans import PlanCache
from flaggems_exp.testing import ALL_DTYPES, Call, assert_same_error, check_call, run

DEV = flaggems_exp.device
OPS = [op for op in dict.fromkeys(REGISTRY.values())
       if testing.twin(op).family in ("PadOp", "ResampleOp")]
A = torch.ops.aten


def ids(op):
    return op.name


def randn(*shape):
    return torch.randn(shape, generator=torch.Generator().manual_seed(sum(shape)))


@pytest.mark.parametrize("op", OPS, ids=ids)
@pytest.mark.parametrize("dtype", ALL_DTYPES + (torch.complex64,), ids=str)
def test_dtypes(op, dtype):
    """Exactly PyTorch's values where it accepts the dtype, its error where it does not;
    complex, which PyTorch pads and shuffles, raises our NotImplementedError."""
    gen = torch.Generator().manual_seed(0)
    real = torch.float32 if dtype.is_complex else dtype
    for call in testing.sample_calls(op, real, generator=gen):
        if dtype.is_complex:
            call = Call((call.args[0].to(dtype),) + call.args[1:], call.kwargs, call.label)
            native = run(op.ref, call)
            if not isinstance(native, Exception) and op.complex_accepted:
                with pytest.raises(NotImplementedError, match="complex dtypes are not supported"):
                    op(*testing.on_device(call).args)
                continue
        check_call(op, call, exact=True)


def layouts(t):
    """Views holding ``t``'s values in other memory layouts, on ``t``'s device (moving a view
    with ``.to()`` would make it contiguous)."""
    flat = t.reshape(-1)
    variants = {
        "transposed": t.transpose(0, 1).contiguous().transpose(0, 1),
        "stepped": t.new_empty(*t.shape[:-1], 2 * t.shape[-1])[..., ::2],
        "offset": torch.cat([flat[:3], flat])[3:].view(t.shape),
        "expanded": t[:1].expand(t.shape),
    }
    variants["stepped"].copy_(t)
    if t.dim() in (4, 5):
        fmt = torch.channels_last if t.dim() == 4 else torch.channels_last_3d
        variants["channels_last"] = t.contiguous(memory_format=fmt)
    return variants


@pytest.mark.parametrize("op", OPS, ids=ids)
def test_any_input_strides(op):
    """Strided inputs are read through their strides (no copies) with PyTorch's values."""
    gen = torch.Generator().manual_seed(1)
    for call in testing.sample_calls(op, torch.float32, generator=gen):
        x, rest = call.args[0], call.args[1:]
        if x.numel() == 0 or x.shape[0] < 2:
            continue
        expected = {kind: op.ref(view, *rest) for kind, view in layouts(x).items()}
        for kind, view in layouts(x.to(DEV)).items():
            assert not view.is_contiguous() or view.storage_offset(), kind
            testing.assert_close(op(view, *rest), expected[kind], exact=True)


# inputs whose channel dim (1) has the unit stride and a power-of-two size, so that a
# transposed tile's rows cover it exactly (a sequence model's x.transpose(1, 2), channels_last),
# and spatial sizes of 1 with channels_last's strides (the batch then walked with the
# channels). The tiles' columns are mapped here (padded or resampled), except pixel
# (un)shuffle's
CHANNELS_INNERMOST = [
    ("replication_pad1d", (2, 4, 7), [1, 2]),
    ("replication_pad1d", (4, 8, 1), [2, 3]),
    ("reflection_pad1d", (2, 4, 7), [1, 2]),
    ("reflection_pad1d", (4, 8, 2), [1, 1]),
    ("replication_pad2d", (2, 4, 3, 5), [1, 2, 0, 1]),
    ("replication_pad2d", (4, 8, 1, 1), [1, 2, 2, 1]),
    ("replication_pad3d", (1, 4, 2, 3, 5), [1, 1, 0, 2, 1, 0]),
    ("replication_pad3d", (4, 4, 1, 1, 1), [1, 2, 1, 2, 1, 2]),
    ("upsample_nearest1d", (2, 4, 7), [10]),
    ("upsample_nearest1d", (4, 8, 1), [4]),
    ("_upsample_nearest_exact1d", (2, 4, 7), [10]),
    ("_upsample_nearest_exact1d", (4, 8, 1), [4]),
    ("upsample_nearest3d", (1, 4, 2, 3, 4), [3, 5, 7]),
    ("upsample_nearest3d", (4, 4, 1, 1, 1), [2, 2, 4]),
    ("pixel_shuffle", (2, 16, 3, 5), 2),
    ("pixel_unshuffle", (2, 4, 6, 4), 2),
]


def test_channels_innermost_cover_every_op():
    assert {name for name, _, _ in CHANNELS_INNERMOST} == {op.name for op in OPS}


@pytest.mark.parametrize("name, shape, arg", CHANNELS_INNERMOST,
                         ids=[f"{n}-{'x'.join(map(str, s))}" for n, s, _ in CHANNELS_INNERMOST])
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32], ids=str)
def test_channels_innermost_inputs(name, shape, arg, dtype, monkeypatch):
    """PyTorch's values for an input whose unit stride runs along its channels, read by our
    kernel, whose tiles claim only what is true of it; the tiles once read such an input's
    memory as if the columns were unmapped (shifted values, then memory past the input)."""
    op = REGISTRY[name]
    launched = _gather_launches(monkeypatch, op)
    x = randn(*shape).to(dtype)
    # channels_last's strides in any rank (the channels innermost, then the spatial dims from
    # the last, the batch outermost), kept for size-1 dims, whose strides contiguous() resets
    strides, step = [1] * len(shape), shape[1]
    for d in [*range(len(shape) - 1, 1, -1), 0]:
        strides[d], step = step, step * shape[d]
    expected = op.ref(torch.empty_strided(shape, strides, dtype=dtype).copy_(x), arg)
    view = torch.empty_strided(shape, strides, dtype=dtype, device=DEV).copy_(x.to(DEV))
    assert view.stride(1) == 1 and view.stride() == tuple(strides)
    before = LAUNCHES[name]
    testing.assert_close(op(view, arg), expected, exact=True)
    assert LAUNCHES[name] == before + 1
    assert len(launched) == 1
    gather_claims.assert_true_claims(*launched[0])


@pytest.mark.parametrize("op", OPS, ids=ids)
def test_output_layout_is_pytorchs(op):
    """Output strides equal those of PyTorch's meta kernel, i.e. of its CUDA kernels: contiguous,
    except upsample_nearest3d, which keeps a channels_last_3d input's layout."""
    gen = torch.Generator().manual_seed(2)
    for call in testing.sample_calls(op, torch.float32, generator=gen):
        x, rest = call.args[0], call.args[1:]
        if x.numel() == 0:
            continue  # PyTorch's meta upsample_nearest1d fails on an empty batch
        on_cpu = layouts(x)
        for kind, view in layouts(x.to(DEV)).items():
            meta = torch.empty_strided(view.shape, view.stride(), device="meta")
            ours = op(view, *rest)
            assert ours.stride() == op.ref(meta, *rest).stride(), (kind, call.label)
            if op.name == "upsample_nearest3d":  # PyTorch's CPU kernel agrees here
                assert ours.stride() == op.ref(on_cpu[kind], *rest).stride(), kind


_NEAREST = ["upsample_nearest1d", "_upsample_nearest_exact1d"]


@pytest.mark.parametrize("name", _NEAREST)
def test_nearest_source_index_sweep(name):
    """Every (input, output) size pair up to 13 -> 40, with and without explicit scales:
    PyTorch's float32 source index, floor((j + offset) * scale) clamped."""
    op = REGISTRY[name]
    for w_in in (1, 2, 3, 5, 7, 13):
        x = torch.arange(w_in, dtype=torch.float32).view(1, 1, w_in)
        for w_out in range(1, 41):
            check_call(op, Call((x, [w_out])), exact=True)
            # PyTorch's CPU kernel copies 1x and 2x outputs whatever the scales (index j, j >> 1),
            # its CUDA kernel (ours) applies the scales: no CPU reference for those
            if w_out not in (w_in, 2 * w_in) or name != "upsample_nearest1d":
                check_call(op, Call((x, [w_out], 0.37 * w_out / w_in + 0.1)), exact=True)


@pytest.mark.skipif(DEV != "cuda", reason="PyTorch's CPU kernel reads out of bounds there")
@pytest.mark.parametrize("name", _NEAREST + ["upsample_nearest3d"])
def test_scales_whose_inverse_overflows_float32(name):
    """scales=1e-240 makes the float32 scale inf: CUDA's source index of output 0 is then
    floor(0 * inf), NaN, which its conversion to an integer makes 0; every other index clamps
    to the last. As PyTorch's CUDA kernel, bit for bit."""
    op = REGISTRY[name]
    x = torch.randn((2, 3, 5) if name != "upsample_nearest3d" else (1, 2, 3, 4, 5), device=DEV)
    sizes = [7] if name != "upsample_nearest3d" else [4, 6, 7]
    for scales in ([1e-240] * len(sizes), [1e-240, 0.5, 3e-39][:len(sizes)]):
        assert torch.equal(op(x, sizes, *scales), getattr(torch.ops.aten, name)(x, sizes, *scales))


def test_vec_scale_factors_are_the_scales():
    """.vec passes s on as ``scales``: the source index uses float32(1/s), not in/out (which
    picks other source elements for some of these s)."""
    x = torch.arange(10, dtype=torch.float32).view(1, 1, 10).to(DEV)
    differs = False
    for s in (1.45, 0.55, 2.9999, 0.3):
        for name in _NEAREST:
            ours = check_call(REGISTRY[name], Call((x.cpu(), None, [s])), exact=True)
            differs |= not torch.equal(ours, REGISTRY[name](x, [ours.shape[-1]]))
    assert differs
    x5 = torch.arange(210, dtype=torch.float32).view(1, 1, 5, 6, 7)
    check_call(REGISTRY["upsample_nearest3d"], Call((x5, None, [1.45, 0.55, 2.9999])), exact=True)
    check_call(REGISTRY["upsample_nearest3d"], Call((x5, [7, 5, 3], 1.45, None, -1.0)), exact=True)


ERRORS = [
    ("replication_pad1d", (randn(4), [1, 1])),
    ("replication_pad1d", (randn(3, 0, 4), [1, 1])),
    ("replication_pad1d", (randn(1, 3, 4, 5), [1, 1])),
    ("replication_pad1d", (randn(2, 3, 4), [1, 1, 1])),
    ("replication_pad1d", (randn(4), [1, 1, 1])),
    ("replication_pad1d", (randn(2, 3, 4), [-2, -2])),
    ("replication_pad1d", (randn(2, 3, 4), [-2, -3])),
    ("replication_pad2d", (randn(2, 3), [1, 1, 1, 1])),
    ("replication_pad2d", (randn(0, 4, 4), [1, 1, 1, 1])),
    ("replication_pad2d", (randn(1, 2, 3), [1, 1, 1])),
    ("replication_pad2d", (randn(1, 2, 3), [-3, 0, -1, 0])),  # one empty dim: empty output
    ("replication_pad2d", (randn(1, 2, 3), [-4, 0, -1, 0])),
    ("replication_pad2d", (randn(1, 2, 3), [-4, 0, -2, 0])),
    ("replication_pad2d", (randn(1, 2, 3), [-4, 0, -3, 0])),
    ("replication_pad3d", (randn(2, 2, 2), [1] * 6)),
    ("replication_pad3d", (randn(1, 2, 2, 2), [-1] * 6)),
    ("replication_pad3d", (randn(1, 2, 2, 2), [-2, -2, 0, 0, 0, 0])),
    ("replication_pad3d", (randn(1, 2, 2, 2), [-2, -2, -1, -1, -1, -2])),
    ("replication_pad3d", (randn(1, 2, 2, 2), [-3, -2, 0, 0, 0, 0])),
    ("replication_pad3d", (randn(2, 1, 2, 2, 2), [1] * 5)),
    ("reflection_pad1d", (randn(4), [1, 1])),
    ("reflection_pad1d", (randn(1, 4), [4, 0])),
    ("reflection_pad1d", (randn(2, 1, 4), [0, 4])),
    ("reflection_pad1d", (randn(2, 1, 4), [3, 3])),  # the largest pads allowed
    ("reflection_pad1d", (randn(2, 1, 4), [-5, 3])),
    ("reflection_pad1d", (randn(2, 1, 4), [-2, -2])),
    ("reflection_pad1d", (randn(2, 1, 4), [1, 1, 1])),
    ("reflection_pad1d", (randn(2, 1, 4, 3), [1, 1])),
    ("reflection_pad1d", (randn(0, 3, 4), [2, 1])),
    ("upsample_nearest1d", (randn(2, 3), [7])),
    ("upsample_nearest1d", (randn(2, 3), [7, 8])),
    ("upsample_nearest1d", (randn(2, 3, 5), [7, 8])),
    ("upsample_nearest1d", (randn(1, 0, 5), [7])),
    ("upsample_nearest1d", (randn(0, 0, 5), [7])),
    ("upsample_nearest1d", (randn(1, 3, 0), [7])),
    ("upsample_nearest1d", (randn(2, 3, 5), [0])),
    ("upsample_nearest1d", (randn(2, 3, 5), [-1])),
    ("upsample_nearest1d", (randn(2, 3, 5), [7], -2.0)),  # non-positive scales are ignored
    ("upsample_nearest1d", (randn(2, 3, 5), [3], [2.0])),
    ("upsample_nearest1d", (randn(2, 3, 5), None, None)),
    ("upsample_nearest1d", (randn(2, 3, 5), None, [2.0, 1.0])),
    ("upsample_nearest1d", (randn(2, 3, 5), [3, 4], None)),
    ("upsample_nearest1d", (randn(2, 3, 5), None, [-0.1])),
    ("upsample_nearest1d", (randn(2, 3, 5), None, [0.1])),
    ("upsample_nearest1d", (randn(2, 3), None, [2.0])),
    ("upsample_nearest1d", (randn(2, 3), [], None)),
    ("upsample_nearest1d", (randn(2, 3, 5), None, [1e30])),
    ("upsample_nearest1d", (randn(2, 3, 5), None, [float("nan")])),
    ("upsample_nearest1d", (randn(2, 3, 5), None, [float("inf")])),
    ("upsample_nearest1d", (randn(2, 3, 5).long(), [0])),  # shapes are checked first
    ("_upsample_nearest_exact1d", (randn(2, 3, 5, 5), [7])),
    ("_upsample_nearest_exact1d", (randn(2, 3, 5), None, [2.5])),
    ("_upsample_nearest_exact1d", (randn(1, 0, 5), None, [2.5])),
    ("upsample_nearest3d", (randn(3, 2, 3, 4), [3, 4, 5])),
    ("upsample_nearest3d", (randn(2, 3, 2, 3, 4), [3, 4])),
    ("upsample_nearest3d", (randn(2, 0, 2, 3, 4), [3, 4, 5])),
    ("upsample_nearest3d", (randn(0, 3, 2, 3, 4), [3, 4, 5])),
    ("upsample_nearest3d", (randn(2, 3, 2, 3, 4), [3, 0, 5])),
    ("upsample_nearest3d", (randn(1, 3, 0, 3, 4), [3, 1, 5])),
    ("upsample_nearest3d", (randn(2, 3, 2, 3, 4), None, [2.0, 1.5])),
    ("upsample_nearest3d", (randn(2, 3, 2, 3, 4), [3, 4, 5], [2.0, 1.5, 1.0])),
    ("upsample_nearest3d", (randn(2, 3, 2, 3, 4).int(), None, [2.0, 1.5, 0.5])),
    ("pixel_shuffle", (randn(4, 6), 2)),
    ("pixel_shuffle", (randn(4, 4, 6), 0)),
    ("pixel_shuffle", (randn(4, 4, 6), -1)),
    ("pixel_shuffle", (randn(4, 4, 6), 3)),
    ("pixel_shuffle", (randn(2, 0, 4, 6), 2)),
    ("pixel_shuffle", (randn(2, 4, 0, 6), 2)),
    ("pixel_unshuffle", (randn(4, 6), 2)),
    ("pixel_unshuffle", (randn(4, 4, 6), 0)),
    ("pixel_unshuffle", (randn(4, 4, 6), 3)),
    ("pixel_unshuffle", (randn(4, 4, 5), 2)),
    ("pixel_unshuffle", (randn(4, 3, 5), 2)),
    ("pixel_unshuffle", (randn(2, 2, 0, 6), 2)),  # empty: the proper shape, as CUDA gives
]


@pytest.mark.parametrize("name, args", ERRORS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(ERRORS)])
def test_edge_and_error_inputs(name, args):
    """PyTorch's exception type and message where it raises, its (possibly empty) result where
    it does not; a rejected call changes nothing."""
    check_call(REGISTRY[name], Call(args), exact=True)


def test_keyword_arguments_bind_as_in_pytorch():
    x = randn(2, 3, 5)
    cases = [("upsample_nearest1d", (x,), {"output_size": [8], "scales": 1.7}),
             ("upsample_nearest1d", (), {"input": x, "output_size": None, "scale_factors": [1.7]}),
             ("upsample_nearest3d", (randn(1, 2, 3, 4, 5), [4, 5, 6]), {"scales_h": 1.3}),
             ("replication_pad1d", (), {"self": x, "padding": (1, 2)}),
             ("pixel_unshuffle", (randn(1, 2, 4, 6),), {"downscale_factor": 2})]
    for name, args, kwargs in cases:
        check_call(REGISTRY[name], Call(args, kwargs), exact=True)
    with pytest.raises(TypeError):
        REGISTRY["upsample_nearest1d"](x, [8], bogus=1)


@pytest.mark.parametrize("op", OPS, ids=ids)
def test_out(op):
    """out=: written through its own strides and returned; resized (to PyTorch's layout) when
    its shape differs; PyTorch's errors for a wrong dtype and an overlapping out, before any
    write; an out in the input's memory gets the values of a separate out."""
    call = testing.sample_calls(op, torch.float32)[0]
    expected = op.ref(*call.args)
    dev = testing.on_device(call)
    plain = torch.empty_like(expected, device=DEV, memory_format=torch.contiguous_format)
    strided = torch.empty(expected.shape[::-1], device=DEV).permute(*reversed(range(expected.dim())))
    for out in (plain, strided, torch.empty(0, device=DEV), torch.empty(3, device=DEV)):
        strides = out.stride() if out.shape == expected.shape else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # resizing a non-empty out warns, as in PyTorch
            assert op(*dev.args, out=out) is out
        testing.assert_close(out, expected, exact=True)
        if strides is not None:
            assert out.stride() == strides  # no restride when the shape already fits
    assert out.stride() == op(*dev.args).stride()  # a resized out takes the op's layout
    theirs = run(lambda *a: getattr(A, op.name).out(*a, out=torch.zeros(expected.shape).double()),
                 call)
    bad = torch.zeros(expected.shape, dtype=torch.float64, device=DEV)
    assert_same_error(run(lambda *a: op(*a, out=bad), dev), theirs)
    # an expanded out: PyTorch's CPU replication_pad2d/3d abort the process on it (they resize
    # it), the other ops raise the internal-overlap error of every out= op, taken from one here
    theirs = run(lambda *a: A.replication_pad1d.out(*a, out=torch.zeros(2, 1).expand(2, 4)),
                 Call((randn(2, 2), [1, 1])))
    bad = torch.zeros(expected.shape[:-1] + (1,), device=DEV).expand(expected.shape)
    assert_same_error(run(lambda *a: op(*a, out=bad), dev), theirs)
    assert not bad.any()
    # out in the input's own memory (overlapping it, or the input itself, resized): PyTorch's
    # kernels do not check, and read elements they have written; ours compute apart, giving
    # what PyTorch gives with a separate out
    x = dev.args[0]
    for start in (5, 0):
        storage = torch.zeros(x.numel() + expected.numel() + 7, device=DEV)
        storage[:x.numel()] = x.reshape(-1)
        inside = storage[:x.numel()].view(x.shape)
        out = storage[start:start + expected.numel()].view(expected.shape) if start else inside
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # resizing the input itself warns, as in PyTorch
            assert op(inside, *dev.args[1:], out=out) is out
        testing.assert_close(out, expected, exact=True)


def _aten_calls(op):
    """The sample calls through PyTorch's own entry points: every overload (.vec included)."""
    return [(getattr(A, op.name), c) for c in testing.sample_calls(op, torch.float32)]


@pytest.mark.parametrize("op", OPS, ids=ids)
def test_enable_routes_every_overload(op):
    """Under use_gems() PyTorch's ops (default, .vec, .out) run our kernel, with its values."""
    for packet, call in _aten_calls(op):
        dev = testing.on_device(call)
        expected = op.ref(*call.args)
        before = LAUNCHES[op.name]
        with flaggems_exp.use_gems():
            got = packet(*dev.args)
            out = torch.empty(0, device=DEV)
            if "vec" not in call.label:  # .out exists for the default overload only
                assert packet.out(*dev.args, out=out) is out
                testing.assert_close(out, expected, exact=True)
        testing.assert_close(got, expected, exact=True)
        assert LAUNCHES[op.name] > before or not expected.numel(), call.label


def test_enable_routes_torch_nn_functional():
    x3, x4, x5 = (randn(*s).to(DEV) for s in ((2, 3, 7), (2, 8, 5, 6), (1, 2, 3, 4, 5)))
    F = torch.nn.functional
    calls = {"replication_pad1d": lambda: F.pad(x3, (2, 1), mode="replicate"),
             "reflection_pad1d": lambda: F.pad(x3, (2, 1), mode="reflect"),
             "replication_pad2d": lambda: F.pad(x4, (2, 1, 0, 3), mode="replicate"),
             "replication_pad3d": lambda: F.pad(x5, (2, 1, 0, 3, 1, 1), mode="replicate"),
             "upsample_nearest1d": lambda: F.interpolate(x3, scale_factor=2.5, mode="nearest"),
             "_upsample_nearest_exact1d": lambda: F.interpolate(x3, size=11, mode="nearest-exact"),
             "upsample_nearest3d": lambda: F.interpolate(x5, size=(4, 5, 7), mode="nearest"),
             "pixel_shuffle": lambda: F.pixel_shuffle(x4, 2),
             "pixel_unshuffle": lambda: F.pixel_unshuffle(x4, 1)}
    for name, fn in calls.items():
        expected = fn()
        before = LAUNCHES[name]
        with flaggems_exp.use_gems():
            got = fn()
        assert LAUNCHES[name] == before + 1, name
        assert torch.equal(got, expected)


@pytest.mark.parametrize("op", OPS, ids=ids)
def test_autograd_under_enable(op):
    """PyTorch's backward formulas (its *_backward ops) see our forward: same gradients; the
    forward runs our kernel (a .vec call that needs a gradient runs PyTorch's decomposition)."""
    for packet, call in _aten_calls(op):
        if call.args[0].numel() == 0:
            continue

        def grads():
            x = call.args[0].double().to(DEV).requires_grad_()
            y = packet(x, *call.args[1:])
            weight = torch.arange(y.numel(), dtype=y.dtype, device=DEV).view(y.shape)
            return torch.autograd.grad((y * weight).sum(), x)[0]

        expected = grads()
        before = LAUNCHES[op.name]
        with flaggems_exp.use_gems():
            got = grads()
        torch.testing.assert_close(got, expected, rtol=0, atol=0)
        if "vec" not in call.label:
            assert LAUNCHES[op.name] > before, call.label


class ReflectionPad2d(PadOp):
    """reflection_pad2d, which is not among the registered ops: a pad whose kernel is not
    structured (``OutDtypeCheck.DATA_POINTER``)."""
    dims = 2
    reflective = True
    index_map = staticmethod(reflect_index)
    out_dtype_check = errors.OutDtypeCheck.DATA_POINTER


def test_out_dtype_of_a_pad_whose_kernel_is_not_structured():
    """A pad declaring ``OutDtypeCheck.DATA_POINTER`` (reflection_pad2d: its kernel is not
    structured) refuses an out= of another dtype with PyTorch's message, after the input's
    dtype error, out untouched; for an empty result PyTorch's CUDA kernel returns before that
    check (its CPU kernel checks anyway): out takes the result's shape and keeps its dtype."""
    op = ReflectionPad2d()
    pad = [1, 2, 2, 1]
    for x in (randn(2, 3, 4, 5), randn(2, 3, 4, 5) > 0):
        out = torch.zeros(2, 3, 7, 8, dtype=torch.int64)
        theirs = run(lambda *a: A.reflection_pad2d(*a, out=out.clone()), Call((x, pad)))
        dev_out = out.to(DEV)
        assert_same_error(run(lambda *a: op(*a, out=dev_out), testing.on_device(Call((x, pad)))),
                          theirs)
        assert torch.equal(dev_out.cpu(), out)
    empty = randn(0, 3, 4, 5)
    out = torch.zeros(2, dtype=torch.int64, device=DEV)
    assert op(empty.to(DEV), pad, out=out) is out
    assert out.dtype == torch.int64 and out.shape == A.reflection_pad2d(empty, pad).shape


def test_a_pad_whose_kernel_is_not_structured_resizes_out_silently():
    """reflection_pad2d resizes a non-empty out= of another shape without resize_output's
    warning, and its "too small" message is its own (replication_pad2d's has one more space)."""
    op = ReflectionPad2d()
    x = randn(1, 2, 3, 3)
    expected = A.reflection_pad2d(x, [1, 1, 1, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails
        out = torch.zeros(3, device=DEV)
        assert op(x.to(DEV), [1, 1, 1, 1], out=out) is out
    assert torch.equal(out.cpu(), expected)
    crop = Call((randn(1, 2, 2, 2), [-1, -1, -1, -1]))
    assert_same_error(run(op, testing.on_device(crop)), run(A.reflection_pad2d, crop))
    assert_same_error(run(REGISTRY["replication_pad2d"], testing.on_device(crop)),
                      run(A.replication_pad2d, crop))


# ---- the gather skeleton's tiles: which one each natural case takes, and its claims ----------
def _gather_launches(monkeypatch, *ops):
    for op in ops:  # a plan's replay would not reach the launch recorder
        monkeypatch.setattr(op, "plans", PlanCache())
    return gather_claims.record_launches(monkeypatch)


@pytest.mark.parametrize("op", OPS, ids=ids)
def test_gather_tiles_claim_only_true_alignment(op, monkeypatch):
    """Every sample call of every pad and resampling op, on a row-major input and a stepped
    one, and float16 and float64 (see gather_claims)."""
    launched = _gather_launches(monkeypatch, op)
    for dtype in (torch.float16, torch.float64):
        if dtype not in testing.twin(op).dtypes:
            continue
        for call in testing.sample_calls(op, dtype, generator=torch.Generator().manual_seed(3)):
            x = call.args[0]
            stepped = torch.empty((*x.shape[:-1], 2 * x.shape[-1]), dtype=dtype)[..., ::2]
            for args in (call.args, (stepped.copy_(x), *call.args[1:])):
                check_call(op, Call(args, call.kwargs), exact=True)
    assert launched
    for launch in launched:
        gather_claims.assert_true_claims(*launch)


@pytest.mark.parametrize("name, shape, r, dense", [
    ("pixel_shuffle", (2, 12, 3, 5), 2, "OUT_DENSE"),
    ("pixel_shuffle", (2, 8, 4, 16), 2, "OUT_DENSE"),
    ("pixel_shuffle", (3, 16, 5, 7), 4, "OUT_DENSE"),
    ("pixel_unshuffle", (2, 3, 6, 10), 2, "IN_DENSE"),
    ("pixel_unshuffle", (2, 3, 8, 32), 2, "IN_DENSE"),
    ("pixel_unshuffle", (3, 2, 12, 8), 4, "IN_DENSE"),
])
def test_pixel_shuffles_move_whole_runs(name, shape, r, dense, monkeypatch):
    """pixel_shuffle interleaves r input rows into one output run, pixel_unshuffle splits one
    input run into r rows: the tile (a transposed one, read along the input's rows) is that
    whole run on the interleaved side, loaded or stored as one; PyTorch's values bit for bit."""
    op = REGISTRY[name]
    launched = _gather_launches(monkeypatch, op)
    for dtype in (torch.float16, torch.int8, torch.float64):
        x = testing.random_tensor(shape, dtype, generator=torch.Generator().manual_seed(r))
        check_call(op, Call((x, r)), exact=True)
    assert [(o["IN_UNIT"], o[dense]) for *_, o in launched] == [(1, True)] * 3


@pytest.mark.parametrize("name, shape, r, blocked, block_p", [
    # unshuffle: program dims (N*C, i, h), h's output stride the tile's columns; 6 rows of h
    # taken 2 at a time; no batch (C, i, h); one channel (i, h); r = 4, rows of 4 elements
    ("pixel_unshuffle", (2, 3, 8, 32), 2, 2, 4),
    ("pixel_unshuffle", (2, 3, 12, 16), 2, 2, 2),
    ("pixel_unshuffle", (3, 8, 16), 2, 2, 4),
    ("pixel_unshuffle", (1, 1, 8, 32), 2, 1, 4),
    ("pixel_unshuffle", (2, 2, 16, 16), 4, 2, 4),
    # shuffle: program dims (N*C, h, i), h's input stride the tile's rows
    ("pixel_shuffle", (2, 8, 4, 16), 2, 1, 4),
    ("pixel_shuffle", (2, 8, 12, 8), 2, 1, 4),
    ("pixel_shuffle", (1, 4, 2, 4), 2, 0, 2),
    ("pixel_shuffle", (2, 32, 8, 4), 4, 1, 8),
])
def test_pixel_shuffles_stack_small_tiles(name, shape, r, blocked, block_p, monkeypatch):
    """A whole tile of a few rows (pixel_unshuffle's r input columns of a row, pixel_shuffle's
    r output columns) is stacked along the program dim continuing its runs on the other side,
    as many times as a power of two dividing that dim allows; PyTorch's values bit for bit."""
    op = REGISTRY[name]
    launched = _gather_launches(monkeypatch, op)
    for dtype in (torch.float16, torch.int8, torch.float64):
        x = testing.random_tensor(shape, dtype, generator=torch.Generator().manual_seed(r))
        check_call(op, Call((x, r)), exact=True)
    assert [(o["BLOCKED"], o["BLOCK_P"]) for *_, o in launched] == [(blocked, block_p)] * 3
    for launch in launched:
        gather_claims.assert_true_claims(*launch)


def test_pixel_shuffles_compile_to_whole_vectors():
    """Compiled for sm_90 at the benchmarks' L shape (float16, 4x16x64x128x128, r = 2): tiles
    of 4096 elements (32 input or output runs of 128 one way, 2 or 16 of 2048 or 256 the
    other), 4 warps, every load and store 16 bytes, 16384 programs."""
    launches = ptx_census.compiled_launches("pixel_unshuffle", "pixel_shuffle")
    assert [(launch["case"], launch["constexprs"]["BLOCK_P"]) for launch in launches] == [
        ("pixel_unshuffle", 32), ("pixel_shuffle", 16)]
    for launch in launches:
        assert launch["grid"] == [16384] and launch["num_warps"] == 4, launch
        assert launch["loads"] == launch["vector_loads"] == 4, launch
        assert launch["stores"] == launch["vector_stores"] == 4, launch


@pytest.mark.parametrize("name", ["upsample_nearest1d", "_upsample_nearest_exact1d",
                                  "upsample_nearest3d"])
def test_nearest_upsampling_by_a_power_of_two_loads_each_source_once(name, monkeypatch):
    """Where the innermost dim's index map is exactly k // n (n = 2, 4, 8, 16; see
    NearestOp.repeats), each program loads its source columns side by side, once, and writes
    each n times (REPEAT); any other size or scale maps each output through the float32 map.
    PyTorch's values bit for bit either way."""
    op = REGISTRY[name]
    spatial = testing.twin(op).spatial
    launched = _gather_launches(monkeypatch, op)
    # rows of 8 float16: the outputs' rows start 16-byte aligned (others are walked flat)
    x = testing.random_tensor((2, 3, *(3, 4, 8)[3 - spatial:]), torch.float16)
    # (output sizes, scales, the repeat): by 2 everywhere; by 16, by 4 (given as scales) and
    # to 24 along the innermost dim only; by 2 with scales of 2.5 (CUDA applies them)
    cases = [([2 * s for s in x.shape[2:]], [], 2), ([3, 4, 8 * 16], [], 16),
             ([3, 4, 32], [None, None, 4.0], 4), ([3, 4, 24], [], 1),
             ([3, 4, 16], [None, None, 2.5], 1)]
    for sizes, scales, repeat in cases:
        sizes, scales = sizes[-spatial:], scales[-spatial:]
        check_call(op, Call((x, sizes, *scales)), exact=True)
        assert launched[-1][3]["REPEAT"] == repeat
    stepped = torch.empty((*x.shape[:-1], 16), dtype=x.dtype)[..., ::2].copy_(x)
    check_call(op, Call((stepped, [2 * s for s in x.shape[2:]])), exact=True)  # strided source
    assert launched[-1][3]["REPEAT"] == 2

def test_nearest_repeats_only_where_pytorchs_map_is_k_over_n():
    """NearestOp.repeats against PyTorch's own index maps: upsampling an arange (its values its
    indices, exact in float32 up to 2**24), both maps, every n and sizes up to the float32
    limit of the proof; it declines an output of 2**23 + 2, where it would not be sure."""
    from flaggems_exp.families.resample import NearestOp, _scale
    for aten in (A.upsample_nearest1d, A._upsample_nearest_exact1d):
        for n in (2, 4, 8, 16):
            for w_in in (1, 3, 64, (1 << 23) // n):
                w_out = w_in * n
                assert NearestOp.repeats((0, _scale(w_in, w_out, None), w_in), w_out) == n
                x = torch.arange(w_in, dtype=torch.float32).view(1, 1, w_in)
                k = torch.arange(w_out)
                assert torch.equal(aten(x, [w_out]).view(-1), (k // n).to(torch.float32))
    w_in = (1 << 22) + 1
    assert NearestOp.repeats((0, 0.5, w_in), 2 * w_in) == 1
    assert NearestOp.repeats((0, _scale(5, 15, None), 5), 15) == 1  # 1/3: inexact


def test_reciprocal_divides_exactly():
    """The flat walk's row, ``(n * m) >> s``, is n // d for every int32 index n (checked at
    the edges of quotients, where a rounding error would show) and divisor d up to 2**31 - 1."""
    from flaggems_exp.families.gather_kernel import _reciprocal
    divisors = {d + k for d in [1 << e for e in range(1, 31)] + [3, 5, 7, 131, 257, 32771, 65537]
                for k in (-1, 0, 1) if 1 < d + k < 2**31} | {2**31 - 1}
    for d in sorted(divisors):
        m, s = _reciprocal(d)
        last = 2**31 - 1
        assert last * m < 2**63  # the kernel's int64 product
        for q in {0, 1, 2, last // d - 1, last // d, (last // d) // 2}:
            for n in (q * d - 1, q * d, q * d + d - 1, last):
                if 0 <= n <= last:
                    assert (n * m) >> s == n // d, (d, n)


@pytest.mark.parametrize("name, pads_or_sizes, width, aligned_width", [
    ("replication_pad1d", [1, 3], 29, 12), ("reflection_pad1d", [2, 4], 9, 10),
    ("upsample_nearest1d", [35], 17, 17), ("_upsample_nearest_exact1d", [23], 17, 17),
])
def test_unaligned_rows_are_walked_flat(name, pads_or_sizes, width, aligned_width, monkeypatch):
    """A dense output of one row dim whose rows do not start 16-byte aligned is walked flat
    (whole vectors stored; each element's row from its flat index): PyTorch's values bit for
    bit, on row-major and stepped inputs; an output 16 float32 wide keeps the tiles."""
    op = REGISTRY[name]
    launched = _gather_launches(monkeypatch, op)
    for dtype in (torch.float16, torch.float32, torch.uint8):
        x = testing.random_tensor((4, 3, width), dtype, generator=torch.Generator().manual_seed(8))
        stepped = torch.empty((4, 3, 2 * width), dtype=dtype)[..., ::2].copy_(x)
        for args in ((x, pads_or_sizes), (stepped, pads_or_sizes)):
            check_call(op, Call(args), exact=True)
    assert [o["FLAT"] for *_, o in launched] == [True] * 6
    x = testing.random_tensor((4, 3, aligned_width), torch.float32)
    check_call(op, Call((x, pads_or_sizes if "pad" in name else [16])), exact=True)
    assert not launched[-1][3]["FLAT"]


def test_flat_walks_of_large_calls_give_a_thread_several_vectors(monkeypatch):
    """A call that fills ``FLAT_PROGRAMS`` programs of ``FLAT_AREA`` walks flat in those where
    its rows are mapped and its elements 16-bit (compiled, 4096 elements on 4 warps: four
    vectors a thread, wrapping rows among them): here forced on small calls, two programs and
    a ragged end, PyTorch's values bit for bit. float32, and rows passed through (a 1d pad),
    keep ``BLOCK``."""
    from flaggems_exp.families import gather_kernel
    monkeypatch.setattr(gather_kernel, "FLAT_AREA", 4096)
    monkeypatch.setattr(gather_kernel, "FLAT_PROGRAMS", 1)
    cases = [("replication_pad2d", (8, 8, 8, 29), [1, 3, 0, 1], True),
             ("upsample_nearest3d", (2, 8, 3, 5, 7), [5, 9, 11], True),
             ("replication_pad1d", (8, 64, 29), [1, 3], False)]
    for name, shape, arg, rows_mapped in cases:
        op = REGISTRY[name]
        launched = _gather_launches(monkeypatch, op)
        for dtype in (torch.float16, torch.bfloat16, torch.float32):
            x = testing.random_tensor(shape, dtype, generator=torch.Generator().manual_seed(5))
            check_call(op, Call((x, arg)), exact=True)
        numel = getattr(torch.ops.aten, name)(x, arg).numel()
        whole = block_size(numel)
        blocks = [4096 if rows_mapped else whole] * 2 + [whole]
        assert [(o["FLAT"], o["BLOCK_C"]) for *_, o in launched] == [
            (True, block) for block in blocks], name


def test_flat_walks_take_larger_programs_where_the_call_fills_them():
    """Compiled for sm_90: the benchmarks' L upsampling to odd sizes (float16, 545M outputs)
    walks flat in programs of 4096 on 4 warps, each thread storing four 16-byte vectors; the
    same upsampling at 1M outputs (M) keeps programs of 1024, one vector a thread, as does a 1d
    upsampling at L (its rows passed through)."""
    cases = ("upsample_nearest3d_odd", "upsample_nearest3d_odd_M", "upsample_nearest1d_odd")
    launches = ptx_census.compiled_launches(*cases)
    assert [launch["case"] for launch in launches] == list(cases)
    for launch, area, outputs in zip(launches, (4096, 1024, 1024), (
            4 * 16 * 129 * 257 * 257, 16 * 17 * 63 * 61, 32 * 64 * 65537)):
        constexprs = launch["constexprs"]
        assert (constexprs["FLAT"], constexprs["BLOCK_C"], launch["num_warps"]) == (
            True, area, 4), launch
        assert launch["grid"] == [-(-outputs // area)], launch
        assert launch["stores"] == launch["vector_stores"] == area // 1024, launch
