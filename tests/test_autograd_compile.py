"""Direct calls ``experimental_ops.<name>(...)`` under autograd and under torch.compile.

Autograd: a call whose tensors require grad records PyTorch's graph (its derivative formulas) on
our kernel's forward, or raises PyTorch's error before anything is written. torch.compile: a
direct call is an opaque custom operator of the compiled graph that runs our kernel.
"""
import subprocess
import sys

import pytest
import torch

import flaggems_exp
from flaggems_exp import LAUNCHES, REGISTRY, experimental_ops as ops, testing

OPS = list(dict.fromkeys(REGISTRY.values()))
DEVICE = flaggems_exp.device


def _launched():
    return sum(LAUNCHES.values())


def _composite(op):
    """Every overload of the op's aten name is a CompositeImplicitAutograd decomposition, which
    autograd records step by step (our kernels run only the steps we serve)."""
    packet = getattr(torch.ops.aten, op.name)
    return all(torch._C._dispatch_has_kernel_for_dispatch_key(
        getattr(packet, o).name(), "CompositeImplicitAutograd") for o in packet.overloads())


def _graph_call(op, call):
    """(leaves requiring grad, the call's arguments): each floating tensor argument a leaf of its
    own, passed as a non-leaf copy (an in-place form may write it)."""
    leaves, args = [], []
    for a in call.args:
        if isinstance(a, torch.Tensor) and a.is_floating_point():
            leaf = testing.copy_view(a, DEVICE).requires_grad_()
            leaves.append(leaf)
            a = leaf.clone()
        elif isinstance(a, torch.Tensor):
            a = testing.copy_view(a, DEVICE)
        args.append(a)
    return leaves, args


def _forward_and_grads(fn, op, call):
    """``fn``'s result (or exception) and the gradients of its leaves (torch.autograd.grad; None
    where the result records no graph; the exception where backward raises)."""
    leaves, args = _graph_call(op, call)
    kwargs = dict(call.kwargs)
    if kwargs.get("device") is not None:  # a factory's: the sample's CPU, made the kernels'
        kwargs["device"] = DEVICE
    result = testing.run(fn, testing.Call(tuple(args), kwargs))
    if not (isinstance(result, torch.Tensor) and result.requires_grad):
        return result, None
    weights = torch.linspace(-1, 2, result.numel(), dtype=result.dtype,
                             device=result.device).reshape(result.shape)
    return result, testing.run(torch.autograd.grad, testing.Call(
        (result, leaves, weights), {"allow_unused": True}))


def _differentiable_cases():
    for op in OPS:
        if not hasattr(torch.ops.aten, op.name):
            continue
        for dtype in (torch.float32, torch.float64):
            yield pytest.param(op, dtype, id=f"{op.name}-{str(dtype)[6:]}")


@pytest.mark.parametrize("op, dtype", list(_differentiable_cases()))
def test_direct_call_records_pytorchs_gradients(op, dtype):
    """Every sample call of every op, with its floating tensors requiring grad: our forward,
    PyTorch's graph. The result is PyTorch's (or its error), the graph's node and gradients
    those of the aten op's own call, and our kernel ran for the forward."""
    aten_op = getattr(torch.ops.aten, op.name)
    calls = [c for c in testing.sample_calls(op, dtype, generator=torch.Generator().manual_seed(3))
             if "out" not in c.kwargs]
    for call in calls:
        native, expected = testing.reference(op, call)
        before = _launched()
        ours, grads = _forward_and_grads(op, op, call)
        theirs, expected_grads = _forward_and_grads(aten_op, op, call)
        if isinstance(native, Exception) or isinstance(theirs, Exception):
            if not isinstance(native, Exception) and isinstance(testing.run(aten_op, call),
                                                                Exception):
                continue  # the CPU kernel raises where the reference follows the CUDA kernel
            # autograd's own error comes first (theirs), else the kernel's (native)
            testing.assert_same_error(ours, theirs if isinstance(theirs, Exception) else native)
            continue
        assert not isinstance(ours, Exception), f"{call.label}: {ours}"
        testing.assert_close(ours.detach(), expected, exact=not expected.is_floating_point())
        assert ours.requires_grad == theirs.requires_grad, call.label
        if expected_grads is None:
            continue
        assert type(ours.grad_fn) is type(theirs.grad_fn), call.label  # PyTorch's formula
        if ours.numel() and not _composite(op):
            assert _launched() > before, "our kernel must run the forward"
        if isinstance(expected_grads, Exception):  # PyTorch's backward raises: ours too
            testing.assert_same_error(grads, expected_grads)
            continue
        for g, e in zip(grads, expected_grads):
            assert (g is None) == (e is None)
            if e is not None:
                torch.testing.assert_close(g, e, equal_nan=True)


