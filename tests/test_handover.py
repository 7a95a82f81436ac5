"""enable() never breaks valid code: what the kernels do not cover is PyTorch's own kernel's.

Under enable(), a routed op's call with inputs our kernels do not cover (complex and other
dtypes without a kernel, sparse and other layouts, another device, numbers alone) gives
PyTorch's result or PyTorch's exception and is counted in DELEGATED; inputs we cover still run
our kernels, planned calls replay; a direct call of the op raises NotCovered. PyTorch itself
(disabled) on the same device is the reference: the hand-over runs its very kernel, so results
are compared bit for bit.
"""
import contextlib
import warnings

import pytest
import torch

import flaggems_exp
from flaggems_exp import DELEGATED, LAUNCHES, REGISTRY, dispatch, experimental_ops as ops, testing
from flaggems_exp.families import Op
from flaggems_exp.runtime.errors import NotCovered
from flaggems_exp.testing import Call, assert_same_error, run

DEV = flaggems_exp.device
ROUTED = [op for op in dispatch.selection() if op.aten_overloads()]
# dtypes without a kernel here that PyTorch computes in for some ops
UNCOVERED_DTYPES = (torch.complex64, torch.complex128, torch.uint16, torch.float8_e5m2)


def ids(op):
    return op.name


@pytest.fixture(autouse=True)
def quiet():
    with warnings.catch_warnings():
        # PyTorch's own warnings (complex into real discards the imaginary part, ComplexHalf
        # is experimental) come alike with and without enable()
        warnings.simplefilter("ignore")
        yield


def variant(call, dtype):
    """``call`` with its floating tensors (and a factory's floating dtype=) made ``dtype``."""
    def convert(v):
        if isinstance(v, torch.Tensor) and v.is_floating_point():
            return v.to(dtype)
        if isinstance(v, torch.dtype) and v.is_floating_point:
            return dtype
        return v
    return Call(tuple(map(convert, call.args)), {k: convert(v) for k, v in call.kwargs.items()},
                call.label)


def fresh(call):
    """A copy of ``call`` on the device, its tensors cloned (views keep their layout)."""
    return call.on(DEV)


def bits(t):
    """A tensor's values as bytes, in its shape's order (float8 has no ``torch.equal``)."""
    return t.detach().cpu().reshape(-1).contiguous().view(torch.uint8)


def assert_same(ours, theirs, ours_inputs=None, their_inputs=None):
    """PyTorch's exception, or its result bit for bit (dtype, shape, strides, values); the
    inputs end as PyTorch's did (in place writes, and nothing written by a rejected call)."""
    if isinstance(theirs, Exception):
        # the dispatcher's "Could not run" lists where each kernel was registered, ours too
        assert_same_error(*(type(e)(str(e).split("\n\n")[0]) if isinstance(e, Exception) else e
                            for e in (ours, theirs)))
    else:
        assert not isinstance(ours, Exception), f"raised {type(ours).__name__}: {ours}"
        assert (ours.dtype, ours.shape, ours.layout) == (theirs.dtype, theirs.shape, theirs.layout)
        if ours.layout == torch.strided:
            assert ours.stride() == theirs.stride()
        else:
            ours, theirs = ours.to_dense(), theirs.to_dense()
        if ours.device.type != "meta":
            assert torch.equal(bits(ours), bits(theirs))
    for a, b in zip(ours_inputs or (), their_inputs or ()):
        if isinstance(a, torch.Tensor) and a.device.type != "meta":
            assert torch.equal(bits(a), bits(b)), "the inputs differ from PyTorch's afterwards"


def pytorchs(fn, call):
    """PyTorch's own answer (nothing routed) and the call's inputs afterwards."""
    assert not flaggems_exp.is_enabled()
    return run(fn, call), call.args


def _same_error(ours, theirs):
    return (isinstance(ours, Exception) and type(ours) is type(theirs)
            and testing.normalize_message(ours) == testing.normalize_message(theirs))


# ---- a number where the schema has a tensor (PyTorch's wrapped number) ----------------------
@pytest.mark.parametrize("first, second", [
    (2, torch.float32), (2.5, torch.int32), (True, torch.float16), (-3, torch.uint8),
    (2.5, torch.bfloat16)], ids=str)
