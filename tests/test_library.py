"""The library around the ops: registry, namespace, promotion, enable()/use_gems(), autograd,
and ops added from outside the package."""
import warnings

import numpy as np
import pytest
import torch
import triton
import triton.language as tl

import flaggems_exp
from flaggems_exp import LAUNCHES, REGISTRY, experimental_ops, testing
from flaggems_exp.families import InplaceOp, PointwiseOp, Promotion, register
from flaggems_exp.families.autograd_calls import served
from flaggems_exp.runtime.dtypes import FLOATING
from flaggems_exp.runtime.promotion import promote

OPS = list(dict.fromkeys(REGISTRY.values()))
FUNCTIONAL = [op for op in OPS if not isinstance(op, InplaceOp)]


def test_every_name_is_exported_and_listed():
    assert sorted(experimental_ops.__all__) == flaggems_exp.list_ops() == sorted(REGISTRY)
    for name, op in REGISTRY.items():
        assert getattr(experimental_ops, name) is op
        assert name in op.names
        assert callable(op.ref), name


def test_namespace_reads_the_registry():
    """The namespace holds no list of ops: every registered name is found by attribute, ``from
    ... import``, ``import *`` and ``dir()`` (tab completion), and an op registered again under
    a name (after its removal) replaces the one found before."""
    from flaggems_exp.experimental_ops import sigmoid
    assert sigmoid is REGISTRY["sigmoid"]
    namespace = {}
    exec("from flaggems_exp.experimental_ops import *", namespace)  # noqa: S102
    assert {k: v for k, v in namespace.items() if k != "__builtins__"} == REGISTRY
    assert set(REGISTRY) <= set(dir(experimental_ops))
    with pytest.raises(AttributeError, match="has no attribute 'namespace_probe'"):
        experimental_ops.namespace_probe

    def probe():
        @register
        class NamespaceProbe(PointwiseOp):  # no aten op of this name
            promotion = Promotion.INT_TO_FLOAT
            dtypes = FLOATING
            ref = staticmethod(torch.nn.functional.softsign)
            math = staticmethod(flaggems_exp.ops._common.sigmoid)
        return REGISTRY["namespace_probe"]

    try:
        first = probe()
        assert experimental_ops.namespace_probe is first
        assert "namespace_probe" in dir(experimental_ops)
        del REGISTRY["namespace_probe"]  # removing an op: from the registry and the kept name
        vars(experimental_ops).pop("namespace_probe")
        second = probe()
        assert second is not first and experimental_ops.namespace_probe is second
    finally:
        REGISTRY.pop("namespace_probe", None)
        vars(experimental_ops).pop("namespace_probe", None)
        served.cache_clear()


def test_every_name_is_an_aten_op():
    for name, op in REGISTRY.items():
        assert op.aten_overloads(), f"{name} has no aten overload"


def test_aliases_share_one_kernel():
    assert experimental_ops.arcsinh is experimental_ops.asinh
    assert experimental_ops.negative_ is experimental_ops.neg_
    assert experimental_ops.fix is experimental_ops.trunc
    assert experimental_ops.multiply is experimental_ops.mul


@pytest.mark.parametrize("args, kind, expected", [
    ((torch.ones(2, dtype=torch.int64), 2.5), Promotion.DEFAULT, torch.float32),
    ((torch.ones(2, dtype=torch.float16), 2.5), Promotion.DEFAULT, torch.float16),
    ((torch.ones(2, dtype=torch.float16), torch.tensor(1.0)), Promotion.DEFAULT, torch.float16),
    ((torch.ones(2, dtype=torch.int64), torch.tensor(1.0, dtype=torch.float16)),
     Promotion.DEFAULT, torch.float16),
    ((torch.ones(2, dtype=torch.float16), torch.ones(2, dtype=torch.bfloat16)),
     Promotion.DEFAULT, torch.float32),
    ((torch.ones(2, dtype=torch.uint8), torch.ones(2, dtype=torch.int8)),
     Promotion.DEFAULT, torch.int16),
    ((torch.ones(2, dtype=torch.bool), 2), Promotion.DEFAULT, torch.int64),
    ((torch.ones(2, dtype=torch.int32),), Promotion.INT_TO_FLOAT, torch.float32),
    ((torch.ones(2, dtype=torch.bool),), Promotion.BOOL_TO_LONG, torch.int64),
])
def test_promotion_is_pytorchs(args, kind, expected):
    """Pins the wrapped private PyTorch promotion helper, cached by argument signature."""
    for _ in range(2):  # the second call is served from the cache
        compute, result = promote(args, kind)
        assert result == expected
        assert compute == (torch.float32 if expected in (torch.float16, torch.bfloat16) else expected)


def _count(name):
    return LAUNCHES[name]