def _no_change(tensors, before):
    assert all(torch.equal(t.detach(), b) for t, b in zip(tensors, before)), "an input changed"


@pytest.mark.parametrize("name", ["sigmoid_", "mul_", "hardtanh_", "tril_", "zero_", "copy_"])
def test_in_place_on_a_leaf_raises_pytorchs_error(name):
    op = getattr(ops, name)
    leaf = torch.randn(4, 4, device=DEVICE, requires_grad=True)
    extra = {"mul_": (torch.randn(4, 4, device=DEVICE),),
             "copy_": (torch.randn(4, 4, device=DEVICE),)}.get(name, ())
    before = leaf.detach().clone()
    ours = testing.run(op, testing.Call((leaf, *extra)))
    theirs = testing.run(getattr(torch.ops.aten, name), testing.Call((leaf, *extra)))
    testing.assert_same_error(ours, theirs)
    _no_change([leaf], [before])
    view = leaf[1:]  # a view of such a leaf
    ours = testing.run(op, testing.Call((view, *(e[1:] for e in extra))))
    theirs = testing.run(getattr(torch.ops.aten, name), testing.Call((view, *(e[1:] for e in extra))))
    testing.assert_same_error(ours, theirs)
    _no_change([leaf], [before])


@pytest.mark.parametrize("name, args", [("sigmoid", 1), ("mul", 2), ("addcmul", 3),
                                        ("huber_loss", 2), ("take", None)])
def test_out_with_inputs_requiring_grad_raises_pytorchs_error(name, args):
    x = torch.randn(6, device=DEVICE, requires_grad=True)
    inputs = (x, torch.tensor([0, 2], device=DEVICE)) if args is None else (
        x, *(torch.randn(6, device=DEVICE) for _ in range(args - 1)))
    out = torch.zeros(6, device=DEVICE)
    ours = testing.run(getattr(ops, name), testing.Call(inputs, {"out": out}))
    theirs = testing.run(getattr(torch.ops.aten, name), testing.Call(inputs, {"out": out}))
    testing.assert_same_error(ours, theirs)
    assert torch.equal(out, torch.zeros(6, device=DEVICE)), "out= was written"


def test_a_signature_planned_under_no_grad_records_in_grad_mode():
    """Whether autograd records a call is part of its signature: a plan made under no_grad for
    tensors requiring grad never serves the same tensors in grad mode."""
    x = torch.randn(8, device=DEVICE, requires_grad=True)
    ops.sigmoid.plans.clear()
    with torch.no_grad():
        for _ in range(2):
            assert ops.sigmoid(x).grad_fn is None
    assert len(ops.sigmoid.plans) == 1
    y = ops.sigmoid(x)
    assert type(y.grad_fn) is type(torch.sigmoid(x).grad_fn)
    g, = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(g, torch.autograd.grad(torch.sigmoid(x).sum(), x)[0])


def _written_call(name):
    """(a direct call of ``name`` that writes a tensor, that tensor): an in-place form's self,
    or ``out=``."""
    x = torch.randn(4, 4, device=DEVICE)
    other = torch.randn(4, 4, device=DEVICE)
    mask = torch.rand(4, 4, device=DEVICE) > 0.5
    if name.endswith("_"):
        extra = {"mul_": (other,), "copy_": (other,), "masked_scatter_": (mask, other)}
        return testing.Call((x, *extra.get(name, ()))), x
    out = torch.empty(() if name == "trace" else (4, 4), device=DEVICE)
    inputs = (x, other) if name == "mul" else (x,)
    return testing.Call(inputs, {"out": out}), out


