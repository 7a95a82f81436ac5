"""Call plans (flaggems_exp/runtime/plans.py): a call replayed from its signature's plan does what
the family's full path does, for every registered op; signatures that differ get their own plan;
the launcher contract falls back to Triton's public launch."""
import gc
import re
import struct
import warnings
import weakref

import pytest
import torch
import triton

import flaggems_exp
from flaggems_exp import REGISTRY, experimental_ops as ops, testing
from flaggems_exp.families import base as base_module
from flaggems_exp.runtime import launch as launching, native_launch, plans
from flaggems_exp.runtime.triton_types import encode_scalar
from flaggems_exp.testing import run

OPS = list(dict.fromkeys(REGISTRY.values()))
DEVICE = flaggems_exp.device
# full paths a replay could not stand for, so they are never planned: masked_scatter reads its
# count of selected elements back to the host, take its index bounds in the interpreter
UNPLANNED = {"masked_scatter", "masked_scatter_"} | ({"take"} if DEVICE == "cpu" else set())


def _replays(op):
    return sum(plan.replays for plan in op.plans.plans.values())


@pytest.mark.parametrize("op", OPS, ids=lambda op: op.name)
def test_replay_is_the_full_path(op):
    """Each sample call's signature is recorded with one set of values, then called with other
    values: once served by the plan, once by the full path; results and written inputs agree."""
    dtype = torch.float32
    first = testing.sample_calls(op, dtype, generator=torch.Generator().manual_seed(1))
    second = testing.sample_calls(op, dtype, generator=torch.Generator().manual_seed(2))
    assert first and len(first) == len(second), "no sample calls"
    for a, b in zip(first, second):
        op.plans.clear()
        run(op, testing.on_device(a))                        # records a plan
        planned, full = testing.on_device(b), testing.on_device(b)
        ours = run(op, planned)                               # served by the plan, if any
        op.plans.clear()
        theirs = run(op, full)                                # the full path
        testing.assert_identical(ours, theirs)
        for x, y in zip(planned.args, full.args):
            if isinstance(x, torch.Tensor):
                testing.assert_identical(x, y)
    if op.name not in UNPLANNED:
        # the last sample with a result of some size, again: its plan must serve it
        sample = next((c for c in reversed(second) if getattr(run(op, testing.on_device(c)),
                                                             "numel", lambda: 0)()), None)
        op.plans.clear()
        call = testing.on_device(sample) if sample else None
        if sample and not isinstance(run(op, call), Exception):
            before = _replays(op)
            run(op, testing.on_device(sample))
            assert _replays(op) == before + 1 or any(
                isinstance(v, torch.Tensor) and v.device.type != DEVICE
                for v in (*call.args, *call.kwargs.values())), "the second call missed its plan"


@pytest.mark.parametrize("op", OPS, ids=lambda op: op.name)
def test_a_plan_keeps_no_tensor_of_its_call_alive(op):
    """A cached plan holds what a call's signature decides, never the call's own tensors: once
    the caller drops them, a call's inputs and result are freed though its plan stays."""
    op.plans.clear()
    calls = testing.sample_calls(op, torch.float32, generator=torch.Generator().manual_seed(1))
    assert calls, "no sample calls"
    checked = 0
    while calls:
        call = testing.on_device(calls.pop())
        result = run(op, call)
        if isinstance(result, Exception):
            continue
        tensors = [t for t in (*call.args, *call.kwargs.values(), result)
                   if isinstance(t, torch.Tensor)]
        refs = [weakref.ref(t) for t in tensors]
        del call, result, tensors
        gc.collect()
        assert all(r() is None for r in refs), "a call's tensor outlived the call"
        checked += 1
    assert checked
    assert op.name in UNPLANNED or op.plans.plans, "no plan was made: nothing was tested"


def test_hit_miss_and_what_makes_a_new_plan():
    op = REGISTRY["sigmoid"]
    op.plans.clear()
    x = torch.randn(64, 32, device=DEVICE)
    op(x)
    assert len(op.plans) == 1
    for other in (torch.randn(64, 32, device=DEVICE), torch.randn(64, 32, device=DEVICE)):
        torch.testing.assert_close(op(other), torch.sigmoid(other))
    assert len(op.plans) == 1 and _replays(op) == 2  # values and pointers are not the signature
    op(x.t())                                                   # strides
    op(x.to(torch.float16))                                     # dtype
    op(torch.randn(65, 32, device=DEVICE))                      # shape
    misaligned = torch.randn(64 * 32 + 1, device=DEVICE)[1:].view(64, 32)
    assert misaligned.data_ptr() % 16
    torch.testing.assert_close(op(misaligned), torch.sigmoid(misaligned))   # alignment
    assert len(op.plans) == 5


