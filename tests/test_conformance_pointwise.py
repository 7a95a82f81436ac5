"""Pointwise ops against PyTorch where dtypes meet: out= of another dtype, operands of several
dtypes, Scalar parameters out of range, signed zeros, and which error PyTorch raises first.
Every expectation is PyTorch's own answer on the CPU (or its CUDA kernel's, where said)."""
import pytest
import torch

import flaggems_exp
from flaggems_exp import REGISTRY, testing
from flaggems_exp.testing import Call

DEV = flaggems_exp.device
F16 = torch.float16


def _bits(t):
    """A tensor's values bit for bit (signed zeros, NaN and inf included), on the CPU."""
    t = t.detach().cpu().reshape(-1)
    return t.view(torch.uint8) if t.is_floating_point() else t


def _same_as_torch(name, args, kwargs=None, reference=None):
    """``name`` on our device and PyTorch's aten op on the CPU, on copies of the same inputs:
    the same error, or bitwise the same result and written tensors."""
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
        assert torch.equal(_bits(ours), _bits(theirs)), (ours, theirs)
    written = [*ours_call.args, *ours_call.kwargs.values()]
    for mine, its in zip(written, [*theirs_call.args, *theirs_call.kwargs.values()]):
        if isinstance(mine, torch.Tensor):
            assert torch.equal(_bits(mine), _bits(its)), f"{mine} != {its}"
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
