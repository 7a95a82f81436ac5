"""Reliability where production code runs the library: determinism run to run, and rejected
calls that leave every cache, counter and thread-local state ready for the next call.

Tests that need a GPU (CUDA graphs, streams, tensors past 2^31 elements, what a device-side
assertion leaves behind) are marked ``gpu`` and skipped elsewhere with their reason.
"""
import pytest
import torch

import flaggems_exp
from flaggems_exp import LAUNCHES, REGISTRY, experimental_ops as ops, testing
from flaggems_exp.families import LossOp, ReductionOp
from flaggems_exp.families import copy as copy_family
from flaggems_exp.runtime import launch as launching
from flaggems_exp.runtime.plans import call_key
from flaggems_exp.testing import Call, check_call, run

DEVICE = flaggems_exp.device
OPS = list(dict.fromkeys(REGISTRY.values()))
REDUCING = [op for op in OPS if isinstance(testing.twin(op), (ReductionOp, LossOp))]
# full paths never planned by design (tests/test_plans.py says why)
UNPLANNED = {"masked_scatter", "masked_scatter_", "copy"} | ({"take"} if DEVICE == "cpu" else set())


def ids(op):
    return op.name


def _bits(t):
    """A tensor's bytes in memory order of its elements: equal bytes, equal bits (NaN payloads
    and signed zeros included)."""
    return t.detach().cpu().contiguous().reshape(-1).view(torch.uint8)


def assert_identical(a, b):
    """Two results identical: the same exception, or tensors equal bit for bit, layout too."""
    if isinstance(b, Exception):
        testing.assert_same_error(a, b)
        return
    assert not isinstance(a, Exception), f"raised {type(a).__name__}: {a}"
    assert (a.dtype, a.shape, a.stride(), a.device) == (b.dtype, b.shape, b.stride(), b.device)
    assert torch.equal(_bits(a), _bits(b)), "results differ in their bits"


def _replays(op):
    return sum(plan.replays for plan in op.plans.plans.values())


# ---- determinism ----------------------------------------------------------------------------
# large enough for several programs per row on the GPU, where an order of additions that
# changed from run to run (atomics, a split depending on timing) would show
_DETERMINISM_SHAPE = (4, 1 << 20) if DEVICE == "cuda" else (3, 5000)


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32], ids=str)
@pytest.mark.parametrize("op", REDUCING, ids=ids)
def test_reductions_are_deterministic(op, dtype):
    """Every reduction and loss gives the same bits when run twice on the same input, on the
    plan's replay as on the full path."""
    for shape in ((5, 8), _DETERMINISM_SHAPE):
        calls = testing.sample_calls(op, dtype, shape=shape,
                                     generator=torch.Generator().manual_seed(0))
        assert calls, "no sample calls"
        for call in calls:
            op.plans.clear()
            device_call = testing.on_device(call)
            first = run(op, device_call)        # the full path
            second = run(op, device_call)       # the plan (where planned)
            op.plans.clear()
            third = run(op, testing.on_device(call))  # the full path on fresh copies
            assert_identical(second, first)
            assert_identical(third, first)


# ---- rejected calls leave the process usable --------------------------------------------------
def _x(*shape, dtype=torch.float32, seed=0):
    return testing.random_tensor(shape, dtype, generator=torch.Generator().manual_seed(seed))


def _index(*values):
    return torch.tensor(values, dtype=torch.int64)


# (label, op name, rejected call, valid call of the same op): the valid call has the rejected
# call's signature where values alone decide (an index, a count), else a signature next to it
REJECTIONS = [
    ("broadcast shape", "mul", Call((_x(5, 8), _x(3, 8))), Call((_x(5, 8), _x(1, 8)))),
    ("loss shape", "huber_loss", Call((_x(5, 8), _x(3, 8))), Call((_x(5, 8), _x(5, 8)))),
    ("padding too large", "reflection_pad1d", Call((_x(2, 3, 4), [4, 1])),
     Call((_x(2, 3, 4), [3, 1]))),
    ("index dtype", "take", Call((_x(5, 8), _index(1, 2).int())), Call((_x(5, 8), _index(1, 2)))),
    ("mask dtype", "masked_scatter", Call((_x(4, 4), _x(4, 4, dtype=torch.uint8), _x(16))),
     Call((_x(4, 4), _x(4, 4, dtype=torch.bool), _x(16)))),
    ("out= dtype", "sigmoid", Call((_x(5, 8),), {"out": torch.zeros(5, 8, dtype=torch.int64)}),
     Call((_x(5, 8),), {"out": torch.zeros(5, 8)})),
    ("in-place result type", "mul_", Call((_x(5, 8, dtype=torch.int64), _x(5, 8))),
     Call((_x(5, 8, dtype=torch.int64), _x(5, 8, dtype=torch.int64)))),
    ("value of a checked number", "softshrink", Call((_x(5, 8), -1.0)), Call((_x(5, 8), 0.5))),
    ("copy_ broadcast", "copy_", Call((_x(5, 8), _x(3, 8))), Call((_x(5, 8), _x(1, 8)))),
    ("factory size", "new_ones", Call((_x(2), [2, -3])), Call((_x(2), [2, 3]))),
]
if DEVICE == "cpu":
    # value checks that PyTorch's CUDA kernels (and ours, compiled) make on the device, with
    # a device assertion (test_a_device_assertion_ends_the_process_s_cuda_context); on the CPU
    # they are host-side rejections, of the same signature as the valid call
    REJECTIONS += [
        ("index out of range", "take", Call((_x(5, 8), _index(3, 40))), Call((_x(5, 8), _index(3, 39)))),
        ("source too short", "masked_scatter",
         Call((_x(4, 4), torch.ones(4, 4, dtype=torch.bool), _x(15))),
         Call((_x(4, 4), torch.ones(4, 4, dtype=torch.bool).tril(), _x(15)))),
    ]