def test_numbers_are_per_call_values():
    """A Python number the host code never reads reaches the kernel per call: one plan serves
    every value of it, and int and float (other promotion) get their own plans."""
    op = REGISTRY["mul"]
    op.plans.clear()
    x = torch.randn(16, device=DEVICE)
    for value in (2.0, -0.5, 3e38, float("nan"), -0.0):
        torch.testing.assert_close(op(x, value), x * value, equal_nan=True)
    assert len(op.plans) == 1
    ints = torch.arange(16, device=DEVICE)
    assert torch.equal(op(ints, 3), ints * 3) and torch.equal(op(ints, 2**40), ints * 2**40)
    assert torch.equal(op(ints, 2.5), ints * 2.5)
    assert len(op.plans) == 3
    addcmul = REGISTRY["addcmul"]
    addcmul.plans.clear()
    y, z = torch.randn(16, device=DEVICE), torch.randn(16, device=DEVICE)
    for value in (1, 2, -3):
        torch.testing.assert_close(addcmul(x, y, z, value=value),
                                   torch.addcmul(x, y, z, value=value))
    torch.testing.assert_close(addcmul(x, y, z), torch.addcmul(x, y, z))
    assert len(addcmul.plans) == 2  # value as a keyword, and left at its default


def test_numbers_read_by_host_code_are_part_of_the_signature():
    op = REGISTRY["softshrink"]  # checks lambd's range on the host
    op.plans.clear()
    x = torch.randn(16, device=DEVICE)
    torch.testing.assert_close(op(x, 0.5), torch.nn.functional.softshrink(x.cpu(), 0.5).to(DEVICE))
    with pytest.raises(RuntimeError, match="lambda must be in range"):
        op(x, -1.0)
    torch.testing.assert_close(op(x, 1.5), torch.nn.functional.softshrink(x.cpu(), 1.5).to(DEVICE))
    assert len(op.plans) == 2


def test_a_plan_does_not_write_over_an_overlapping_input():
    """The overlap of the written tensor with the others depends on pointers, checked per call:
    where they overlap, the full path applies PyTorch's rules."""
    op = ops.mul_
    op.plans.clear()
    base = torch.randn(40, device=DEVICE)
    op(base[:20].clone(), base[20:].clone())                   # planned: no overlap
    x = base.clone()
    with pytest.raises(RuntimeError, match="some elements of the input tensor and the written-to"):
        op(x[:20], x[10:30])              # overlapping (misaligned: a signature of its own)
    with pytest.raises(RuntimeError, match="some elements of the input tensor and the written-to"):
        op(x[:20], x[16:36])                  # aligned as well: the plan's matcher accepts it
    assert torch.equal(x, base)
    y = base.clone()
    expected = base[:20] * base[:20]
    assert op(y[:20], y[:20].view(20)) is not None and torch.equal(y[:20], expected)


def test_the_same_tensor_twice_is_its_own_signature():
    op = REGISTRY["mul"]
    op.plans.clear()
    x, y = torch.randn(8, device=DEVICE), torch.randn(8, device=DEVICE)
    assert torch.equal(op(x, x), x * x)
    assert torch.equal(op(x, y), x * y)
    assert torch.equal(op(y, y), y * y)
    assert len(op.plans) == 2
    # its matcher accepts it (the guard takes the tensor once), and only it
    plan = op.plans.get(op.signature((x, x), {}, None)[0])
    assert plan.matches((y, y), {}, None) is not None
    assert plan.matches((x, y), {}, None) is None
    assert len(plan.matches.guard) == 1


def test_out_and_inplace_plans():
    op = REGISTRY["sigmoid"]
    op.plans.clear()
    x = torch.randn(6, 5, device=DEVICE)
    for _ in range(2):
        out = torch.empty(5, 6, device=DEVICE).t()
        assert op(x, out=out) is out
        torch.testing.assert_close(out, torch.sigmoid(x))
    assert len(op.plans) == 1 and _replays(op) == 1
    resized = torch.empty(0, device=DEVICE)
    assert op(x, out=resized) is resized and resized.shape == x.shape  # resized: never planned
    inplace = ops.sigmoid_
    inplace.plans.clear()
    for _ in range(2):
        y = torch.randn(6, 5, device=DEVICE)
        expected = torch.sigmoid(y)
        assert inplace(y) is y
        torch.testing.assert_close(y, expected)
    assert _replays(inplace) == 1


