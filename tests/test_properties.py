"""Drawn calls of every registered op against PyTorch (hypothesis, seeded and bounded).

For each op (functional and in place), hypothesis draws a dtype, a shape (0 to 3 dims, empty
ones included; pads and resampling keep their own shapes), the op's own parameters (one of its
sample calls, each Python float in it kept or redrawn: 0.0, -0.0, inf, -inf, NaN, 1e30, -1e30,
1e-240 or a small integer-valued float), a layout for each tensor (contiguous, transposed,
stepped, offset, expanded), the same tensor passed twice or two overlapping views of one
memory (self and other one element apart), and an ``out=`` (of the result's dtype and shape, empty, of another
dtype, transposed). ``check_call`` compares values, dtype, shape and the exception (type and
message) with PyTorch and checks that a rejected call wrote nothing; the result's strides are
compared too, where PyTorch's op is the reference and a dim's stride is not arbitrary (sizes
above 1). ``FLAGGEMS_PROPERTY_EXAMPLES`` sets the calls drawn per op (4 by default; the GPU run
takes more); the draws are derandomized, so a run is reproducible.
"""
import os

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from flaggems_exp import REGISTRY, testing
from flaggems_exp.families import InplaceOp
from flaggems_exp.testing import ALL_DTYPES, Call, check_call, run

EXAMPLES = int(os.environ.get("FLAGGEMS_PROPERTY_EXAMPLES", "4"))
OPS = list(dict.fromkeys(REGISTRY.values()))
LAYOUTS = ("contiguous", "transposed", "stepped", "offset", "expanded")
ALIASES = ("apart", "same", "shifted")  # the first two tensors: separate, one, overlapping
OUT_KINDS = ("result", "empty", "other dtype", "transposed")
_FACTORY_KEYWORDS = {"dtype", "device", "layout", "pin_memory"}
# what a drawn call's Python float may become: values at the edges of every dtype's range
FLOATS = (0.0, -0.0, float("inf"), float("-inf"), float("nan"), 1e30, -1e30, 1e-240)
# a resampling op's scales: not 1e-240, whose inverse overflows float32, as PyTorch's CPU
# kernel then reads out of bounds (garbage, or a crash for uint8); test_pad_resample compares
# ours with its CUDA kernel there
_RESAMPLE_FLOATS = tuple(f for f in FLOATS if f != 1e-240)
_NO_OUT_OVERLOAD = "argument(s)"  # "expected at most N argument(s)", "failed to match any schema"
# families whose sample calls take any shape (pads and resampling need their own ranks)
_ANY_SHAPE = {"PointwiseOp", "ComparisonOp", "LossOp", "CopyOp", "CreationOp", "IndexOp",
              "ReductionOp"}


def ids(op):
    return op.name


def relaid(t, kind):
    """``t``'s values (``expanded``: its first row's) in another layout, same shape."""
    if kind == "contiguous" or t.dim() == 0 or t.numel() == 0:
        return t
    if kind == "transposed":
        if t.dim() < 2:
            return t
        return t.transpose(0, 1).contiguous().transpose(0, 1)
    if kind == "stepped":
        wide = torch.empty((*t.shape[:-1], 2 * t.shape[-1]), dtype=t.dtype)
        return wide[..., ::2].copy_(t)
    if kind == "offset":
        flat = t.reshape(-1)
        return torch.cat([flat[:1], flat])[1:].view(t.shape)
    return t[:1].expand_as(t)


def redrawn(draw, value, floats):
    """``value`` with each Python float in it (in a list too) kept or redrawn: one of
    ``floats`` or a small integer-valued float."""
    if type(value) is float:
        return draw(st.one_of(st.just(value), st.sampled_from(floats),
                              st.integers(-3, 3).map(float)))
    if isinstance(value, (list, tuple)) and any(type(v) is float for v in value):
        return type(value)(redrawn(draw, v, floats) for v in value)
    return value


