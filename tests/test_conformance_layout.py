"""Result layout and the out= rules, as PyTorch has them, for every registered op (read from the
registry): the strides of a new result for non-dense and mixed-layout inputs (TensorIterator's
where PyTorch's kernel uses it), of a resized or empty out=, resize_output's warning when a
non-empty out= is resized, and the refusal of an out= (or self) that overlaps itself or an
input, raised before anything is written."""
import contextlib
import os
import re
import sys
import tempfile
import warnings

import pytest
import torch

import flaggems_exp
from flaggems_exp import REGISTRY, testing
from flaggems_exp.families import GatherOp, InplaceOp
from flaggems_exp.testing import Call, assert_same_error, run

DEV = flaggems_exp.device
A = torch.ops.aten
OPS = list(dict.fromkeys(REGISTRY.values()))
FUNCTIONAL = [op for op in OPS if not isinstance(op, InplaceOp)]
WITH_OUT = [op for op in FUNCTIONAL
            if hasattr(A, op.name) and "out" in getattr(A, op.name).overloads()]
INPLACE = [op for op in OPS if isinstance(op, InplaceOp)]
# PyTorch's CPU kernels of these write an expanded out= as if it were dense: the process aborts
# (heap corruption), so PyTorch cannot be asked; its CUDA kernels do not check either
ABORTS_ON_EXPANDED_OUT = {"replication_pad2d", "replication_pad3d", "_log_softmax_backward_data",
                          "_safe_softmax", "pixel_shuffle", "pixel_unshuffle"}
_FACTORY_KEYWORDS = {"dtype", "device", "layout", "pin_memory"}


def ids(op):
    return op.name


def calls(op, count=3):
    gen = torch.Generator().manual_seed(11)
    return testing.sample_calls(op, torch.float32, generator=gen)[:count]


def out_calls(op):
    """Sample calls that an out= overload takes (no factory keywords), with PyTorch's result."""
    for call in calls(op):
        if _FACTORY_KEYWORDS & set(call.kwargs):
            continue
        expected = run(op.ref, call)
        # where the reference stands for PyTorch's CUDA behaviour, the CPU out= must agree
        if isinstance(expected, torch.Tensor) and isinstance(run(getattr(A, op.name), call),
                                                             torch.Tensor):
            yield call, expected


def relaid(t, kind):
    """``t``'s values in another layout: transposed, stepped (not dense), dims reversed."""
    if t.dim() < 2:
        return t
    if kind == "transposed":
        return t.transpose(0, 1).contiguous().transpose(0, 1)
    if kind == "stepped":
        wide = torch.empty((t.shape[1], 2 * t.shape[0], *t.shape[2:]), dtype=t.dtype)
        view = wide.transpose(0, 1)[::2]
        return view.copy_(t)
    order = list(reversed(range(t.dim())))
    return t.permute(order).contiguous().permute(order)


def with_layout(call, kind, first_only):
    args, done = list(call.args), False
    for i, a in enumerate(args):
        if isinstance(a, torch.Tensor) and a.dim() >= 2 and not (first_only and done):
            args[i], done = relaid(a, kind), True
    return Call(tuple(args), call.kwargs, call.label) if done else None


@contextlib.contextmanager
def resize_warnings():
    """The texts of resize_output's warnings raised inside: ours (Python warnings) and PyTorch's
    own (through torch.ops they bypass Python's warning machinery and reach stderr)."""
    texts = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as native, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        os.dup2(native.fileno(), 2)
        try:
            yield texts
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            native.seek(0)
            stderr = native.read().decode(errors="replace")
    pattern = r"(An output with one or more elements was resized.*?) \((?:Triggered|function)"
    texts += re.findall(pattern, stderr)
    texts += [re.sub(r" \(Triggered internally at .*\)$", "", str(w.message)) for w in caught
              if "was resized" in str(w.message)]


# ---- new results ----------------------------------------------------------------------------
@pytest.mark.parametrize("op", FUNCTIONAL, ids=ids)
def test_result_strides(op):
    """A new result has PyTorch's strides for transposed, stepped and reversed inputs, all of
    them or the first alone (mixed layouts): TensorIterator's order for its ops, contiguous or
    clone()'s layout for the others."""
    compared = 0
    for call in calls(op):
        for kind in ("transposed", "stepped", "reversed"):
            for first_only in (False, True):
                case = with_layout(call, kind, first_only)
                if case is None:
                    continue
                theirs = run(op.ref, case)
                if not isinstance(theirs, torch.Tensor) or theirs.numel() < 2:
                    continue
                ours = op(*testing.on_device(case).args, **testing.on_device(case).kwargs)
                assert ours.stride() == theirs.stride(), (case.label, kind, first_only)
                compared += 1
    if not compared:
        pytest.skip("no sample call with a result of two or more elements from 2-D inputs")