def test_enable_routes_and_disable_restores():
    x = torch.randn(64, device=flaggems_exp.device)
    assert not flaggems_exp.is_enabled()
    before = _count("sigmoid")
    torch.sigmoid(x)
    assert _count("sigmoid") == before, "PyTorch's kernel must run while disabled"
    flaggems_exp.enable()
    try:
        y = torch.sigmoid(x)
        assert _count("sigmoid") == before + 1
        torch.testing.assert_close(y, 1 / (1 + torch.exp(-x)))
        # an in-place form launches its functional op's kernel, counted under that name
        calls = [("sigmoid", lambda: x.clone().sigmoid_()),
                 ("special_i0e", lambda: torch.special.i0e(x)),
                 ("selu", lambda: torch.nn.functional.selu(x)),  # CompositeImplicitAutograd
                 ("mul", lambda: torch.multiply(x, 2.0))]  # an alias, Scalar overload
        for name, call in calls:
            before_call = _count(name)
            call()
            assert _count(name) == before_call + 1, name
    finally:
        flaggems_exp.disable()
    after = _count("sigmoid")
    torch.sigmoid(x)
    assert _count("sigmoid") == after and not flaggems_exp.is_enabled()


def test_use_gems_is_scoped():
    x = torch.randn(16, device=flaggems_exp.device)
    before = _count("hardswish")
    with flaggems_exp.use_gems():
        torch.nn.functional.hardswish(x)
        assert flaggems_exp.is_enabled()
    assert not flaggems_exp.is_enabled()
    torch.nn.functional.hardswish(x)
    assert _count("hardswish") == before + 1


def test_enable_covers_out_overloads():
    x = torch.randn(8, device=flaggems_exp.device)
    out = torch.empty_like(x)
    before = _count("exp2")
    with flaggems_exp.use_gems():
        result = torch.exp2(x, out=out)
    assert result is out and _count("exp2") == before + 1
    torch.testing.assert_close(out, torch.exp2(x))


def _differentiable_calls():
    for op in FUNCTIONAL:
        if not isinstance(op, PointwiseOp) or op.dtypes.isdisjoint(FLOATING):
            continue
        calls = testing.sample_calls(op, torch.float64, shape=(3, 4))
        if calls:
            yield pytest.param(op, calls[0], id=op.name)


@pytest.mark.parametrize("op, call", list(_differentiable_calls()))
def test_autograd_under_enable(op, call):
    """Gradients through PyTorch's ops are the same with our kernels enabled."""
    def grads():
        leaves = [a.to(flaggems_exp.device, copy=True).requires_grad_()
                  if isinstance(a, torch.Tensor) else a for a in call.args]
        try:
            out = op.ref(*leaves, **call.kwargs)
            out.backward(torch.ones_like(out))
        except (RuntimeError, NotImplementedError) as exc:
            return exc
        return [a.grad for a in leaves if isinstance(a, torch.Tensor)]

    expected = grads()
    before = _count(op.name)
    with flaggems_exp.use_gems():
        got = grads()
    if isinstance(expected, Exception):
        assert type(got) is type(expected)  # PyTorch has no derivative: the same error either way
        return
    assert not isinstance(got, Exception), got
    assert _count(op.name) > before or _composite(op), "our kernel must run in the forward"
    for g, e in zip(got, expected):
        if e is None:
            assert g is None
        else:
            torch.testing.assert_close(g, e, equal_nan=True)


def _composite(op):
    """Composite ops run PyTorch's decomposition when a gradient is needed (dispatch.py)."""
    return any(torch._C._dispatch_has_kernel_for_dispatch_key(
        getattr(getattr(torch.ops.aten, n), o).name(), "CompositeImplicitAutograd")
        for n, o in op.aten_overloads())


def test_an_op_added_from_outside_the_package():
    """A user subclasses a family in their own module: callable, in place, enabled, tested."""
    from flaggems_exp.runtime import special

    @register
    class Expm1(PointwiseOp):
        promotion = Promotion.INT_TO_FLOAT
        dtypes = FLOATING
        math = staticmethod(special.expm1)

    @register
    class Softsign(PointwiseOp):  # no aten op of this name: callable, not dispatched
        promotion = Promotion.INT_TO_FLOAT
        dtypes = FLOATING
        ref = staticmethod(torch.nn.functional.softsign)

        @staticmethod
        @triton.jit
        def math(x):
            return x / (1 + tl.abs(x))

    try:
        x = torch.randn(100, device=flaggems_exp.device)
        torch.testing.assert_close(experimental_ops.softsign(x), x / (1 + x.abs()))
        assert {"expm1", "expm1_", "softsign"} <= set(flaggems_exp.list_ops())
        for name in ("expm1", "expm1_", "softsign"):
            for call in testing.sample_calls(REGISTRY[name], torch.float16):
                native, expected = testing.reference(REGISTRY[name], call)
                testing.assert_close(REGISTRY[name](*testing.on_device(call).args), expected)
        before = LAUNCHES["expm1"]
        with flaggems_exp.use_gems():
            torch.testing.assert_close(torch.expm1(x), torch.exp(x.double()).sub(1).float())
        assert LAUNCHES["expm1"] == before + 1
    finally:
        for name in ("expm1", "expm1_", "softsign"):
            del REGISTRY[name]
            vars(experimental_ops).pop(name, None)
        served.cache_clear()


