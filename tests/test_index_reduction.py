"""IndexOp and ReductionOp, driven by the registry and compared with PyTorch on the CPU.

Data movement (IndexOp) must match bit for bit; reductions within the dtype's tolerance.
"""
import dataclasses
import functools
import math
import warnings

import numpy as np
import pytest
import torch
import triton

import flaggems_exp
import ptx_census
from generic_checks import launched_kernels
from flaggems_exp import LAUNCHES, REGISTRY, testing
from flaggems_exp.families import reduction
from flaggems_exp.families.inplace import InplaceOp
from flaggems_exp.runtime import geometry, indexing
from flaggems_exp.runtime.plans import PlanCache
from flaggems_exp.testing import Call, assert_same_error, check_call, run

OPS = list(dict.fromkeys(REGISTRY.values()))
INDEX = [op for op in OPS if testing.twin(op).family == "IndexOp"]
REDUCTION = [op for op in OPS if testing.twin(op).family == "ReductionOp"]
FAMILY = INDEX + REDUCTION
FUNCTIONAL = [op for op in FAMILY if not isinstance(op, InplaceOp)]
INF = float("inf")
A = torch.ops.aten


def ids(op):
    return op.name



def is_exact(op):
    return testing.twin(op).family == "IndexOp"


def check(op, call):
    return check_call(op, call, exact=is_exact(op))


def _bits(t):
    """A float tensor's bit patterns (so -0.0, NaN payloads and inf compare exactly)."""
    width = {2: torch.int16, 4: torch.int32, 8: torch.int64}
    return t.view(width[t.element_size()]) if t.is_floating_point() else t


@pytest.mark.parametrize("op", [op for op in INDEX if op in FUNCTIONAL], ids=ids)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64],
                         ids=str)
def test_data_movement_is_bit_exact(op, dtype):
    """Signed zeros, infinities and NaN payloads move unchanged."""
    gen = torch.Generator().manual_seed(5)
    for call in testing.sample_calls(op, dtype, generator=gen):
        args = list(call.args)
        special = torch.tensor([0.0, -0.0, INF, -INF, float("nan"), -float("nan")], dtype=dtype)
        payload = _bits(special[4:5].clone())
        payload += 3  # a NaN with a non-default payload
        special = torch.cat([special, payload.view(dtype)])
        for i, a in enumerate(args):
            if isinstance(a, torch.Tensor) and a.dtype == dtype and a.numel():
                flat = a.reshape(-1).clone()
                flat[: special.numel()] = special[: flat.numel()]
                args[i] = flat.reshape(a.shape)
        call = Call(tuple(args), call.kwargs)
        native, _ = testing.reference(op, call)
        ours = op(*testing.on_device(call).args, **call.kwargs)
        assert torch.equal(_bits(ours.cpu()), _bits(native)), call.label


def layouts(t, kind):
    """``t``'s values (or, for "expanded", its first row repeated) in another memory layout."""
    if kind == "transposed" and t.dim() >= 2:
        return t.transpose(-1, -2).contiguous().transpose(-1, -2)
    if kind == "stepped" and t.dim() >= 1:
        wide = torch.empty(t.shape[:-1] + (2 * t.shape[-1],), dtype=t.dtype)[..., ::2]
        return wide.copy_(t)
    if kind == "offset":
        flat = t.reshape(-1)
        return torch.cat([flat[:1], flat])[1:].view(t.shape)
    if kind == "expanded" and t.dim() >= 1 and t.shape[0] > 1:
        return t[:1].expand(t.shape)
    return t


@pytest.mark.parametrize("op", FAMILY, ids=ids)
@pytest.mark.parametrize("kind", ["transposed", "stepped", "offset", "expanded"])
def test_noncontiguous(op, kind):
    """Inputs of any strides are read through them: same answers as PyTorch."""
    gen = torch.Generator().manual_seed(1)
    for call in testing.sample_calls(op, torch.float32, shape=(6, 10), generator=gen):
        args = [layouts(a, kind) if isinstance(a, torch.Tensor) else a for a in call.args]
        if isinstance(op, InplaceOp) and kind == "expanded":
            args[0] = call.args[0]  # an expanded self is an overlap error (tested below)
        check(op, Call(tuple(args), call.kwargs, call.label))


@pytest.mark.parametrize("op", FAMILY, ids=ids)
@pytest.mark.parametrize("shape", [(), (0,), (3, 0, 2), (0, 4), (1, 1), (2, 3, 4)], ids=str)
def test_zero_dim_empty_and_batched(op, shape):
    gen = torch.Generator().manual_seed(3)
    for call in testing.sample_calls(op, torch.float32, shape=shape, generator=gen):
        check(op, call)


def _t(*shape, dtype=torch.float32):
    return testing.random_tensor(shape, dtype)


def _b(*shape):
    return torch.ones(shape, dtype=torch.bool)


ERRORS = [
    ("take", (_t(4, 5), torch.tensor([1, 2], dtype=torch.int32))),
    ("take", (_t(4, 5), torch.tensor([[1, 2], [3, 20]]))),
    ("take", (_t(4, 5), torch.tensor([[1, -21], [3, 4]]))),
    ("take", (_t(4, 5), torch.tensor([[1, 30], [-30, 4]]))),
    ("take", (_t(0, 3), torch.tensor([0]))),
    ("take", (torch.tensor(3.0), torch.tensor(1))),
    ("masked_scatter", (_t(5, 4), _b(5, 4).byte(), _t(20))),
    ("masked_scatter", (_t(5, 4), _b(5, 4).int(), _t(20))),
    ("masked_scatter", (_t(5, 4), _b(5, 4), _t(20, dtype=torch.float64))),
    ("masked_scatter", (_t(5, 4), _b(5, 4), _t(19))),
    ("masked_scatter", (_t(5, 4), _b(3), _t(20))),
    ("masked_scatter", (_t(3), _b(5, 4), _t(20))),
    ("masked_scatter", (_t(5, 4), _b(3), _t(20, dtype=torch.float64))),
    ("masked_scatter", (_t(5, 4), _b(5, 4).byte(), _t(2))),
    ("masked_scatter", (torch.tensor(1.0), torch.tensor(True), torch.tensor([]))),
    ("masked_scatter_", (_t(5, 4), _b(3), _t(20))),
    ("masked_scatter_", (_t(1, 4), _b(5, 4), _t(20))),
    ("masked_scatter_", (torch.tensor(1.0), _b(2), _t(2))),
    ("masked_scatter_", (_t(5, 4), _b(3), _t(20, dtype=torch.float64))),
    ("masked_scatter_", (_t(5, 4), _b(3).byte(), _t(20))),
    ("masked_scatter_", (_t(5, 4), _b(5, 4).byte(), _t(20, dtype=torch.float64))),
    ("masked_scatter_", (_t(5, 4), _b(5, 4), _t(2))),
    ("masked_scatter_", (_t(1, 4).expand(5, 4), _b(5, 4), _t(20, dtype=torch.float64))),
    ("masked_scatter_", (torch.zeros(5, 4, dtype=torch.int64), _b(5, 4), _t(20))),
    ("tril", (_t(4),)),
    ("tril", (torch.tensor(1.0), 1)),
    ("tril_", (_t(4),)),
    ("diag", (torch.tensor(1.0),)),
    ("diag", (_t(2, 2, 2), 1)),
    ("slice_scatter", (_t(4, 6), _t(4, 2), 1, 1, 5, 1)),
    ("slice_scatter", (_t(4, 6), _t(1, 4), 1, 1, 5, 1)),
    ("slice_scatter", (_t(4, 6), _t(4), 1, 1, 5, 1)),
    ("slice_scatter", (_t(4, 6), _t(4, 4), 1, 1, 5, 0)),
    ("slice_scatter", (_t(4, 6), _t(4, 4), 1, 1, 5, -1)),
    ("slice_scatter", (_t(4, 6), _t(4, 4), 2, 1, 5)),
    ("slice_scatter", (_t(4, 6), _t(4, 4), -3)),
    ("slice_scatter", (torch.tensor(1.0), torch.tensor(2.0), 0)),
    ("slice_scatter", (_t(4, 6), _t(1, 6), 0, 3, 1)),
    ("_safe_softmax", (torch.ones(3, 4, dtype=torch.int64), 1)),
    ("_safe_softmax", (torch.ones(3, 4, dtype=torch.int64), 5)),
    ("_safe_softmax", (_t(3, 4), 2)),
    ("_safe_softmax", (torch.tensor(2.0), 1)),
    ("_safe_softmax", (_t(3, 4), 1, torch.int64)),
    ("_safe_softmax", (_t(3, 4), 1, torch.bool)),
    ("trace", (_t(3),)),
    ("trace", (torch.tensor(3.0),)),
    ("trace", (_t(2, 2, 2),)),
    ("_log_softmax_backward_data", (_t(3, 4), _t(3, 4), 2, torch.float32)),
    ("_log_softmax_backward_data", (_t(3, 4), _t(3, 4, dtype=torch.float16), 1, torch.float32)),
    ("_log_softmax_backward_data", (_t(3, 4, dtype=torch.float16), _t(3, 4), 1, torch.float16)),
    ("_log_softmax_backward_data", (_t(3, 4), _t(3, 4, dtype=torch.float16), 1, torch.float16)),
    ("_log_softmax_backward_data", (_t(3, 4), _t(3, 4), 1, torch.float64)),  # CUDA's rule
    ("_log_softmax_backward_data", (_t(3, 4, dtype=torch.float16), _t(3, 4, dtype=torch.float16),
                                    1, torch.float32)),  # CUDA's rule
    ("_log_softmax_backward_data", (torch.ones(3, 4, dtype=torch.int64),
                                    torch.ones(3, 4, dtype=torch.int64), 1, torch.int64)),
]


@pytest.mark.filterwarnings("ignore:masked_scatter_ received a mask with dtype torch.uint8")
@pytest.mark.parametrize("name, args", ERRORS,
                         ids=[f"{n}-{i}" for i, (n, _) in enumerate(ERRORS)])
def test_errors(name, args):
    native, _ = testing.reference(REGISTRY[name], Call(args))
    if testing.asserted_on_device(native):
        pytest.skip("a device-side assertion on the GPU, as in PyTorch: it would leave the CUDA "
                    "context unusable for the tests after it")
    assert isinstance(native, Exception), "PyTorch accepts this call: not an error case"
    check_call(REGISTRY[name], Call(args))


def test_complex_is_refused():
    z = torch.ones(3, 3, dtype=torch.complex64)
    for name, args in [("take", (z, torch.tensor([0]))), ("tril", (z,)), ("diag", (z,)),
                       ("masked_scatter", (z, _b(3, 3), z.reshape(-1))), ("trace", (z,)),
                       ("slice_scatter", (z, z, 0)), ("_safe_softmax", (z, 0, torch.float32))]:
        with pytest.raises(NotImplementedError, match="complex dtypes are not supported"):
            REGISTRY[name](*testing.on_device(Call(args)).args)
    # where PyTorch itself refuses complex, its own error comes
    check_call(REGISTRY["_safe_softmax"], Call((z, 0)))


@pytest.mark.parametrize("name, args", [
    ("_safe_softmax", lambda x: (x, 0)),
    ("_log_softmax_backward_data", lambda x: (x, x, 0, torch.int64))])
def test_softmax_dtype_errors_name_the_cuda_dispatch(name, args):
    """PyTorch's CUDA softmax kernels dispatch as "host_softmax" and "host_softmax_backward",
    with no device in the name (where abs's says "abs_cuda"); its CPU kernels have other
    names. Ours say the CUDA names on every device (the shared checks blank kernel names)."""
    with pytest.raises(NotImplementedError) as ours:
        REGISTRY[name](*args(torch.ones(3, dtype=torch.int64, device=flaggems_exp.device)))
    kernel = "host_softmax" if name == "_safe_softmax" else "host_softmax_backward"
    assert str(ours.value) == f'"{kernel}" not implemented for \'Long\''


