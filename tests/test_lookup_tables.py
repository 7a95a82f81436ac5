"""16-bit results looked up in a table of all 65536 (``PointwiseOp.looks_up_16_bit``): the
table is the op's own kernel's results, so a lookup gives the bits the kernel gives; it serves
dense calls of one layout whose result keeps the input's 16-bit dtype, and nothing else."""
import pytest
import torch

import flaggems_exp
from flaggems_exp import LAUNCHES, REGISTRY
from flaggems_exp.families import PointwiseOp
from flaggems_exp.runtime.dtypes import every_16_bit_value

DEV = flaggems_exp.device
LOOKED_UP = [op for op in dict.fromkeys(REGISTRY.values())
             if isinstance(op, PointwiseOp) and op.looks_up_16_bit]
SIXTEEN_BIT = (torch.float16, torch.bfloat16)
# (op, dtype) of every declared lookup
DECLARED = [(op, dtype) for op in LOOKED_UP for dtype in SIXTEEN_BIT if dtype in op.looks_up_16_bit]


@pytest.fixture(autouse=True)
def every_call_looks_up(request, monkeypatch):
    """The tests' calls are small: each looked-up op looks up from its first element here
    (``lookup_from`` cleared), except in the tests of that threshold itself (marked
    ``lookup_thresholds``)."""
    if request.node.get_closest_marker("lookup_thresholds") is None:
        for op in LOOKED_UP:
            monkeypatch.setattr(op, "lookup_from", {})


def _first_declared(op):
    return next(d for d in SIXTEEN_BIT if d in op.looks_up_16_bit)


def _bits(t):
    return t.view(torch.int16)


def _computed(op, *args, **kwargs):
    """``op(*args, **kwargs)`` through its kernel, the lookup switched off for the call."""
    op.plans.clear()
    op.looks_up_16_bit = frozenset()  # shadows the class's declaration for this call
    try:
        return op(*args, **kwargs)
    finally:
        del op.looks_up_16_bit
        op.plans.clear()


def test_some_op_looks_up():
    both = {"digamma", "i0", "special_i0e", "special_i1", "acosh", "asinh", "atanh", "sinc", "selu",
            "logit", "softplus"}
    assert {(op.name, str(d)) for op, d in DECLARED} == (
        {(name, str(d)) for name in both for d in SIXTEEN_BIT}
        | {("erfinv", "torch.bfloat16"), ("log1p", "torch.bfloat16")})


@pytest.mark.parametrize("op, dtype", DECLARED, ids=lambda v: getattr(v, "name", str(v)))
def test_a_lookup_gives_the_kernels_bits_for_every_value(op, dtype):
    """Every bit pattern of the dtype, NaN payloads included, in a dense call (the lookup)
    and through the kernel; the table is made once per dtype and device."""
    every = every_16_bit_value(dtype, DEV)
    made = LAUNCHES.get(f"{op.name} (table)", 0)
    ours = op(every)
    again = op(every.flip(0))
    assert LAUNCHES.get(f"{op.name} (table)", 0) - made <= 1
    assert torch.equal(_bits(ours), _bits(_computed(op, every)))
    assert torch.equal(_bits(again), _bits(ours).flip(0))


@pytest.mark.parametrize("op", LOOKED_UP, ids=lambda op: op.name)
def test_a_lookup_serves_dense_16_bit_calls_only(op, monkeypatch):
    """The lookup kernel runs for a dense call (contiguous, a permuted dense layout, in place)
    of a declared dtype, and not for a strided input, another out= dtype, float32 or a 16-bit
    dtype the op does not declare; results equal the kernel's either way."""
    from flaggems_exp.families import pointwise

    looked_up = []
    real = pointwise.launch_lookup
    monkeypatch.setattr(pointwise, "launch_lookup",
                        lambda *a: looked_up.append(a[0]) or real(*a))
    gen = torch.Generator().manual_seed(3)
    dtype = _first_declared(op)
    x = (torch.randn(6, 40, generator=gen) * 4).to(dtype).to(DEV)
    cases = [  # (args, kwargs, looked up)
        ((x,), {}, True),
        ((x.t(),), {}, True),  # dense in another order: out takes that layout
        ((x[:, ::2],), {}, False),
        ((x,), {"out": torch.empty(6, 40, device=DEV)}, False),  # float32 out
        ((x.float(),), {}, False),
    ] + [((x.to(d),), {}, False) for d in SIXTEEN_BIT if d not in op.looks_up_16_bit]
    for args, kwargs, expected in cases:
        if "out" in kwargs and (not op.has_out or op.out_dtype_check):
            continue  # selu has no out= overload; softplus's out= must have the result's dtype
        op.plans.clear()
        looked_up.clear()
        ours = op(*args, **kwargs)
        assert bool(looked_up) == expected, (args[0].shape, args[0].stride(), kwargs)
        if "out" in kwargs:
            kwargs = {"out": torch.empty_like(kwargs["out"])}
        torch.testing.assert_close(ours, _computed(op, *args, **kwargs), rtol=0, atol=0,
                                   equal_nan=True)
    inplace = REGISTRY.get(f"{op.name}_")
    if inplace is not None:
        y = x.clone()
        looked_up.clear()
        assert inplace(y) is y and looked_up
        assert torch.equal(_bits(y), _bits(_computed(op, x)))