def _assert_thread_state_clear():
    assert getattr(launching._state, "recorder", None) is None, "a plan recorder was left set"
    assert not getattr(copy_family._state, "busy", False), "copy_'s busy flag was left set"


def _assert_usable(op, bad, good):
    """After ``bad`` was rejected: no plan for it, thread state clear; ``good`` gives PyTorch's
    result and its second call is served by a plan (where the op plans); ``bad`` is rejected
    again, as PyTorch rejects it."""
    _assert_thread_state_clear()
    assert op.plans.get(call_key(*_key_parts(testing.on_device(bad)), op.numbers_by_value)[0]) is None
    check_call(op, good)
    before = _replays(op)
    check_call(op, good)
    if op.name not in UNPLANNED:
        assert _replays(op) == before + 1, "the valid call's signature was not planned"
    check_call(op, bad)
    _assert_thread_state_clear()


def _key_parts(call):
    kwargs = dict(call.kwargs)
    return call.args, kwargs, kwargs.pop("out", None)


@pytest.mark.parametrize("label,name,bad,good", REJECTIONS, ids=[r[0] for r in REJECTIONS])
def test_a_rejected_call_leaves_the_op_usable(label, name, bad, good):
    """PyTorch's error, nothing written (check_call), then the same op works: its caches,
    counters and thread-local state were left as a valid call needs them."""
    op = REGISTRY[name]
    op.plans.clear()
    launches = LAUNCHES[testing.twin(op).name]
    native, _ = testing.reference(op, bad)
    assert isinstance(native, Exception), "PyTorch accepts the call meant to be rejected"
    check_call(op, bad)
    assert LAUNCHES[testing.twin(op).name] == launches or name == "masked_scatter", \
        "a rejected call launched"  # masked_scatter counts the mask's ones before its check
    _assert_usable(op, bad, good)


def _aten_call(op, call):
    """``call`` as PyTorch's own call of the aten op (under enable(), routed to ``op``)."""
    return run(getattr(torch.ops.aten, op.name), testing.on_device(call))


@pytest.mark.parametrize("label,name,bad,good", REJECTIONS, ids=[r[0] for r in REJECTIONS])
def test_a_rejected_routed_call_is_not_handed_over(label, name, bad, good):
    """Under enable(), a rejection is PyTorch's error from our full path: the signature is not
    remembered as one to hand over, so the valid call of it still runs our kernel."""
    op = REGISTRY[name]
    op.plans.clear()
    native, _ = testing.reference(op, bad)
    with flaggems_exp.use_gems(include=[name]):
        testing.assert_same_error(_aten_call(op, bad), native)
        _assert_thread_state_clear()
        delegated, launches = flaggems_exp.DELEGATED[name], LAUNCHES[testing.twin(op).name]
        _, expected = testing.reference(op, good)
        ours = _aten_call(op, good)
        testing.assert_close(ours, expected, exact=not expected.is_floating_point())
        assert flaggems_exp.DELEGATED[name] == delegated, "handed over to PyTorch's kernel"
        assert LAUNCHES[testing.twin(op).name] > launches, "our kernel did not run"
        testing.assert_same_error(_aten_call(op, bad), native)


# one op per family whose full path launches more than once or nests a copy_: a launch that
# fails (Triton's compile error, out of resources, an interpreter error) raises through it
_FAILING_LAUNCH = [
    ("copy_", Call((_x(5, 8).t(), _x(8, 5)))),                    # copy_'s busy flag
    ("masked_scatter", Call((_x(4, 4), _x(4, 4, dtype=torch.bool), _x(16)))),  # three launches
    ("slice_scatter", Call((_x(6, 8), _x(6, 8)[:, 1:].clone(), 1, 1))),
    ("huber_loss", Call((_x(5, 8), _x(5, 8)), {"reduction": 1})),  # loss, then its mean
    ("mul_", Call((_x(5, 8), _x(5, 8)))),
]


class LaunchFailed(RuntimeError):
    pass


def _launches(op, call):
    before = LAUNCHES[testing.twin(op).name]
    op.plans.clear()
    run(op, testing.on_device(call))
    return LAUNCHES[testing.twin(op).name] - before


@pytest.mark.parametrize("name,call", _FAILING_LAUNCH, ids=[n for n, _ in _FAILING_LAUNCH])
def test_a_failing_launch_leaves_the_op_usable(monkeypatch, name, call):
    """A launch that raises part-way through a full path (each of the call's launches in turn:
    the path was recording a plan, copy_ is inside its own launch) leaves no plan, no recorder
    and no busy flag behind: the same signature then gives PyTorch's result and is planned."""
    op = REGISTRY[name]
    real = launching.run_kernel
    for failing in range(_launches(op, call)):
        launched = []

        def fails(*args):
            launched.append(args)
            if len(launched) == failing + 1:
                raise LaunchFailed("a launch failed")
            return real(*args)

        op.plans.clear()
        device_call = testing.on_device(call)
        monkeypatch.setattr(launching, "run_kernel", fails)
        result = run(op, device_call)
        monkeypatch.setattr(launching, "run_kernel", real)
        assert isinstance(result, LaunchFailed), result
        _assert_thread_state_clear()
        key = call_key(*_key_parts(device_call), op.numbers_by_value)[0]
        assert op.plans.get(key) is None, "a failed call left a plan"
        check_call(op, call)
        before = _replays(op)
        check_call(op, call)
        if op.name not in UNPLANNED:
            assert _replays(op) == before + 1, "the signature was not planned after the failure"
