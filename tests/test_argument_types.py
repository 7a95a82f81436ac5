"""Argument types in a direct call of every registered op (in-place forms and out= calls
included), against PyTorch's binding of the aten op (``torch.ops.aten.<name>``): a type it
refuses gets its exception, type and message, before anything is written; an unusual type it
takes is taken. And the quick test that spares PyTorch's binding on well-typed calls never
vouches for a call that binding refuses."""
import enum

import numpy as np
import pytest
import torch

import flaggems_exp
from flaggems_exp import REGISTRY, testing
from flaggems_exp.families import InplaceOp
from flaggems_exp.families.base import numbers_of_tensors
from flaggems_exp.testing import Call, assert_close, assert_same_error, run

DEV = flaggems_exp.device
OPS = list(dict.fromkeys(REGISTRY.values()))
# a str, None, a float that is no integer, a list (of floats) where a Tensor or a number goes
WRONG = ("a", None, 1.5, [1.5])
# PyTorch's autograd kernel's refusal of None for a Tensor (an undefined tensor), the same on
# every device (what a backend's kernel makes of one, past it, is that kernel's own)
UNDEFINED = "Expected a proper Tensor but got None"
_resolve = torch._C._jit_resolve_packet  # PyTorch's binding, resolving without running
MISSING = "is missing value for argument"  # an overload the call's types fit, short of one


def ids(op):
    return op.name


def _binding_refusal(name, call):
    """PyTorch's binding's exception for ``call``, or None where it takes it."""
    try:
        _resolve("aten::" + name, *call.args, **call.kwargs)
    except RuntimeError as error:
        return error
    return None


def _schemas(op):
    """The schemas of the aten overloads the op serves under its own name."""
    packet = getattr(torch.ops.aten, op.name)
    return [getattr(packet, o)._schema for n, o in op.aten_overloads() if n == op.name]


def _optional_somewhere(op, key):
    """Whether an overload of the op takes None for argument ``key`` (a position or a name)."""
    for schema in _schemas(op):
        arguments = ([a for a in schema.arguments if not a.kwarg_only] if isinstance(key, int)
                     else schema.arguments)
        for i, a in enumerate(arguments):
            if (i == key if isinstance(key, int) else a.name == key) and (
                    a.real_type.kind() == "OptionalType"):
                return True
    return False


def _forms(op):
    """The op's first sample call, and (for an op with an out= overload) the same with an
    out=, without the options a factory's out= overload does not take."""
    call = testing.sample_calls(op, torch.float32)[0]
    forms = [call]
    if not isinstance(op, InplaceOp) and any(
            a.name == "out" for s in _schemas(op) for a in s.arguments):
        kwargs = {k: v for k, v in call.kwargs.items()
                  if k not in ("dtype", "layout", "device", "pin_memory")}
        forms.append(Call(call.args, {**kwargs, "out": torch.empty(0)}, "out="))
    return forms


def _with(call, key, value):
    if isinstance(key, int):
        return Call(call.args[:key] + (value,) + call.args[key + 1:], call.kwargs)
    return Call(call.args, {**call.kwargs, key: value})


def _wrongly_typed_calls(op):
    """Each form of the op's call with one argument (out= too) of each ``WRONG`` type; None only
    where no overload takes one."""
    for form in _forms(op):
        for key in [*range(len(form.args)), *form.kwargs]:
            for value in WRONG:
                if value is None and (key == "out" or _optional_somewhere(op, key)):
                    continue
                if key == "device":
                    continue  # the harness moves a factory's call to the device in use
                yield _with(form, key, value)


def _tensors(call):
    return [v for v in (*call.args, *call.kwargs.values()) if isinstance(v, torch.Tensor)]


@pytest.mark.parametrize("op", OPS, ids=ids)
def test_a_wrongly_typed_argument_gets_pytorchs_error(op):
    """PyTorch's binding refuses the argument (or takes None for a Tensor, which PyTorch's
    autograd kernel then refuses): the same exception, before anything is written (each
    tensor's values and version as they were)."""
    packet = getattr(torch.ops.aten, op.name)
    compared = 0
    for call in _wrongly_typed_calls(op):
        if _binding_refusal(op.name, call):
            theirs = run(packet, testing.on_device(call))  # refused before anything runs
        else:  # taken; None for a Tensor is refused by the autograd kernel, on any device
            # (the meta device's: some CPU kernels crash on an undefined tensor, copy's)
            theirs = run(packet, call.on("meta"))
            if not (isinstance(theirs, RuntimeError) and str(theirs).startswith(UNDEFINED)):
                continue
        ours_call = testing.on_device(call)
        tensors = _tensors(ours_call)
        before = [(testing.bits(t).clone(), t._version) for t in tensors]
        ours = run(op, ours_call)
        assert_same_error(ours, theirs)
        assert all(torch.equal(testing.bits(t), b) and t._version == v
                   for t, (b, v) in zip(tensors, before)), "a refused call wrote a tensor"
        compared += 1
    assert compared, f"{op.name}: no argument PyTorch refuses was tried"