@pytest.mark.parametrize("name, calls", [
    ("logit", [((), True), ((0.25,), False), ((-1.0,), False)]),
    ("softplus", [((), True), ((1, 20), True), ((2,), False), ((1, 5), False)]),
], ids=["logit", "softplus"])
def test_a_call_passing_a_scalar_computes(name, calls, monkeypatch):
    """A table holds one math's results: a call whose kernel scalars are all fixed by its
    signature (constexprs: logit without eps, softplus at its default beta and threshold)
    looks up a table made under those constants; one passing a number (any eps, another beta
    or threshold) computes, in place too (logit_); both give the kernel's bits."""
    from flaggems_exp.families import pointwise

    looked_up = []
    real = pointwise.launch_lookup
    monkeypatch.setattr(pointwise, "launch_lookup",
                        lambda *a: looked_up.append(a[0]) or real(*a))
    op, inplace = REGISTRY[name], REGISTRY.get(f"{name}_")
    x = (torch.rand(5, 33, generator=torch.Generator().manual_seed(5)) * 1.4 - 0.2) * (
        1 if name == "logit" else 25)
    x = x.to(torch.bfloat16).to(DEV)
    for params, expected in calls:
        op.plans.clear()
        looked_up.clear()
        ours = op(x, *params)
        assert bool(looked_up) == expected, params
        assert torch.equal(_bits(ours), _bits(_computed(op, x, *params)))
        if inplace is not None:
            y = x.clone()
            looked_up.clear()
            inplace(y, *params)
            assert bool(looked_up) == expected and torch.equal(_bits(y), _bits(ours))
    constants = {key[-1] for key in op._lookup_tables if key[0] == torch.bfloat16}
    assert len(constants) == 1, constants  # one table: every looked-up call had the same


@pytest.mark.lookup_thresholds
def test_the_cheaper_maths_have_a_float16_threshold():
    """Ops whose math costs a few libdevice calls look float16 up only in calls of 4M elements
    or more (the table read cold costs more below); bfloat16, and the costlier maths, always."""
    cheap = {"acosh", "asinh", "atanh", "sinc", "selu", "logit", "softplus"}
    assert {op.name for op in LOOKED_UP if op.lookup_from} == cheap
    for op in LOOKED_UP:
        assert op.looks_up(torch.bfloat16, 1) == (torch.bfloat16 in op.looks_up_16_bit)
        declared = torch.float16 in op.looks_up_16_bit
        assert op.looks_up(torch.float16, 1) == (declared and op.name not in cheap)
        assert op.looks_up(torch.float16, 1 << 22) == declared
        assert not op.looks_up(torch.float32, 1 << 22)


@pytest.mark.lookup_thresholds
@pytest.mark.parametrize("op", [op for op in LOOKED_UP if op.lookup_from],
                         ids=lambda op: op.name)
def test_a_call_below_the_threshold_computes(op, monkeypatch):
    """Below ``lookup_from`` a dense float16 call computes (no table, no gather), at it and
    above it looks up; the bits are the same (a threshold of 240 elements stands in for 4M)."""
    from flaggems_exp.families import pointwise

    looked_up = []
    real = pointwise.launch_lookup
    monkeypatch.setattr(pointwise, "launch_lookup",
                        lambda *a: looked_up.append(a[0]) or real(*a))
    monkeypatch.setattr(op, "lookup_from", {torch.float16: 240})
    gen = torch.Generator().manual_seed(5)
    for rows, expected in ((5, False), (6, True), (7, True)):  # 200, 240, 280 elements
        x = (torch.randn(rows, 40, generator=gen) * 4).half().to(DEV)
        op.plans.clear()
        looked_up.clear()
        ours = op(x)
        assert bool(looked_up) == expected, rows
        assert torch.equal(_bits(ours), _bits(_computed(op, x)))


@pytest.mark.parametrize("op", LOOKED_UP, ids=lambda op: op.name)
def test_a_looked_up_call_is_replayed_with_its_table(op):
    """The table is a fixed argument of the call's plan: the next call of the signature is a
    replay, reading the new input, and adds no table."""
    x = torch.linspace(-3, 12, 64, dtype=_first_declared(op), device=DEV)
    op.plans.clear()
    first = op(x)
    plan = op.plans.last
    assert plan is not None and plan.replays == 0
    made = LAUNCHES.get(f"{op.name} (table)", 0)
    y = x.flip(0).contiguous()
    second = op(y)
    assert op.plans.last is plan and plan.replays == 1
    assert LAUNCHES.get(f"{op.name} (table)", 0) == made
    assert torch.equal(_bits(second), _bits(first).flip(0))


@pytest.mark.skipif(DEV != "cuda", reason="CUDA graphs: a GPU only")
@pytest.mark.parametrize("op", LOOKED_UP, ids=lambda op: op.name)
def test_no_table_is_made_inside_a_cuda_graph_capture(op):
    """A first 16-bit call inside a capture takes the kernel (a table made there would hold
    nothing until the graph's first replay) and the graph's replay gives the kernel's bits; the
    next call outside the capture makes the table and looks up."""
    x = torch.linspace(-3, 12, 4096, dtype=torch.bfloat16, device=DEV)  # every op declares it
    op.__dict__.pop("_lookup_tables", None)
    op.plans.clear()
    graph = torch.cuda.CUDAGraph()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        op.looks_up_16_bit = frozenset()
        try:
            op(x)  # compiles the kernel outside the capture
        finally:
            del op.looks_up_16_bit
    torch.cuda.current_stream().wait_stream(side)
    op.plans.clear()
    with torch.cuda.graph(graph):
        captured = op(x)
    assert not op.__dict__.get("_lookup_tables")
    graph.replay()
    torch.cuda.synchronize()
    expected = _computed(op, x)
    assert torch.equal(_bits(captured), _bits(expected))
    made = LAUNCHES.get(f"{op.name} (table)", 0)
    assert torch.equal(_bits(op(x)), _bits(expected))
    assert LAUNCHES.get(f"{op.name} (table)", 0) == made + 1