def has_out(op):
    return any(o == "out" or o.endswith("_out") for n in op.names
               if hasattr(torch.ops.aten, n) for o in getattr(torch.ops.aten, n).overloads())


def out_for(native, kind):
    """An ``out=`` for a call whose PyTorch result is ``native``."""
    if kind == "empty":
        return torch.empty(0, dtype=native.dtype)
    if kind == "other dtype":
        other = torch.float64 if native.dtype != torch.float64 else torch.float32
        return torch.zeros(native.shape, dtype=other)
    out = torch.zeros(native.shape, dtype=native.dtype)
    return relaid(out, "transposed") if kind == "transposed" else out


@st.composite
def drawn_calls(draw, op):
    dtype = draw(st.sampled_from(ALL_DTYPES))
    shape = None
    if testing.twin(op).family in _ANY_SHAPE:
        shape = tuple(draw(st.lists(st.integers(0, 4), max_size=3)))
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    try:
        calls = testing.sample_calls(op, dtype, shape=shape, generator=generator)
    except (RuntimeError, ValueError, TypeError, IndexError):
        calls = []  # no sample of this dtype or shape (e.g. an index op over an empty tensor)
    assume(calls)
    call = draw(st.sampled_from(calls))
    floats = _RESAMPLE_FLOATS if testing.twin(op).family == "ResampleOp" else FLOATS
    args = [relaid(a, draw(st.sampled_from(LAYOUTS))) if isinstance(a, torch.Tensor)
            else redrawn(draw, a, floats) for a in call.args]
    tensors = [i for i, a in enumerate(args) if isinstance(a, torch.Tensor)]
    if len(tensors) >= 2:
        first, second = args[tensors[0]], args[tensors[1]]
        alias = draw(st.sampled_from(ALIASES))
        if first.shape == second.shape and first.dtype == second.dtype and alias == "same":
            args[tensors[1]] = first  # the very same tensor twice (x * x, x.mul_(x))
        elif first.shape == second.shape and first.dtype == second.dtype and alias == "shifted":
            # two views of one memory, one element apart: x.mul_(y) where y overlaps x
            memory = torch.cat([first.reshape(-1), second.reshape(-1)[-1:]])
            args[tensors[0]] = memory[:-1].view(first.shape)
            args[tensors[1]] = memory[1:].view(first.shape)
    kwargs = {k: redrawn(draw, v, floats) for k, v in call.kwargs.items()}
    if (not isinstance(op, InplaceOp) and has_out(op) and not _FACTORY_KEYWORDS & set(kwargs)
            and draw(st.booleans())):
        native = run(op.ref, Call(tuple(args), kwargs))
        if isinstance(native, torch.Tensor):
            out = out_for(native, draw(st.sampled_from(OUT_KINDS)))
            accepted = run(op.ref, Call(tuple(args), {**kwargs, "out": out.clone()}))
            # an overload without out= (upsampling's scale_factors) is PyTorch's TypeError-like
            # schema mismatch through the op packet: no out= for such a call
            if not (isinstance(accepted, RuntimeError) and _NO_OUT_OVERLOAD in str(accepted)):
                kwargs["out"] = out
    return Call(tuple(args), kwargs, call.label)


def meaningful_strides(t):
    return [s for n, s in zip(t.shape, t.stride()) if n > 1] if t.numel() else []


@pytest.mark.parametrize("op", OPS, ids=ids)
def test_drawn_calls_match_pytorch(op):
    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(drawn_calls(op))
    def check(call):
        if testing.DEVICE != "cpu":  # e.g. take with self passed as its own index
            assume(not testing.asserted_on_device(testing.reference(op, call)[0]))
        ours = check_call(op, call)
        if (ours is None or isinstance(op, InplaceOp) or "out" in call.kwargs
                or type(op).ref is not None):
            return  # rejected, self, out=, or a reference that stands in for CUDA's behaviour
        native = run(op.ref, call)
        assert meaningful_strides(ours) == meaningful_strides(native), (ours.stride(),
                                                                         native.stride())

    check()