def test_mul_takes_a_number_for_either_operand(first, second):
    """PyTorch binds a Python number to mul's tensor operands (``torch.mul(2, x)``), as its
    wrapped number; a sparse mul calls ``mul(2, values)`` so, and the dispatcher hands the
    number over as a number. Ours computes it, called directly or routed."""
    x = testing.random_tensor((3, 5), second).to(DEV)
    for args in [(first, x), (x, first)]:
        theirs = torch.ops.aten.mul.Tensor(*args)
        testing.assert_close(ops.mul(*args), theirs, exact=True)
        out = torch.empty(3, 5, dtype=theirs.dtype, device=DEV)
        assert ops.mul(*args, out=out) is out
        testing.assert_close(out, theirs, exact=True)
    launched = LAUNCHES["mul"]
    with flaggems_exp.use_gems(include=["mul"]):
        ours = torch.mul(first, x)
    testing.assert_close(ours, torch.mul(first, x), exact=True)
    assert LAUNCHES["mul"] == launched + 1


# ---- direct calls ask for our kernel: they raise ---------------------------------------------
def _direct_calls():
    z = torch.randn(3, 4, dtype=torch.complex64, device=DEV)
    coo = torch.randn(3, 4).to_sparse().to(DEV)
    return {
        "sigmoid complex": (lambda: ops.sigmoid(z), "complex dtypes are not supported"),
        "mul complex": (lambda: ops.mul(z, 2), "complex dtypes are not supported"),
        "mul_ complex": (lambda: ops.mul_(z, z), "complex dtypes are not supported"),
        "soft_margin_loss complex": (lambda: ops.soft_margin_loss(z, torch.ones(3, 4, device=DEV)),
                                     "complex dtypes are not supported"),
        "sigmoid sparse": (lambda: ops.sigmoid(coo), "sparse_coo tensors are not supported"),
        "mul_ sparse": (lambda: ops.mul_(coo, 2), "sparse_coo tensors are not supported"),
        "trace csr": (lambda: ops.trace(coo.to_sparse_csr()),
                      "sparse_csr tensors are not supported"),
        "sigmoid meta": (lambda: ops.sigmoid(torch.empty(3, device="meta")), "not on meta ones"),
        "mul uint16": (lambda: ops.mul(torch.ones(3, dtype=torch.uint16, device=DEV), 2),
                       "dtype torch.uint16 is not supported"),
        "tril float8": (lambda: ops.tril(torch.ones(3, 3, device=DEV).to(torch.float8_e5m2)),
                        "dtype torch.float8_e5m2 is not supported"),
        "alias_copy quantized": (lambda: ops.alias_copy(torch.quantize_per_tensor(
            torch.ones(3), 0.1, 0, torch.quint8)), "quantized tensors are not supported"),
        "sigmoid negative view": (lambda: ops.sigmoid(torch.ones(3, device=DEV)._neg_view()),
                                  "negative-bit tensors are not supported"),
        "new_ones meta": (lambda: ops.new_ones(torch.ones(3, device=DEV), [2], device="meta"),
                          "not on meta ones"),
    }


@pytest.mark.parametrize("name", list(_direct_calls()))
def test_direct_calls_still_raise(name):
    """A direct call asks for our kernel: what it does not cover raises NotCovered (a
    NotImplementedError) with a clear message, before anything is written, whether or not
    enable() routes the op; nothing is handed over."""
    call, message = _direct_calls()[name]
    delegated = dict(DELEGATED)
    for routing in (contextlib.nullcontext(), flaggems_exp.use_gems()):
        with routing, pytest.raises(NotCovered, match=message):
            call()
    assert dict(DELEGATED) == delegated


def test_a_rejected_direct_call_writes_nothing():
    z = torch.randn(4, dtype=torch.complex64, device=DEV)
    x = torch.randn(4, device=DEV)
    out = torch.full((4,), 7 + 7j, device=DEV)
    before = (z.clone(), out.clone())
    for call in (lambda: ops.mul(z, x, out=out), lambda: ops.mul_(out, z), lambda: ops.exp_(out)):
        with pytest.raises(NotCovered):
            call()
    assert torch.equal(z, before[0]) and torch.equal(out, before[1])


