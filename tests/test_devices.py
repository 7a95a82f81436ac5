"""Ops on any CUDA device, not only the current one.

PyTorch runs a kernel under a guard that makes its tensors' device the current one, on that
device's current stream, and creates nothing on another device. Triton compiles, loads and
launches on the current device, so our launches take the same guard (``launch.device_guard``;
a plan's replay compares the device once per call). The first tests need no GPU: the guard's
decisions with a stand-in device, and plans kept apart by device. The rest need two CUDA
devices and are skipped, with the reason, where there are fewer.
"""
import json
import os
import subprocess
import sys
import textwrap
import types

import pytest
import torch

import flaggems_exp
from flaggems_exp import DELEGATED, REGISTRY, testing
from flaggems_exp.families.inplace import InplaceOp
from flaggems_exp.runtime import launch as launching, plans
from flaggems_exp.runtime.errors import NotCovered
from flaggems_exp.testing import assert_close, assert_same_error, run

OPS = list(dict.fromkeys(REGISTRY.values()))
TWO_GPUS = pytest.mark.skipif(
    flaggems_exp.device != "cuda" or torch.cuda.device_count() < 2,
    reason=f"needs 2 CUDA devices, found {torch.cuda.device_count()}")


# ---- without a GPU: the guard's decisions, plans kept apart by device ------------------------
class _Devices:
    """A stand-in for the CUDA runtime's current device and ``torch.cuda.device``: records each
    guard entered and what was current at each launch."""

    def __init__(self, current):
        self.current, self.entered = current, []

    def guard(self, index):
        devices = self

        class Guard:
            def __enter__(self):
                devices.entered.append(index)
                self.previous, devices.current = devices.current, index

            def __exit__(self, *exc):
                devices.current = self.previous
        return Guard()


@pytest.fixture
def stand_in_devices(monkeypatch):
    """Launches as compiled, with cuda:0 current and a stand-in for the device runtime."""
    devices = _Devices(current=0)
    monkeypatch.setattr(launching, "INTERPRETED", False)
    monkeypatch.setattr(launching, "_current_device", lambda: devices.current)
    monkeypatch.setattr(launching, "_device_guard", devices.guard)
    return devices


class _Kernel:
    """A kernel that records the current device at its launch."""

    def __init__(self, devices):
        self.devices, self.launched_on = devices, []

    def __getitem__(self, grid):
        def run(*args, **options):
            self.launched_on.append(self.devices.current)
        return run


def _target(index):
    """A first kernel argument on CUDA device ``index`` (-1: the CPU)."""
    return types.SimpleNamespace(get_device=lambda: index)


@pytest.mark.parametrize("index", [1, 0, -1])
def test_a_launch_runs_on_its_tensors_device(stand_in_devices, index):
    """A launch for tensors on another device runs under a guard for that device, and the
    previous device is current again afterwards; on the current device (or the CPU) no guard."""
    kernel = _Kernel(stand_in_devices)
    launching.run_kernel(kernel, (1,), (_target(index),), {})
    assert kernel.launched_on == [0 if index < 0 else index]
    assert stand_in_devices.entered == ([index] if index > 0 else [])
    assert stand_in_devices.current == 0


@pytest.mark.parametrize("index", [1, 0])
def test_a_replay_runs_on_its_plans_device(stand_in_devices, index):
    """A plan's generated replay for another device than the current one runs under a guard
    for the plan's device; for the current one it takes none."""
    plan = types.SimpleNamespace(device_index=index, written=None, spans=(8,), launches=(),
                                 allocations=(), result=("call", 0), replays=0,
                                 resized=None)
    replay = plans._generated_replay(plan)
    x = torch.ones(2)
    assert replay((x,), {}, [x], [x.data_ptr()]) is x
    assert stand_in_devices.entered == ([index] if index else [])
    assert stand_in_devices.current == 0 and plan.replays == 1


class _FakeTensor:
    """What ``call_key`` reads of a tensor, on a device index of our choosing."""

    def __init__(self, index):
        self.index = index
        self.dtype, self.shape, self.requires_grad = torch.float32, torch.Size([4]), False

    def data_ptr(self):
        return 1 << 20

    def stride(self):
        return (1,)

    def get_device(self):
        return self.index


