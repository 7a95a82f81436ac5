"""What is particular to the pointwise family (the properties every op shares are
tests/test_generic.py's): special values, Python floats, broadcasting, in-place errors, the
int64-offset path, CUDA bitwise checks.

Each compares flaggems_exp with PyTorch on the CPU: values against a float64 reference, and
result dtype, shape and errors (type and message) against PyTorch in the inputs' own dtypes.
"""
import math

import pytest
import torch

import flaggems_exp
from flaggems_exp import REGISTRY, testing
from flaggems_exp.families import InplaceOp, PointwiseOp
from flaggems_exp.testing import Call, assert_close, check_call, reference, run

OPS = list(dict.fromkeys(REGISTRY.values()))
POINTWISE = [op for op in OPS if isinstance(testing.twin(op), PointwiseOp)]
FUNCTIONAL = [op for op in POINTWISE if not isinstance(op, InplaceOp)]
INPLACE = [op for op in POINTWISE if isinstance(op, InplaceOp)]


def ids(op):
    return op.name


@pytest.mark.parametrize("op", POINTWISE, ids=ids)
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32], ids=str)
def test_special_values(op, dtype):
    """±0, ±inf, NaN and each op's kinks, in every combination of operands, exactly as PyTorch."""
    values = torch.tensor(testing.SPECIAL_VALUES + tuple(op.special_values), dtype=dtype)
    nin = testing.twin(op).nin
    for call in testing.grid_calls(op, values):
        native, _ = reference(op, call)
        if isinstance(native, Exception):
            continue  # errors are test_dtypes' business
        ours = run(op, testing.on_device(call))
        # compared with PyTorch in the same dtype: special values are about exact semantics,
        # including the sign of a zero that a unary op passes through or creates
        assert_close(ours, native, signed_zeros=nin == 1)


def _takes_floats(op):
    """Whether ``op``'s sample calls pass a Python float: a number operand, or a parameter."""
    twin = testing.twin(op)
    values = [*twin.scalars.values(), *(v for p in twin.param_samples for v in p.values())]
    return bool(twin.number_operands) or any(type(v) is float for v in values)


@pytest.mark.parametrize("op", [op for op in POINTWISE if _takes_floats(op)], ids=ids)
@pytest.mark.parametrize("number", [1.9e-240, -3e-39, 0.1], ids=str)
def test_floats_float32_rounds(op, number):
    """A Python float (a Scalar parameter or a number operand) that float32 rounds (to 0, to a
    subnormal, or just a little): PyTorch's kernel converts it to its compute dtype, float32
    below float64, and so does ours; the float64 reference must not keep its full value
    (logit's eps=1.9e-240 is 0 for float16, so logit is -inf at 0, not -552)."""
    replaced = 0
    for dtype in (torch.float16, torch.float32, torch.float64):
        gen = torch.Generator().manual_seed(0)
        for call in testing.sample_calls(op, dtype, generator=gen):
            floats = {k for k, v in call.kwargs.items() if type(v) is float}
            args = tuple(number if type(a) is float else a for a in call.args)
            if floats or args != call.args:
                replaced += 1
                check_call(op, Call(args, {**call.kwargs, **dict.fromkeys(floats, number)}))
    assert replaced, "no Python float in its sample calls"


BROADCAST_SHAPES = [((), (3,)), ((1,), (4, 3)), ((4, 1), (1, 5)), ((2, 1, 3), (4, 1)),
                    ((5, 1, 2, 1), (1, 3, 1, 4)), ((0, 3), (1, 3)), ((3, 1), ()), ((2, 3, 1, 1, 2, 1), (3, 4, 1, 2, 5))]


@pytest.mark.parametrize("op", [op for op in FUNCTIONAL if op.nin >= 2
                                and op.sample_operand_dims is None], ids=ids)
def test_broadcasting(op):
    gen = torch.Generator().manual_seed(2)
    for shapes in BROADCAST_SHAPES:
        for params in testing.param_sets(op):
            args = [testing.random_tensor(shapes[i % 2], torch.float32, op.domain, gen)
                    for i in range(op.nin)]
            check_call(op, Call(tuple(args), params))


@pytest.mark.parametrize("op", INPLACE, ids=ids)
def test_inplace_errors(op):
    """Self is never broadcast, never overlaps itself or partly another input (PyTorch's texts)."""
    call = testing.sample_calls(op, torch.float32)[0]
    args = list(call.args)
    cases = [("self overlaps itself", [args[0][:1].expand_as(args[0])] + args[1:])]
    if testing.twin(op).nin >= 2 and isinstance(args[1], torch.Tensor):
        cases.append(("self would grow", [args[0][0]] + args[1:]))
        cases.append(("partial overlap", [args[0], args[0][0]] + args[2:]))
    for _, case_args in cases:
        check_call(op, Call(tuple(case_args)))


# every skeleton with an int64 path: pointwise (copies and fused loss sums run on it), index,
# reduction (per-row state and one value per row), gather (padding, resampling, shuffles)
INT64_PATH_OPS = ["sigmoid", "mul", "addcmul_", "hypot", "soft_margin_loss", "copy_",
                  "take", "masked_scatter", "tril", "diag", "slice_scatter",
                  "_safe_softmax", "_log_softmax_backward_data", "trace",
                  "reflection_pad1d", "replication_pad3d", "upsample_nearest3d", "pixel_shuffle"]