def _plans_after_written_calls(name):
    """The plans ``name``'s calls of ``_written_call`` leave: one, but none for masked_scatter_
    interpreted, which counts the mask's hits on the host and is never planned (compiled, its
    kernel checks the count on the device)."""
    return int(name != "masked_scatter_" or DEVICE != "cpu")


_WRITERS = ["sigmoid_", "mul_", "hardtanh_", "tril_", "zero_", "copy_", "masked_scatter_",
            "sigmoid", "mul", "tril", "trace"]


@pytest.mark.parametrize("name", _WRITERS)
def test_a_direct_write_bumps_the_version_counter(name):
    """A direct call's written tensor gets a new version, as PyTorch's ADInplaceOrView kernel
    gives it after an aten op's kernel: on the full path and on a plan alike."""
    op = getattr(ops, name)
    op.plans.clear()
    for _ in range(2):  # the full path, then the plan it made
        call, written = _written_call(name)
        before, launched = written._version, _launched()
        op(*call.args, **call.kwargs)
        assert _launched() > launched, "our kernel did not run"
        assert written._version > before, "the written tensor kept its version"
    assert len(op.plans) == _plans_after_written_calls(name)


def test_a_direct_write_into_an_out_without_storage_bumps_its_version():
    """An out= with no storage (``torch.empty(0)``, which a plan's replay resizes into new
    memory) gets one new version a call, as PyTorch's gives it: on the full path and on the
    plan it made."""
    op = ops.sigmoid
    op.plans.clear()
    x = torch.randn(4, 4, device=DEVICE)
    for _ in range(2):
        bumps = []
        for fn in (op, torch.ops.aten.sigmoid):
            out = torch.empty(0, device=DEVICE)
            before = out._version
            fn(x, out=out)
            bumps.append(out._version - before)
        assert bumps[0] == bumps[1] == 1, bumps
    assert len(op.plans) == 1


@pytest.mark.parametrize("name, kwargs", [("mul_", {"other": 2}), ("sigmoid_", {})])
def test_an_in_place_form_takes_self_as_a_keyword(name, kwargs):
    """aten's in-place overloads name their first argument ``self``: passed by keyword, it is
    written and returned as when passed by position, on the full path and on its plan."""
    op = getattr(ops, name)
    op.plans.clear()
    for _ in range(2):
        x = torch.linspace(-2, 2, 5, device=DEVICE)
        expected = getattr(torch.ops.aten, name)(self=x.clone(), **kwargs)
        launched = _launched()
        assert op(self=x, **kwargs) is x and x._version > 0
        assert _launched() > launched, "our kernel did not run"
        testing.assert_close(x, expected)