def _variants(x, y):
    """Calls of ``mul``, ``hardtanh`` and ``reflection_pad1d`` around the signatures (x, y),
    (x, 2.0), (x, min_val=0.0), (x, [1, 2]) (a list or tuple: the key holds either as a tuple)
    exercise: each differs from its base in one thing a key records, or in values only."""
    misaligned = torch.randn(x.numel() + 1, device=DEVICE)[1:].view(x.shape)
    param = torch.nn.Parameter(x.clone(), requires_grad=False)
    return [
        ("values only", "mul", (x.clone(), y.clone()), {}),
        ("strides", "mul", (x.t().contiguous().t(), y), {}),
        ("dtype", "mul", (x.double(), y), {}),
        ("shape", "mul", (x[:-1], y[:-1]), {}),
        ("alignment", "mul", (misaligned, y), {}),
        ("the same tensor twice", "mul", (x, x), {}),
        ("a number", "mul", (x, 2.0), {}),
        ("a Parameter", "mul", (param, y), {}),
        ("requires grad", "mul", (x.clone().requires_grad_(), y), {}),
        ("out=", "mul", (x, y), {"out": torch.empty_like(x)}),
        ("a keyword", "hardtanh", (x,), {"min_val": -0.5}),
        ("a keyword's value", "hardtanh", (x,), {"min_val": 0.5}),
        ("a negative zero", "hardtanh", (x,), {"min_val": -0.0}),
        ("an int", "hardtanh", (x,), {"min_val": 0}),
        ("a bool", "hardtanh", (x,), {"min_val": False}),
        ("a NaN", "hardtanh", (x,), {"min_val": float("nan")}),
        ("another number", "mul number", (x, float("nan")), {}),
        ("an int number", "mul number", (x, 3), {}),
        ("another keyword", "hardtanh", (x,), {"max_val": 0.0}),
        ("both keywords", "hardtanh", (x,), {"min_val": 0.0, "max_val": 1.0}),
        ("positional", "hardtanh", (x, 0.0), {}),
        ("values only", "reflection_pad1d", (x, (1, 2)), {}),
        ("a list's values", "reflection_pad1d", (x, [2, 1]), {}),
        ("a list's length", "reflection_pad1d", (x, [1, 2, 0, 0]), {}),
    ]


@pytest.mark.parametrize("state", ["grad", "no_grad", "inference", "below autograd", "dual level"])
def test_a_matcher_accepts_only_calls_of_its_plans_key(state):
    """A plan's matcher (compared with a call before any key is built) accepts a call only where
    the call's key is the plan's; calls differing in values alone are accepted, in every
    dispatch state it was made in. hardtanh's numbers are in its key by value."""
    x, y = torch.randn(8, 4, device=DEVICE), torch.randn(8, 4, device=DEVICE)
    states = {"grad": torch.enable_grad, "no_grad": torch.no_grad,
              "inference": torch.inference_mode,
              "below autograd": torch._C._AutoDispatchBelowAutograd}
    bases = {"mul": ((x, y), {}), "mul number": ((x, 2.0), {}),
             "hardtanh": ((x,), {"min_val": 0.0}), "reflection_pad1d": ((x, [1, 2]), {})}
    variants = _variants(x, y)  # made outside the state: inference mode makes other tensors
    for name, (args, kwargs) in bases.items():
        op = REGISTRY[name.split()[0]]
        op.plans.clear()
        with states.get(state, torch.enable_grad)():
            op(*args, **kwargs)
            (plan,) = op.plans.plans.values()
            base_key = op.signature(args, kwargs, None)[0]
            assert plan.matches is not None and op.plans.recent == (plan,)
            assert plan.matches(args, kwargs, None) is not None
            for label, other, call_args, call_kwargs in variants:
                if other != name:
                    continue
                out = call_kwargs.get("out")
                call_kwargs = {k: v for k, v in call_kwargs.items() if k != "out"}
                if state == "dual level":
                    import torch.autograd.forward_ad as fwAD
                    with fwAD.dual_level():
                        assert plan.matches(call_args, call_kwargs, out) is None, label
                    continue
                key = op.signature(call_args, call_kwargs, out)[0]
                hit = plan.matches(call_args, call_kwargs, out)
                if hit is not None:
                    assert key == base_key, f"{label}: matched a call of another key"
                    assert hit[0] == [v for v in (*call_args, *call_kwargs.values(), out)
                                      if isinstance(v, torch.Tensor)]
                    assert hit[1] == [t.data_ptr() for t in hit[0]]
                else:
                    assert label not in ("values only", "another number"), f"{label}: refused"


def test_a_call_the_matcher_accepts_builds_no_key(monkeypatch):
    op = REGISTRY["mul"]
    op.plans.clear()
    x, y = torch.randn(16, device=DEVICE), torch.randn(16, device=DEVICE)
    op(x, 2.0)
    op(x, y)
    assert len(op.plans.recent) == 2
    monkeypatch.setattr(base_module, "call_key", lambda *a: pytest.fail("a key was built"))
    assert torch.equal(op(y, x), y * x) and torch.equal(op(y, 3.0), y * 3.0)
    assert _replays(op) == 2


def test_a_matcher_refused_by_the_dispatch_state_gets_a_guard_for_it():
    """A call found by its key whose plan's matcher refused it (made above autograd, called below
    it, as enable() calls) adds a guard for its state: the matcher then accepts both."""
    op = REGISTRY["neg"]
    op.plans.clear()
    x = torch.randn(16, device=DEVICE)
    op(x)
    (plan,) = op.plans.plans.values()
    with torch._C._AutoDispatchBelowAutograd():
        assert plan.matches((x,), {}, None) is None
        op(x)                                        # found by its key: a guard is added
        assert plan.matches((x,), {}, None) is not None
    assert plan.matches((x,), {}, None) is not None
    assert len(plan.matches.guard) == 2 and _replays(op) == 1