def test_a_plan_serves_only_its_device(monkeypatch):
    """Calls alike but for the device index have signatures of their own: a plan made for
    cuda:0 is never found for cuda:1 (their kernels are loaded for one device each)."""
    monkeypatch.setattr(plans, "_Tensor", _FakeTensor)
    key0, key1 = (plans.call_key((_FakeTensor(i), 2.0), {}, None, True)[0] for i in (0, 1))
    assert key0 == plans.call_key((_FakeTensor(0), 2.0), {}, None, True)[0]
    assert key0 != key1
    cache = plans.PlanCache()
    cache.put(key0, "the plan for cuda:0")
    assert cache.get(key0) == "the plan for cuda:0" and cache.get(key1) is None


# ---- two GPUs ---------------------------------------------------------------------------------
PAIRS = [(1, 0), (0, 1)]  # (the tensors' device, the current device)


def _devices_of(result):
    return {t.device for t in (result if isinstance(result, tuple) else (result,))
            if isinstance(t, torch.Tensor)}


@TWO_GPUS
@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: f"on{p[0]}-current{p[1]}")
@pytest.mark.parametrize("op", OPS, ids=lambda op: op.name)
def test_every_op_on_either_device(op, pair, monkeypatch):
    """Each sample call with its tensors on cuda:``tensors`` while cuda:``current`` is the
    current device, twice (the second served by its plan): directly, ``check_call``'s verdict
    against PyTorch; under use_gems(include=[op.name]), our kernel's (nothing handed over) and
    the direct call's answer; every result on the tensors' device, the current device kept."""
    tensors, current = pair
    device = torch.device("cuda", tensors)
    monkeypatch.setattr(testing, "DEVICE", device)  # where check_call puts the call's tensors
    fn = getattr(torch.ops.aten, op.name)
    for call in testing.sample_calls(op, torch.float32, generator=torch.Generator().manual_seed(0)):
        if testing.asserted_on_device(testing.reference(op, call)[0]):
            continue  # a device assertion would end the context: test_ops' business
        for attempt in ("full path", "plan"):
            with torch.cuda.device(current):
                direct = testing.check_call(op, call)
                handed = DELEGATED[op.name]
                with flaggems_exp.use_gems(include=[op.name]):
                    routed = run(fn, call.on(device))
                assert torch.cuda.current_device() == current
            assert DELEGATED[op.name] == handed, f"{call.label}: handed over to PyTorch"
            if direct is None:  # rejected: PyTorch's error, checked by check_call
                assert isinstance(routed, Exception), f"{call.label}: not rejected under use_gems"
                continue
            assert_close(routed, direct)
            assert _devices_of(direct) == _devices_of(routed) == {device}, (call.label, attempt)


@TWO_GPUS
@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: f"on{p[0]}-current{p[1]}")
@pytest.mark.parametrize("op", [op for op in OPS if isinstance(op, InplaceOp)],
                         ids=lambda op: op.name)
def test_the_tensors_current_stream_runs_it(op, pair):
    """An in-place call on cuda:``tensors`` (cuda:``current`` current) whose current stream there
    waits behind a long sleep: a copy of self made meanwhile on another stream still shows the
    old values (our kernel is queued on that stream, not on any other one), and after the stream
    is synchronized self holds PyTorch's result."""
    tensors, current = pair
    device = f"cuda:{tensors}"
    call = next(c for c in testing.sample_calls(op, torch.float32,
                                                generator=torch.Generator().manual_seed(0))
                if not isinstance(testing.reference(op, c)[0], Exception))
    native, _ = testing.reference(op, call)
    with torch.cuda.device(current):
        run(op, call.on(device))  # compiled beforehand: the sleep below outlasts a launch only
    for attempt in ("full path", "plan"):
        if attempt == "full path":
            op.plans.clear()
        ours_call = call.on(device)
        before = ours_call.args[0].clone()
        sleeper, stream, probe = (torch.cuda.Stream(device=device) for _ in range(3))
        with torch.cuda.device(tensors):
            torch.cuda.synchronize()
            with torch.cuda.stream(sleeper):
                torch.cuda._sleep(2_000_000_000)  # about a second: orders above a launch
                slept = torch.cuda.Event()
                slept.record(sleeper)
            stream.wait_event(slept)
        with torch.cuda.stream(stream), torch.cuda.device(current):  # the stream stays current
            assert torch.cuda.current_stream(tensors) == stream
            result = op(*ours_call.args, **ours_call.kwargs)
        with torch.cuda.stream(probe):
            meanwhile = ours_call.args[0].to("cpu")  # waits for the probe stream alone
        assert not slept.query(), f"{attempt}: the sleep ended before the probe: proves nothing"
        assert torch.equal(meanwhile, before.cpu()), f"{attempt}: ran before its stream's sleep"
        stream.synchronize()
        assert result is ours_call.args[0]
        assert_close(result, native, exact=not native.is_floating_point())


