"""Reliability where production code runs the library: determinism run to run, and rejected
calls that leave every cache, counter and thread-local state ready for the next call.

Tests that need a GPU (CUDA graphs, streams, tensors past 2^31 elements, what a device-side
assertion leaves behind) are marked ``gpu`` and skipped elsewhere with their reason. Run them in
one process (``pytest -m gpu -n 0``): beside the past-2^31 tests of other workers, which take
most of the GPU's memory, PyTorch's allocator may free cached blocks to satisfy an allocation
during a capture, which invalidates the capture, and a busy default stream may be waited for.
"""
import contextlib
import os
import subprocess
import sys

import pytest
import torch

import flaggems_exp
from flaggems_exp import LAUNCHES, REGISTRY, experimental_ops as ops, testing
from flaggems_exp.families import LossOp, ReductionOp
from flaggems_exp.runtime import launch as launching
from flaggems_exp.testing import Call, check_call, run

DEVICE = flaggems_exp.device
OPS = list(dict.fromkeys(REGISTRY.values()))
REDUCING = [op for op in OPS if isinstance(testing.twin(op), (ReductionOp, LossOp))]
# full paths never planned by design (tests/test_plans.py says why)
UNPLANNED = {"masked_scatter", "masked_scatter_"} | ({"take"} if DEVICE == "cpu" else set())


def ids(op):
    return op.name


def _replays(op):
    return sum(plan.replays for plan in op.plans.plans.values())


# ---- determinism ----------------------------------------------------------------------------
# large enough for several programs per row on the GPU, where an order of additions that
# changed from run to run (atomics, a split depending on timing) would show
_DETERMINISM_SHAPE = (4, 1 << 20) if DEVICE == "cuda" else (3, 1000)


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
            testing.assert_identical(second, first)
            testing.assert_identical(third, first)


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
    assert not launching.interpreting(), "the interpreter's flag was left set"


def _assert_usable(op, bad, good):
    """After ``bad`` was rejected: no plan for it, thread state clear; ``good`` gives PyTorch's
    result and its second call is served by a plan (where the op plans); ``bad`` is rejected
    again, as PyTorch rejects it."""
    _assert_thread_state_clear()
    assert op.plans.get(op.signature(*_key_parts(testing.on_device(bad)))[0]) is None
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
        key = op.signature(*_key_parts(device_call))[0]
        assert op.plans.get(key) is None, "a failed call left a plan"
        check_call(op, call)
        before = _replays(op)
        check_call(op, call)
        if op.name not in UNPLANNED:
            assert _replays(op) == before + 1, "the signature was not planned after the failure"


# ---- on the GPU: CUDA graphs, streams, what a device assertion leaves ------------------------
_NO_GPU = pytest.mark.skipif(DEVICE != "cuda", reason="needs a CUDA GPU (kernels compiled); "
                             "here they run in Triton's interpreter on CPU tensors")


def gpu(test):
    """Marks a test ``gpu`` (``pytest -m gpu`` selects them) and skips it without one."""
    return pytest.mark.gpu(_NO_GPU(test))


def _tensors(call):
    return [v for v in (*call.args, *call.kwargs.values()) if isinstance(v, torch.Tensor)]


def _numbers(call):
    """What a captured graph keeps of a call besides its tensors' memory."""
    return ([None if isinstance(v, torch.Tensor) else v for v in call.args],
            {k: None if isinstance(v, torch.Tensor) else v for k, v in call.kwargs.items()})


def _accepted_pairs(op):
    """[(call, the same call with other values)] of ``op``'s sample calls that PyTorch accepts,
    in the first of float32, int64, bool that has any."""
    for dtype in (torch.float32, torch.int64, torch.bool):
        first, second = (testing.sample_calls(op, dtype, generator=torch.Generator().manual_seed(s))
                         for s in (1, 2))
        pairs = [(a, b) for a, b in zip(first, second)
                 if _numbers(a) == _numbers(b) and not any(
                     isinstance(testing.reference(op, c)[0], Exception) for c in (a, b))]
        if pairs:
            return pairs
    raise AssertionError(f"PyTorch accepts none of {op.name}'s sample calls")