def test_a_guard_added_for_tensors_requiring_grad_refuses_what_autograd_records():
    """Below autograd (enable()'s calls) a tensor requiring grad has the key of one that does
    not; the guard added for it makes the matcher check that autograd would not record the
    call, so that above autograd, in grad mode, such a call is recorded, never replayed."""
    op = REGISTRY["mul"]
    op.plans.clear()
    x, w = torch.randn(16, device=DEVICE), torch.randn(16, device=DEVICE, requires_grad=True)
    with torch._C._AutoDispatchBelowAutograd():
        op(x, w.detach())
        (plan,) = op.plans.plans.values()
        assert plan.matches((x, w), {}, None) is None
        op(x, w)                                     # found by its key: a guard is added
        assert plan.matches((x, w), {}, None) is not None
        assert plan.matches((x, w.detach()), {}, None) is not None
    assert plan.matches((x, w), {}, None) is None    # autograd would record it
    with torch.no_grad():
        op(x, w)                                     # above autograd: a guard for its state
        assert plan.matches((x, w), {}, None) is not None
    assert plan.matches((x, w), {}, None) is None
    result = op(x, w)
    assert result.requires_grad and result.grad_fn is not None


def _keys_built_by(calls):
    """How many signature keys ``calls()`` builds (``call_key`` counted while it runs)."""
    keys = []
    real = base_module.call_key

    def counted(*args):
        keys.append(1)
        return real(*args)

    base_module.call_key = counted
    try:
        calls()
    finally:
        base_module.call_key = real
    return len(keys)


def test_a_calls_plan_is_predicted_from_the_last_one():
    """An op whose calls cycle through more signatures than its recent plans (a model's step)
    finds each by the plan that followed the last one's the time before, without a key."""
    op = REGISTRY["neg"]
    op.plans.clear()
    xs = [torch.randn(n, device=DEVICE) for n in range(1, 8)]  # 7 signatures, 4 recent plans
    for x in xs:
        op(x)
    for x in xs:  # the first round through found each by its key; the chain holds the order
        op(x)

    def step():
        for x in xs * 2:
            assert torch.equal(op(x), -x)

    assert _keys_built_by(step) == 0 and _replays(op) == 3 * len(xs)


def test_a_plan_followed_in_two_places_predicts_both():
    """A plan whose call is followed by one signature in one place and by another elsewhere (a
    layer's last call, then the next layer's first or the backward's) keeps both as its next
    plans: a step repeated builds no key."""
    op = REGISTRY["neg"]
    op.plans.clear()
    s = [torch.randn(n, device=DEVICE) for n in range(1, 7)]
    t = [torch.randn(n, 2, device=DEVICE) for n in range(1, 7)]
    # 12 signatures, 4 recent plans; s[i] is followed by s[i + 1] and, later, by t[i]
    step = s + [x for pair in zip(s, t) for x in pair]
    for _ in range(2):
        for x in step:
            op(x)

    def twice():
        for x in step * 2:
            assert torch.equal(op(x), -x)

    assert _keys_built_by(twice) == 0
    assert set(op.plans.plans.values()) >= set(op.plans.last.following)


def test_without_a_usable_tensor_guard_calls_build_their_keys(monkeypatch):
    """``TensorGuards`` is internal to torch: where it does not behave as plans.py reads it,
    plans get no matcher and every call is found by its key."""
    monkeypatch.setattr(plans, "_make_guard", None)
    op = REGISTRY["neg"]
    op.plans.clear()
    x = torch.randn(16, device=DEVICE)
    for _ in range(3):
        assert torch.equal(op(x), -x)
    (plan,) = op.plans.plans.values()
    assert plan.matches is None and op.plans.recent == () and _replays(op) == 2


def test_the_guard_of_this_torch_is_usable():
    assert plans._make_guard is not None, "every call builds its key: see plans._guard_maker"


def test_the_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(plans, "PLAN_LIMIT", 3)
    op = REGISTRY["neg"]
    op.plans.clear()
    for n in range(1, 7):
        x = torch.randn(n, device=DEVICE)
        assert torch.equal(op(x), -x)
    assert len(op.plans) == 3


def test_a_launcher_contract_other_than_the_known_one_takes_the_public_path(monkeypatch):
    monkeypatch.setattr(triton, "__version__", "99.0.0")
    assert launching._launcher_contract() is False
    monkeypatch.setattr(launching, "FAST_LAUNCH", False)
    op = REGISTRY["exp"]
    op.plans.clear()
    x = torch.randn(32, device=DEVICE)
    for _ in range(3):
        torch.testing.assert_close(op(x), torch.exp(x))
    (plan,) = op.plans.plans.values()
    assert not plan.direct and plan.replays == 2


