"""Plans replayed in C++ behind the dispatcher (runtime/native_dispatch.py): what the C++ route
replays, what it leaves to the Python kernel, and that the values are PyTorch's either way. On
the CPU the replay calls back into Python for each launch (Triton's interpreter); compiled, it
launches with cuLaunchKernel. References are our own direct calls (the same kernels: the same
bits), made before routing."""
import gc
import os
import shutil
import subprocess
import sys
import weakref

import pytest
import torch
import torch.nn.functional as F

import flaggems_exp
from flaggems_exp import LAUNCHES, dispatch, testing
from flaggems_exp import experimental_ops as ops
from flaggems_exp.runtime import native_dispatch
from flaggems_exp.runtime.device import DEVICE

pytestmark = pytest.mark.skipif(shutil.which("c++") is None,
                                reason="no C++ compiler to build the extension with")


def test_the_extension_builds():
    assert native_dispatch.module() is not None, native_dispatch.FAILURE


@pytest.fixture
def routed(monkeypatch):
    """``start()``: enable() with the C++ routes in front of the Python kernels (on the CPU
    every CPU tensor op is routed, references too: compute them before); returns the routes'
    stats as a function of the aten name: (plans, replays, misses)."""
    monkeypatch.setattr(dispatch, "NATIVE", True)

    def start():
        flaggems_exp.enable()
        return lambda name: native_dispatch.stats()[name]

    try:
        yield start
    finally:
        flaggems_exp.disable()


def _randn(*shape, dtype=torch.float32):
    return torch.randn(*shape, device=DEVICE).to(dtype)


def test_a_plan_offered_once_is_replayed_in_cpp(routed):
    x = _randn(5, 7)
    expected = ops.sigmoid(x)
    stats = routed()
    launches = LAUNCHES["sigmoid"]
    results = [torch.sigmoid(x) for _ in range(4)]
    assert stats("sigmoid") == (1, 3, 1)  # the first call offers its plan, the others replay
    assert LAUNCHES["sigmoid"] == launches + 4  # every call launched our kernel
    for result in results:
        assert torch.equal(result, expected)
        assert result.shape == x.shape and result.stride() == x.stride()
    assert len({r.data_ptr() for r in results}) == len(results)  # a new result each call


def test_a_plan_in_cpp_keeps_no_tensor_of_its_calls_alive(routed):
    """The C++ route's plan, offered by one call and replaying others, holds none of their
    tensors: each call's input and result are freed once the caller drops them."""
    stats = routed()
    refs = []
    for _ in range(3):
        x = _randn(6, 9)
        y = torch.sigmoid(x)
        refs += [weakref.ref(x), weakref.ref(y)]
        del x, y
    gc.collect()
    assert stats("sigmoid") == (1, 2, 1)
    assert all(r() is None for r in refs), "a tensor outlived its call"


def test_a_signature_differing_in_strides_alignment_or_dtype_gets_its_own_plan(routed):
    flat = _randn(65)
    calls = [flat[:64].view(8, 8), flat[:64].view(8, 8).t(), flat[1:].view(8, 8),  # unaligned
             flat[:64].view(8, 8).to(torch.float16)]
    expected = [ops.exp2(x) for x in calls]
    stats = routed()
    for x, reference in zip(calls, expected):
        for _ in range(2):
            result = torch.exp2(x)
            assert torch.equal(result, reference) and result.stride() == reference.stride()
    assert stats("exp2") == (4, 4, 4)


def test_numbers_are_read_per_call(routed):
    """Python numbers the kernel receives unread are encoded at every replay: one plan for each
    number kind, whatever the values."""
    x = _randn(6)
    values = (2.5, -0.75, float("inf"), 3, -4, 2**40)
    expected = [ops.mul(x, value) for value in values]
    stats = routed()
    for value, reference in zip(values, expected):
        torch.testing.assert_close(torch.mul(x, value), reference, equal_nan=True,
                                   rtol=0, atol=0)
    assert stats("mul.Tensor") == (2, 4, 2)  # a float and an int: two plans