def test_sigmoid_of_a_stepped_transpose():
    """The layout of sigmoid(x.t()[:, ::2]) is column-major, as x.t() is, not row-major."""
    x = torch.randn(5, 8)
    view = x.t()[:, ::2]
    ours = REGISTRY["sigmoid"](testing.copy_view(view, DEV))
    assert ours.stride() == torch.sigmoid(view).stride()


@pytest.mark.parametrize("name", ["sigmoid", "mul", "addcmul", "glu", "eq", "huber_loss"])
def test_replayed_result_strides(name):
    """A replayed call (the second of a signature) allocates the strides the first computed."""
    op = REGISTRY[name]
    call = with_layout(calls(op, 1)[0], "stepped", first_only=True)
    dev = testing.on_device(call)
    first = op(*dev.args, **dev.kwargs)
    replays = sum(plan.replays for plan in op.plans.plans.values())
    second = op(*dev.args, **dev.kwargs)
    assert sum(plan.replays for plan in op.plans.plans.values()) == replays + 1
    assert second.stride() == first.stride() == run(op.ref, call).stride()


# ---- out= -------------------------------------------------------------------------------------
@pytest.mark.parametrize("op", WITH_OUT, ids=ids)
def test_resized_out(op):
    """An empty out= and a non-empty one of another shape take the layout PyTorch gives them
    (for transposed inputs too); resizing a non-empty out warns with resize_output's text,
    exactly where PyTorch warns; a resize is never planned."""
    for call, expected in out_calls(op):
        case = with_layout(call, "transposed", first_only=False) or call
        for shape in ((0,), (7, 3)):
            theirs_out = torch.zeros(shape, dtype=expected.dtype)
            ours_out = torch.zeros(shape, dtype=expected.dtype, device=DEV)
            dev = testing.on_device(case)
            with resize_warnings() as theirs_warned:
                theirs = run(lambda *a, **k: getattr(A, op.name)(*a, **k, out=theirs_out), case)
            with resize_warnings() as ours_warned:
                ours = run(lambda *a, **k: op(*a, **k, out=ours_out), dev)
            if isinstance(theirs, Exception):
                assert_same_error(ours, theirs)
                continue
            assert ours is ours_out, case.label
            assert (ours.shape, ours.stride()) == (theirs.shape, theirs.stride()), case.label
            assert ours_warned == theirs_warned, case.label
            testing.assert_close(ours, theirs)


@pytest.mark.parametrize("op", WITH_OUT, ids=ids)
def test_self_overlapping_out(op):
    """An out= of the result's shape that overlaps itself (an expanded tensor) gets PyTorch's
    answer: refused with the internal-overlap error before any write, or accepted (which
    value each memory location keeps then depends on the order of the writes)."""
    for call, expected in out_calls(op):
        if expected.numel() < 2 or expected.dim() == 0:
            continue
        shape = expected.shape
        theirs_out = torch.zeros((1, *shape[1:]), dtype=expected.dtype).expand(shape)
        ours_out = torch.zeros((1, *shape[1:]), dtype=expected.dtype, device=DEV).expand(shape)
        if op.name in ABORTS_ON_EXPANDED_OUT:
            # the rule every checked out= applies, as PyTorch's copy_ words it
            theirs = run(lambda t: t.copy_(torch.ones(t.shape)), Call((theirs_out,)))
        else:
            theirs = run(lambda *a, **k: getattr(A, op.name)(*a, **k, out=theirs_out), call)
        dev = testing.on_device(call)
        ours = run(lambda *a, **k: op(*a, **k, out=ours_out), dev)
        if isinstance(theirs, Exception):
            assert_same_error(ours, theirs)
            assert not ours_out.any(), "a refused out= was written"
        else:
            assert not isinstance(ours, Exception), ours