@pytest.mark.skipif(DEVICE != "cuda", reason="the compiled kernel's own launcher needs a GPU")
def test_the_known_contract_launches_directly():
    assert launching.FAST_LAUNCH == (triton.__version__.startswith("3.6."))
    op = REGISTRY["exp"]
    op.plans.clear()
    x = torch.randn(32, device=DEVICE)
    op(x)
    (plan,) = op.plans.plans.values()
    assert plan.direct == launching.FAST_LAUNCH
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        torch.cuda._sleep(10**7)  # keeps the side stream busy: our launch must queue behind it
        y = op(x)
        event = torch.cuda.Event()
        event.record(stream)
    assert not event.query(), "the launch did not wait for the work queued on its stream"
    torch.cuda.synchronize()
    torch.testing.assert_close(y, torch.exp(x))


@pytest.fixture
def stand_ins(monkeypatch):
    """``monkeypatch``, for a test that puts a stand-in in the compiled launcher's place: the
    plans made meanwhile hold the stand-in, so they go when the test ends. Left in their ops'
    caches, a later call of the same signature in this process would replay the stand-in:
    nothing launched, the result unwritten."""
    yield monkeypatch
    for op in REGISTRY.values():
        op.plans.clear()


def test_generated_replay_passes_pointers_and_numbers(stand_ins):
    """The straight-line replay (the compiled path) on any machine: a stand-in for the compiled
    launcher records what it is given — the kernel's arguments in order, the call's pointers as
    integers (the new result's, each operand's), the call's numbers encoded — and the counts."""
    launched = []
    fixed = ("function", 0, 0, None, None, "metadata", None, None, None)
    stand_ins.setattr(plans, "direct_launcher",
                      lambda recorded: (lambda *a: launched.append(a), (3, 1, 1), fixed))
    stand_ins.setattr(native_launch, "launcher", lambda *a: None)  # Triton's launcher's form
    stand_ins.setattr(plans, "current_stream", lambda index: 1234)
    op = REGISTRY["addcmul"]
    op.plans.clear()
    x, y, z = (torch.randn(8, device=DEVICE) for _ in range(3))
    op(x, y, z, value=2.5)  # the full path, recorded
    (plan,) = op.plans.plans.values()
    assert plan.direct
    a, b, c = (torch.randn(8, device=DEVICE) for _ in range(3))
    before = flaggems_exp.LAUNCHES["addcmul"]
    result = plan.replay((a, b, c), {"value": -3.0}, [a, b, c],
                         [a.data_ptr(), b.data_ptr(), c.data_ptr()])
    (args,) = launched
    assert args[:4] == (3, 1, 1, 1234) and args[4:13] == fixed
    kernel_args = args[13:]
    names = list(launching._parameters(plan.launches[0].kernel))
    value = dict(zip((p.name for p in names), kernel_args))
    assert value["out_ptr"] == result.data_ptr() and result.shape == a.shape
    assert (value["in0"], value["in1"], value["in2"]) == (a.data_ptr(), b.data_ptr(),
                                                          c.data_ptr())
    assert value["s0"] == encode_scalar(-3.0, torch.float32)
    assert flaggems_exp.LAUNCHES["addcmul"] == before + 1 and plan.replays == 1
    # the written tensor overlapping an input: no launch, the caller takes the full path
    inplace = ops.mul_
    inplace.plans.clear()
    inplace(x.clone(), y)
    (plan,) = inplace.plans.plans.values()
    w = torch.randn(8, device=DEVICE)
    view = w[:8]  # another object over the same memory
    assert plan.replay((w, view), {}, [w, view], [w.data_ptr(), view.data_ptr()]) is None
    assert len(launched) == 1


def test_an_out_without_storage_is_resized_by_the_replay(stand_ins):
    """An out= without storage (``at::empty({0})`` given to an ``_out`` kernel: ATen's
    composite kernels do so) is resized by the call, without a warning: its plan resizes the
    next such out alike, in the result's layout; an empty out= viewing a storage, or one with
    elements (PyTorch warns), takes the full path."""
    op = REGISTRY["mul"]
    op.plans.clear()
    x = torch.randn(2, 3, 4, 5, device=DEVICE).to(memory_format=torch.channels_last)
    y = torch.randn(2, 3, 4, 5, device=DEVICE)

    def empty_out():
        return torch.empty(0, device=DEVICE)

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning
        results = [op(x, y, out=empty_out()) for _ in range(3)]
    (plan,) = op.plans.plans.values()
    assert plan.resized == (x.shape, x.stride()) and _replays(op) == 2
    for result in results:
        assert result.shape == x.shape and result.stride() == x.stride()
        assert torch.equal(result, x * y)
    base = torch.zeros(200, device=DEVICE)
    viewing = base[:0]  # no elements, but a storage: the full path (PyTorch writes into it)
    assert op(x, y, out=viewing).data_ptr() == base.data_ptr() and _replays(op) == 2
    assert torch.equal(base[:120], (x * y).permute(0, 2, 3, 1).flatten())
    # the compiled path's generated replay, with a stand-in launcher: the resized out's pointer
    launched = []
    fixed = ("function", 0, 0, None, None, "metadata", None, None, None)
    stand_ins.setattr(plans, "direct_launcher",
                      lambda recorded: (lambda *a: launched.append(a), (3, 1, 1), fixed))
    stand_ins.setattr(native_launch, "launcher", lambda *a: None)
    stand_ins.setattr(plans, "current_stream", lambda index: 1234)
    op.plans.clear()
    op(x, y, out=empty_out())
    (plan,) = op.plans.plans.values()
    assert plan.direct and plan.resized is not None
    out = empty_out()
    result = plan.replay((x, y), {}, [x, y, out], [x.data_ptr(), y.data_ptr(), out.data_ptr()])
    assert result is out and out.shape == x.shape and out.stride() == x.stride()
    names = [p.name for p in launching._parameters(plan.launches[0].kernel)]
    value = dict(zip(names, launched[-1][13:]))
    assert value["out_ptr"] == out.data_ptr() != 0
    assert (value["in0"], value["in1"]) == (x.data_ptr(), y.data_ptr())
    assert plan.replay((x, y), {}, [x, y, viewing], [x.data_ptr(), y.data_ptr(), 0]) is None