def _memory(t):
    """The memory ``t`` spans, as one dense 1-d view."""
    span = 1 + sum((n - 1) * s for n, s in zip(t.shape, t.stride()))
    return t.as_strided((span,), (1,), t.storage_offset())


def _refill(tensors, values):
    """Write ``values``' memory into ``tensors``' memory (each pair of one shape and strides,
    expanded and overlapping views included), on the current stream."""
    for t, v in zip(tensors, values):
        assert (t.shape, t.stride(), t.dtype) == (v.shape, v.stride(), v.dtype)
        if t.numel():
            _memory(t).copy_(_memory(v), non_blocking=True)


ROUTES = ["direct", "dispatch"]


def _captured(fn, call):
    """(the replay of ``call`` captured in a CUDA graph, the captured call's result)."""
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        result = fn(*call.args, **call.kwargs)
    return graph.replay, result


def _routed(op, route):
    """The callable of a route: the op itself, or under use_gems PyTorch's aten op; where that
    has several overloads besides ``out``, the function a user calls (``torch.clamp_max``,
    ``Tensor.eq_``), whose C++ argument parser picks the overload. The aten packet tries the
    overloads in turn and formats each tensor argument an overload rejects into its error
    message, reading the tensor back: ``torch.ops.aten.eq_(x, y)`` synchronizes, and breaks a
    capture, with or without us."""
    if route == "direct":
        return op
    packet = getattr(torch.ops.aten, op.name)
    if len(set(packet.overloads()) - {"out"}) == 1:
        return packet
    return getattr(torch, op.name, None) or getattr(torch.Tensor, op.name, None) or packet


@gpu
@pytest.mark.parametrize("path", ["plan", "full path"])
@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("op", OPS, ids=ids)
def test_cuda_graph_capture_and_replay(op, route, path):
    """Each accepted sample call, warmed up on a side stream (PyTorch's documented pattern),
    is captured in a CUDA graph, served by its plan or (plans cleared) by the full path; its
    inputs are then refilled with new values and the replay gives what PyTorch gives for them.

    The capture itself proves the call needs no host synchronization, no host->device copy and
    no allocation outside the graph's pool (CUDA refuses each during a capture). Every sample
    call is captured: none is a device assertion or a host read by design (take and
    masked_scatter check on the device; a 0-dim CPU tensor beside GPU tensors, whose value a
    capture would keep, is not among them)."""
    fn = _routed(op, route)
    name = testing.twin(op).name
    for call, new in _accepted_pairs(op):  # PyTorch's answers, nothing routed
        with flaggems_exp.use_gems(include=[op.name]) if route == "dispatch" else (
                contextlib.nullcontext()):
            static = testing.on_device(call)
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(3):  # compiles, then records the signature's plan
                    before = LAUNCHES[name]
                    fn(*static.args, **static.kwargs)
                    per_call = LAUNCHES[name] - before
            torch.cuda.current_stream().wait_stream(side)
            if path == "full path":
                op.plans.clear()
            delegated, before = flaggems_exp.DELEGATED[op.name], LAUNCHES[name]
            replay, result = _captured(fn, static)
            assert LAUNCHES[name] - before == per_call, "the capture launched otherwise"
            assert flaggems_exp.DELEGATED[op.name] == delegated, "PyTorch's kernel served it"
            _refill(_tensors(static), [t.to(DEVICE) for t in _tensors(new)])
            replay()
            torch.cuda.synchronize()
        testing.assert_identical(result, check_call(op, new))  # check_call: ours == PyTorch's


# long enough to outlast the host work of any call (a full path, compilation included) even
# with other processes' kernels time-sliced in between
_BUSY_CYCLES = 2 * 10**9  # about 1 s at an H200's clock


def _first_per_family():
    first = {}
    for op in OPS:
        first.setdefault(op.family, op)
    return list(first.values())


