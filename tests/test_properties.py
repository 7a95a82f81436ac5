"""Drawn calls of every registered op against PyTorch (hypothesis, seeded and bounded).

For each op (functional and in place), hypothesis draws a dtype, a shape (0 to 3 dims, empty
ones included; pads and resampling keep their own shapes), the op's own parameters (one of its
sample calls), a layout for each tensor (contiguous, transposed, stepped, offset, expanded), the
same tensor passed twice, and an ``out=`` (of the result's dtype and shape, empty, of another
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
OUT_KINDS = ("result", "empty", "other dtype", "transposed")
_FACTORY_KEYWORDS = {"dtype", "device", "layout", "pin_memory"}
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
    args = [relaid(a, draw(st.sampled_from(LAYOUTS))) if isinstance(a, torch.Tensor) else a
            for a in call.args]
    tensors = [i for i, a in enumerate(args) if isinstance(a, torch.Tensor)]
    if len(tensors) >= 2 and draw(st.booleans()):
        first, second = args[tensors[0]], args[tensors[1]]
        if first.shape == second.shape and first.dtype == second.dtype:
            args[tensors[1]] = first  # the very same tensor twice (x * x, x.mul_(x))
    kwargs = dict(call.kwargs)
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