def _x(*shape, dtype=torch.float32):
    return testing.random_tensor(shape, dtype, generator=torch.Generator().manual_seed(len(shape)))


# calls with arguments of unusual types PyTorch's binding takes: (name, args, kwargs)
UNUSUAL = [
    ("tril", (_x(4, 5), True), {}),                           # a bool for an int
    ("tril", (_x(4, 5), torch.tensor(1)), {}),                # a 0-dim integer tensor for an int
    ("tril", (_x(4, 5), torch.tensor([2])), {}),              # a one-element one for an int
    ("hardtanh", (_x(6), -1, True), {}),                      # an int and a bool for Scalars
    ("hardtanh", (_x(6), np.float64(-0.5)), {}),              # a numpy float64 for a Scalar
    ("leaky_relu", (_x(6), 1), {}),
    ("logit", (_x(6), None), {}),                             # None for a float?
    ("logit", (_x(6), 0), {}),                                # an int for a float?
    ("huber_loss", (_x(6), _x(6) + 1, True, 2), {}),          # a bool: int, an int: float
    ("new_ones", (_x(3), (2, 3)), {}),                        # a tuple for an int[]
    ("new_ones", (_x(3), torch.Size([2, 3])), {"dtype": torch.float64}),
    ("reflection_pad1d", (_x(2, 5), (1, 2)), {}),
    ("upsample_nearest1d", (_x(1, 2, 5), None, [2]), {}),     # ints for a float[]
    ("upsample_nearest1d", (_x(1, 2, 5), [8], 2), {}),        # an int for a float?
    ("_safe_softmax", (_x(3, 4), 1, None), {}),               # None for a ScalarType?
    ("_safe_softmax", (_x(3, 4), True, torch.float64), {}),
    ("eye", (3,), {"dtype": torch.float64, "layout": torch.strided, "device": DEV,
                   "pin_memory": False}),                     # every option, a str device
    ("eye", (3, 2), {"device": torch.device(DEV)}),
    ("copy", (_x(3, 4), _x(4), 0), {}),                       # an int for a bool
    ("mul", (_x(6), 2), {}),                                  # a number for a Tensor (mul's)
    ("mul", (2, _x(6)), {}),
    ("mul", (_x(6), True), {"out": torch.empty(6)}),
    ("mul_", (_x(6), 2.5), {}),
    ("eq", (_x(6), 0), {}),
    ("xlogy", (2.0, _x(6)), {}),                              # a Scalar self
    ("addcmul", (_x(6), _x(6), _x(6)), {"value": 2}),
    ("slice_scatter", (_x(4, 5), _x(4, 3), 1, None, None, 2), {}),  # None for SymInt?
    ("scalar_tensor", (True,), {"device": DEV}),
    ("pixel_shuffle", (_x(1, 4, 2, 3), True), {}),            # a bool for an int
    ("reflection_pad1d", (_x(2, 5), [True, 2]), {}),          # a bool in an int[]
]


@pytest.mark.parametrize("name, args, kwargs", UNUSUAL,
                         ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(UNUSUAL)])
def test_an_unusual_type_pytorch_takes_is_taken(name, args, kwargs):
    call = Call(args, kwargs)  # each run on copies of its tensors (an in-place form writes)
    theirs = run(getattr(torch.ops.aten, name), call.on("cpu"))
    assert isinstance(theirs, torch.Tensor), theirs
    assert_close(run(REGISTRY[name], testing.on_device(call)), theirs)


# a factory's options of wrong types (its sample calls' device follows the device in use)
OPTIONS = [("eye", (3,), {"device": 0}), ("eye", (3,), {"device": "no such device"}),
           ("eye", (3,), {"device": 1.5}), ("scalar_tensor", (1.5,), {"device": [DEV]}),
           ("eye", (3,), {"dtype": "float32"}), ("eye", (3,), {"dtype": float}),
           ("eye", (3,), {"layout": "strided"}), ("new_ones", (_x(2), [2]), {"pin_memory": "no"}),
           ("empty_permuted", ((2, 3), (1, 0)), {"device": 0})]