@gpu
@pytest.mark.parametrize("path", ["plan", "full path"])
@pytest.mark.parametrize("op", _first_per_family(), ids=ids)
def test_calls_run_on_the_current_stream(op, path):
    """Under ``torch.cuda.stream(side)``, with the default stream busy and the inputs written
    on ``side``: our call returns without waiting (no synchronization), its kernels run on
    ``side`` (its result is complete while the default stream still sleeps) after the writes
    queued there, and work queued on ``side`` after it reads its result. Launched on the
    default stream, the kernels would run after the sleep and the copy queued after them
    would read what the result held before. One op per family (all launch through the same
    code; the CUDA graph test, captured on a side stream, covers every op)."""
    for call, new in _accepted_pairs(op):
        static = testing.on_device(call)
        for _ in range(2):
            op(*static.args, **static.kwargs)
        values = [t.to(DEVICE) for t in _tensors(new)]
        side = torch.cuda.Stream()

        def on_side(busy=None):
            with torch.cuda.stream(side):
                _refill(_tensors(static), values)
                result = op(*static.args, **static.kwargs)
                assert busy is None or not busy.query(), "the call waited for the default stream"
                after = result.clone()  # queued on side after our launches
                done = torch.cuda.Event()
                done.record(side)
            return result, after, done

        # a rehearsal, the default stream idle: CUDA loads a kernel's module at its first launch
        # (lazy loading), which waits for the device, and a stream's first allocations of a size
        # may free cached blocks to the driver (cudaFree waits for the device too; earlier tests
        # leave the pool nearly full); both happen here, neither in the call below
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        on_side()
        torch.cuda.synchronize()
        if path == "full path":
            op.plans.clear()
        torch.cuda._sleep(_BUSY_CYCLES)  # on the default stream
        busy = torch.cuda.Event()
        busy.record()
        result, after, done = on_side(busy)
        done.synchronize()
        assert not busy.query(), "side's work waited for the default stream"
        torch.cuda.synchronize()
        expected = check_call(op, new)
        testing.assert_identical(result, expected)
        testing.assert_identical(after, expected)


@gpu
@pytest.mark.parametrize("op", _first_per_family(), ids=ids)
def test_results_are_allocated_on_the_current_stream(op):
    """A result is memory of the caching allocator's pool of the current stream, as PyTorch's
    own results are: freed, its block serves the next allocation of that size on that stream,
    never one on another stream (no record_stream, no synchronization needed)."""
    call = next((c for c, _ in _accepted_pairs(op)
                 if isinstance(testing.reference(op, c)[0], torch.Tensor)), None)
    static = testing.on_device(call)
    op(*static.args, **static.kwargs)
    side = torch.cuda.Stream()
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    with torch.cuda.stream(side):
        result = op(*static.args, **static.kwargs)
    if op.writes_self or result.data_ptr() in [t.data_ptr() for t in _tensors(static)]:
        pytest.skip(f"{op.name} returns its argument")
    pointer, nbytes = result.data_ptr(), result.untyped_storage().nbytes()
    torch.cuda.synchronize()
    del result
    elsewhere = torch.empty(nbytes, dtype=torch.uint8, device=DEVICE)  # the default stream
    with torch.cuda.stream(side):
        again = torch.empty(nbytes, dtype=torch.uint8, device=DEVICE)
    assert elsewhere.data_ptr() != pointer, "another stream got the result's block"
    assert again.data_ptr() == pointer, "the result's block is not in side's pool"


_ASSERTING = {
    "take": ("x = torch.arange(10., device='cuda'); index = torch.tensor([1, 10], device='cuda')",
             "take(x, index)", "take(): index out of range"),
    "masked_scatter": ("x = torch.zeros(8, device='cuda'); mask = torch.ones(8, dtype=torch.bool, "
                       "device='cuda'); source = torch.ones(5, device='cuda')",
                       "masked_scatter(x, mask, source)", "Number of elements of source"),
}

_SCRIPT = """
import sys, torch, flaggems_exp
from flaggems_exp import experimental_ops as ours
{setup}
result = {module}.{call}
print("returned", flush=True)
try:
    torch.cuda.synchronize()
    print("synchronized", flush=True)
except RuntimeError as error:
    print("error:", str(error).splitlines()[0], flush=True)
try:
    torch.ones(1, device="cuda").sum().item()
    print("usable", flush=True)
except RuntimeError as error:
    print("unusable:", str(error).splitlines()[0], flush=True)
"""