def test_copy_plans_by_selfs_storage():
    """copy's result clones self's whole storage: its size and offset are in the signature, and
    a replay returns the same view of a storage holding self's elements outside the view."""
    op = REGISTRY["copy"]
    op.plans.clear()
    base = torch.randn(40, device=DEVICE)
    src = torch.randn(4, 8, device=DEVICE)

    def check(x):
        ours, theirs = op(x, src), torch.ops.aten.copy(x, src)
        assert (ours.shape, ours.stride(), ours.storage_offset()) == (
            theirs.shape, theirs.stride(), theirs.storage_offset())
        n = theirs.untyped_storage().nbytes() // theirs.element_size()
        assert ours.untyped_storage().nbytes() == theirs.untyped_storage().nbytes()
        assert torch.equal(ours.as_strided((n,), (1,), 0), theirs.as_strided((n,), (1,), 0))

    for start in (4, 4, 0, 0, 4):  # offsets 4 and 0 into one storage: two plans
        base.normal_()
        check(base[start:start + 32].view(4, 8))
    assert len(op.plans) == 2 and _replays(op) == 3
    check(torch.randn(32, device=DEVICE).view(4, 8))  # a storage of the view's size: another
    assert len(op.plans) == 3


def test_a_factory_call_is_found_by_its_matcher(monkeypatch):
    """A call without tensors has a matcher too: values compared one by one, and the defaults
    its key holds (the default dtype where no dtype is given)."""
    op = REGISTRY["empty_permuted"]
    op.plans.clear()
    call = (((6, 5), [1, 0]), {"dtype": torch.float16, "device": DEVICE})
    op(*call[0], **call[1])
    (plan,) = op.plans.plans.values()
    assert plan.matches(*call, None) == ([], [])
    assert plan.matches(((6, 5), [0, 1]), call[1], None) is None
    assert plan.matches(call[0], {**call[1], "dtype": torch.float32}, None) is None
    monkeypatch.setattr(base_module, "call_key", lambda *a: pytest.fail("a key was built"))
    result = op([6, 5], (1, 0), dtype=torch.float16, device=DEVICE)  # lists and tuples alike
    assert result.stride() == (1, 6) and result.dtype == torch.float16 and plan.replays == 1


def test_the_default_device_as_get_default_device_gives_it():
    assert plans._default_device() == torch.get_default_device()
    torch.set_default_device("meta")
    try:
        assert plans._default_device() == torch.get_default_device() == torch.device("meta")
    finally:
        torch.set_default_device(None)
    assert plans._default_device() == torch.get_default_device()


def test_a_factory_follows_the_default_dtype():
    op = REGISTRY["scalar_tensor"]
    op.plans.clear()
    assert op(1.5, device=DEVICE).dtype == torch.get_default_dtype()
    assert op(1.5, device=DEVICE).dtype == torch.get_default_dtype()  # its matcher's
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        result = op(1.5, device=DEVICE)
    finally:
        torch.set_default_dtype(previous)
    assert result.dtype == torch.float64 and result.item() == 1.5
    assert len(op.plans) == 2 and _replays(op) == 1


@pytest.mark.parametrize("name, call", [
    ("sigmoid", lambda op, x: op(x)), ("mul", lambda op, x: op(x, 2.5))])
def test_an_integer_tensors_floating_result_follows_the_default_dtype(name, call):
    """An integer tensor computed in floating point, or joined by a Python float, gives
    PyTorch's default dtype: a plan made under one default is not replayed under another, and
    its values are PyTorch's under each."""
    op = REGISTRY[name]
    op.plans.clear()
    x = torch.arange(-3, 4, device=DEVICE)
    previous = torch.get_default_dtype()
    try:
        for dtype in (torch.float32, torch.float64, torch.float32, torch.float64):
            torch.set_default_dtype(dtype)
            for _ in range(2):
                ours, theirs = call(op, x), call(getattr(torch, name), x.cpu())
                assert ours.dtype == theirs.dtype == dtype
                testing.assert_close(ours.cpu(), theirs)
    finally:
        torch.set_default_dtype(previous)
    assert len(op.plans) == 2 and _replays(op) == 6


