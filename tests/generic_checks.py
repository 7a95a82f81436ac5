"""The checks every registered op passes, whatever its family, driven by ``testing.sample_calls``:
tests/test_generic.py runs them over the registry, tests/test_new_ops.py over throwaway ops.

Each compares with PyTorch itself (CPU): values, result dtype, shape and errors (type and
message); a rejected call leaves every tensor as it was.
"""
import torch

import flaggems_exp
from flaggems_exp import LAUNCHES, testing
from flaggems_exp.families import InplaceOp
from flaggems_exp.runtime.dtypes import FLOATING
from flaggems_exp.testing import Call, assert_close, assert_same_error, check_call, reference, run

DEV = flaggems_exp.device
EDGE_SHAPES = ((), (0,), (3, 0, 2))
STRIDED = ("transposed", "stepped", "expanded", "offset")


def dtypes(op):
    """The dtypes whose samples an op is checked on: every dtype it declares it computes (a
    family without a declaration: every dtype)."""
    declared = getattr(testing.twin(op), "dtypes", None)
    return [d for d in testing.ALL_DTYPES if declared is None or d in declared] or [torch.float32]


def samples(op, dtype, seed=0, shape=None):
    return testing.sample_calls(op, dtype, shape=shape, generator=torch.Generator().manual_seed(seed))


def moves_data(op):
    """Whether the op only moves or fills data: its results are bit-exact, not within a
    tolerance."""
    return testing.twin(op).family in ("IndexOp", "CopyOp", "CreationOp", "PadOp", "ResampleOp")


def check_samples(op, dtype):
    """Every sample call of ``dtype``: PyTorch's values, or PyTorch's error."""
    calls = samples(op, dtype)
    assert calls, f"{op.name} has no sample call for {dtype}"
    for call in calls:
        check_call(op, call, exact=moves_data(op))


def takes_edge_shapes(op):
    """Whether the op's samples are sized by one main input of any shape (the pad and resample
    families size theirs by the dims they pad or resample, and carry an empty batch)."""
    return testing.builder_of(op) in (testing.pointwise_calls, testing.declared_calls)


def check_edge_shapes(op):
    """0-d and empty inputs, as PyTorch (a result or its error)."""
    for shape in EDGE_SHAPES:
        for call in samples(op, torch.float32, seed=3, shape=shape):
            check_call(op, call)


def strided_variant(t, kind):
    """``t``'s values (for "expanded": its first row repeated) in a view that is not contiguous:
    transposed, stepped, expanded or offset in a bigger buffer."""
    if t.dim() == 0 or t.numel() == 0:
        return t
    if kind == "transposed":
        return t.transpose(0, -1).contiguous().transpose(0, -1) if t.dim() >= 2 else t
    if kind == "stepped":
        stepped = torch.empty((*t.shape[:-1], t.shape[-1] * 2), dtype=t.dtype)[..., ::2]
        return stepped.copy_(t)
    if kind == "expanded":
        return t[:1].expand_as(t)
    flat = t.reshape(-1)
    return torch.cat([flat[:1], flat])[1:].view(t.shape)


def check_strided_inputs(op):
    """Every tensor argument as a transposed, stepped, expanded and offset view: read through
    its strides (an in-place self written through them), as PyTorch (or its overlap error)."""
    for call in samples(op, torch.float32, seed=1, shape=(6, 10)):
        for kind in STRIDED:
            # an expanded self in place: PyTorch's result depends on its write order where it
            # does not refuse the overlap (tril_); the in-place error tests refuse it
            kept = 1 if kind == "expanded" and isinstance(op, InplaceOp) else 0
            args = call.args[:kept] + tuple(
                strided_variant(a, kind) if isinstance(a, torch.Tensor) else a
                for a in call.args[kept:])
            check_call(op, Call(args, call.kwargs, call.label))