def test_a_backward_through_a_tensor_a_direct_call_changed_raises():
    """Autograd refuses a gradient whose saved tensor a direct call wrote afterwards (in place
    under no_grad, or as ``out=``), as it refuses PyTorch's own in-place calls."""
    x = torch.tensor([0.5, -1.0, 2.0], device=DEVICE, requires_grad=True)
    y = x.exp()  # exp saves its result
    with torch.no_grad():
        ops.mul_(y, 2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()
    z = torch.ones(3, device=DEVICE)
    y = x * z  # mul saves z
    ops.neg(torch.ones(3, device=DEVICE), out=z)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


@pytest.mark.filterwarnings("ignore:An output with one or more elements was resized")
@pytest.mark.parametrize("out_shape", [(0,), (2,)])
def test_a_direct_write_into_an_inference_out_that_needs_resizing(out_shape):
    """An inference out= of another shape is resized as PyTorch's kernels resize it (below
    autograd, where nothing refuses it), written, and only then refused."""
    results = []
    for fn in (ops.mul, torch.ops.aten.mul):
        with torch.inference_mode():
            x = torch.ones(3, device=DEVICE)
            out = torch.zeros(out_shape, device=DEVICE)
        results.append((testing.run(fn, testing.Call((x, 2), {"out": out})), out))
    (ours, ours_out), (theirs, theirs_out) = results
    testing.assert_same_error(ours, theirs)
    assert torch.equal(ours_out, theirs_out) and ours_out.shape == (3,)


@pytest.mark.parametrize("name", ["sigmoid_", "copy_", "sigmoid", "trace"])
def test_a_direct_write_into_an_inference_tensor(name):
    """Outside inference mode, a write into an inference tensor raises PyTorch's error after
    the kernel has written, as PyTorch's version bump does (the tensor holds the result);
    inside inference mode it is an ordinary write. On the full path, then on its plan."""
    getattr(ops, name).plans.clear()
    for _ in range(2):
        results = []
        for fn in (getattr(ops, name), getattr(torch.ops.aten, name)):
            with torch.inference_mode():
                torch.manual_seed(0)
                call, written = _written_call(name)
            results.append((testing.run(fn, call), written))
        (ours, ours_written), (theirs, theirs_written) = results
        testing.assert_same_error(ours, theirs)
        torch.testing.assert_close(ours_written, theirs_written)
    assert len(getattr(ops, name).plans) == _plans_after_written_calls(name)
    with torch.inference_mode():
        call, written = _written_call(name)
        getattr(ops, name)(*call.args, **call.kwargs)


@pytest.mark.parametrize("name, args", [("sigmoid", 1), ("mul", 2), ("huber_loss", 2),
                                        ("replication_pad1d", [1, 2]), ("tril", 0)])
def test_forward_mode_tangents_are_pytorchs(name, args):
    """A tensor carrying a forward-mode tangent (which grad mode does not switch off): our
    kernel computes the primal, PyTorch's forward derivative the tangent, even for a
    signature that already has a plan (no call is planned while a dual level is open)."""
    import torch.autograd.forward_ad as fwad
    op, aten_op = getattr(ops, name), getattr(torch.ops.aten, name)
    x, tangent = (torch.randn(3, 6, device=DEVICE, dtype=torch.float64) for _ in range(2))
    extra = (tuple(torch.randn(3, 6, device=DEVICE, dtype=torch.float64)
                   for _ in range(args - 1)) if isinstance(args, int) and name != "tril"
             else (args,))
    op(x, *extra)  # a plan for the primal's signature
    op(x, *extra)
    with fwad.dual_level(), torch.no_grad():
        dual = fwad.make_dual(x, tangent)
        before = _launched()
        ours = fwad.unpack_dual(op(dual, *extra))
        assert _launched() > before, "our kernel must compute the primal"
        theirs = fwad.unpack_dual(aten_op(dual, *extra))
    assert ours.tangent is not None, "the tangent was dropped"
    torch.testing.assert_close(ours.primal, theirs.primal)
    torch.testing.assert_close(ours.tangent, theirs.tangent)


# ---- torch.compile ----

def _family_calls(ns):
    """A few direct calls of each family through namespace ``ns`` (``experimental_ops``, or
    PyTorch's aten ops for the reference), as functions of two (4, 8) tensors."""
    index = torch.tensor([0, 5, 31], device=DEVICE)
    return {
        "pointwise": lambda a, b: ns.mul(ns.sigmoid(a), 2.5) + ns.leaky_relu(b, 0.2),
        "inplace": lambda a, b: ns.hardtanh_(ns.mul_(a.clone(), b), -0.5, 0.5),
        "out": lambda a, b: ns.addcmul(a, a, b, value=0.5, out=torch.empty_like(a)),
        "comparison": lambda a, b: ns.lt(a, b),
        "loss": lambda a, b: ns.huber_loss(a, b) + ns.smooth_l1_loss(a, b, 0, 0.5).sum(),
        "pad": lambda a, b: ns.replication_pad1d(a, [1, 2]),
        "resample": lambda a, b: ns.upsample_nearest1d(a[None], [16]),
        "index": lambda a, b: ns.tril(a, 1) + ns.take(b, index).sum(),
        "reduction": lambda a, b: ns._safe_softmax(a, 1),
        "creation": lambda a, b: ns.eye(4, 8, dtype=a.dtype, device=a.device) + ns.zero_(b.clone()),
        "copy": lambda a, b: ns.t_copy(a),
    }


FAMILIES = list(_family_calls(ops))


def _pytorchs(family):
    return _family_calls(torch.ops.aten)[family]


@pytest.mark.parametrize("backend", ["eager", "aot_eager"])
@pytest.mark.parametrize("family", FAMILIES)
def test_compiled_direct_calls_run_our_kernels(backend, family):
    fn = _family_calls(ops)[family]
    torch._dynamo.reset()
    compiled = torch.compile(fn, backend=backend, fullgraph=True)
    a, b = (torch.randn(4, 8, device=DEVICE) for _ in range(2))
    before = _launched()
    result = compiled(a, b)
    assert _launched() > before, "the compiled graph must call our kernels"
    testing.assert_close(result, _pytorchs(family)(a, b))


def test_inductor_runs_our_kernels():
    families = ("pointwise", "loss", "pad", "out", "inplace")

    def several(ns):
        calls = _family_calls(ns)
        return lambda a, b: [calls[f](a, b) for f in families]
    torch._dynamo.reset()
    compiled = torch.compile(several(ops), backend="inductor", fullgraph=True)
    a, b = (torch.randn(4, 8, device=DEVICE) for _ in range(2))
    before = _launched()
    results = compiled(a, b)
    assert _launched() >= before + len(families)
    for ours, theirs in zip(results, several(torch.ops.aten)(a, b)):
        testing.assert_close(ours, theirs)


@pytest.mark.parametrize("backend", ["eager", "aot_eager"])
def test_compiled_direct_calls_record_pytorchs_gradients(backend):
    def loss(ns):
        return lambda a, b: (ns.huber_loss(ns.mul(ns.sigmoid(a), b), b)
                             + ns.replication_pad1d(a, [1, 1]).sum())
    torch._dynamo.reset()
    compiled = torch.compile(loss(ops), backend=backend, fullgraph=True)
    a, b = (torch.randn(4, 8, device=DEVICE, dtype=torch.float64, requires_grad=True)
            for _ in range(2))
    before = _launched()
    ours = torch.autograd.grad(compiled(a, b), (a, b))
    assert _launched() > before
    theirs = torch.autograd.grad(loss(torch.ops.aten)(a, b), (a, b))
    for g, e in zip(ours, theirs):
        torch.testing.assert_close(g, e)


@pytest.mark.parametrize("backend", ["eager", "aot_eager"])
def test_compiled_in_place_needing_a_gradient_raises(backend):
    torch._dynamo.reset()
    compiled = torch.compile(lambda a: ops.sigmoid_(a * 2), backend=backend, fullgraph=True)
    with pytest.raises(Exception, match="do not support automatic differentiation"):
        compiled(torch.randn(4, device=DEVICE, requires_grad=True))


@pytest.mark.parametrize("backend, ours", [("eager", True), ("aot_eager", True),
                                           ("inductor", False)])
def test_compiled_aten_ops_under_enable(backend, ours):
    """Under enable() a compiled region holds aten ops: the eager and aot_eager backends run them
    through the dispatcher (our kernels), Inductor generates its own code for them."""
    def fn(a):
        return torch.sigmoid(a) * 2 + torch.ops.aten.replication_pad1d(a[None], [1, 1])[0, :, 1:-1]
    a = torch.randn(4, 8, device=DEVICE)
    torch._dynamo.reset()
    with flaggems_exp.use_gems():
        compiled = torch.compile(fn, backend=backend, fullgraph=True)
        compiled(a)
        before = _launched()
        result = compiled(a)
        assert (_launched() > before) == ours
    testing.assert_close(result, fn(a))


def test_custom_ops_are_registered_on_first_compile_only():
    """Import registers none (it would cost a tenth of a second); aten schemas once used."""
    code = ("import torch, flaggems_exp; ns = torch.ops.flaggems_exp\n"
            "assert not hasattr(ns, 'sigmoid_')\n"
            "torch.compile(flaggems_exp.experimental_ops.sigmoid_, backend='eager',"
            " fullgraph=True)(torch.randn(3, device=flaggems_exp.device))\n"
            "assert ns.sigmoid_.default._schema.arguments[0].alias_info.is_write\n"
            "print(torch.ops.flaggems_exp_out.sigmoid.out._schema)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    # the written argument is returned by the call, not by the operator (see traced_calls)
    aten = str(torch.ops.aten.sigmoid.out._schema).rsplit(" -> ", 1)[0]
    assert done.stdout.strip() == aten.replace("aten::", "flaggems_exp_out::") + " -> ()"