def test_a_range_checked_number_out_of_range_raises_pytorchs_error(routed):
    x = _randn(6)
    slopes = (0.25, 0.5, -2.0)
    expected = [ops.leaky_relu(x, slope) for slope in slopes]
    with pytest.raises(RuntimeError) as pytorch:
        F.leaky_relu(x, 1e300)
    stats = routed()
    for slope, reference in zip(slopes, expected):
        assert torch.equal(F.leaky_relu(x, slope), reference)
    assert stats("leaky_relu") == (1, 2, 1)  # the range check is made in C++
    with pytest.raises(RuntimeError) as ours:
        F.leaky_relu(x, 1e300)
    assert str(ours.value) == str(pytorch.value)
    assert stats("leaky_relu") == (1, 2, 2)  # left to the full path, which raised


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_a_number_checked_into_a_half_type_is_rounded_to_it_in_cpp(routed, dtype):
    """hardshrink converts ``lambd`` into self's dtype with c10's check, which also rounds it
    (through float32): values in range share one plan and are rounded in C++ as in Python
    (0.30068125 becomes 0.30078125 in both types, so an x of 0.30078125 becomes 0, where the
    value unrounded would keep it); one out of range (float16's 65520, bfloat16's 1e39) gets
    the full path's error."""
    x = torch.tensor([0.30078125, 0.3, -0.3, 0.31, -1.0, 65504.0, 0.0], dtype=dtype,
                     device=DEVICE)
    lambdas = (0.3, 0.30068125, 1e-8, float("inf"), float("nan"), -0.5, 65504.0, 2, True)
    expected = [ops.hardshrink(x, v) for v in lambdas]
    bad = 65520.0 if dtype == torch.float16 else 1e39
    with pytest.raises(RuntimeError) as direct:
        ops.hardshrink(x, bad)
    stats = routed()
    assert expected[1][0] == 0  # rounded
    for value, reference in zip(lambdas, expected):
        assert torch.equal(testing.bits(F.hardshrink(x, value)), testing.bits(reference)), value
    plans, replays, _ = stats("hardshrink")
    assert plans + replays == len(lambdas) and replays >= len(lambdas) - 3  # float, int, bool
    with pytest.raises(RuntimeError) as routed_error:
        F.hardshrink(x, bad)
    assert str(routed_error.value) == str(direct.value)
    assert stats("hardshrink")[1] == replays


def test_in_place_and_out_are_replayed_and_overlap_takes_the_full_path(routed):
    x = _randn(16)
    thrice = ops.sigmoid(ops.sigmoid(ops.sigmoid(x)))
    once = ops.sigmoid(x)
    z = _randn(17)
    with pytest.raises(RuntimeError) as pytorch:
        torch.sigmoid(z[1:], out=z[:16])
    stats = routed()
    y = x.clone()
    for _ in range(3):
        y.sigmoid_()
    assert torch.equal(y, thrice) and stats("sigmoid_")[:2] == (1, 2)
    out = torch.empty_like(x)
    for _ in range(3):
        assert torch.sigmoid(x, out=out) is out
    assert torch.equal(out, once) and stats("sigmoid.out")[:2] == (1, 2)
    # out= overlapping its input in part, of a signature replayed before: the full path
    # raises PyTorch's error
    w = z.clone()
    for _ in range(2):
        torch.sigmoid(w[:16], out=torch.empty(16, device=DEVICE)[:16])
    with pytest.raises(RuntimeError) as ours:
        torch.sigmoid(z[1:], out=z[:16])
    assert str(ours.value) == str(pytorch.value)


def test_the_same_tensor_twice_is_a_signature_of_its_own(routed):
    x, y = _randn(8), _randn(8)
    square, product = ops.mul(x, x), ops.mul(x, y)
    stats = routed()
    for _ in range(3):
        assert torch.equal(x * x, square) and torch.equal(x * y, product)
    assert stats("mul.Tensor") == (2, 4, 2)


def test_an_out_without_storage_is_resized_by_the_replay(routed):
    """An out= without storage (ATen's composite kernels hand ``at::empty({0})`` to ``_out``
    kernels) is resized in C++ as the call resized it, in the result's layout; an empty out=
    viewing a storage, and an out= with elements (PyTorch warns), go to the Python kernel."""
    x = _randn(2, 3, 4, 5).contiguous(memory_format=torch.channels_last)
    y = _randn(2, 3, 4, 5)
    expected = ops.mul(x, y)
    stats = routed()
    outs = []
    for _ in range(3):
        outs.append(torch.empty(0, device=DEVICE))
        assert torch.mul(x, y, out=outs[-1]) is outs[-1]
    assert stats("mul.out")[:2] == (1, 2)
    base = torch.zeros(200, device=DEVICE)
    torch.mul(x, y, out=base[:0])
    with pytest.warns(UserWarning, match="was resized"):
        torch.exp2(x, out=torch.empty(3, device=DEVICE))
    assert stats("mul.out")[1] == 2 and stats("exp2.out")[:2] == (0, 0)
    # compared by PyTorch's own kernels (torch.equal runs eq, which enable() routes), per call:
    # the full path's, then the two replays'
    flaggems_exp.disable()
    assert [(torch.equal(out, expected), out.stride()) for out in outs] == \
        [(True, x.stride())] * 3
    assert torch.equal(base[:120], expected.permute(0, 2, 3, 1).flatten())


def test_disable_removes_the_routes(routed):
    x = _randn(4)
    routed()
    torch.sigmoid(x)
    flaggems_exp.disable()
    launches = LAUNCHES["sigmoid"]
    torch.sigmoid(x)
    assert LAUNCHES["sigmoid"] == launches and native_dispatch.stats() == {}