def _mixed(call, first, rest):
    """``call`` with its first tensor on ``first`` and every other tensor on ``rest``."""
    moved = []

    def place(v):
        if not isinstance(v, torch.Tensor):
            return v
        moved.append(v)
        return testing.copy_view(v, first if len(moved) == 1 else rest)
    args = tuple(place(a) for a in call.args)
    return testing.Call(args, {k: place(v) for k, v in call.kwargs.items()}, call.label)


def _tensor_count(call):
    return sum(isinstance(v, torch.Tensor) for v in (*call.args, *call.kwargs.values()))


@TWO_GPUS
@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: f"first{p[0]}-others{p[1]}")
@pytest.mark.parametrize("op", OPS, ids=lambda op: op.name)
def test_mixed_devices_are_pytorchs(op, pair):
    """A call with tensors on cuda:0 and cuda:1: under use_gems PyTorch's own kernel takes it
    (counted in DELEGATED), so its exception, type and message, or its result where it accepts
    them (copy_, slice_scatter's cross-device copy); a direct call raises NotCovered and
    leaves every tensor unchanged."""
    first, rest = (f"cuda:{i}" for i in pair)
    fn = getattr(torch.ops.aten, op.name)
    calls = [c for c in testing.sample_calls(op, torch.float32,
                                             generator=torch.Generator().manual_seed(0))
             if _tensor_count(c) > 1]
    if not calls:
        pytest.skip(f"{op.name}'s sample calls take one tensor")
    for call in calls:
        theirs_call = _mixed(call, first, rest)
        theirs = run(fn, theirs_call)
        routed = _mixed(call, first, rest)
        with flaggems_exp.use_gems(include=[op.name]):
            ours = run(fn, routed)
        if isinstance(theirs, Exception):
            assert_same_error(ours, theirs)
        else:
            assert_close(ours, theirs, exact=True)
        for a, b in zip(routed.args, theirs_call.args):
            if isinstance(a, torch.Tensor):
                assert torch.equal(a.cpu(), b.cpu()), "the inputs differ from PyTorch's afterwards"
        if op.moves_any_tensor:
            continue  # copies move tensors between devices themselves
        direct = _mixed(call, first, rest)
        before = [v.clone() for v in direct.args if isinstance(v, torch.Tensor)]
        assert isinstance(run(op, direct), NotCovered)
        after = [v for v in direct.args if isinstance(v, torch.Tensor)]
        assert all(torch.equal(a, b) for a, b in zip(after, before)), "a rejected call wrote"


_ONLY_CUDA_1 = textwrap.dedent("""
    import json, torch, flaggems_exp
    from flaggems_exp import REGISTRY, testing
    assert torch.cuda.current_device() == 0
    for op in dict.fromkeys(REGISTRY.values()):
        fn = getattr(torch.ops.aten, op.name, None)
        for call in testing.sample_calls(op, torch.float32,
                                         generator=torch.Generator().manual_seed(0)):
            if testing.asserted_on_device(testing.reference(op, call)[0]):
                continue
            for _ in range(2):  # the full path, then the plan
                testing.run(op, call.on("cuda:1"))
            if fn is not None:
                with flaggems_exp.use_gems(include=[op.name]):
                    testing.run(fn, call.on("cuda:1"))
    torch.cuda.synchronize(1)
    print(json.dumps({"context0": torch._C._cuda_hasPrimaryContext(0),
                      "context1": torch._C._cuda_hasPrimaryContext(1),
                      "allocated0": torch.cuda.memory_allocated(0),
                      "current": torch.cuda.current_device()}))
""")


@TWO_GPUS
def test_another_device_is_never_touched():
    """A process that runs every op's sample calls on cuda:1 alone (cuda:0 current) creates no
    CUDA context on cuda:0 and allocates nothing there: kernels compiled, loaded and launched
    for cuda:1 only."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "0,1"}
    done = subprocess.run([sys.executable, "-c", _ONLY_CUDA_1], env=env, capture_output=True,
                          text=True, timeout=1800, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"context0": False, "context1": True, "allocated0": 0, "current": 0}