def first_result(op, dtype=torch.float32):
    """(the first sample call PyTorch accepts, PyTorch's result, float64-accurate expected)."""
    for call in samples(op, dtype):
        native, expected = reference(op, call)
        if isinstance(native, torch.Tensor):
            return call, native, expected
    raise AssertionError(f"PyTorch accepts none of {op.name}'s {dtype} samples")


def has_out(op):
    """Whether PyTorch has an out= overload for the op (an op without aten schema: yes)."""
    overloads = op.aten_overloads()
    return not overloads or any(
        any(a.name == "out" and a.kwarg_only for a in getattr(getattr(torch.ops.aten, n), o)
            ._schema.arguments) for n, o in overloads)


def check_out(op):
    """``out=``: written and returned (resized when empty); out of another dtype as PyTorch
    (cast or refused, then untouched); no out= overload, no out=."""
    call, native, _ = first_result(op)
    dev = testing.on_device(call)
    if not has_out(op):
        out = torch.empty_like(native, device=DEV)
        assert isinstance(run(op, Call(dev.args, {**dev.kwargs, "out": out})), TypeError)
        return
    other = torch.int64 if native.is_floating_point() else torch.float64
    # a factory's out= overload takes no dtype= or device=: out says both
    kwargs = {k: v for k, v in call.kwargs.items() if k not in ("dtype", "device")}
    for out in (torch.empty_like(native), torch.empty(0, dtype=native.dtype),
                torch.zeros(native.shape, dtype=other)):
        with_out = Call(call.args, {**kwargs, "out": out}, call.label)
        ours_call = testing.on_device(with_out)
        kept = ours_call.kwargs["out"].clone()
        theirs, _ = reference(op, with_out)
        ours = run(op, ours_call)
        if isinstance(theirs, Exception):
            assert_same_error(ours, theirs)
            assert torch.equal(ours_call.kwargs["out"], kept), "a refused out= was written"
            continue
        assert ours is ours_call.kwargs["out"], "out= must be returned, the same object"
        check_call(op, with_out)


def check_unknown_keyword(op):
    """A keyword no overload of the op takes: a TypeError that names the op (its out-of-place
    twin for an in-place form, as the families bind through it) and the keyword, raised
    before anything is written."""
    call, _, _ = first_result(op)
    dev = testing.on_device(call)
    tensors = [a for a in dev.args if isinstance(a, torch.Tensor)]
    before = [t.clone() for t in tensors]
    error = run(op, Call(dev.args, {**dev.kwargs, "no_such_keyword": 1}))
    assert isinstance(error, TypeError), error
    assert str(error).startswith(f"{testing.twin(op).name}(") and "no_such_keyword" in str(
        error), str(error)
    assert all(torch.equal(a, b) or torch.equal(a.isnan(), b.isnan())
               for a, b in zip(tensors, before))


def check_inplace_strided_self(op):
    """An in-place op writes a stepped, transposed self through its strides; its neighbours in
    the same buffer stay as they were."""
    for call in samples(op, torch.float32, seed=4, shape=(6, 10)):
        if tuple(call.args[0].shape) != (6, 10):
            continue
        base = testing.random_tensor((10, 12), call.args[0].dtype, op.domain,
                                     torch.Generator().manual_seed(5))
        stepped = base[:, ::2].t()  # (6, 10): transposed and stepped in base
        stepped.copy_(call.args[0])
        native, expected = reference(op, Call((stepped.clone(), *call.args[1:]), call.kwargs))
        device_base = base.to(DEV)
        self_view = device_base[:, ::2].t()
        ours = run(op, Call((self_view, *testing.on_device(call).args[1:]), call.kwargs))
        if isinstance(native, Exception):
            assert_same_error(ours, native)
        else:
            assert ours is self_view, "in-place must return self, the same object"
            assert_close(self_view, expected)
        untouched = torch.ones_like(base, dtype=torch.bool)
        untouched[:, ::2] = False
        assert torch.equal(device_base.cpu()[untouched], base[untouched])