def test_without_the_extension_routing_stays_python(monkeypatch):
    monkeypatch.setattr(dispatch, "NATIVE", True)
    monkeypatch.setattr(native_dispatch, "module", lambda: None)
    x = _randn(4)
    launches = LAUNCHES["sigmoid"]
    with flaggems_exp.use_gems():
        for _ in range(2):
            torch.testing.assert_close(torch.sigmoid(x), 1 / (1 + torch.exp(-x)))
        assert native_dispatch._routes == {}
    assert LAUNCHES["sigmoid"] == launches + 2


def test_a_composite_op_is_replayed_only_where_autograd_records_nothing(routed):
    """selu is CompositeImplicitAutograd: its route sits at the autograd key, replaying calls
    without a gradient to record; the others go to PyTorch's decomposition."""
    x = _randn(6)
    with torch._C._AutoDispatchBelowAutograd():  # its plan made as the dispatcher's call makes it
        expected = ops.selu(x)
    leaf = x.clone().requires_grad_()
    decomposed = F.selu(leaf)
    (gradient,) = torch.autograd.grad(decomposed.sum(), leaf)
    stats = routed()
    for _ in range(3):
        assert torch.equal(F.selu(x), expected)
    assert stats("selu")[:2] == (1, 2)
    with_grad = F.selu(leaf)
    assert with_grad.requires_grad and with_grad.grad_fn is not None
    torch.testing.assert_close(torch.autograd.grad(with_grad.sum(), leaf)[0], gradient)
    assert stats("selu")[1] == 2  # not replayed
    with torch.no_grad():
        assert torch.equal(F.selu(leaf), expected)
    assert stats("selu")[1] == 3


def test_a_process_ending_while_enabled_ends_cleanly():
    """Routes still in place at the end (``enable()`` without ``disable()``) are removed before
    Python goes, with the plans' Python objects."""
    script = ("import torch, flaggems_exp\n"
              "flaggems_exp.enable()\n"
              f"x = torch.randn(4, device={DEVICE!r})\n"
              "for _ in range(3):\n"
              "    torch.sigmoid(x)\n"
              "print(flaggems_exp.runtime.native_dispatch.stats()['sigmoid'])\n")
    env = {**os.environ, "FLAGGEMS_EXP_NATIVE_DISPATCH": "1"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-3:] == ["(1,", "2,", "1)"], done.stdout


def test_a_plan_follows_the_default_dtype(routed):
    """A factory without ``dtype`` and an integer tensor's floating result take PyTorch's
    default dtype: a plan replays only under the default it was made with, in C++ as in
    Python."""
    previous = torch.get_default_dtype()
    integers = torch.arange(5, device=DEVICE)
    stats = routed()
    try:
        for dtype in (torch.float32, torch.float64, torch.float32, torch.float64):
            torch.set_default_dtype(dtype)
            for _ in range(2):
                assert torch.scalar_tensor(2.5, device=DEVICE).dtype == dtype
                assert torch.eye(3, device=DEVICE).dtype == dtype
                assert torch.sigmoid(integers).dtype == dtype
                assert torch.mul(integers, 2.5).dtype == dtype
            assert torch.scalar_tensor(2.5, device=DEVICE, dtype=torch.float16).dtype == (
                torch.float16)
    finally:
        torch.set_default_dtype(previous)
    for name in ("eye", "sigmoid", "mul.Tensor"):
        # a plan per default dtype, each made on its first call and replayed on the 3 others
        assert stats(name)[:2] == (2, 6), name
    # the float16 calls too get a plan per default dtype (no plan knows which calls ignore it)
    assert stats("scalar_tensor")[:2] == (4, 6 + 2)


def test_a_number_is_range_checked_into_an_integer_type_in_cpp(routed):
    """addcmul of int32 tensors converts a float ``value`` with c10's check into int64 (its
    CUDA kernel's): values in range share one plan, one out of range gets the full path's
    error."""
    x, y, z = (torch.randint(-9, 9, (6,), device=DEVICE, dtype=torch.int32) for _ in range(3))
    values = (2.5, -5.0, 2.0**62)
    expected = [ops.addcmul(x, y, z, value=v) for v in values]
    with pytest.raises(RuntimeError) as direct:
        ops.addcmul(x, y, z, value=1e30)
    stats = routed()
    for value, reference in zip(values, expected):
        assert torch.equal(torch.addcmul(x, y, z, value=value), reference)
    assert stats("addcmul")[:2] == (1, 2)
    with pytest.raises(RuntimeError) as routed_error:
        torch.addcmul(x, y, z, value=1e30)
    assert str(routed_error.value) == str(direct.value) == (
        "value cannot be converted to type int64_t without overflow")
    assert stats("addcmul")[1] == 2