@gpu
@pytest.mark.parametrize("name", sorted(_ASSERTING))
def test_a_device_assertion_ends_the_process_s_cuda_context(name):
    """take's bad index and masked_scatter's short source are device-side assertions, as in
    PyTorch: the call returns (no host read), the next synchronization raises PyTorch's
    "device-side assert triggered" RuntimeError, and every later CUDA call in that process
    fails too. Run in a subprocess each, ours and PyTorch's, which must behave alike; ours
    prints PyTorch's message on stderr (the kernel's assertion)."""
    setup, call, message = _ASSERTING[name]
    outputs = {}
    for module in ("ours", "torch"):
        script = _SCRIPT.format(setup=setup, module=module, call=call)
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              timeout=600, env={**os.environ, "CUDA_LAUNCH_BLOCKING": "0"})
        outputs[module] = done
        lines = done.stdout.splitlines()
        assert lines[0] == "returned", done.stdout + done.stderr
        assert lines[1].startswith("error:") and "device-side assert" in lines[1], done.stdout
        assert lines[2].startswith("unusable:"), done.stdout
    assert message in outputs["ours"].stderr, outputs["ours"].stderr


# ---- past 2^31 elements ------------------------------------------------------------------------
# every case makes a tensor of more than 2^31 elements (input or output) on the GPU and compares
# ours with PyTorch slice by slice, each slice within PyTorch's 32-bit index math (its CUDA
# kernels of pads, upsampling and pixel shuffle refuse the whole: "input tensor must fit into
# 32-bit index math"); ``big`` is the rows of the leading dim that pass 2^31 with a row of
# 2^16 elements (tests of the comparisons themselves pass a small ``big``)
_ROW = 1 << 16
_BIG = (1 << 15) + 16  # 2^31 + 2^20 elements in rows of 2^16
_SQUARE = 46341        # 46341^2 > 2^31


def _compare_rows(ours, expected, rows, exact=True, chunk=1 << 13):
    """``ours[i:j]`` against ``expected(i, j)`` (PyTorch on the matching slice) for every
    chunk of ``rows`` leading rows, the last one included."""
    assert ours.shape[0] == rows
    for i in range(0, rows, chunk):
        j = min(rows, i + chunk)
        reference = expected(i, j)
        if exact:
            assert torch.equal(ours[i:j], reference), f"rows {i}:{j} differ"
        else:
            testing.assert_close(ours[i:j], reference)


def _rand(*shape, dtype=torch.float16):
    if dtype == torch.uint8:
        return torch.randint(0, 256, shape, dtype=dtype, device=DEVICE)
    return torch.rand(shape, dtype=dtype, device=DEVICE) * 8 - 4


def _huge_pointwise(big):
    x, row = _rand(big, _ROW), _rand(_ROW)
    _compare_rows(ops.mul(x, row), lambda i, j: x[i:j] * row, big)


def _huge_inplace(big):
    x, row = _rand(big, _ROW), _rand(_ROW)
    ours = x.clone()
    assert ops.mul_(ours, row) is ours
    _compare_rows(ours, lambda i, j: x[i:j] * row, big)


def _huge_comparison(big):
    x = _rand(big, _ROW)
    _compare_rows(ops.lt(x, 0.5), lambda i, j: x[i:j] < 0.5, big)


def _huge_loss(big):
    x, t = _rand(big, _ROW), _rand(big, _ROW)
    f = torch.nn.functional.huber_loss
    # not bit for bit: PyTorch's CUDA kernel rounds each step of the loss to float16, ours
    # rounds the float32 loss once (a last-bit difference; the index arithmetic is the point)
    _compare_rows(ops.huber_loss(x, t, 0), lambda i, j: f(x[i:j], t[i:j], reduction="none"), big,
                  exact=False)
    mean = ops.huber_loss(x, t, 1)
    total = sum(f(x[i:i + 4096].double(), t[i:i + 4096].double(), reduction="sum")
                for i in range(0, big, 4096))
    testing.assert_close(mean, (total / x.numel()).to(mean.dtype))


def _huge_pad(big):
    x = _rand(big, 1, _ROW)
    _compare_rows(ops.reflection_pad1d(x, [3, 5]),
                  lambda i, j: torch.ops.aten.reflection_pad1d(x[i:j], [3, 5]), big)