def test_parameter_slots_are_tritons_parameters():
    """One 8-byte slot per kernel parameter, as Triton's launcher passes them: tuples flattened,
    constexprs left out, integers in two's complement, floats in their own width (bfloat16 the
    top half of a float32), the changing arguments' slots blank, then the two scratch
    pointers."""
    signature = ["*fp16", ("i32", "constexpr", "i64"), "constexpr", "fp32", "bf16", "fp64",
                 "i1", "u64", "*i8"]
    values = [None, (3, 1, -2), 1024, 1.5, 2.0, -0.25, True, 2**64 - 1, None]
    slots, changing = native_launch.parameter_slots(signature, values, {0, 8})
    words = [slots[i:i + 8] for i in range(0, len(slots), 8)]
    assert changing == (0, 8)
    assert len(words) == 9 + 2
    assert words[0] == words[8] == bytes(8) and words[9:] == [bytes(8)] * 2
    assert int.from_bytes(words[1], "little") == 3
    assert int.from_bytes(words[2], "little", signed=True) == -2
    assert struct.unpack("<f", words[3][:4]) == (1.5,) and words[3][4:] == bytes(4)
    assert words[4][:2] == struct.pack("<f", 2.0)[2:] and words[4][2:] == bytes(6)
    assert struct.unpack("<d", words[5]) == (-0.25,)
    assert words[6] == (1).to_bytes(8, "little")
    assert words[7] == b"\xff" * 8
    with pytest.raises(TypeError):
        native_launch.parameter_slots(["*fp32", ("i32", "i32")], [None, (1, 2)], {1})
    with pytest.raises(TypeError):
        native_launch.parameter_slots(["tensordesc<fp16[16]>"], [None], set())


def test_generated_replay_through_our_launcher(stand_ins):
    """With our launcher, a replay passes the stream and only what changes: the pointers (the
    new result's first) and the numbers encoded, in argument order."""
    launched, made = [], []
    fixed = ("function", 0, 0, None, None, "metadata", None, None, None)
    stand_ins.setattr(plans, "direct_launcher", lambda recorded: (None, (3, 1, 1), fixed))

    def launch_spec(compiled, grid, values, changing):
        made.append((grid, sorted(changing)))
        return "spec"

    stand_ins.setattr(native_launch, "launch_spec", launch_spec)
    stand_ins.setattr(native_launch, "launcher",
                      lambda spec, device_index: spec and (lambda *a: launched.append(a)))
    stand_ins.setattr(plans, "current_stream", lambda index: 1234)
    op = REGISTRY["addcmul"]
    op.plans.clear()
    x, y, z = (torch.randn(8, device=DEVICE) for _ in range(3))
    op(x, y, z, value=2.5)
    (plan,) = op.plans.plans.values()
    names = [p.name for p in launching._parameters(plan.launches[0].kernel)]
    assert made == [((3, 1, 1), [names.index(n) for n in
                                 ("out_ptr", "in0", "in1", "in2", "s0")])]
    a, b, c = (torch.randn(8, device=DEVICE) for _ in range(3))
    result = plan.replay((a, b, c), {"value": -3.0}, [a, b, c],
                         [a.data_ptr(), b.data_ptr(), c.data_ptr()])
    assert launched == [(1234, result.data_ptr(), a.data_ptr(), b.data_ptr(), c.data_ptr(),
                         encode_scalar(-3.0, torch.float32))]


@pytest.mark.skipif(DEVICE != "cuda", reason="our launcher launches compiled kernels on a GPU")
def test_our_launcher_serves_plans_and_its_absence_leaves_tritons(monkeypatch):
    """On the GPU a plan launches through our launcher where it can be built; without it (no C
    compiler, say) through Triton's, with the same results."""
    assert native_launch.available() or not launching.FAST_LAUNCH  # it builds where Triton's does
    op = REGISTRY["addcmul"]
    x, y, z = (torch.randn(1000, device=DEVICE) for _ in range(3))
    for built in (True, False):
        if not built:
            monkeypatch.setattr(native_launch, "_module", lambda: None)
        op.plans.clear()
        full_path = op(x, y, z, value=0.5)  # launched through kernel[grid]
        torch.testing.assert_close(full_path, torch.addcmul(x, y, z, value=0.5))
        for _ in range(2):  # replayed: the same kernel, the same bits
            assert torch.equal(op(x, y, z, value=0.5), full_path)
        (plan,) = op.plans.plans.values()
        assert plan.replays == 2 and plan.direct == launching.FAST_LAUNCH
        uses_ours = all(launch.native is not None for launch in plan.launches)
        assert uses_ours == (built and launching.FAST_LAUNCH)


F = torch.nn.functional


FLOATS, INTS = (0.5, 0.25, 0.5), (1, 2, 1)