@pytest.mark.parametrize("op", WITH_OUT, ids=ids)
def test_expanded_out_of_another_shape(op):
    """An out= that overlaps itself (an expanded tensor) but has another shape than the result:
    where PyTorch resizes out= first (resize_output gives it a dense layout), it is written as
    a new result would be, with resize_output's warning where PyTorch warns; where PyTorch
    checks it first (TensorIterator, take), refused with its error before any write."""
    for call, expected in out_calls(op):
        shape = (1, 3) if tuple(expected.shape) != (1, 3) else (1, 5)
        theirs_out = torch.zeros(1, dtype=expected.dtype).expand(shape)
        ours_out = torch.zeros(1, dtype=expected.dtype, device=DEV).expand(shape)
        with resize_warnings() as theirs_warned:
            theirs = run(lambda *a, **k: getattr(A, op.name)(*a, **k, out=theirs_out), call)
        with resize_warnings() as ours_warned:
            ours = run(lambda *a, **k: op(*a, **k, out=ours_out), testing.on_device(call))
        if isinstance(theirs, Exception):
            assert_same_error(ours, theirs)
            assert not ours_out.any(), "a refused out= was written"
        else:
            assert ours is ours_out, call.label
            assert (ours.shape, ours.stride()) == (theirs.shape, theirs.stride()), call.label
            assert ours_warned == theirs_warned, call.label
            testing.assert_close(ours, theirs)


@pytest.mark.parametrize("op", WITH_OUT, ids=ids)
def test_out_partially_overlapping_an_input(op):
    """An out= sharing part of its memory with an input: PyTorch's error (raised before any
    write), or accepted; where PyTorch's out= computes apart and copies (generated out=
    wrappers), with the values of a separate out. Gathers (pads, resampling) read elements
    they have written in PyTorch, which does not check: ours compute apart, with the values
    PyTorch gives a separate out."""
    apart = isinstance(op, GatherOp)
    for call, expected in out_calls(op):
        inputs = [i for i, a in enumerate(call.args) if isinstance(a, torch.Tensor)
                  and a.numel() > 1 and a.is_contiguous() and a.dtype == expected.dtype]
        if expected.numel() < 2:
            continue
        for i in inputs[:2]:
            def make(device):
                x = call.args[i]
                memory = torch.zeros(x.numel() + expected.numel() + 2, dtype=x.dtype,
                                     device=device)
                memory[:x.numel()] = x.reshape(-1).to(device)
                args = list(testing.on_device(call).args if device == DEV else call.args)
                args[i] = memory[:x.numel()].view(x.shape)
                return memory, args, memory[1:1 + expected.numel()].view(expected.shape)
            theirs_memory, theirs_args, theirs_out = make("cpu")
            ours_memory, ours_args, ours_out = make(DEV)
            before = ours_memory.clone()
            theirs = run(lambda: getattr(A, op.name)(*theirs_args, **call.kwargs, out=theirs_out),
                         Call(()))
            ours = run(lambda: op(*ours_args, **call.kwargs, out=ours_out), Call(()))
            if isinstance(theirs, Exception):
                assert_same_error(ours, theirs)
                assert torch.equal(ours_memory, before), "a refused out= was written"
            else:
                assert not isinstance(ours, Exception), ours
                separate = torch.equal(theirs_out, expected) or torch.allclose(
                    theirs_out, expected, equal_nan=True)
                if separate or apart:  # else PyTorch read memory it had written: no value
                    testing.assert_close(ours_out, expected)


@pytest.mark.parametrize("op", INPLACE, ids=ids)
def test_inplace_self_overlapping(op):
    """In place, a self that overlaps itself gets PyTorch's answer (refused, or a fill)."""
    for call in calls(op, 2):
        x = call.args[0]
        if not isinstance(x, torch.Tensor) or x.dim() == 0 or x.numel() < 2:
            continue
        theirs_self = x[:1].clone().expand(x.shape)
        ours_self = testing.copy_view(x[:1].clone(), DEV).expand(x.shape)
        before = ours_self.clone()
        theirs = run(getattr(A, op.name), Call((theirs_self, *call.args[1:]), call.kwargs))
        ours = run(op, Call((ours_self, *testing.on_device(call).args[1:]), call.kwargs))
        if isinstance(theirs, Exception):
            assert_same_error(ours, theirs)
            assert torch.equal(ours_self, before)
        else:
            assert ours is ours_self
            testing.assert_close(ours_self, theirs_self, exact=True)