def _huge_nearest(big):
    x = _rand(big // 2, 1, _ROW, dtype=torch.uint8)  # the output passes 2^31
    _compare_rows(ops.upsample_nearest1d(x, [2 * _ROW]),
                  lambda i, j: torch.ops.aten.upsample_nearest1d(x[i:j], [2 * _ROW]), big // 2)


def _huge_shuffle(big):
    x = _rand(big, 4, 128, 128, dtype=torch.uint8)  # rows of 2^16 elements
    _compare_rows(ops.pixel_shuffle(x, 2), lambda i, j: torch.pixel_shuffle(x[i:j], 2), big)


def _huge_index(big):
    n = big * _ROW
    x = _rand(n, dtype=torch.uint8)
    edges = [v for v in (0, n - 1, -1, -n, (1 << 31) - 1, 1 << 31, -(1 << 31) - 1) if -n <= v < n]
    index = torch.cat([torch.randint(-n, n, (1 << 20,), device=DEVICE),
                       torch.tensor(edges, device=DEVICE)])
    expected = x[torch.where(index < 0, index + n, index)]
    assert torch.equal(ops.take(x, index), expected)
    mask = _rand(big, _ROW, dtype=torch.uint8) < 128
    source = _rand(n, dtype=torch.uint8)
    assert torch.equal(ops.masked_scatter(x.view(big, _ROW), mask, source),
                       torch.masked_scatter(x.view(big, _ROW), mask, source))


def _huge_triangle(side):
    x = _rand(side, side, dtype=torch.uint8)
    _compare_rows(ops.tril(x), lambda i, j: torch.tril(x[i:j], i), side)


def _huge_reduction(big):
    x = _rand(big, _ROW)
    _compare_rows(ops._safe_softmax(x, -1), lambda i, j: torch._safe_softmax(x[i:j], -1), big,
                  exact=False)


def _huge_trace(side):
    x = _rand(side, side, dtype=torch.uint8)
    assert torch.equal(ops.trace(x), x.diagonal().sum())


def _huge_creation(big):
    x = _rand(2, dtype=torch.uint8)
    ones = ops.new_ones(x, [big, _ROW])
    _compare_rows(ones, lambda i, j: x.new_ones(j - i, _ROW), big)
    assert ops.zero_(ones) is ones
    _compare_rows(ones, lambda i, j: torch.zeros(j - i, _ROW, dtype=x.dtype, device=DEVICE), big)


def _huge_copy(side):
    x = _rand(side, side, dtype=torch.uint8)
    _compare_rows(ops.t_copy(x), lambda i, j: x[:, i:j].t(), side)


# (family, case, its size argument, GiB it needs at most)
HUGE = [
    ("PointwiseOp", _huge_pointwise, _BIG, 20), ("InplaceOp", _huge_inplace, _BIG, 20),
    ("ComparisonOp", _huge_comparison, _BIG, 12), ("LossOp", _huge_loss, _BIG, 24),
    ("PadOp", _huge_pad, _BIG, 16), ("ResampleOp nearest", _huge_nearest, _BIG, 8),
    ("ResampleOp shuffle", _huge_shuffle, _BIG, 8), ("IndexOp take, masked_scatter", _huge_index, _BIG, 16),
    ("IndexOp tril", _huge_triangle, _SQUARE, 8), ("ReductionOp", _huge_reduction, _BIG, 16),
    ("ReductionOp trace", _huge_trace, _SQUARE, 4), ("CreationOp", _huge_creation, _BIG, 6),
    ("CopyOp", _huge_copy, _SQUARE, 8),
]


@gpu
@pytest.mark.parametrize("family,case,size,gib", HUGE, ids=[h[0] for h in HUGE])
def test_past_int32_elements(family, case, size, gib):
    """One op per family on a tensor of more than 2^31 elements: PyTorch's result slice by
    slice (float16, bool and uint8 keep it to a few GiB)."""
    free = torch.cuda.mem_get_info()[0]
    if free < gib << 30:
        pytest.skip(f"needs {gib} GiB of free GPU memory, {free / 2**30:.1f} GiB free")
    torch.cuda.empty_cache()
    case(size)