def check_launches(op):
    """Our kernel ran: for each sample call PyTorch accepts, the op's launch counter grows by
    what that call launches (measured around the call itself, replays included)."""
    for call in samples(op, torch.float32):
        native, _ = reference(op, call)
        if isinstance(native, Exception):
            continue
        for _ in range(2):  # the full path, then its plan
            dev = testing.on_device(call)
            before = LAUNCHES[testing.twin(op).name]
            result = op(*dev.args, **dev.kwargs)
            assert LAUNCHES[testing.twin(op).name] - before == testing.expected_launches(
                op, call, result), call.label
            assert result.device.type == torch.device(DEV).type


def aten_call(op, call):
    """PyTorch's own call of ``call``: the aten op of the op's name."""
    return run(getattr(torch.ops.aten, op.name), call)


def check_routed(op):
    """Under ``use_gems(include=[op])`` PyTorch's own op reaches our kernel, with our values."""
    for call in samples(op, torch.float32):
        native, _ = reference(op, call)
        theirs = aten_call(op, call)
        if isinstance(native, Exception) or isinstance(theirs, Exception):
            continue
        dev = testing.on_device(call)
        ours_direct = run(op, testing.on_device(call))
        before = LAUNCHES[testing.twin(op).name]
        with flaggems_exp.use_gems(include=[op.name]):
            routed = aten_call(op, dev)
        assert LAUNCHES[testing.twin(op).name] - before == testing.expected_launches(
            op, call, routed), f"{call.label}: PyTorch's call did not run our kernel"
        assert_close(routed, ours_direct, exact=True)


def differentiable(op):
    return not isinstance(op, InplaceOp) and not FLOATING.isdisjoint(dtypes(op))


def composite(op):
    """Composite ops run PyTorch's decomposition when a gradient is needed (dispatch.py)."""
    return any(torch._C._dispatch_has_kernel_for_dispatch_key(
        getattr(getattr(torch.ops.aten, n), o).name(), "CompositeImplicitAutograd")
        for n, o in op.aten_overloads())


def check_autograd(op):
    """Gradients through PyTorch's op are the same with our kernel enabled (or PyTorch's same
    error where it has no derivative); our kernel runs in the forward."""
    call, _, _ = first_result(op, torch.float64)

    def grads():
        leaves = [testing.copy_view(a, DEV).requires_grad_() if isinstance(a, torch.Tensor)
                  and a.is_floating_point() else testing.on_device(Call((a,))).args[0]
                  for a in call.args]
        try:
            result = getattr(torch.ops.aten, op.name)(*leaves, **testing.on_device(call).kwargs)
            if not result.requires_grad:
                return None
            result.backward(torch.ones_like(result))
        except (RuntimeError, NotImplementedError) as exc:
            return exc
        return [a.grad for a in leaves if isinstance(a, torch.Tensor) and a.requires_grad]

    expected = grads()
    before = LAUNCHES[testing.twin(op).name]
    with flaggems_exp.use_gems(include=[op.name]):
        got = grads()
    if isinstance(expected, Exception):
        assert type(got) is type(expected)
        return
    if expected is not None:
        assert LAUNCHES[testing.twin(op).name] > before or composite(op), (
            "our kernel must run in the forward")
        for g, e in zip(got, expected):
            assert (g is None) == (e is None)
            if e is not None:
                torch.testing.assert_close(g, e, equal_nan=True)


def launched_kernels(monkeypatch):
    """The (kernel name, constexpr options) of every launch from now on (a plan's replay does
    not reach it: clear the op's plans first)."""
    from flaggems_exp.runtime import launch
    launched, run_kernel = [], launch.run_kernel

    def recorded(kernel, grid, args, options):
        launched.append((kernel.fn.__name__, dict(options)))
        return run_kernel(kernel, grid, args, options)

    monkeypatch.setattr(launch, "run_kernel", recorded)
    return launched