@pytest.mark.parametrize("inference", [False, True])
def test_trace_out_is_resized_before_its_dtype_is_checked(inference):
    """trace.out is generated from trace: PyTorch resizes out to the result, then refuses its
    dtype (structured ops such as the softmax backward check the dtype first); the resize is
    its kernel's, below autograd, so an inference out gets the dtype error too, and no new
    version."""
    x = torch.ones(3, 3, device=flaggems_exp.device)
    with torch.inference_mode(inference):
        outs = [torch.zeros(5, dtype=torch.float64, device=x.device) for _ in range(2)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the resize of a non-empty out warns
        ours = testing.run(REGISTRY["trace"], testing.Call((x,), {"out": outs[0]}))
        theirs = testing.run(torch.ops.aten.trace, testing.Call((x.cpu(),), {"out": outs[1].cpu()}))
    testing.assert_same_error(ours, theirs)
    assert outs[0].shape == () and outs[0].dtype == torch.float64
    if not inference:
        assert outs[0]._version == 0, "a refused call gave out a new version"


@pytest.mark.parametrize("layout", ["transposed", "strided slice"])
@pytest.mark.parametrize("dim", [1, 0])
def test_log_softmax_backward_writes_a_strided_out_as_contiguous(layout, dim):
    """PyTorch's kernels write an out= of _log_softmax_backward_data as if it were contiguous,
    from its first element, whatever its strides (its meta function's output is raw strided:
    no proxy copies back); ours too. The whole buffer under out is compared, with PyTorch's
    kernel on the same device (its CUDA kernel on a GPU)."""
    device = flaggems_exp.device
    grad = torch.randn(3, 5, device=device)
    output = torch.log_softmax(torch.randn(3, 5, device=device), dim)
    buffers = []
    for fn in (REGISTRY["_log_softmax_backward_data"], torch.ops.aten._log_softmax_backward_data):
        buffer = torch.zeros(15 if layout == "transposed" else 30, device=device)
        out = (buffer.view(5, 3).t() if layout == "transposed"
               else buffer.view(3, 10)[:, ::2])
        assert fn(grad, output, dim, torch.float32, out=out) is out
        buffers.append(buffer)
    torch.testing.assert_close(buffers[0], buffers[1])


def test_log_softmax_backward_shape_mismatch_is_refused():
    """PyTorch's kernel reads past a smaller ``output``; ours refuses the call."""
    with pytest.raises(RuntimeError, match="expected output of shape"):
        REGISTRY["_log_softmax_backward_data"](*testing.on_device(
            Call((_t(3, 4), _t(2, 4), 1, torch.float32))).args)


def test_log_softmax_backward_half_to_float():
    """float32 grad and output with input_dtype float16: a float16 result (PyTorch's CUDA path)."""
    gen = torch.Generator().manual_seed(7)
    grad = torch.randn(6, 300, generator=gen)
    output = torch.log_softmax(torch.randn(6, 300, generator=gen), 1)
    ours = check_call(REGISTRY["_log_softmax_backward_data"],
                      Call((grad, output, 1, torch.float16)))
    assert ours.dtype == torch.float16


@pytest.mark.parametrize("shape, dtype", [((0,), torch.float16), ((6, 30), torch.float16),
                                          ((6, 30), torch.float64), ((), torch.float32)],
                         ids=str)
def test_log_softmax_backward_half_to_float_out(shape, dtype):
    """The float16 result of the half-to-float path goes into an out= of float16 (resized as a
    structured kernel's out=); an out= of another dtype is PyTorch's structured error."""
    gen = torch.Generator().manual_seed(8)
    grad = torch.randn(6, 30, generator=gen)
    output = torch.log_softmax(torch.randn(6, 30, generator=gen), 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # resizing a non-empty out warns, as in PyTorch
        check_call(REGISTRY["_log_softmax_backward_data"],
                   Call((grad, output, 1, torch.float16), {"out": torch.zeros(shape, dtype=dtype)}))


# ---- op-specific semantics PyTorch pins down ----------------------------------------------
@pytest.mark.parametrize("length", [1, 1000, 5000, "long"])
@pytest.mark.parametrize("dim", [-1, 0], ids=["last", "first"])
def test_softmax_row_lengths(monkeypatch, length, dim):
    """Rows of any length (no cap), along the last dim or a strided one. Long rows: 100,000
    elements compiled; in the interpreter (slow to walk its 65,536-element tiles) 3,000 in
    tiles of 256, as many tiles a row."""
    rows = 3
    if length == "long":
        length, rows = 100_000, 1
        if flaggems_exp.device == "cpu":
            monkeypatch.setattr(reduction, "_ROW_TILE", 256)
            monkeypatch.setattr(reduction, "_TILE", 256)
            length = 3000
        for name in ("_safe_softmax", "_log_softmax_backward_data"):
            REGISTRY[name].plans.clear()  # plans recorded with the usual tile
    gen = torch.Generator().manual_seed(length)
    shape = (rows, length) if dim == -1 else (length, rows)
    x = torch.randn(shape, generator=gen) * 4
    op = REGISTRY["_safe_softmax"]
    for dtype, result in ((torch.float32, None), (torch.float16, None),
                          (torch.float16, torch.float32)):
        # against float64: PyTorch's own float32 sum along a strided dim drifts on long rows
        expected = A._safe_softmax(x.to(dtype).double(), dim).to(result or dtype)
        ours = op(*testing.on_device(Call((x.to(dtype), dim, result))).args)
        testing.assert_close(ours, expected)
    grad = torch.randn(shape, generator=gen, dtype=torch.float64)
    output = torch.log_softmax(x.double(), dim)
    expected = A._log_softmax_backward_data(grad, output, dim, torch.float64).float()
    ours = REGISTRY["_log_softmax_backward_data"](
        *testing.on_device(Call((grad.float(), output.float(), dim, torch.float32))).args)
    testing.assert_close(ours, expected)
    for name in ("_safe_softmax", "_log_softmax_backward_data"):
        REGISTRY[name].plans.clear()


def test_softmax_special_rows():
    """All -inf rows give 0; +inf or NaN give NaN; the -inf test uses the input before dtype=."""
    x = torch.tensor([[-INF, -INF, -INF], [1.0, -INF, -INF], [INF, 1.0, 0.0],
                      [float("nan"), -INF, -INF], [-1e10, -1e10, -1e10], [0.0, 0.0, 0.0]])
    op = REGISTRY["_safe_softmax"]
    for dtype in (None, torch.float16, torch.float64):
        for dim in (1, 0):
            check_call(op, Call((x, dim, dtype)))
            ours = op(*testing.on_device(Call((x, dim, dtype))).args)
            expected = A._safe_softmax(x, dim, dtype)
            assert torch.equal(ours.isnan().cpu(), expected.isnan())
    ours = op(*testing.on_device(Call((x, 1, torch.float16))).args).cpu()
    assert (ours[0] == 0).all() and ours[4].isnan().all()  # f32 -1e10 -> f16 -inf is not masked
    for value in (2.0, -INF, float("nan")):
        check_call(op, Call((torch.tensor(value), 0)))
        check_call(op, Call((torch.tensor(value), -1)))
    check_call(op, Call((torch.tensor([[1, 2], [3, 4]], dtype=torch.int32), 0, torch.float32)))
    check_call(op, Call((torch.tensor([[True, False]]), 1), {"dtype": torch.float16}))


def test_trace_values():
    op = REGISTRY["trace"]
    for x in (torch.full((300, 300), 255, dtype=torch.uint8),
              torch.full((300, 200), -128, dtype=torch.int8),
              torch.full((3000, 5), 1.0001, dtype=torch.float16), torch.ones(0, 3),
              torch.ones(3, 0, dtype=torch.int32), torch.tensor([[INF, 1.0], [2.0, -INF]]),
              torch.tensor([[True, True], [False, True]]), torch.randn(7, 5).t()[::2]):
        ours = check_call(op, Call((x,)))
        assert ours.dim() == 0
    bools = testing.on_device(Call((torch.ones(3, 3, dtype=torch.bool),))).args[0]
    assert op(bools).dtype == torch.int64  # CUDA's rule (the CPU kernel refuses bool)


def test_tril_and_diag_diagonals():
    """Any diagonal, batch dims, a written zero over NaN/inf, diag always a new tensor."""
    gen = torch.Generator().manual_seed(11)
    x = torch.randn(2, 3, 5, 4, generator=gen)
    x[0, 0] = float("nan")
    x[1, 2] = INF
    for k in (0, 1, -1, 3, -4, 2**40, -(2**40), 100, -100):
        check_call(REGISTRY["tril"], Call((x, k)), exact=True)
        check_call(REGISTRY["tril_"], Call((x.clone(), k)), exact=True)
    v = torch.randn(4, generator=gen)
    for k in (0, 2, -3, 7, -7):
        check_call(REGISTRY["diag"], Call((v, k)), exact=True)
        check_call(REGISTRY["diag"], Call((x[0, 0], k)), exact=True)
    check_call(REGISTRY["diag"], Call((torch.ones(0), 2)), exact=True)
    m = torch.randn(3, 3, generator=gen).to(flaggems_exp.device)
    d = REGISTRY["diag"](m)
    assert d.untyped_storage().data_ptr() != m.untyped_storage().data_ptr()


def test_diag_out_dtype_is_refused_in_pytorchs_order():
    """A vector's out= of a type its values cannot be cast to gets diag's own cast error; of
    one they can, but not the result's own, the out= wrapper's dtype error; a matrix's gets the
    latter either way. A refused out= is left as it was."""
    op = REGISTRY["diag"]
    for x in (torch.randn(4), torch.randn(4, 4), torch.arange(4)):
        for dtype in (torch.int64, torch.int32, torch.bool, torch.float64, torch.float16):
            out = torch.full((2,), 7, dtype=dtype)
            call = testing.on_device(Call((x,), {"out": out}))
            kept = call.kwargs["out"].clone()
            theirs, _ = testing.reference(op, Call((x,), {"out": out.clone()}))
            ours = run(op, call)
            if isinstance(theirs, Exception):
                assert_same_error(ours, theirs)
                assert torch.equal(call.kwargs["out"], kept)
            else:
                assert ours is call.kwargs["out"] and ours.dtype == dtype


def test_slice_scatter_bounds_and_layout():
    """start/end None, negative, clamped, empty; src cast into self's dtype; self's strides kept."""
    gen = torch.Generator().manual_seed(12)
    x = torch.randn(4, 9, generator=gen)
    op = REGISTRY["slice_scatter"]
    for dim, start, end, step in ((1, None, None, 1), (1, -4, -1, 1), (1, -30, 100, 4),
                                  (1, 5, 2, 1), (0, 1, None, 2), (1, 2**62, None, 3),
                                  (-1, 0, 9, 9)):
        shape = list(x.shape)
        shape[dim] = len(range(*slice(start, end, step).indices(x.shape[dim])))
        src = torch.randn(shape, generator=gen)
        check_call(op, Call((x, src, dim, start, end, step)), exact=True)
        check_call(op, Call((x.long(), src, dim, start, end, step)), exact=True)  # truncates
        check_call(op, Call((x.bool(), src, dim, start, end, step)), exact=True)
        check_call(op, Call((x, src.to(torch.int16), dim, start, end, step)), exact=True)
        check_call(op, Call((x, src), {"dim": dim, "start": start, "end": end, "step": step}),
                   exact=True)
    for self_tensor in (x.t()[::2], torch.randn(2, 3, 4, 5, generator=gen).permute(0, 2, 3, 1),
                        x[1:]):
        self_tensor = self_tensor.to(flaggems_exp.device)  # strides as they are on the device
        src = torch.randn(self_tensor[:, 1:2].shape, generator=gen).to(flaggems_exp.device)
        native = op.ref(self_tensor.cpu(), src.cpu(), 1, 1, 2)
        ours = op(self_tensor, src, 1, 1, 2)
        assert ours.stride() == self_tensor.stride() and torch.equal(ours.cpu(), native)


def test_slice_scatter_replacing_everything_copies_src(monkeypatch):
    """A slice over the whole dim (``x[:] = y`` once functionalized) replaces every element:
    the plan copies src into self's layout (no gather), whatever src's strides and dtype,
    through the copy family's write: a flat walk where the layouts agree, tiles of the gather
    skeleton where src is transposed, not the index skeleton's kernel."""
    from flaggems_exp.families.index import copy

    launched = launched_kernels(monkeypatch)
    gen = torch.Generator().manual_seed(14)
    op = REGISTRY["slice_scatter"]
    monkeypatch.setattr(op, "plans", PlanCache())  # a replay skips run_kernel
    x = torch.randn(6, 10, generator=gen)
    src = torch.randn(10, 6, generator=gen)
    for self_tensor, source, dim, start, end, step in (
            (x, src.t(), 0, None, None, 1),  # a transposed src
            (x.t(), src, 1, 0, 2**62, 1),  # self's strides kept, end clamped
            (x, src.t().half(), -1, -20, None, 1),  # cast into self's dtype
            (x[:1], src.t()[:1], 0, 0, 1, 3),  # one row, a step past it
            (x.long(), src.t(), 1, None, None, 1)):  # truncated into int64
        args = (self_tensor, source, dim, start, end, step)
        assert op.prepare(None, False, *args).select is copy  # a plan: nothing launched
        del launched[:]
        ours = check_call(op, Call(args), exact=True)  # copied to the library's device, run
        assert ours.stride() == self_tensor.stride()
        assert launched and "_index_kernel" not in [name for name, _ in launched], launched
    # a slice short of one element still gathers
    short = (x, src.t()[:5], 0, 1, None, 1)
    assert op.prepare(None, False, *short).select is not copy
    del launched[:]
    check_call(op, Call(short), exact=True)
    assert [name for name, _ in launched] == ["_index_kernel"], launched


def test_take_and_masked_scatter_orders():
    """take reads self in logical row-major order; masked_scatter consumes source in the
    row-major order of the mask's hits, across program blocks (a large mask)."""
    gen = torch.Generator().manual_seed(13)
    x = torch.randn(300, 257, generator=gen).t()
    index = torch.randint(-x.numel(), x.numel(), (40, 50), generator=gen)
    check_call(REGISTRY["take"], Call((x, index)), exact=True)
    check_call(REGISTRY["take"], Call((x, index[::2, ::3])), exact=True)
    mask = torch.rand(257, 300, generator=gen) > 0.3
    source = torch.randn(400, 300, generator=gen).t()
    for call in (Call((x, mask, source)), Call((x, mask[:1], source)),
                 Call((x[:1], mask.t().t(), source)),
                 Call((x.to(torch.bfloat16), mask, source.bfloat16()))):
        check_call(REGISTRY["masked_scatter"], call, exact=True)
    check_call(REGISTRY["masked_scatter_"], Call((x.clone(), mask, source)), exact=True)
    check_call(REGISTRY["masked_scatter"], Call((x, mask, source.reshape(-1)[:int(mask.sum())])),
               exact=True)  # exactly enough source elements


def test_in_place_rewrites_scattered_changes_whole(monkeypatch):
    """In place, tril_ stores only the zeros it writes (SPARSE: self is not read), while
    masked_scatter_, whose hits lie anywhere, rewrites every element of self in whole vectors
    (self read, its own bits where the mask is false: a NaN's payload, -0.0), as PyTorch's
    kernel does. Both give PyTorch's bits, and neither touches self's neighbours."""
    launched = launched_kernels(monkeypatch)
    gen = torch.Generator().manual_seed(15)
    base = torch.randn(40, 66, generator=gen)
    base[0, :6] = torch.tensor([float("nan"), -0.0, float("-inf"), 0.0, float("inf"), -1.0])
    base[1, :2] = torch.tensor([0x7FC00123, -0x00400001], dtype=torch.int32).view(torch.float32)
    mask = torch.rand(40, 33, generator=gen) > 0.5
    mask[:2, :3] = False  # the special values kept (columns 0, 2, 4 of the view)
    source = torch.randn(40 * 33, generator=gen)
    for name, args, sparse in (("tril_", (-3,), True), ("masked_scatter_", (mask, source), False)):
        op = REGISTRY[name]
        for o in (op, testing.twin(op)):
            monkeypatch.setattr(o, "plans", PlanCache())
        ours, theirs = base.clone().to(flaggems_exp.device), base.clone()
        expected = getattr(theirs[:, ::2], name)(*args)
        del launched[:]
        on_device = [a.to(flaggems_exp.device) if torch.is_tensor(a) else a for a in args]
        assert op(ours[:, ::2], *on_device).data_ptr() == ours.data_ptr()
        assert torch.equal(ours.cpu().view(torch.int32), theirs.view(torch.int32)), name
        assert expected.data_ptr() == theirs.data_ptr()
        (main,) = [o for kernel, o in launched if kernel == "_index_kernel" and not o["COUNT_ONLY"]]
        assert (main["SPARSE"], main["READ_X"]) == (sparse, not sparse), (name, main)


def test_inplace_through_strides_and_aliasing():
    """In place writes self through its strides (neighbours untouched) and returns it; an input
    aliasing self is read as it was before the call (a temporary)."""
    gen = torch.Generator().manual_seed(14)
    base = torch.randn(10, 12, generator=gen).to(flaggems_exp.device)
    view = base[:, ::2].t()  # (6, 10), transposed and stepped
    before = base.clone()
    mask = (torch.rand(6, 10, generator=gen) > 0.5).to(flaggems_exp.device)
    source = torch.randn(60, generator=gen).to(flaggems_exp.device)
    expected = torch.masked_scatter(view.cpu(), mask.cpu(), source.cpu())
    assert REGISTRY["masked_scatter_"](view, mask, source) is view
    assert torch.equal(view.cpu(), expected)
    assert torch.equal(base[:, 1::2].cpu(), before[:, 1::2].cpu())
    expected = view.cpu().tril(1)
    assert REGISTRY["tril_"](view, 1) is view and torch.equal(view.cpu(), expected)
    # source and mask alias self
    x = torch.randn(4, 6, generator=gen).to(flaggems_exp.device)
    m = x > 0
    expected = torch.masked_scatter(x.cpu(), m.cpu(), x.cpu().t().reshape(-1))
    REGISTRY["masked_scatter_"](x, m, x.t())
    assert torch.equal(x.cpu(), expected)
    # large enough for several programs even in the interpreter: later blocks read source
    # elements that earlier blocks have written
    x = torch.randn(300, 300, generator=gen).to(flaggems_exp.device)
    expected = x.cpu().t().contiguous()
    REGISTRY["masked_scatter_"](x, torch.ones_like(x, dtype=torch.bool), x.t())
    assert torch.equal(x.cpu(), expected)
    b = (torch.rand(5, 5, generator=gen) > 0.5).to(flaggems_exp.device)
    expected = torch.masked_scatter(b.cpu(), b.cpu(), ~b.cpu())
    REGISTRY["masked_scatter_"](b, b, ~b)
    assert torch.equal(b.cpu(), expected)


@pytest.mark.parametrize("int32_limit", [None, 16], ids=["int32", "int64"])
def test_small_tiles(monkeypatch, int32_limit):
    """Tiles as small as the compiled ones are against a large tensor, many per call: tiles wholly
    kept, wholly zeroed and across tril's diagonal, tiles of rows of several matrices; in place,
    tiles wholly and partly written; slices along rows and along columns; masked_scatter's hits
    counted in tiles of whole rows and in pieces of a row, their offsets scanned in several
    blocks. PyTorch's answers."""
    from flaggems_exp.families import index
    from flaggems_exp.runtime import indexing, launch
    monkeypatch.setattr(index, "TILE", 64)
    monkeypatch.setattr(index, "TILE_COLS", 8)
    monkeypatch.setattr(index, "SCAN_BLOCK", 4)
    if int32_limit:
        monkeypatch.setattr(indexing, "INT32_LIMIT", int32_limit)
    tiles = []
    run_kernel = launch.run_kernel

    def recorded(kernel, grid, args, options):
        if "BLOCK_C" in options:
            tiles.append((grid[0], options["BLOCK_R"], options["BLOCK_C"], options["INDEX_64"]))
        return run_kernel(kernel, grid, args, options)

    monkeypatch.setattr(launch, "run_kernel", recorded)
    gen = torch.Generator().manual_seed(17)
    x = torch.randn(37, 45, generator=gen)
    x[::5, ::3] = float("nan")
    x[1::7] = -0.0
    batched = torch.randn(45, 3, 37, generator=gen).permute(1, 2, 0)  # (3, 37, 45), not dense
    mask = torch.rand(37, 45, generator=gen) > 0.4
    narrow = torch.randn(6, 37, generator=gen).t()  # (37, 6): tiles of whole rows
    narrow_mask = torch.rand(37, 6, generator=gen) > 0.5
    source = torch.randn(2000, generator=gen)
    small = torch.randn(4, 5, 6, generator=gen).permute(2, 0, 1).contiguous().permute(1, 2, 0)
    calls = [("tril", (t, k)) for t in (x, batched) for k in (0, 9, -20, 60)]
    calls += [("tril", (small, k)) for k in (0, 2, -3)]  # tiles across several matrices
    calls += [("tril_", (x.clone(), k)) for k in (0, 9, -20)]
    calls += [("diag", (x[0], k)) for k in (0, 3, -11)]
    # (a matrix's diagonal, taken whole from x, is the copy family's strided write)
    slices = ((0, 3, 30, 1, (27, 45)), (0, 1, 37, 3, (12, 45)), (1, 2, 40, 2, (37, 19)),
              (1, 0, 16, 1, (37, 16)))
    calls += [("slice_scatter", (x, torch.randn(shape, generator=gen), dim, start, end, step))
              for dim, start, end, step, shape in slices]
    calls += [("masked_scatter", (x, mask, source)), ("masked_scatter", (x, mask[:1], source)),
              ("masked_scatter", (narrow, narrow_mask, source)),
              ("masked_scatter", (small, torch.rand(4, 5, 6, generator=gen) > 0.5, source)),
              ("masked_scatter_", (x.clone(), mask, source)),
              ("masked_scatter_", (narrow.clone(), narrow_mask, source))]
    calls += [("take", (x, torch.randint(-x.numel(), x.numel(), (40, 50), generator=gen).t()))]
    for name, args in calls:
        monkeypatch.setattr(REGISTRY[name], "plans", PlanCache())  # plans of larger tiles
        del tiles[:]
        check_call(REGISTRY[name], Call(args), exact=True)
        assert tiles and all(programs > 1 and block_r * block_c <= 64 for programs, block_r,
                             block_c, _ in tiles), (name, tiles)
        assert all(index_64 == bool(int32_limit) for *_, index_64 in tiles), (name, tiles)
    monkeypatch.setattr(REGISTRY["masked_scatter"], "plans", PlanCache())
    del tiles[:]
    REGISTRY["masked_scatter"](*testing.on_device(Call((narrow, narrow_mask, source))).args)
    assert {(block_r, block_c) for _, block_r, block_c, _ in tiles} == {(8, 8)}


def test_eye_in_one_pass(monkeypatch):
    """eye writes its ones and zeros in one launch, in tiles as small as the compiled ones are
    against a large matrix, into a new tensor or an out= of any strides; an out= that overlaps
    itself gets PyTorch's zeros-then-diagonal result (two launches)."""
    from flaggems_exp.families import index
    from flaggems_exp.runtime.plans import PlanCache
    monkeypatch.setattr(index, "TILE", 64)
    monkeypatch.setattr(index, "TILE_COLS", 8)
    op = REGISTRY["eye"]
    monkeypatch.setattr(op, "plans", PlanCache())  # plans of larger tiles
    dev = flaggems_exp.device
    for size in ((37,), (37, 45), (45, 37), (1, 300)):
        for dtype in (torch.bool, torch.int32, torch.float16, torch.float64):
            before = LAUNCHES["eye"]
            ours = op(*size, dtype=dtype, device=dev)
            assert LAUNCHES["eye"] - before == 1
            assert torch.equal(ours.cpu(), torch.eye(*size, dtype=dtype))
        out, out_cpu = (torch.full(size[::-1] if len(size) == 2 else size * 2, 7.0).to(d).t()
                        for d in (dev, "cpu"))
        assert op(*size, out=out) is out
        assert torch.equal(out.cpu(), torch.eye(*size, out=out_cpu))
    out, out_cpu = (torch.zeros(1, 45, device=d).expand(37, 45) for d in (dev, "cpu"))
    before = LAUNCHES["eye"]
    op(37, 45, out=out)
    assert LAUNCHES["eye"] - before == 2
    assert torch.equal(out.cpu(), torch.eye(37, 45, out=out_cpu))


@pytest.mark.parametrize("op", FUNCTIONAL, ids=ids)
def test_out(op):
    """``out=``: written through its strides (or, where PyTorch's kernel writes it as if
    contiguous, from its first element in order) and returned, resized when its shape
    differs; a wrong dtype or an overlapping out raises as PyTorch does."""
    call = testing.sample_calls(op, torch.float32)[0]
    native, expected = testing.reference(op, call)
    dev = testing.on_device(call)
    if not op.aten_overloads() or not any(o == "out" for _, o in op.aten_overloads()):
        with pytest.raises(TypeError):
            op(*dev.args, out=torch.empty_like(expected).to(flaggems_exp.device), **call.kwargs)
        return
    outs = [torch.empty(0, dtype=expected.dtype), torch.empty_like(expected)]
    if expected.dim() == 2:
        outs.append(torch.empty(expected.shape[::-1], dtype=expected.dtype).t())
    for out in outs:
        out = out.to(flaggems_exp.device)
        assert op(*dev.args, out=out, **call.kwargs) is out
        if getattr(op, "out_written_as_contiguous", False):
            out = geometry.as_contiguous(out)
        testing.assert_close(out, expected, exact=is_exact(op))
    bad_outs = [lambda: torch.zeros(expected.shape, dtype=torch.float64)]  # made afresh per use
    if expected.numel() > 1:
        bad_outs.append(lambda: torch.zeros(expected.shape)[:1].expand(expected.shape))
    for bad in bad_outs:
        theirs = run(lambda *a, **k: op.ref(*a, out=bad(), **k), call)
        ours_out = testing.copy_view(bad(), flaggems_exp.device)  # keeps the expansion
        if isinstance(theirs, Exception):
            assert_same_error(run(lambda *a, **k: op(*a, out=ours_out, **k), dev), theirs)
            assert not ours_out.cpu().any()


def test_take_refuses_out_overlapping_an_input():
    x = torch.randn(4, 5).to(flaggems_exp.device)
    index = torch.tensor([[1, 2], [3, 4]]).to(flaggems_exp.device)
    for out in (x, x[0, :4].view(2, 2)):
        with pytest.raises(RuntimeError, match="some elements of the input tensor"):
            REGISTRY["take"](x, index, out=out)


@pytest.mark.skipif(flaggems_exp.device != "cpu", reason="the interpreter's host bounds check; "
                    "on the GPU a bad index is a device-side assertion that ends the CUDA context")
def test_take_checks_bounds_on_every_call_in_the_interpreter():
    """The interpreter has no device asserts: each call reads its index bounds back, so no plan
    is kept, a second call of a signature gets PyTorch's values, and a bad index PyTorch's error
    before out= is written."""
    op = REGISTRY["take"]
    op.plans.clear()
    gen = torch.Generator().manual_seed(15)
    x = torch.randn(4, 5, generator=gen)
    for index in (torch.tensor([[1, -20], [19, 0]]), torch.tensor([[-1, 3], [7, -8]])):
        assert torch.equal(op(x, index), torch.take(x, index))
        out = torch.zeros(2, 2)
        assert op(x, index, out=out) is out and torch.equal(out, torch.take(x, index))
    assert len(op.plans) == 0
    for index in (torch.tensor([[1, 2], [20, 0]]), torch.tensor([[1, 2], [3, -21]])):
        assert_same_error(run(op, Call((x, index))), run(torch.take, Call((x, index))))
        out = torch.zeros(2, 2)
        theirs = run(lambda *a: torch.take(*a, out=torch.zeros(2, 2)), Call((x, index)))
        assert_same_error(run(lambda *a: op(*a, out=out), Call((x, index))), theirs)
        assert not out.any()


# calls PyTorch's CUDA kernels (and ours, compiled) check on the device: (op, good args, bad args,
# the kernel's assertion message)
_DEVICE_CHECKED = [
    ("take", (torch.randn(4, 5), torch.tensor([[0, -20], [19, -1]])),
     (torch.randn(4, 5), torch.tensor([[0, 1], [20, 2]])), r"take\(\): index out of range"),
    ("take", (torch.randn(4, 5), torch.tensor([[0, -20], [19, -1]])),
     (torch.randn(4, 5), torch.tensor([[0, 1], [-21, 2]])), r"take\(\): index out of range"),
    ("masked_scatter", (torch.randn(4, 5), torch.arange(20).reshape(4, 5) % 3 == 0,
                        torch.randn(7)),
     (torch.randn(4, 5), torch.arange(20).reshape(4, 5) % 3 == 0, torch.randn(6)),
     "Number of elements of source < number of ones in mask"),
]


@pytest.mark.parametrize("name, good, bad, message", _DEVICE_CHECKED,
                         ids=[c[0] for c in _DEVICE_CHECKED])
def test_device_assert_condition(monkeypatch, name, good, bad, message):
    """The check compiled into the kernel on the GPU, run in the interpreter with Triton's debug
    option (where device asserts are live) and no host check."""
    from triton.runtime import interpreter
    from flaggems_exp.families import index
    from flaggems_exp.ops import indexing
    builder = getattr(interpreter, "interpreter_builder", None)
    if flaggems_exp.device != "cpu" or not dataclasses.is_dataclass(getattr(builder, "options",
                                                                            None)):
        pytest.skip("needs Triton's interpreter (its builder's options)")
    monkeypatch.setattr(builder, "options", dataclasses.replace(builder.options, debug=True))
    # no host check: the kernel's own
    monkeypatch.setattr(indexing, "INTERPRETED", False)
    monkeypatch.setattr(index, "INTERPRETED", False)
    op = REGISTRY[name]
    assert torch.equal(op.call(good, {}, None), getattr(torch, name)(*good))  # the full path
    with pytest.raises(Exception, match=message):
        op.call(bad, {}, None)


@pytest.mark.skipif(flaggems_exp.device != "cuda", reason="host synchronization needs a GPU (the "
                    "interpreter checks on the host)")
@pytest.mark.parametrize("name", ["take", "masked_scatter"])
def test_launches_without_host_synchronization(name):
    """Compiled, take checks its indices and masked_scatter its source's size in the kernel:
    neither the full path nor the plan it makes waits for the GPU (held busy here), and the
    results are PyTorch's."""
    op = REGISTRY[name]
    args = next(good for n, good, _, _ in _DEVICE_CHECKED if n == name)
    args = tuple(a.to("cuda") for a in args)
    op(*args)  # compiles
    torch.cuda.synchronize()
    op.plans.clear()
    results = []
    for _ in range(2):  # the full path, then its plan
        torch.cuda._sleep(10**8)
        busy = torch.cuda.Event()
        busy.record()
        results.append(op(*args))
        assert not busy.query(), f"{name} waited for the GPU"
    (plan,) = op.plans.plans.values()
    assert plan.replays == 1
    torch.cuda.synchronize()
    for result in results:
        assert torch.equal(result, getattr(torch, name)(*args))


# ---- enable(): torch's own ops run ours, and autograd through them is PyTorch's ---------------
@pytest.mark.parametrize("op", FAMILY, ids=ids)
def test_enable_routes(op):
    """torch's own op (and its out= overload) runs our kernel under use_gems(), same answer."""
    call = testing.sample_calls(op, torch.float32)[0]
    native, expected = testing.reference(op, call)
    name = testing.twin(op).name
    packet = getattr(torch.ops.aten, op.name)
    before = LAUNCHES[name]
    with flaggems_exp.use_gems():
        got = packet(*testing.on_device(call).args, **call.kwargs)
    assert LAUNCHES[name] > before
    testing.assert_close(got, expected, exact=is_exact(op))
    if "out" in packet.overloads():
        out = torch.empty(0, dtype=expected.dtype, device=flaggems_exp.device)
        before = LAUNCHES[name]
        with flaggems_exp.use_gems():
            assert packet(*testing.on_device(call).args, **call.kwargs, out=out) is out
        assert LAUNCHES[name] > before
        testing.assert_close(out, expected, exact=is_exact(op))


AUTOGRAD = ["_safe_softmax", "take", "masked_scatter", "tril", "diag", "slice_scatter", "trace"]


@pytest.mark.parametrize("name", AUTOGRAD)
def test_autograd_under_enable(name):
    """The same gradients as PyTorch with our forward enabled (and our kernel ran)."""
    op = REGISTRY[name]
    call = testing.sample_calls(op, torch.float64, shape=(4, 6))[0]
    gen = torch.Generator().manual_seed(15)

    def grads():
        leaves = [a.to(flaggems_exp.device, copy=True).requires_grad_()
                  if isinstance(a, torch.Tensor) and a.is_floating_point() else
                  (a.to(flaggems_exp.device) if isinstance(a, torch.Tensor) else a)
                  for a in call.args]
        out = getattr(torch.ops.aten, name)(*leaves, **call.kwargs)
        weight = torch.randn(out.shape, dtype=out.dtype, generator=gen.manual_seed(16))
        (out * weight.to(out.device)).sum().backward()
        return [a.grad for a in leaves if isinstance(a, torch.Tensor) and a.requires_grad]

    expected = grads()
    before = LAUNCHES[name]
    with flaggems_exp.use_gems():
        got = grads()
    # diag is a composite op in PyTorch: with a gradient needed its decomposition runs
    assert LAUNCHES[name] > before or name == "diag"
    assert len(got) == len(expected) and expected
    for g, e in zip(got, expected):
        torch.testing.assert_close(g.cpu(), e.cpu(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("length", [46, 110])
@pytest.mark.parametrize("split, tile", [(False, 16), (True, 16), (True, 64)],
                         ids=["one_program_a_row", "split", "split_4_rows_a_program"])
def test_rows_longer_than_a_tile_combine_their_tiles(monkeypatch, split, tile, length):
    """Rows spanning many tiles (a tile of 16 here) give PyTorch's results, special values
    included: a first tile of only -inf, a NaN or +inf in a later tile, a row of only -inf (0),
    and float32 -1e10 cast to float16 (-inf, but not masked: NaN). Read by one program a row
    (one launch), or split across programs (``_SPLIT_ELEMENTS`` lowered so that these few
    rows are: two launches, a chunk a tile; rows of 110 take 7 tiles in 8 chunks, one of them
    past the row's end), along the last dim or a strided one; programs of one row, or of 4
    (``_TILE`` 64, the last program's rows ragged)."""
    monkeypatch.setattr(reduction, "_ROW_TILE", 16)
    monkeypatch.setattr(reduction, "_TILE", tile)
    # compiled, a program takes several rows only where there are rows for every program
    monkeypatch.setattr(reduction, "_PROGRAMS", 1)
    if split:
        monkeypatch.setattr(reduction, "_SPLIT_ELEMENTS", 0)
    gen = torch.Generator().manual_seed(11)
    x = torch.randn(30, length, generator=gen) * 4  # along dim 0, rows of 30: two tiles
    x[1, :20] = -INF
    x[2, 37] = float("nan")
    x[3, 45] = INF
    x[4] = -INF
    x[5] = -1e10
    x[6, 16:] = -INF
    x[7, :length - 3] = -INF  # the max in the last chunk, the first chunks of only -inf
    softmax, backward = REGISTRY["_safe_softmax"], REGISTRY["_log_softmax_backward_data"]
    for op in (softmax, backward):
        monkeypatch.setattr(op, "plans", PlanCache())  # the usual tile's plans would replay
        monkeypatch.setattr(type(op), "sum_order", None)  # the tiles, not PyTorch's order
    launched = launched_kernels(monkeypatch)
    kernels = ["_chunk_stats_kernel", "_chunk_finish_kernel"] if split else ["_reduction_kernel"]
    for dim in (1, 0):
        for dtype in (None, torch.float16):
            del launched[:]
            ours = check_call(softmax, Call((x, dim, dtype)))
            assert [name for name, _ in launched] == kernels, launched
            assert {options["ROWS"] for _, options in launched} == {tile // 16}
            expected = A._safe_softmax(x, dim, dtype)
            assert torch.equal(ours.isnan().cpu(), expected.isnan())
        grad = torch.randn(x.shape, generator=gen)
        output = torch.log_softmax(torch.randn(x.shape, generator=gen), dim)
        del launched[:]
        check_call(backward, Call((grad, output, dim, torch.float32)))
        assert [name for name, _ in launched] == kernels, launched
    # a float64 row whose float32 cast is -inf is not a row of -inf: its statistics keep that
    wide = torch.full((2, length), -1e300, dtype=torch.float64)
    wide[1, 3] = 0.0
    del launched[:]
    ours = check_call(softmax, Call((wide, 1, torch.float32)))
    assert [name for name, _ in launched] == kernels and ours[0].isnan().all(), launched


@pytest.mark.parametrize("name", ["_safe_softmax", "_log_softmax_backward_data", "trace"])
def test_split_rows_replay_their_plan(monkeypatch, name):
    """A split call's plan replays both launches with a buffer of chunk statistics of its own
    (a scratch allocation): a second call of the signature, on other values, is a replay and
    gives PyTorch's result."""
    monkeypatch.setattr(reduction, "_ROW_TILE", 16)
    monkeypatch.setattr(reduction, "_TILE", 16)
    monkeypatch.setattr(reduction, "_SPLIT_ELEMENTS", 0)
    op = REGISTRY[name]
    monkeypatch.setattr(op, "plans", PlanCache())
    launched = launched_kernels(monkeypatch)
    gen = torch.Generator().manual_seed(17)

    def call():
        x = torch.randn(3, 90, generator=gen) * 3
        if name == "_safe_softmax":
            return Call((x, 1))
        if name == "trace":
            return Call((torch.randn(90, 90, generator=gen),))
        return Call((torch.randn(3, 90, generator=gen), torch.log_softmax(x, 1), 1,
                     torch.float32))

    check_call(op, call())
    assert [kernel for kernel, _ in launched] == ["_chunk_stats_kernel", "_chunk_finish_kernel"]
    replays, launches = sum(p.replays for p in op.plans.plans.values()), LAUNCHES[name]
    check_call(op, call())
    assert sum(p.replays for p in op.plans.plans.values()) == replays + 1
    assert LAUNCHES[name] == launches + 2 and len(launched) == 2  # replayed: no full path


def test_split_rows_index_in_int64_where_the_last_chunk_ends_past_int32(monkeypatch):
    """The last chunk's end (chunks times tiles a chunk times the tile, one past its last
    column) counts among the indices a launch forms: at the int32 limit it computes in int64.
    (The limit lowered to 127: a row of 110 in 8 chunks of a tile of 16 ends at 128.)"""
    monkeypatch.setattr(reduction, "_ROW_TILE", 16)
    monkeypatch.setattr(reduction, "_SPLIT_ELEMENTS", 0)
    op = REGISTRY["_safe_softmax"]
    x = torch.randn(1, 110, generator=torch.Generator().manual_seed(3))
    launched = launched_kernels(monkeypatch)
    for limit, wide in ((128, False), (127, True)):
        monkeypatch.setattr(indexing, "INT32_LIMIT", limit)
        monkeypatch.setattr(op, "plans", PlanCache())
        del launched[:]
        check_call(op, Call((x, 1)))
        assert [(o["CHUNKS"], o["INDEX_64"]) for _, o in launched] == [(8, wide)] * 2, launched


def test_split_rows_trace_a_long_diagonal(monkeypatch):
    """One value a row split across programs: a trace's diagonal of 110 (a tile of 16, a chunk a
    tile), exact for integers, as PyTorch sums it for floats."""
    monkeypatch.setattr(reduction, "_ROW_TILE", 16)
    monkeypatch.setattr(reduction, "_SPLIT_ELEMENTS", 0)
    op = REGISTRY["trace"]
    monkeypatch.setattr(op, "plans", PlanCache())
    launched = launched_kernels(monkeypatch)
    gen = torch.Generator().manual_seed(5)
    for x in (torch.randint(-1000, 1000, (110, 120), generator=gen),
              torch.randn(110, 110, generator=gen)):
        del launched[:]
        check_call(op, Call((x,)), exact=not x.is_floating_point())
        assert [name for name, _ in launched] == ["_chunk_stats_kernel",
                                                   "_chunk_finish_kernel"], launched


def _thread_elements(length, threads, vector, thread):
    """The elements of a row of ``length`` (whole vectors of ``vector``) that thread ``thread``
    of PyTorch's softmax backward adds where it caches the row in shared memory, in its order:
    its vectors, a stretch of ``threads`` vectors apart, to the row's end."""
    return [i for start in range(thread * vector, length, threads * vector)
            for i in range(start, start + vector)]


def _tree(values, pairs):
    """``values`` (0-d tensors, a power of two of them) added two at a time, level by level:
    ``pairs(n)`` the (i, j) added at a level of n values, into i's place."""
    values = list(values)
    while len(values) > 1:
        values = [values[i] + values[j] for i, j in pairs(len(values))]
    return values[0]


def _shuffle_down(n):
    """A shuffle-down level: lane i plus lane i + n/2."""
    return [(i, i + n // 2) for i in range(n // 2)]


def _neighbours(n):
    """Another tree: lane 2i plus lane 2i + 1."""
    return [(2 * i, 2 * i + 1) for i in range(n // 2)]


def _row_sum(row, threads, vector, within=lambda elements: elements, pairs=_shuffle_down):
    """``row``'s sum as PyTorch's softmax backward adds it where it caches the row in shared
    memory: each thread's elements (``_thread_elements``, ``within`` reordering each thread's
    list) one after the other, then the threads' sums in a shuffle-down tree within each warp,
    then the warps' sums alike; ``pairs`` another tree."""
    zero = torch.zeros((), dtype=row.dtype)
    sums = [functools.reduce(lambda a, b: a + b, [row[i] for i in within(
        _thread_elements(len(row), threads, vector, t))], zero) for t in range(threads)]
    lanes = min(threads, 32)
    warps = [_tree(sums[w * lanes:(w + 1) * lanes], pairs) for w in range(threads // lanes)]
    return _tree(warps, pairs)


def _reversed_vectors(vector):
    """A thread's elements with each vector's taken last to first."""
    return lambda elements: [i for v in range(0, len(elements), vector)
                             for i in reversed(elements[v:v + vector])]


@pytest.mark.parametrize("layout", ["contiguous", "copied"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_log_softmax_backward_sums_rows_in_pytorchs_order(monkeypatch, dtype, layout):
    """A row that PyTorch's softmax backward caches in shared memory is summed in its order:
    among its threads (``_softmax_backward_order``: 512 for rows of 3548 float32 or 3000
    float64 elements, neither a multiple of 16), each adding its 16-byte vectors' elements one
    after the other, a stretch of vectors apart, to the row's end, then the threads' sums in a
    shuffle-down tree within each warp, then the warps'. ``copied`` rows (not contiguous:
    PyTorch sums a contiguous, aligned copy of them) alike.

    Each row holds 1 and halves of its ulp (h), placed so that one other order gives another
    sum: h + h added to 1 one at a time round back to 1, together make a whole ulp. Row 0:
    1, then two h ending thread 0's second vector (a vector summed first: 1 + 2h). Row 1: 1,
    then h and 1.5 h in thread 0's next elements (1 + 2h; in the reverse order 1 + 4h).
    Row 2: 1, h and h first in threads 0, 16 and 17 (a tree pairing neighbours: 1 + 2h).
    Row 3: the same in warps 0, 8 and 9. Row 4: 1 in thread 0, two h ending thread 256's
    first vector (256 threads, the family's tile of 4096 float32 elements on 8 warps, would
    give them to thread 0: 1). Each row's sum is read back exactly from its outputs where
    grad is 0 (output 0: grad - total)."""
    length = {torch.float32: 3548, torch.float64: 3000}[dtype]
    threads, vector = 512, 16 // dtype.itemsize
    half_ulp = torch.finfo(dtype).eps / 2
    grad = torch.zeros(5, length + 3, dtype=dtype)[:, :length] if layout == "copied" \
        else torch.zeros(5, length, dtype=dtype)
    thread = [_thread_elements(length, threads, vector, t) for t in range(threads)]
    grad[:, thread[0][0]] = 1.0
    grad[0, thread[0][2 * vector - 2:2 * vector]] = half_ulp
    grad[1, thread[0][vector:vector + 2]] = torch.tensor([half_ulp, 1.5 * half_ulp], dtype=dtype)
    grad[2, [thread[16][0], thread[17][0]]] = half_ulp
    grad[3, [thread[256][0], thread[288][0]]] = half_ulp
    grad[4, thread[256][vector - 2:vector]] = half_ulp
    expected = [_row_sum(row, threads, vector) for row in grad]
    ulp = 2 * half_ulp
    assert [e.item() - 1 for e in expected] == [0.0, ulp, 0.0, 0.0, ulp]
    # the other orders each row tells apart
    pairs_first = grad[0].clone()  # thread 0's pair of h summed first: one element of 2h
    pairs_first[thread[0][2 * vector - 2]], pairs_first[thread[0][2 * vector - 1]] = ulp, 0.0
    assert _row_sum(pairs_first, threads, vector) != expected[0]
    assert _row_sum(grad[1], threads, vector, _reversed_vectors(vector)) != expected[1]
    for r in (2, 3):
        assert _row_sum(grad[r], threads, vector, pairs=_neighbours) != expected[r]
    assert _row_sum(grad[4], 256, vector) != expected[4]
    output = torch.zeros(grad.shape, dtype=dtype)
    op = REGISTRY["_log_softmax_backward_data"]
    monkeypatch.setattr(op, "plans", PlanCache())
    launched = launched_kernels(monkeypatch)
    device = flaggems_exp.device
    ours = op(grad.to(device) if layout == "contiguous" else _same_layout_on(grad, device),
              output.to(device), -1, dtype).cpu()
    assert [(name, options["THREADS"], options["VECTOR"]) for name, options in launched] == [
        ("_ordered_sum_kernel", threads, vector)], launched
    for r, total in enumerate(expected):
        zeros = grad[r] == 0
        assert torch.equal(ours[r, zeros], torch.full_like(ours[r, zeros], -total.item())), r


def _softmax_in_pytorchs_order(x, result, threads):
    """PyTorch's CUDA softmax of the rows of ``x`` (its last dim), writing ``result``, each
    row's exps summed among ``threads`` threads an element at a time (thread t adding t,
    t + threads, ... in turn, then ``_row_sum``'s trees; no kernel here takes PyTorch's
    vectors of the forward's shared-memory rows): on a GPU, PyTorch's own (eager's) result;
    in the interpreter, in numpy: x converted to the result's dtype (float16 read to write
    float32 is not), the exps, sums and quotients in float32 (float64 for float64): numpy's
    exp is the interpreter's."""
    if x.is_cuda:
        return torch.softmax(x, -1, dtype=None if result == x.dtype else result).cpu()
    half_to_float = (x.dtype, result) == (torch.float16, torch.float32)
    accumulate = torch.float64 if result == torch.float64 else torch.float32
    values = (x if half_to_float else x.to(result)).to(accumulate).numpy()
    exps = np.exp(values - values.max(axis=-1, keepdims=True))
    rows, length = exps.shape
    padded = np.zeros((rows, -(-length // threads) * threads), dtype=exps.dtype)
    padded[:, :length] = exps
    sums = np.zeros((rows, threads), dtype=exps.dtype)
    for start in range(0, padded.shape[1], threads):  # each thread's elements, in turn
        sums = sums + padded[:, start:start + threads]
    lanes = min(threads, 32)
    v = sums.reshape(rows, threads // lanes, lanes)
    while v.shape[2] > 1:  # a shuffle-down tree in each warp, then across the warps
        v = v[:, :, :v.shape[2] // 2] + v[:, :, v.shape[2] // 2:]
    v = v[:, :, 0]
    while v.shape[1] > 1:
        v = v[:, :v.shape[1] // 2] + v[:, v.shape[1] // 2:]
    return torch.from_numpy(exps / v).to(result)


@pytest.mark.parametrize("length, n_rows, dtype, result, threads, whole, all_rows", [
    (5, 3, torch.float32, torch.float32, 8, False, False),  # a warp's lanes: the length
    (100, 3, torch.float32, torch.float32, 32, False, False),  # rounded up; 4 rows a program
    (64, 8, torch.float32, torch.float32, 32, True, True),  # 4 rows a program, none masked
    (64, 6, torch.float16, torch.float16, 32, True, False),  # the second program's last 2
    (2048, 3, torch.float32, torch.float32, 32, True, True),  # the longest: 8192 bytes
    (1000, 3, torch.float16, torch.float16, 32, False, True),
    (1024, 3, torch.float16, torch.float32, 32, True, True),  # float16 read, float32 written
    (2100, 3, torch.float32, torch.float32, 1024, False, True),  # the register kernel
    (4096, 2, torch.float16, torch.float16, 1024, True, True),
    (3000, 3, torch.bfloat16, torch.bfloat16, 1024, False, True),
    (1500, 3, torch.float64, torch.float64, 1024, False, True),  # 12000 bytes
    (2100, 3, torch.bfloat16, torch.float32, 1024, False, True),  # bfloat16 converted first
])
def test_softmax_sums_exps_in_pytorchs_order(monkeypatch, length, n_rows, dtype, result,
                                            threads, whole, all_rows):
    """_safe_softmax sums each row's exps (rows along the last dim) in the order of PyTorch's
    CUDA kernel for that row (``_softmax_forward_order``), then divides: its warp kernel's
    lanes, or its register kernel's 1024 threads, an element at a time; contiguous rows and
    rows PyTorch copies first (offset, stepped) alike; rows of whole stretches, as many as the
    programs take, with no lane masked (``WHOLE``, ``ALL_ROWS``), and others, the second half
    of their stretches masked. Checked bit for bit against a model of that order (float32
    sums differ between orders in most random rows). (Rows past the last one read and write
    a row's values again, their coordinates wrapped: only the flag shows their mask.)"""
    op = REGISTRY["_safe_softmax"]
    gen = torch.Generator().manual_seed(length)
    x = (torch.randn(n_rows, length + 2, generator=gen) * 4).to(dtype).to(flaggems_exp.device)
    expected = _softmax_in_pytorchs_order(x[:, :length], result, threads)
    stepped = torch.zeros(n_rows, 2 * length, dtype=dtype, device=x.device)[:, ::2]
    stepped.copy_(x[:, :length])
    for rows in (x[:, :length].contiguous(), x[:, :length], stepped):
        monkeypatch.setattr(op, "plans", PlanCache())
        launched = launched_kernels(monkeypatch)
        ours = op(rows, -1, dtype=None if result == dtype else result)
        assert [(options["THREADS"], options["WHOLE"], options["ALL_ROWS"])
                for _, options in launched] == [(threads, whole, all_rows)], launched
        assert torch.equal(ours.cpu(), expected)


def test_softmax_sums_tell_pytorchs_order_apart(monkeypatch):
    """Rows built so that each other order gives another sum, read back from the quotient of
    the row's max (1 / sum): exps of 1 (the max) and of about 0.45 of an ulp of 1 (e), the
    rest -inf (exps of 0). Added to 1 one at a time, two e round back to 1; together they make
    1 + ulp. Row 0: e at the elements 32 and 64 of a warp's row of 1024 (lane 0's second and
    third: 1 + e + e is 1; pairing neighbours or stretches first, 1 + ulp). Row 1: 1 in lane
    0, e in lanes 16 and 17 (a tree pairing neighbours: 1 + ulp). Row 2 (the register kernel,
    rows of 4096): 1 at element 0, e at 1024 and 2048, thread 0's second and third (two
    threads a lane, as 2048 threads would have them: 1 + ulp). Row 3: 1 in thread 0, e in
    threads 512 and 544 (warps 16 and 17: pairing warps as neighbours, 1 + ulp)."""
    op = REGISTRY["_safe_softmax"]
    e = math.log(0.45 * torch.finfo(torch.float32).eps)
    x = torch.full((4, 1024), float("-inf"))
    x[:, 0] = 0.0
    x[0, [32, 64]] = e
    x[1, [16, 17]] = e
    long_rows = torch.full((2, 4096), float("-inf"))
    long_rows[:, 0] = 0.0
    long_rows[0, [1024, 2048]] = e
    long_rows[1, [512, 544]] = e
    for rows, threads, lanes_apart in ((x[:2], 32, [(0, 32, 64), (1, 16, 17)]),
                                       (long_rows, 1024, [(0, 1024, 2048), (1, 512, 544)])):
        monkeypatch.setattr(op, "plans", PlanCache())
        ours = op(rows.to(flaggems_exp.device), -1).cpu()
        expected = _softmax_in_pytorchs_order(rows.to(flaggems_exp.device), torch.float32,
                                              threads)
        assert torch.equal(ours, expected)
        assert (1 / ours[:, 0] == 1).all(), ours[:, 0]  # each sum is 1: every e rounded off
        for r, i, j in lanes_apart:  # both e together: another sum
            together = rows[r].clone()
            together[i], together[j] = math.log(0.9 * torch.finfo(torch.float32).eps), -math.inf
            assert (_softmax_in_pytorchs_order(together[None], torch.float32, threads)[0, 0]
                    != expected[r, 0])


@pytest.mark.parametrize("length, dtype, result, offset", [
    (10001, torch.float16, torch.float16, 0),  # not whole vectors: its plain kernel
    (10000, torch.float16, torch.float16, 1),  # not 16-byte aligned: its plain kernel
    (30000, torch.float16, torch.float16, 0),  # too long to cache
    (1100, torch.float16, torch.float32, 1),  # float16 read to write float32, not aligned
    (9000, torch.float32, torch.float32, 0),  # the register kernel's, nine stretches: not held
    (10000, torch.float16, torch.float16, 0),  # cached in shared memory: not held
    (1104, torch.float16, torch.float32, 0),
])
def test_softmax_keeps_the_tiles_where_pytorch_adds_in_another_order(monkeypatch, length, dtype,
                                                                      result, offset):
    """Rows PyTorch's plain block kernel reads (from the row's first 16-byte boundary, its end
    an element a thread), rows along another dim, and rows an ordered launch would stream
    (three reads a row: the max, the sum, the outputs) keep the family's tiles."""
    op = REGISTRY["_safe_softmax"]
    storage = torch.randn(2 * length + offset, dtype=torch.float32).to(dtype)
    x = storage.to(flaggems_exp.device)[offset:].view(2, length)
    monkeypatch.setattr(op, "plans", PlanCache())
    launched = launched_kernels(monkeypatch)
    op(x, -1, dtype=None if result == dtype else result)
    op(x.t(), 0, dtype=None if result == dtype else result)
    assert all(name not in ("_ordered_sum_kernel", "_held_ordered_kernel")
               for name, _ in launched), launched


@pytest.mark.parametrize("length, threads", [(1000, 32), (20, 32), (7, 8)])
def test_log_softmax_backward_sums_warp_rows_in_pytorchs_order(monkeypatch, length, threads):
    """Rows PyTorch's softmax backward gives a warp (up to 1024 elements and 4096 bytes) are
    summed in its lanes' order: lane l adds the elements l, l + 32, ... in turn (fewer lanes
    for rows shorter than 32: the length rounded up to a power of two), then the lanes' sums
    in a shuffle-down tree. Each row's sum is read back exactly where grad and output are 0
    (grad - exp(0) * sum)."""
    op = REGISTRY["_log_softmax_backward_data"]
    gen = torch.Generator().manual_seed(length)
    grad = torch.randn(4, length, generator=gen) * 3
    output = torch.log_softmax(torch.randn(4, length, generator=gen), -1)
    grad[:, 0] = output[:, 0] = 0.0
    expected = [_row_sum(row, threads, 1) for row in grad]
    monkeypatch.setattr(op, "plans", PlanCache())
    launched = launched_kernels(monkeypatch)
    device = flaggems_exp.device
    ours = op(grad.to(device), output.to(device), -1, torch.float32).cpu()
    assert [(name, options["THREADS"]) for name, options in launched] == [
        ("_held_ordered_kernel", threads)], launched
    assert ours[:, 0].tolist() == [-total.item() for total in expected]
    if length >= 64:  # another order gives another sum in some row
        assert any(_row_sum(row, threads, 1, pairs=_neighbours) != total
                   for row, total in zip(grad, expected))


def _same_layout_on(tensor, device):
    """``tensor`` on ``device`` with its storage offset and strides (the same distance past a
    16-byte boundary: a fresh storage is aligned)."""
    storage = torch.empty(tensor.untyped_storage().nbytes() // tensor.element_size(),
                          dtype=tensor.dtype, device=device)
    moved = storage.as_strided(tensor.shape, tensor.stride(), tensor.storage_offset())
    return moved.copy_(tensor)


@pytest.mark.parametrize("length, dtype, result, threads", [
    (1024, torch.float32, torch.float32, (32, 1)),  # a warp's row: 1024 elements, 4096 bytes
    (20, torch.float16, torch.float16, (32, 1)),  # a warp's row: 32 lanes, rounded up
    (7, torch.float64, torch.float64, (8, 1)),
    (1025, torch.float16, torch.float16, None),  # not whole vectors of 8
    (1032, torch.float16, torch.float16, 64),
    (1028, torch.float32, torch.float32, 128),
    (600, torch.float64, torch.float64, 256),  # 4800 bytes
    (2048, torch.float16, torch.float16, 128),
    (8192, torch.bfloat16, torch.bfloat16, 512),
    (8192, torch.float32, torch.float32, 512),
    (12264, torch.float32, torch.float32, 512),  # the most float32 elements cached
    (12272, torch.float32, torch.float32, None),
    (24536, torch.float16, torch.float16, 512),
    (24544, torch.float16, torch.float16, None),
    (1500, torch.float32, torch.float16, 256),  # float32 grad, float16 result: 3000 bytes
])
def test_softmax_backward_order_is_pytorchs(length, dtype, result, threads):
    """PyTorch's threads a row (``SoftMax_getBlockSize``: half the row's 16-byte vectors,
    rounded up to a power of two, at most 512, at least 32) where it caches the row in shared
    memory (48 KB a block, less its threads' partial sums: fewer elements than that holds, and
    whole vectors), each adding 16-byte vectors; a warp's lanes (32, fewer for rows shorter
    than 32: the row's length rounded up to a power of two), an element at a time, for a row
    of at most 1024 elements and 4096 bytes of the result; None for one its other block kernel
    reads."""
    from flaggems_exp.ops.reductions import _softmax_backward_order
    x = torch.empty(3, length, dtype=dtype)
    out = torch.empty(3, length, dtype=result)
    rows = reduction.Rows(x, 1, (), result, torch.float64 if dtype == torch.float64 else
                          torch.float32, y=torch.empty_like(x))
    expected = (threads, 16 // x.element_size()) if isinstance(threads, int) else threads
    assert _softmax_backward_order(rows, out) == expected


@pytest.mark.parametrize("length, dtype, result, offset, expected", [
    (1, torch.float32, torch.float32, 0, (1, 1)),
    (20, torch.float16, torch.float16, 0, (32, 1)),  # a warp: 32 lanes, at most
    (2048, torch.float32, torch.float32, 0, (32, 1)),  # 8192 bytes
    (2049, torch.float16, torch.float16, 0, (1024, 1)),  # the register kernel
    (1024, torch.float64, torch.float64, 0, (32, 1)),
    (1025, torch.float64, torch.float64, 0, (1024, 1)),  # 8200 bytes
    (9216, torch.float32, torch.float32, 1, (1024, 1)),  # any alignment
    (9224, torch.float16, torch.float16, 0, (1024, 8)),  # cached in shared memory
    (9224, torch.float16, torch.float16, 1, None),  # not aligned: its plain kernel
    (9220, torch.float16, torch.float16, 0, None),  # not whole vectors
    (24504, torch.float16, torch.float16, 0, (1024, 8)),  # (48 KB - 128) / 2 = 24512
    (24512, torch.float16, torch.float16, 0, None),
    (1024, torch.float16, torch.float32, 0, (32, 1)),  # float16 read to write float32
    (1032, torch.float16, torch.float32, 0, (1024, 8)),  # no register kernel there
    (1032, torch.float16, torch.float32, 1, None),
    (2049, torch.bfloat16, torch.float32, 0, (1024, 1)),  # converted: float32's
    (9224, torch.float32, torch.float16, 1, (1024, 8)),  # converted: a fresh copy
])
def test_softmax_forward_order_is_pytorchs(length, dtype, result, offset, expected):
    """PyTorch's CUDA softmax forward's threads and vectors for a row (``host_softmax``): a
    warp's lanes up to 2048 elements and 8192 bytes as it reads them (1024 and 4096 where it
    reads float16 to write float32), its register kernel's 1024 threads up to 9216 elements
    (not for float16 to float32), its shared-memory kernel's 1024 threads of 16-byte vectors
    for aligned rows of whole vectors under 48 KB less 32 partial sums; None for its plain
    kernel."""
    from flaggems_exp.ops.reductions import _softmax_forward_order
    x = torch.empty(2 * length + offset, dtype=dtype)[offset:].view(2, length)
    rows = reduction.Rows(x, 1, (), result, torch.float64 if result == torch.float64 else
                          torch.float32, cast=result)
    assert _softmax_forward_order(rows, None) == expected


def test_ordered_sums_only_where_pytorch_sums_in_that_order(monkeypatch):
    """The ordered launch takes rows along the last dim that PyTorch caches in shared memory
    (contiguous, streamed a program a row) or gives a warp (held, strided ones too: PyTorch
    sums a contiguous copy); rows along another dim (PyTorch's spatial kernel adds them in
    another order), strided rows it would stream, rows PyTorch reads with its other block
    kernel (not starting on a 16-byte boundary, not of whole vectors, too long to cache),
    those of an op declaring its tile, and a few long rows split across programs keep the
    family's tiles."""
    op = REGISTRY["_log_softmax_backward_data"]
    monkeypatch.setattr(op, "plans", PlanCache())
    launched = launched_kernels(monkeypatch)
    gen = torch.Generator().manual_seed(29)

    def kernels(grad, dim):
        """The kernels of a call on ``grad`` (on the device, as laid out and as far past a
        16-byte boundary), which gives PyTorch's values."""
        output = torch.log_softmax(torch.randn(grad.shape, generator=gen), dim)
        del launched[:]
        device = flaggems_exp.device
        ours = op(_same_layout_on(grad, device), output.to(device), dim, torch.float32)
        expected = torch.ops.aten._log_softmax_backward_data(grad, output, dim, torch.float32)
        testing.assert_close(ours.cpu(), expected)
        return [name for name, _ in launched]

    assert kernels(torch.randn(3, 1100, generator=gen), 1) == ["_ordered_sum_kernel"]
    assert kernels(torch.randn(3, 1100, 1, generator=gen), 1) == ["_ordered_sum_kernel"]
    assert kernels(torch.randn(1100, 3, generator=gen), 0) == ["_reduction_kernel"]
    assert kernels(torch.randn(3, 2200, generator=gen)[:, ::2], 1) == ["_reduction_kernel"]
    assert kernels(torch.randn(3, 2000, generator=gen)[:, ::2], 1) == ["_held_ordered_kernel"]
    shifted = torch.randn(3 * 1100 + 1, generator=gen)[1:].view(3, 1100)
    assert shifted.data_ptr() % 16 and kernels(shifted, 1) == ["_reduction_kernel"]
    assert kernels(torch.randn(3, 1101, generator=gen), 1) == ["_reduction_kernel"]
    assert kernels(torch.randn(2, 12272, generator=gen), 1) == ["_reduction_kernel"]
    monkeypatch.setattr(op, "tile", (1, 2048, 4))  # as ``benchmarks.programs`` declares one
    monkeypatch.setattr(op, "plans", PlanCache())
    assert kernels(torch.randn(3, 1100, generator=gen), 1) == ["_reduction_kernel"]
    monkeypatch.setattr(op, "tile", None)
    monkeypatch.setattr(reduction, "_SPLIT_ELEMENTS", 0)
    monkeypatch.setattr(reduction, "_ROW_TILE", 16)  # (the interpreter's tile holds the row)
    monkeypatch.setattr(op, "plans", PlanCache())  # the first call's plan would replay
    assert kernels(torch.randn(3, 1100, generator=gen), 1) == [
        "_chunk_stats_kernel", "_chunk_finish_kernel"]


def test_few_rows_split_into_enough_programs(monkeypatch):
    """A two-pass launch of fewer than ``_SPLIT_BELOW`` programs over at least
    ``_SPLIT_ELEMENTS`` elements splits each row into a power of two of chunks, enough for
    ``_SPLIT_PROGRAMS`` programs, never more than one a tile (rounded up to a power of two)
    nor than a tile has lanes; an op combining its chunks in no declared way never splits."""
    monkeypatch.setattr(reduction, "_SPLIT_BELOW", 128)
    monkeypatch.setattr(reduction, "_SPLIT_PROGRAMS", 256)
    monkeypatch.setattr(reduction, "_SPLIT_ELEMENTS", 1 << 18)
    chunks = reduction._split_chunks
    assert chunks(8, 8 * 4194304, 256, 16384) == 32
    assert chunks(1, 1 << 24, 1024, 16384) == 256
    assert chunks(127, 127 * 262144, 16, 16384) == 4
    assert chunks(128, 128 * 262144, 16, 16384) == 1  # as many programs as about the SMs
    assert chunks(1, 300_000, 5, 65536) == 8  # a tile a chunk, the last three past the row's end
    assert chunks(1, 1 << 20, 1 << 14, 64) == 64  # as many as a tile's lanes
    assert chunks(8, (1 << 18) - 1, 64, 16384) == 1  # too little to pay for a second launch
    assert chunks(1, 1 << 20, 1, 1 << 20) == 1  # a row of one tile is read once

    class OwnCombine(type(REGISTRY["_log_softmax_backward_data"])):
        combine = staticmethod(reduction.sum_combine)  # declared anew: no combine_chunks

    assert OwnCombine.combine_chunks is None
    assert type(REGISTRY["_log_softmax_backward_data"]).combine_chunks is not None


def test_rows_of_the_benchmark_shape_compile_to_one_read():
    """Compiled for the H200 (sm_90), float16 rows of 8192: a softmax row held in registers by
    one program (read once, in PyTorch's order: ``test_softmax_rows_held_in_pytorchs_order``),
    and the trace's 8192 diagonal elements in one tile, their loads all in flight at once."""
    launches = {launch["case"]: launch for launch in ptx_census.compiled_launches(
        "softmax_last_dim", "trace")}
    softmax = launches["softmax_last_dim"]
    assert softmax["grid"] == [8192] and softmax["kernel"] == "_held_ordered_kernel", softmax
    assert softmax["loads"] == softmax["constexprs"]["STRETCHES"], softmax
    trace = launches["trace"]
    assert trace["grid"] == [1] and trace["constexprs"]["ONE_PASS"], trace


def test_ordered_rows_stream_in_pytorchs_vectors():
    """Compiled for sm_90, float16 rows of 8192 summed in PyTorch's order: one program a row of
    512 threads (16 warps), which sums each stretch's 16-byte vectors in a loop (one vector
    load a thread an iteration, its lines kept in L2: evict_last), then reads x and y again
    for the output in vectors (their last read: evict_first) and stores in vectors; in 32
    registers a thread (four programs an SM), none spilled; every element's exp once. Rows
    of 3548 float32 elements (loaded 4 bytes at a time: Triton cannot prove them aligned)
    compile in at most 40 registers, none spilled."""
    launch, odd = ptx_census.compiled_launches(
        "log_softmax_backward_last_dim", "log_softmax_backward_rows_of_3548_float32",
        machine_code=True)
    assert odd["kernel"] == "_ordered_sum_kernel" and odd["constexprs"]["THREADS"] == 512, odd
    assert odd["registers"] <= 40 and odd["local_accesses"] == 0, odd
    assert launch["kernel"] == "_ordered_sum_kernel" and launch["num_warps"] == 16, launch
    assert (launch["constexprs"]["THREADS"], launch["constexprs"]["VECTOR"]) == (512, 8)
    assert launch["loads"] == launch["vector_loads"] == 3, launch
    assert launch["loads_evict_last"] == 1 and launch["loads_evict_first"] == 2, launch
    assert launch["stores"] == launch["vector_stores"] == 1, launch
    assert launch["exp2"] == 8, launch
    assert launch["registers"] <= 32 and launch["local_accesses"] == 0, launch


def test_reduction_loads_keep_in_l2_only_what_is_read_again():
    """Compiled for sm_90 (float16): rows of 65536, longer than a tile, are read twice: the
    statistics pass's loads of x ``evict_last`` (their lines are read again by the output
    pass), the output pass's loads of x and y ``evict_first`` (the last read of those lines);
    rows held in one tile (of 1100) or in PyTorch's order (of 1024), and a trace's diagonal
    of 20000 (one value, tile by tile), are read once, with the cache's default policy."""
    launches = {launch["case"]: launch for launch in ptx_census.compiled_launches(
        "log_softmax_backward_rows_of_1100", "log_softmax_backward_rows_of_1024",
        "log_softmax_backward_long_rows", "trace_long_diagonal")}
    two_passes = launches["log_softmax_backward_long_rows"]
    assert not two_passes["constexprs"]["ONE_PASS"], two_passes
    # the statistics pass loads x alone (its first tile, then the loop's), the output pass x
    # and y: as many of each
    assert two_passes["loads_evict_last"] == two_passes["loads_evict_first"] \
        == two_passes["loads"] // 2 > 0, two_passes
    one_pass = launches["log_softmax_backward_rows_of_1100"]
    held = launches["log_softmax_backward_rows_of_1024"]
    trace = launches["trace_long_diagonal"]
    assert one_pass["constexprs"]["ONE_PASS"] and not trace["constexprs"]["ONE_PASS"]
    assert held["kernel"] == "_held_ordered_kernel", held
    for read_once in (one_pass, held, trace):
        assert read_once["loads"] > 0 and read_once["loads_evict_first"] == read_once[
            "loads_evict_last"] == 0, read_once


def test_one_pass_rows_with_a_second_input_take_the_load_ahead_allowance():
    """Compiled for sm_90 (float16, 65536 x 1100: rows PyTorch reads with its plain block
    kernel, one tile each): a one-pass launch with a second input may take 64 registers a
    thread (``_LOAD_AHEAD_REGISTERS``: room to issue y's loads with x's; measured on rows of
    1024 in one tile, which now sum in PyTorch's order) and spills nothing."""
    one_pass, = ptx_census.compiled_launches("log_softmax_backward_rows_of_1100",
                                             machine_code=True)
    assert one_pass["constexprs"]["ONE_PASS"] and one_pass["constexprs"]["HAS_Y"], one_pass
    assert one_pass["maxnreg"] == 64, one_pass
    assert one_pass["registers"] <= 64 and one_pass["local_accesses"] == 0, one_pass


def test_softmax_tiles_divide_by_one_reciprocal_a_row():
    """Compiled for sm_90, rows an ordered launch leaves to the family's tiles: float16 rows of
    8192 read to write float32 (PyTorch caches those in shared memory: streamed, three reads)
    in one tile on 16 warps keep the range test (one branch, each element's division for rows
    out of it) in at most 49 registers; float16 rows of 16384 (32 elements a thread) divide
    by one reciprocal a row with no branch in at most 64 registers, two programs an SM. None
    spilled."""
    launches = {launch["case"]: launch for launch in ptx_census.compiled_launches(
        "softmax_last_dim_half_to_float", "softmax_rows_of_16384", machine_code=True)}
    for case, finish, branches, registers in (
            ("softmax_last_dim_half_to_float", "_held_row_finish", 1, 49),
            ("softmax_rows_of_16384", "_float16_finish", 0, 64)):
        launch = launches[case]
        assert launch["kernel"] == "_reduction_kernel", launch
        assert launch["constexprs"]["ONE_PASS"] and launch["num_warps"] == 16, launch
        assert launch["functions"]["FINISH"] == finish, launch
        assert launch["reciprocals"] == 1 and launch["branches"] == branches, launch
        assert launch["divisions"] == (0 if branches == 0 else launch["exp2"]), launch
        assert launch["registers"] <= registers and launch["local_accesses"] == 0, launch


def test_softmax_rows_held_in_pytorchs_order():
    """Compiled for sm_90, rows summed in PyTorch's order held in registers
    (``_held_ordered_kernel``), read once, every element's exp once, none spilled:
    - 8192 x 8192 (PyTorch's register kernel: 1024 threads): a program a row on 8 warps, 4
      lanes a thread, 8 loads a thread (a stretch each), in at most 64 registers (float16:
      a reciprocal a row, no division; bfloat16: each element's division, no branch);
    - 65536 x 1024 and 32768 x 2048 (a warp a row): a program of one warp a row, an element a
      thread a load, no barrier (a thread holds every stretch of its lane: no pick crosses
      threads), at most 26 and 24 instructions an element in at most 64 and 80 registers,
      left to ptxas. Their lanes are not masked (``WHOLE``: every stretch's lanes are in the
      row; ``ALL_ROWS``: so are the programs' rows): the only selects are the finish's (a
      row of only -inf gives 0), where a mask an element took 95 and (capped at 128) 128
      registers and 34.5 and 32.9 instructions an element (Triton 3.6). Rows of 1000 mask
      the second half of their stretches (the first half is always whole): at most 31
      instructions an element in 80 registers; rows of 2000, so masked, 64 elements a
      thread, take the cap of 128 registers (``_HELD_REGISTERS``). The softmax backward's
      warp rows of 1024 without a mask, in at most 64 registers and no select."""
    launches = {launch["case"]: launch for launch in ptx_census.compiled_launches(
        "softmax_last_dim", "softmax_last_dim_bfloat16", "softmax_rows_of_1024",
        "softmax_rows_of_2048", "softmax_rows_of_1000", "softmax_rows_of_2000",
        "log_softmax_backward_rows_of_1024", machine_code=True)}
    for case, finish, divisions in (("softmax_last_dim", "_float16_finish", 0),
                                    ("softmax_last_dim_bfloat16", "_softmax_finish", 32)):
        launch = launches[case]
        assert launch["kernel"] == "_held_ordered_kernel" and launch["grid"] == [8192], launch
        assert (launch["constexprs"]["THREADS"], launch["constexprs"]["LOAD"],
                launch["num_warps"]) == (1024, 4, 8), launch
        assert launch["functions"]["FINISH"] == finish, launch
        assert launch["loads"] == launch["stores"] == 8 and launch["exp2"] == 32, launch
        assert launch["branches"] == 0 and launch["divisions"] == divisions, launch
        assert launch["reciprocals"] == (divisions == 0), launch
        assert launch["constexprs"]["WHOLE"] and launch["selects"] == 32, launch
        assert launch["registers"] <= 64 and launch["local_accesses"] == 0, launch
    for case, rows, elements, whole, selects, registers, instructions in (
            ("softmax_rows_of_1024", 65536, 32, True, 32, 64, 26),
            ("softmax_rows_of_2048", 32768, 64, True, 64, 80, 24),
            ("softmax_rows_of_1000", 65536, 32, False, 64, 80, 31)):
        warp = launches[case]
        assert warp["kernel"] == "_held_ordered_kernel" and warp["grid"] == [rows], warp
        assert (warp["constexprs"]["ROWS"], warp["constexprs"]["THREADS"], warp["num_warps"]) \
            == (1, 32, 1), warp
        assert warp["loads"] == warp["stores"] == warp["exp2"] == elements, warp
        assert warp["barriers"] == 0 and warp["maxnreg"] is None, warp
        assert warp["constexprs"]["WHOLE"] == whole and warp["selects"] == selects, warp
        assert warp["sass_instructions"] <= instructions * elements, warp
        assert warp["registers"] <= registers and warp["local_accesses"] == 0, warp
    capped = launches["softmax_rows_of_2000"]
    assert not capped["constexprs"]["WHOLE"] and capped["maxnreg"] == 128, capped
    assert capped["registers"] <= 128, capped
    backward = launches["log_softmax_backward_rows_of_1024"]
    assert backward["kernel"] == "_held_ordered_kernel" and backward["loads"] == 64, backward
    assert backward["constexprs"]["WHOLE"] and backward["selects"] == 0, backward
    assert backward["registers"] <= 64 and backward["local_accesses"] == 0, backward


def test_long_softmax_rows_keep_two_programs_an_sm():
    """Compiled for sm_90 (512 x 65536): rows read twice in at most 64 registers a thread (two
    programs of 16 warps an SM) with none spilled. float16 results divide by one reciprocal a
    row, with no branch of their own; bfloat16 ones divide each element, since the range
    test's branches took them to 90 registers (one program)."""
    launches = {launch["case"]: launch for launch in ptx_census.compiled_launches(
        "softmax_long_rows", "softmax_long_rows_bfloat16", machine_code=True)}
    for case, finish, divisions in (("softmax_long_rows", "_float16_finish", 0),
                                    ("softmax_long_rows_bfloat16", "_softmax_finish", 32)):
        launch = launches[case]
        assert not launch["constexprs"]["ONE_PASS"] and launch["num_warps"] == 16, launch
        assert launch["functions"]["FINISH"] == finish, launch
        assert launch["divisions"] == divisions, launch
        assert launch["registers"] <= 64 and launch["local_accesses"] == 0, launch


def test_few_long_rows_split_across_two_programs_an_sm():
    """Compiled for sm_90 (8 x 4194304): each row split across 32 programs (256, about two an
    SM of 16 warps), in two launches: the chunks' statistics, loading x to be read again
    (evict_last), then each chunk's outputs from its row's combined statistics, loading x for
    the last time (evict_first), in the same tiles as a row read twice by one program; each
    in at most 64 registers a thread with none spilled. float16 results divide nothing."""
    launches = ptx_census.compiled_launches(
        "softmax_few_long_rows", "softmax_few_long_rows_bfloat16",
        "log_softmax_backward_few_long_rows", machine_code=True)
    cases = {}
    for launch in launches:
        cases.setdefault(launch["case"], []).append(launch)
    for case, finish in (("softmax_few_long_rows", "_float16_finish"),
                         ("softmax_few_long_rows_bfloat16", "_softmax_finish"),
                         ("log_softmax_backward_few_long_rows", "finish")):
        stats, outputs = cases[case]
        assert (stats["kernel"], outputs["kernel"]) == ("_chunk_stats_kernel",
                                                        "_chunk_finish_kernel"), cases[case]
        for launch in (stats, outputs):
            assert launch["grid"] == [256] and launch["num_warps"] == 16, launch
            assert launch["constexprs"]["CHUNKS"] == 32 and launch["constexprs"]["BLOCK"] == 16384
            assert launch["registers"] <= 64 and launch["local_accesses"] == 0, launch
        assert outputs["functions"]["FINISH"] == finish, outputs
        assert stats["loads_evict_last"] == stats["loads"] > 0, stats
        assert outputs["loads_evict_first"] > 0 and outputs["loads_evict_last"] == 0, outputs
        if finish == "_float16_finish":
            assert outputs["divisions"] == 0 and outputs["reciprocals"] == 1, outputs


def test_float16_softmax_rows_of_2_24_elements_divide_each_element():
    """float16 results take one reciprocal a row where the row's sum is sure to stay within
    2**24, the range where its steps are the division: rows shorter than 2**24 elements."""
    op = REGISTRY["_safe_softmax"]
    tile = (1, 4096, 16)
    for length, finish in ((2 ** 24 - 1, "_float16_finish"), (2 ** 24, "_softmax_finish")):
        x = torch.empty((1, length), dtype=torch.float16)
        rows = op.prepare(None, x, -1, None)
        assert op.kernel_functions(rows, tile, False)[2].__name__ == finish, length


def test_ranked_tiles_load_x_and_their_first_rank_with_the_mask():
    """Compiled for sm_90 (masked_scatter at the benchmarks' L case, 8192x8192 float16): the
    count pass, the scan, then the main pass on 8 warps, which loads the mask, x and the
    tile's first rank before the first barrier of the tile's scans, so that their latency
    overlaps the scans, the mask and x in 16-byte vectors; only the source's gathers come
    after (a load of x after the scans waited a memory round trip more per tile)."""
    launches = ptx_census.compiled_launches("masked_scatter")
    assert [(launch["kernel"], launch["constexprs"].get("COUNT_ONLY")) for launch in launches] \
        == [("_index_kernel", True), ("_exclusive_scan", None), ("_index_kernel", False)]
    main = launches[-1]
    assert main["num_warps"] == 8 and main["vector_loads"] == 3, main  # 16 mask bytes, 32 of x
    assert main["loads_before_barrier"] == main["vector_loads"] + 1, main
    assert main["stores"] == main["vector_stores"], main


def test_take_gathers_in_more_programs_of_more_warps():
    """Compiled for sm_90: take's gathers wait on the indices they load, so its launch keeps
    more of them in flight than a streaming tile would: at the benchmarks' M case (1M float16
    elements by 1M indices) 2048 programs of 512 on 8 warps (2 elements a thread), not 1024 of
    1024 on 4; at L (8192x8192) tiles of 4096, on 8 warps too."""
    from flaggems_exp.families import index

    launches = ptx_census.compiled_launches("take_M", "take")
    assert [launch["kernel"] for launch in launches] == ["_index_kernel"] * 2
    for launch, tile, programs in zip(launches, (512, 4096), (2048, 16384)):
        area = launch["constexprs"]["BLOCK_R"] * launch["constexprs"]["BLOCK_C"]
        assert (area, launch["grid"], launch["num_warps"]) == (
            tile, [programs], index.GATHER_WARPS), launch


def test_tiles_shrink_to_fill_the_gpu(monkeypatch):
    """Compiled, a call too small for 1024 tiles of 4096 gets smaller tiles, down to 1024
    elements (tril at M: 1M elements in 1024 programs, not 256); a launch that gathers by value
    (take) fills 2048 programs, down to 512 elements; a ranked launch (masked_scatter) keeps
    whole tiles of 4096, which its warps and scan count on."""
    from flaggems_exp.families import index
    monkeypatch.setattr(index, "TILE", 4096)
    monkeypatch.setattr(index, "SMALL_TILE", 1024)
    monkeypatch.setattr(index, "TILE_COLS", 256)
    for shape, whole_rows, area, programs in (
            ((1024, 1024), False, 1024, 1024), ((2048, 1024), False, 2048, 1024),
            ((8192, 8192), False, 4096, 16384), ((64, 64), False, 1024, 4),
            ((1024, 1024), True, 4096, 256), ((1, 1 << 20), False, 1024, 1024)):
        block_r, block_c, tiles, padded = index._tile(shape, whole_rows)
        assert (block_r * block_c, tiles) == (area, programs), shape
        assert block_c <= shape[-1] or block_r == 1
        assert all(p >= s for p, s in zip(padded, shape))
    monkeypatch.setattr(index, "GATHER_SMALL_TILE", 512)
    monkeypatch.setattr(index, "GATHER_TILE_PROGRAMS", 2048)
    for shape, area, programs in (((1024, 1024), 512, 2048), ((8192, 8192), 4096, 16384),
                                  ((64, 64), 512, 8)):
        block_r, block_c, tiles, _ = index._tile(shape, False, gathers=True)
        assert (block_r * block_c, tiles) == (area, programs), shape
    monkeypatch.setattr(index, "SMALL_TILE", 128)  # below a tile's columns: one row of them
    assert index._tile((64, 512), False)[:3] == (1, 256, 128)


def test_shrunk_tiles_give_pytorchs_values(monkeypatch):
    """Tiles between the smallest and the largest (constants scaled down so that a small call
    takes them: 1665 elements in tiles of 128, not 256), run: PyTorch's values bit for bit."""
    from flaggems_exp.families import index
    for name, value in (("TILE", 256), ("SMALL_TILE", 64), ("TILE_COLS", 16),
                        ("TILE_PROGRAMS", 16), ("GATHER_SMALL_TILE", 32),
                        ("GATHER_TILE_PROGRAMS", 16)):
        monkeypatch.setattr(index, name, value)
    launched = launched_kernels(monkeypatch)
    gen = torch.Generator().manual_seed(41)
    x = torch.randn(37, 45, generator=gen)
    calls = [("tril", (x, 3)), ("take", (x, torch.randint(-1665, 1665, (37, 45), generator=gen))),
             ("slice_scatter", (x, torch.randn(37, 15, generator=gen), 1, 0, 45, 3)),
             ("tril_", (x.clone(), -4))]
    for name, args in calls:
        monkeypatch.setattr(REGISTRY[name], "plans", PlanCache())
        del launched[:]
        check_call(REGISTRY[name], Call(args), exact=True)
        assert {o["BLOCK_R"] * o["BLOCK_C"] for k, o in launched if k == "_index_kernel"} == {128}


def test_short_rows_fill_the_gpu_before_sharing_programs(monkeypatch):
    """Compiled, contiguous rows share a program only where they outnumber ``_PROGRAMS``
    programs: 1024 rows of 1024 take one program each (not 256 of 4), 65536 keep 4 a program;
    strided rows keep their neighbours; the interpreter keeps its few large programs."""
    monkeypatch.setattr(reduction, "_ROW_TILE", 16384)
    monkeypatch.setattr(reduction, "_TILE", 4096)
    monkeypatch.setattr(reduction, "INTERPRETED", False)
    assert reduction._plan_tile(1024, 1024, False, 2, True) == (1, 1024, 4)
    assert reduction._plan_tile(1024, 2048, False, 2, True) == (2, 1024, 4)
    assert reduction._plan_tile(1024, 65536, False, 2, True) == (4, 1024, 8)
    assert reduction._plan_tile(64, 100_000, False, 2, True) == (64, 64, 8)
    assert reduction._plan_tile(1024, 1024, True, 2, True) == (16, 256, 8)
    monkeypatch.setattr(reduction, "INTERPRETED", True)
    assert reduction._plan_tile(1024, 1024, False, 2, True)[0] == 4


def test_rows_read_twice_take_the_tile_that_pads_them_least(monkeypatch):
    """A row longer than a tile of 16384 takes tiles of 8192 where they pad it less (20000:
    three of 8192, not two of 16384), the larger on a tie (24577, 32000, 65536); compiled,
    rows along a strided dim keep their 256."""
    monkeypatch.setattr(reduction, "_ROW_TILE", 16384)
    monkeypatch.setattr(reduction, "_TILE", 4096)
    monkeypatch.setattr(reduction, "INTERPRETED", False)
    lengths = (16384, 16385, 20000, 24576, 24577, 32000, 32768, 40000, 49152, 50257, 65536)
    assert [reduction._plan_tile(n, 4096, False, 2, True) for n in lengths] == [
        (1, b, 16) for b in (16384, 8192, 8192, 8192, 16384, 16384, 16384, 8192, 16384, 8192,
                             16384)]
    assert reduction._plan_tile(20000, 4096, True, 2, True)[1] == 256
    # a row read once (one value a row) keeps the largest tile: fewer round trips of loads
    assert [reduction._plan_tile(n, 1, False, 4, False)[1] for n in (20000, 32768)] == [
        16384, 16384]


def test_rows_of_two_tiles_a_program_alone_on_its_sm_would_hold_take_half_tiles(monkeypatch):
    """Compiled, a row of two tiles of 16384 whose elements take a thread more than 64 bytes of
    the tile (float32 and wider: 32 elements a thread, one program an SM) takes four of 8192;
    16-bit rows keep 16384, rows of more tiles keep them too, and the interpreter's tiles are
    left as they are."""
    monkeypatch.setattr(reduction, "_ROW_TILE", 16384)
    monkeypatch.setattr(reduction, "_TILE", 4096)
    monkeypatch.setattr(reduction, "INTERPRETED", False)
    lengths = (16384, 24577, 32000, 32768, 32769, 40961, 49152, 65536)
    for itemsize, tiles in ((2, (16384, 16384, 16384, 16384, 8192, 16384, 16384, 16384)),
                            (4, (16384, 8192, 8192, 8192, 8192, 16384, 16384, 16384)),
                            (8, (16384, 8192, 8192, 8192, 8192, 16384, 16384, 16384))):
        assert [reduction._plan_tile(n, 4096, False, itemsize, True) for n in lengths] == [
            (1, b, 16) for b in tiles], itemsize
    assert reduction._plan_tile(32768, 4096, True, 4, True)[1] == 256
    monkeypatch.setattr(reduction, "INTERPRETED", True)
    assert reduction._plan_tile(32768, 4096, False, 4, True)[1] == 16384


@pytest.mark.parametrize("name", ["_safe_softmax", "_log_softmax_backward_data"])
def test_rows_in_the_tiles_that_pad_them_least(monkeypatch, name):
    """Rows of 20 with a tile of 16 are read in three tiles of 8 (24 lanes, not 32), along the
    last dim and a strided one, and give PyTorch's results."""
    monkeypatch.setattr(reduction, "_ROW_TILE", 16)
    op = REGISTRY[name]
    monkeypatch.setattr(op, "plans", PlanCache())  # the usual tile's plans would replay
    monkeypatch.setattr(type(op), "sum_order", None)  # the tiles, not PyTorch's order
    launched = launched_kernels(monkeypatch)
    gen = torch.Generator().manual_seed(23)
    x = torch.randn(20, 20, generator=gen) * 4
    for dim in (1, 0):
        del launched[:]
        args = ((x, dim) if name == "_safe_softmax" else
                (torch.randn(20, 20, generator=gen), torch.log_softmax(x, dim), dim,
                 torch.float32))
        check_call(op, Call(args))
        assert [(kernel, o["BLOCK"]) for kernel, o in launched] == [("_reduction_kernel", 8)]


def test_a_diagonal_read_once_keeps_the_largest_tile(monkeypatch):
    """trace's diagonal of 20 with a tile of 16 is read in two tiles of 16, not three of 8:
    a row read once gains nothing from smaller tiles' padding; PyTorch's value."""
    monkeypatch.setattr(reduction, "_ROW_TILE", 16)
    op = REGISTRY["trace"]
    monkeypatch.setattr(op, "plans", PlanCache())
    launched = launched_kernels(monkeypatch)
    x = torch.randn(20, 20, generator=torch.Generator().manual_seed(31))
    check_call(op, Call((x,)))
    assert [(kernel, o["BLOCK"]) for kernel, o in launched] == [("_reduction_kernel", 16)]


@pytest.mark.parametrize("name", ["_safe_softmax", "_log_softmax_backward_data"])
def test_programs_of_several_short_rows(name, monkeypatch):
    """Several rows a program (what a call of many short rows gets; ``_PROGRAMS`` lowered so
    that a small call does too, compiled): rows of several lengths, a ragged last program,
    NaN and -inf among them; PyTorch's values."""
    monkeypatch.setattr(reduction, "_PROGRAMS", 1)
    op = REGISTRY[name]
    monkeypatch.setattr(op, "plans", PlanCache())
    monkeypatch.setattr(type(op), "sum_order", None)  # the tiles, not PyTorch's order
    launched = launched_kernels(monkeypatch)
    gen = torch.Generator().manual_seed(29)
    for rows, length in ((37, 45), (5, 3), (100, 16)):
        x = torch.randn(rows, length, generator=gen) * 3
        x[1, 0] = float("nan")
        x[2, :] = -INF
        if name == "_safe_softmax":
            call = Call((x, 1))
        else:
            call = Call((torch.randn(rows, length, generator=gen), torch.log_softmax(x, 1), 1,
                         torch.float32))
        del launched[:]
        check_call(op, call, exact=False)
        assert [o["ROWS"] > 1 for k, o in launched if k == "_reduction_kernel"] == [True], launched