def test_registering_a_name_twice_is_an_error():
    with pytest.raises(ValueError, match="already registered"):
        @register
        class Sigmoid(PointwiseOp):
            @staticmethod
            @triton.jit
            def math(x):
                return x


def test_zero_dim_cpu_tensor_is_a_scalar_beside_device_tensors():
    x = torch.randn(5, device=flaggems_exp.device)
    scale = torch.tensor(3.0)
    torch.testing.assert_close(experimental_ops.mul(x, scale), x * 3.0)


@pytest.mark.parametrize("name", ["xlogy", "log", "addcdiv", "digamma", "i0", "selu", "logit",
                                  "sinc", "_safe_softmax"])
def test_quiet_on_valid_input(name):
    """The interpreter's numpy warns on the inf/NaN valid inputs produce; PyTorch does not, so
    neither do we (and the user's own warning settings are left as they were)."""
    op = REGISTRY[name]
    calls = testing.sample_calls(op, torch.float32, generator=torch.Generator().manual_seed(3))
    settings = np.geterr()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for call in calls:
            native, _ = testing.reference(op, call)
            for _ in range(2):  # the full path, then its plan
                result = testing.run(op, testing.on_device(call))
                # a warning turned error surfaces as an exception (the interpreter's own type)
                assert isinstance(result, Exception) == isinstance(native, Exception), (
                    f"{call.label}: {result!r}")
    assert np.geterr() == settings


def test_enable_routes_the_chosen_ops():
    x = torch.randn(16, device=flaggems_exp.device)
    try:
        flaggems_exp.enable(include=["sigmoid", "multiply"])  # an alias names its op
        assert flaggems_exp.routed() == ["mul", "multiply", "sigmoid"]
        before = (_count("sigmoid"), _count("mul"), _count("exp"))
        torch.sigmoid(x), torch.mul(x, 2), torch.exp(x)
        assert (_count("sigmoid"), _count("mul"), _count("exp")) == (
            before[0] + 1, before[1] + 1, before[2])
        flaggems_exp.enable(exclude=["exp", "exp_"])
        assert "exp" not in flaggems_exp.routed() and "exp_" not in flaggems_exp.routed()
        assert "sigmoid_" in flaggems_exp.routed()
        before = (_count("exp"), _count("sigmoid"))
        torch.exp(x), x.clone().exp_(), torch.sigmoid(x)
        assert (_count("exp"), _count("sigmoid")) == (before[0], before[1] + 1)
        with flaggems_exp.use_gems(include=["exp"]):
            assert flaggems_exp.routed() == ["exp"]
            torch.exp(x)
            assert _count("exp") == before[0] + 1
        assert "exp" not in flaggems_exp.routed() and "sigmoid" in flaggems_exp.routed()
    finally:
        flaggems_exp.disable()
    assert flaggems_exp.routed() == [] and not flaggems_exp.is_enabled()
    with pytest.raises(ValueError, match="not flaggems_exp ops: nope"):
        flaggems_exp.enable(include=["nope"])
    with pytest.raises(TypeError, match="a list of op names"):
        flaggems_exp.enable(exclude="exp")
    assert not flaggems_exp.is_enabled()


def test_calls_from_several_threads():
    """Each thread's results are PyTorch's (on the CPU the interpreter's launches take turns)."""
    import concurrent.futures
    names = ["sigmoid", "mul", "tril", "smooth_l1_loss", "replication_pad1d", "_safe_softmax"]
    calls = [(REGISTRY[n], c) for n in names
             for c in testing.sample_calls(REGISTRY[n], torch.float32,
                                           generator=torch.Generator().manual_seed(4))[:2]]
    expected = [testing.run(op, testing.on_device(c)) for op, c in calls]

    def work(seed):
        order = torch.randperm(len(calls), generator=torch.Generator().manual_seed(seed))
        return [(int(i), testing.run(calls[i][0], testing.on_device(calls[i][1])))
                for i in order.tolist() * 3]

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        for results in pool.map(work, range(4)):
            for i, result in results:
                if isinstance(expected[i], Exception):
                    assert type(result) is type(expected[i])
                else:
                    assert not isinstance(result, Exception), repr(result)
                    assert torch.equal(result.cpu(), expected[i].cpu())