def _stepped(t):
    """``t``'s values in a view with a step along its last dim (neither dense nor row-major)."""
    if t.dim() == 0:
        return t
    stepped = torch.empty((*t.shape[:-1], 2 * t.shape[-1]), dtype=t.dtype)[..., ::2]
    return stepped.copy_(t)


@pytest.mark.parametrize("name", INT64_PATH_OPS)
def test_int64_indexing_path(name, monkeypatch):
    """The int64 variant of each skeleton (taken past 2**31 - 1), forced on small inputs by
    lowering the limit: dense and strided layouts, every launch of the skeleton in int64."""
    from flaggems_exp.runtime import indexing, launch
    from flaggems_exp.runtime.plans import PlanCache
    monkeypatch.setattr(indexing, "INT32_LIMIT", 16)
    op = REGISTRY[name]
    monkeypatch.setattr(op, "plans", PlanCache())  # an earlier call's plan replays int32 launches
    widths = []
    run_kernel = launch.run_kernel

    def recorded(kernel, grid, args, options):
        widths.append(options.get("INDEX_64"))
        return run_kernel(kernel, grid, args, options)

    monkeypatch.setattr(launch, "run_kernel", recorded)
    gen = torch.Generator().manual_seed(9)
    shape = (6, 10) if isinstance(testing.twin(op), PointwiseOp) else None
    for call in testing.sample_calls(op, torch.float32, shape=shape, generator=gen)[:2]:
        check_call(op, call)
        args = tuple(_stepped(a) if isinstance(a, torch.Tensor) else a for a in call.args)
        check_call(op, Call(args, call.kwargs))
    skeleton = [w for w in widths if w is not None]  # not the loss's sum or a block scan
    assert skeleton and all(skeleton), widths


# ops whose value is the formula of PyTorch's CUDA kernel, operation by operation, in the same
# working precision and with the same CUDA math library: compiled, they must be bitwise equal
# (softplus in float64 differs in the last bit on some inputs: its log1p and exp are libdevice's,
# and PyTorch's build may link another libdevice)
BITWISE_ON_CUDA = [(name, dtype) for name in ("sigmoid", "silu", "hardsigmoid", "hardswish",
                                              "hardswish_backward", "reciprocal", "logit")
                   for dtype in (torch.float32, torch.float64)] + [("softplus", torch.float32)]


@pytest.mark.skipif(flaggems_exp.device != "cuda",
                    reason="PyTorch's CPU kernels use other (vectorized) formulas")
@pytest.mark.parametrize("name, dtype", BITWISE_ON_CUDA, ids=str)
def test_bitwise_equal_to_pytorch_cuda(name, dtype):
    """On a million random values of the op's domain, compiled results equal those of
    PyTorch's own CUDA kernel bit for bit: one differing ulp, amplified by batch norms, moves a
    network's gradients (an approximate division did)."""
    op = REGISTRY[name]
    aten = getattr(torch.ops.aten, name)  # not ``op.ref``, which may emulate CUDA on the CPU
    gen = torch.Generator().manual_seed(5)
    for call in testing.sample_calls(op, dtype, shape=(1 << 20,), generator=gen)[:2]:
        dev = testing.on_device(call)
        expected = aten(*dev.args, **dev.kwargs)
        ours = op(*dev.args, **dev.kwargs)
        mismatched = (ours != expected) & ~(ours.isnan() & expected.isnan())
        assert not mismatched.any(), (call.label, int(mismatched.sum()))


# signed zeros, kinks and non-finite inputs: where PyTorch's CUDA and CPU kernels disagree (a
# fmaxf against a compare and select), the compiled result must be the CUDA kernel's
KINKS_ON_CUDA = [("hardtanh", {"min_val": 0.0, "max_val": 1.0}),
                 ("hardtanh", {"min_val": -1.0, "max_val": -0.0}),
                 ("hardtanh", {}), ("relu6", {}), ("hardsigmoid", {}), ("hardswish", {}),
                 ("hardswish_backward", None)]


@pytest.mark.skipif(flaggems_exp.device != "cuda",
                    reason="compares with PyTorch's CUDA kernels on the device")
@pytest.mark.parametrize("name, kwargs", KINKS_ON_CUDA, ids=str)
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32], ids=str)
def test_zeros_and_kinks_as_pytorch_cuda(name, kwargs, dtype):
    x = torch.tensor([-0.0, 0.0, -3.0, 3.0, -6.0, 6.0, -1.0, 1.0, math.inf, -math.inf, math.nan],
                     dtype=dtype, device="cuda")
    args = (torch.full_like(x, 0.75), x) if kwargs is None else (x,)
    expected = getattr(torch.ops.aten, name)(*args, **(kwargs or {}))
    ours = REGISTRY[name](*args, **(kwargs or {}))
    assert torch.equal(ours.isnan(), expected.isnan())
    bits = {torch.float16: torch.int16, torch.float32: torch.int32}[dtype]
    numbers = ~expected.isnan()
    assert torch.equal(ours[numbers].view(bits), expected[numbers].view(bits)), (ours, expected)