@pytest.mark.parametrize("name, values, call, reference", [
    ("hardtanh", FLOATS, lambda x, y, v: ops.hardtanh(x, -v, v),
     lambda x, y, v: F.hardtanh(x, -v, v)),
    ("logit", FLOATS, lambda x, y, v: ops.logit(x.sigmoid(), v),
     lambda x, y, v: torch.logit(x.sigmoid(), v)),
    ("softplus", FLOATS, lambda x, y, v: ops.softplus(x, v), lambda x, y, v: F.softplus(x, v)),
    ("smooth_l1_loss", FLOATS, lambda x, y, v: ops.smooth_l1_loss(x, y, beta=v),
     lambda x, y, v: F.smooth_l1_loss(x, y, beta=v)),
    ("margin_ranking_loss", FLOATS, lambda x, y, v: ops.margin_ranking_loss(x, y, y.sign(), v),
     lambda x, y, v: F.margin_ranking_loss(x, y, y.sign(), margin=v)),
    ("scalar_tensor", FLOATS, lambda x, y, v: ops.scalar_tensor(v, device=x.device).cpu(),
     lambda x, y, v: torch.scalar_tensor(v)),
    ("tril", INTS, lambda x, y, v: ops.tril(x.view(8, 8), v),
     lambda x, y, v: torch.tril(x.view(8, 8), v)),
    ("tril_", INTS, lambda x, y, v: ops.tril_(x.view(8, 8).clone(), v),
     lambda x, y, v: x.view(8, 8).clone().tril_(v)),
    ("diag", INTS, lambda x, y, v: ops.diag(x.view(8, 8), v),
     lambda x, y, v: torch.diag(x.view(8, 8), v)),
    ("eye", INTS, lambda x, y, v: ops.eye(v, device=x.device).cpu(), lambda x, y, v: torch.eye(v)),
    ("replication_pad1d", INTS, lambda x, y, v: ops.replication_pad1d(x.view(1, 8, 8), [v, 2]),
     lambda x, y, v: F.pad(x.view(1, 8, 8), [v, 2], mode="replicate")),
])
def test_a_tensor_given_for_a_number_is_read_at_every_call(name, values, call, reference):
    """A direct call may give a one-element tensor where the schema takes a number (a Scalar,
    an int, a list of ints), as PyTorch's binding allows: its value counts, and the signature
    (which holds the tensor, not its value) gets no plan that would keep the first value."""
    g = torch.Generator().manual_seed(5)
    x = (torch.randn(64, generator=g) * 3).to(DEVICE)
    y = torch.randn(64, generator=g).to(DEVICE)
    REGISTRY[name].plans.clear()
    for value in values:
        torch.testing.assert_close(call(x, y, torch.tensor(value)), reference(x, y, value))
        if values is INTS:  # one element in one dim, on the CPU beside the device's: an index
            torch.testing.assert_close(call(x, y, torch.tensor([value])), reference(x, y, value))
    assert len(REGISTRY[name].plans) == 0


@pytest.mark.parametrize("call, reference", [
    (lambda x, v: ops.logit_(x, v), lambda x, v: torch.logit_(x, v)),
    (lambda x, v: ops.softplus(x, 2, v), lambda x, v: torch._C._nn.softplus(x, 2, v)),
    (lambda x, v: ops.hardtanh(x, v), lambda x, v: torch._C._nn.hardtanh(x, v)),
    (lambda x, v: ops.scalar_tensor(v, device=x.device), lambda x, v: torch.scalar_tensor(v)),
    (lambda x, v: ops.tril(x.view(2, 4), v[0]), lambda x, v: torch.tril(x.view(2, 4), v[0])),
    (lambda x, v: ops.replication_pad1d(x.view(1, 2, 4), [v[0], 1]),
     lambda x, v: torch._C._nn.replication_pad1d(x.view(1, 2, 4), [v[0], 1])),
])
@pytest.mark.parametrize("v", [torch.tensor([0.1, 0.2]), torch.tensor([0.5])])
def test_a_tensor_given_for_a_number_gets_pytorchs_type_error(call, reference, v):
    """Two elements where one number goes, one element in one dim where a Scalar or a float
    goes, or a float tensor where an int goes: the TypeError of PyTorch's binding, before
    anything is written."""
    x = torch.rand(8, device=DEVICE)
    with pytest.raises(TypeError) as expected:
        reference(x.cpu(), v)
    before = x.clone()
    with pytest.raises(TypeError, match=f"^{re.escape(str(expected.value))}$"):
        call(x, v)
    assert torch.equal(x, before)


def test_a_tensor_given_for_a_number_in_a_call_autograd_records():
    """The call of the aten op that autograd records (the tensors require grad) takes the
    number, as PyTorch's binding passes it."""
    x = torch.randn(16, device=DEVICE, requires_grad=True)
    ours = ops.hardtanh(x, torch.tensor(-0.5), torch.tensor(0.5))
    ours.sum().backward()
    grad, x.grad = x.grad, None
    expected = F.hardtanh(x, -0.5, 0.5)
    expected.sum().backward()
    torch.testing.assert_close(ours, expected)
    torch.testing.assert_close(grad, x.grad)