@pytest.mark.parametrize("name, args, kwargs", OPTIONS,
                         ids=[f"{n}-{next(iter(k))}={k[next(iter(k))]!r}" for n, _, k in OPTIONS])
def test_a_wrongly_typed_option_gets_pytorchs_error(name, args, kwargs):
    assert_same_error(run(REGISTRY[name], Call(args, kwargs)),
                      run(getattr(torch.ops.aten, name), Call(args, kwargs)))


def test_a_zero_dim_tensor_for_a_scalar_is_taken_as_the_functional_binding_takes_it():
    """``torch.ops.aten.hardtanh`` refuses a tensor for a Scalar; ``torch.hardtanh`` (the
    functional binding, whose reading of tensors given for numbers the ops keep) takes a 0-dim
    one: so do they."""
    x = _x(6)
    ours = REGISTRY["hardtanh"](x.to(DEV), torch.tensor(-0.5), torch.tensor(0.5))
    assert_close(ours, torch._C._nn.hardtanh(x, torch.tensor(-0.5), torch.tensor(0.5)), exact=True)


# values of every kind, for the quick test's soundness
CANDIDATES = (None, True, 1, -1.5, 2j, "a", "cpu", [1], (1, 2), [1.5], [True], [], [None],
              torch.Size([1]), _x(3), torch.tensor(1.0), torch.tensor(1), torch.tensor([1]),
              torch.nn.Parameter(_x(3), requires_grad=False), np.int64(1), np.float64(1.0),
              np.float32(1.0), torch.float32, torch.strided, torch.contiguous_format,
              torch.device("cpu"), object(), [_x(2)], {}, np.complex128(1j), np.bool_(True),
              enum.IntEnum("Small", "ONE")(1), (1.5, 2), [1, 2.0])


@pytest.mark.parametrize("op", OPS, ids=ids)
def test_the_quick_test_vouches_for_no_call_pytorchs_binding_refuses(op):
    """Each argument of the op's calls (out= included) replaced by a value of each kind: a
    call the quick test vouches for is one PyTorch's binding takes (the test may leave a call
    it takes to PyTorch, never the reverse); and the op's natural calls are vouched for."""
    for form in _forms(op):
        for key in [*range(len(form.args)), *form.kwargs]:
            for value in CANDIDATES:
                call = _with(form, key, value)
                try:  # a tensor given for a number: read as the functional binding reads it
                    args, kwargs, _ = numbers_of_tensors(op.name, call.args, call.kwargs)
                except TypeError:
                    continue
                out = kwargs.pop("out", None)
                if op.well_typed(args, kwargs, out):
                    refusal = _binding_refusal(op.name, Call(args, call.kwargs | kwargs))
                    # a required argument not given is the families' arity error, no type's
                    assert refusal is None or MISSING in str(refusal), (key, value, refusal)
    for dtype in (torch.float32, torch.int64):
        for call in testing.sample_calls(op, dtype):
            kwargs = dict(call.kwargs)
            out = kwargs.pop("out", None)
            args, kwargs, _ = numbers_of_tensors(op.name, call.args, kwargs)
            assert op.well_typed(args, kwargs, out), call.label


def test_a_wrongly_typed_call_after_a_planned_one_is_refused():
    """A planned signature's replay never serves an argument of another type (the signature
    holds each number's type): the call takes the full path, which refuses it."""
    x = _x(4, 5).to(DEV)
    tril, mul = REGISTRY["tril"], REGISTRY["mul"]
    for _ in range(2):
        tril(x, 1)
        mul(x, 2)
    for op, args in ((tril, (x, 1.0)), (tril, (x, "1")), (mul, (x, "2")), (mul, (x, [2]))):
        packet = getattr(torch.ops.aten, op.name)
        assert_same_error(run(op, Call(args)), run(packet, Call(args)))


def test_no_type_test_on_a_planned_call_or_under_enable(monkeypatch):
    """A plan's replay asks nothing of the quick test; nor does a call the dispatcher makes
    under enable(), whose binding read the arguments."""
    op = REGISTRY["logaddexp"]
    asked = []
    well_typed = op.well_typed
    monkeypatch.setitem(op.__dict__, "well_typed",
                        lambda *a: asked.append(a) or well_typed(*a))
    x = _x(7, 3).to(DEV)
    op.plans.clear()
    op(x, x)
    assert len(asked) == 1  # the full path
    op(x, x)
    assert len(asked) == 1  # the plan
    op.plans.clear()
    with flaggems_exp.use_gems(include=["logaddexp"]):
        torch.logaddexp(x, x)
    assert len(op.plans) == 1  # the dispatcher's call took the full path
    assert len(asked) == 1
