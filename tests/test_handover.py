"""enable() never breaks valid code: what the kernels do not cover is PyTorch's own kernel's.

Under enable(), a routed op's call with inputs our kernels do not cover (complex and other
dtypes without a kernel, sparse and other layouts, another device, numbers alone) gives
PyTorch's result or PyTorch's exception and is counted in DELEGATED; inputs we cover still run
our kernels, planned calls replay; a direct call of the op raises NotCovered. PyTorch itself
(disabled) on the same device is the reference: the hand-over runs its very kernel, so results
are compared bit for bit.
"""
import contextlib
import warnings

import pytest
import torch

import flaggems_exp
from flaggems_exp import DELEGATED, LAUNCHES, REGISTRY, dispatch, experimental_ops as ops, testing
from flaggems_exp.families import Op
from flaggems_exp.runtime import native_dispatch
from flaggems_exp.runtime.errors import NotCovered
from flaggems_exp.testing import Call, assert_same_error, run

DEV = flaggems_exp.device
ROUTED = [op for op in dispatch.selection() if op.aten_overloads()]
# dtypes without a kernel here that PyTorch computes in for some ops
UNCOVERED_DTYPES = (torch.complex64, torch.complex128, torch.uint16, torch.float8_e5m2)


def ids(op):
    return op.name


@pytest.fixture(autouse=True)
def quiet():
    with warnings.catch_warnings():
        # PyTorch's own warnings (complex into real discards the imaginary part, ComplexHalf
        # is experimental) come alike with and without enable()
        warnings.simplefilter("ignore")
        yield


def variant(call, dtype):
    """``call`` with its floating tensors (and a factory's floating dtype=) made ``dtype``."""
    def convert(v):
        if isinstance(v, torch.Tensor) and v.is_floating_point():
            return v.to(dtype)
        if isinstance(v, torch.dtype) and v.is_floating_point:
            return dtype
        return v
    return Call(tuple(map(convert, call.args)), {k: convert(v) for k, v in call.kwargs.items()},
                call.label)


def fresh(call):
    """A copy of ``call`` on the device, its tensors cloned (views keep their layout)."""
    return call.on(DEV)


def assert_same(ours, theirs, ours_inputs=None, their_inputs=None):
    """PyTorch's exception, or its result bit for bit (dtype, shape, strides, values); the
    inputs end as PyTorch's did (in place writes, and nothing written by a rejected call)."""
    if isinstance(theirs, Exception):
        # the dispatcher's "Could not run" lists where each kernel was registered, ours too
        assert_same_error(*(type(e)(str(e).split("\n\n")[0]) if isinstance(e, Exception) else e
                            for e in (ours, theirs)))
    else:
        assert not isinstance(ours, Exception), f"raised {type(ours).__name__}: {ours}"
        assert (ours.dtype, ours.shape, ours.layout) == (theirs.dtype, theirs.shape, theirs.layout)
        if ours.layout == torch.strided:
            assert ours.stride() == theirs.stride()
        else:
            ours, theirs = ours.to_dense(), theirs.to_dense()
        if ours.device.type != "meta":
            assert torch.equal(testing.bits(ours), testing.bits(theirs))
    for a, b in zip(ours_inputs or (), their_inputs or ()):
        if isinstance(a, torch.Tensor) and a.device.type != "meta":
            assert torch.equal(testing.bits(a), testing.bits(b)), (
                "the inputs differ from PyTorch's afterwards")


def pytorchs(fn, call):
    """PyTorch's own answer (nothing routed) and the call's inputs afterwards."""
    assert not flaggems_exp.is_enabled()
    return run(fn, call), call.args


def _same_error(ours, theirs):
    return (isinstance(ours, Exception) and type(ours) is type(theirs)
            and testing.normalize_message(ours) == testing.normalize_message(theirs))


# ---- every routed op, its sample calls in dtypes without a kernel ----------------------------
@pytest.mark.parametrize("dtype", UNCOVERED_DTYPES, ids=str)
@pytest.mark.parametrize("op", ROUTED, ids=ids)
def test_uncovered_dtypes_are_pytorchs(op, dtype):
    """Each sample call of each routed op, with its floating inputs in ``dtype``: under enable()
    PyTorch's result or exception. A call the op's kernels do not cover (a direct call raises
    NotCovered) is handed over and counted; one they cover (zero_ of complex: zero bits, copy_'s
    conversions through ATen's copy) stays ours, uncounted."""
    fn = getattr(torch.ops.aten, op.name)
    gen = torch.Generator().manual_seed(0)
    calls = [variant(c, dtype) for c in testing.sample_calls(op, torch.float32, generator=gen)]
    # PyTorch's answers first (nothing routed), then ours, on copies of the same inputs
    theirs = [pytorchs(fn, fresh(call)) for call in calls]
    direct = [run(op, fresh(call)) for call in calls]
    with flaggems_exp.use_gems(include=[op.name]):
        ours = []
        for call in calls:
            before = DELEGATED[op.name]
            routed = fresh(call)
            ours.append((run(fn, routed), routed.args, DELEGATED[op.name] - before))
    for call, (expected, their_inputs), mine, (result, our_inputs, handed) in zip(
            calls, theirs, direct, ours):
        if isinstance(expected, Exception) and not _same_error(result, expected):
            # where the project follows PyTorch's CUDA kernel, the op's reference stands for it
            expected = testing.reference(op, call)[0]
        assert_same(result, expected, our_inputs, their_inputs)
        if isinstance(mine, NotCovered):  # PyTorch's kernel may call another overload of it
            assert handed >= 1, f"{call.label}: not counted in DELEGATED"
        elif not isinstance(expected, Exception):
            assert handed == 0, f"{call.label}: our kernel covers it, yet it was handed over"


def test_the_generated_list_covers_every_routed_op_with_a_valid_complex_call():
    """The complex variants PyTorch accepts reach most routed ops: the list above is not
    vacuous (every op with such a call is compared, results and DELEGATED alike)."""
    valid = set()
    for op in ROUTED:
        gen = torch.Generator().manual_seed(0)
        for call in testing.sample_calls(op, torch.float32, generator=gen):
            if not isinstance(run(getattr(torch.ops.aten, op.name),
                                  variant(call, torch.complex64)), Exception):
                valid.add(op.name)
    assert {"sigmoid", "mul", "mul_", "abs", "eq", "exp", "take", "tril", "trace",
            "replication_pad2d", "pixel_shuffle", "new_ones", "soft_margin_loss"} <= valid
    assert len(valid) >= 70


# ---- the torch API on complex tensors, whole programs under enable() -------------------------
def _complex_programs():
    g = torch.Generator().manual_seed(1)

    def c(*shape):
        real, imag = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
        return torch.complex(real, imag).to(DEV)

    z, w = c(4, 6), c(4, 6)
    x = torch.randn(2, 4, 6, 8, generator=g).to(DEV)
    freqs = torch.polar(torch.ones(6, 4), torch.randn(6, 4, generator=g)).to(DEV)

    def rotary(x):  # rotary embeddings: complex multiplication of pairs of features
        pairs = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
        return torch.view_as_real(pairs * freqs).flatten(3).type_as(x)

    return {
        "sigmoid": lambda: torch.sigmoid(z), "z * w": lambda: z * w, "z * 2": lambda: z * 2,
        "2.5 * z": lambda: 2.5 * z, "z * 1j (real x)": lambda: x * 1j, "abs": lambda: z.abs(),
        "exp": lambda: torch.exp(z), "where": lambda: torch.where(z.real > 0, z, w * 2),
        "eq": lambda: z == w, "ne number": lambda: z != 1j, "mul_": lambda: z.clone().mul_(w),
        "z + w * 2": lambda: z + w * 2,
        "multiply (composite)": lambda: torch.multiply(z, w), "square": lambda: torch.square(z),
        "neg": lambda: -z, "sgn": lambda: z.sgn(), "rotary": lambda: rotary(x),
        "mul out=": lambda: torch.mul(z, w, out=torch.empty_like(z)),
        "clamp (PyTorch rejects)": lambda: torch.clamp(z, 0, 1),
        "lt (PyTorch rejects)": lambda: z < w,
        "abs_ (PyTorch rejects)": lambda: z.clone().abs_(),
        "complex into real out": lambda: torch.mul(z, w, out=torch.empty(4, 6, device=DEV)),
        "hinge_embedding_loss (PyTorch rejects)":
            lambda: torch.nn.functional.hinge_embedding_loss(z, w),
    }


@pytest.mark.parametrize("name", list(_complex_programs()))
def test_complex_through_the_torch_api(name):
    program = _complex_programs()[name]
    theirs = run(lambda: program(), Call(()))
    delegated = sum(DELEGATED.values())
    with flaggems_exp.use_gems():
        ours = run(lambda: program(), Call(()))
    assert_same(ours, theirs)
    if not isinstance(theirs, Exception):  # where PyTorch rejects complex, ours may say so
        assert sum(DELEGATED.values()) > delegated


def test_complex_gradients_are_pytorchs():
    """Autograd through handed-over calls: PyTorch's formulas, whose own ops are routed too."""
    g = torch.Generator().manual_seed(3)
    z, w = (torch.randn(3, 4, dtype=torch.complex64, generator=g).to(DEV).requires_grad_()
            for _ in range(2))

    def gradients():
        loss = (z * w).abs().sum() + torch.sigmoid(z * 2).real.sum() + torch.square(w).imag.sum()
        return torch.autograd.grad(loss, (z, w))

    theirs = gradients()
    with flaggems_exp.use_gems():
        ours = gradients()
    for a, b in zip(ours, theirs):
        assert_same(a, b)


# ---- sparse, CSR, meta, quantized, nested ----------------------------------------------------
def _layout_programs():
    g = torch.Generator().manual_seed(2)
    dense = torch.randn(4, 5, generator=g).masked_fill(torch.rand(4, 5, generator=g) < 0.5, 0)
    coo, csr = dense.to_sparse().to(DEV), dense.to_sparse_csr().to(DEV)
    other = torch.randn(5, 3, generator=g).to(DEV)
    meta = torch.empty(3, 4, device="meta")
    q = torch.quantize_per_tensor(torch.randn(6, generator=g), 0.1, 3, torch.quint8)
    nested = torch.nested.nested_tensor([torch.randn(2, generator=g), torch.randn(3, generator=g)])
    return {
        "coo * 2": lambda: coo * 2, "2 * coo": lambda: 2 * coo, "coo * 2.5": lambda: coo * 2.5,
        "coo * coo": lambda: coo * coo, "coo + coo": lambda: coo + coo,
        "coo * dense": lambda: coo * dense.to(DEV), "coo.mul_(2)": lambda: coo.clone().mul_(2),
        "multiply (composite)": lambda: torch.multiply(coo, 2),
        "negative (composite)": lambda: torch.negative(coo),
        "square (composite)": lambda: torch.square(coo), "abs": lambda: coo.abs(),
        "neg": lambda: -coo, "greater (composite)": lambda: torch.greater(coo, 0),
        "sparse.mm": lambda: torch.sparse.mm(coo, other),
        "sparse.addmm": lambda: torch.sparse.addmm(torch.ones(4, 3, device=DEV), coo, other),
        "sparse.sum": lambda: torch.sparse.sum(coo, 0), "to_dense": lambda: coo.to_dense(),
        "coalesce": lambda: (coo + coo).coalesce(),
        "sigmoid (PyTorch rejects)": lambda: coo.sigmoid(),
        "csr * 2": lambda: csr * 2, "csr.abs": lambda: csr.abs(), "csr.neg": lambda: -csr,
        "csr.to_dense": lambda: csr.to_dense(),
        "csr.sigmoid (PyTorch rejects)": lambda: csr.sigmoid(),
        "csr @ dense": lambda: csr @ other,
        "meta sigmoid": lambda: meta.sigmoid(), "meta * 2": lambda: meta * 2,
        "meta square": lambda: torch.square(meta), "meta tril": lambda: meta.tril(),
        "meta new_ones": lambda: torch.randn(3).to(DEV).new_ones(2, device="meta"),
        "quantized relu": lambda: q.relu(), "quantized * 2": lambda: q * 2,
        "quantized dequantize * 2": lambda: q.dequantize() * 2,
        "nested sigmoid (PyTorch rejects)": lambda: nested.sigmoid(),
        "nested * 2": lambda: nested * 2,
    }


@pytest.mark.parametrize("name", list(_layout_programs()))
def test_other_layouts_and_devices_are_pytorchs(name):
    """Sparse kernels call dense ops on their values (covered: ours, a number included, as in
    ``mul(2, values)``); our autograd-key kernels of composite ops receive the sparse tensors
    themselves (handed over); meta, quantized and nested tensors dispatch past our keys. Each
    ends as PyTorch's own."""
    program = _layout_programs()[name]
    theirs = run(lambda: program(), Call(()))
    with flaggems_exp.use_gems():
        ours = run(lambda: program(), Call(()))
    if isinstance(theirs, torch.Tensor) and theirs.is_nested:
        assert all(torch.equal(a, b) for a, b in zip(ours.unbind(), theirs.unbind()))
    elif isinstance(theirs, torch.Tensor) and theirs.is_quantized:
        assert torch.equal(ours.int_repr(), theirs.int_repr())
        assert (ours.q_scale(), ours.q_zero_point()) == (theirs.q_scale(), theirs.q_zero_point())
    else:
        assert_same(ours, theirs)


def test_sparse_composite_ops_are_handed_over():
    """A composite op's autograd-key kernel receives a sparse tensor itself (AutogradCPU and
    AutogradCUDA serve sparse tensors too): PyTorch's decomposition takes it, counted."""
    coo = torch.randn(3, 3).to_sparse().to(DEV)
    before = DELEGATED["neg"]
    with flaggems_exp.use_gems(include=["neg"]):
        ours = torch.negative(coo)
    assert_same(ours, torch.negative(coo))
    assert DELEGATED["neg"] == before + 1


# ---- a number where the schema has a tensor (PyTorch's wrapped number) ----------------------
@pytest.mark.parametrize("first, second", [
    (2, torch.float32), (2.5, torch.int32), (True, torch.float16), (-3, torch.uint8),
    (2.5, torch.bfloat16)], ids=str)
def test_mul_takes_a_number_for_either_operand(first, second):
    """PyTorch binds a Python number to mul's tensor operands (``torch.mul(2, x)``), as its
    wrapped number; a sparse mul calls ``mul(2, values)`` so, and the dispatcher hands the
    number over as a number. Ours computes it, called directly or routed."""
    x = testing.random_tensor((3, 5), second).to(DEV)
    for args in [(first, x), (x, first)]:
        theirs = torch.ops.aten.mul.Tensor(*args)
        testing.assert_close(ops.mul(*args), theirs, exact=True)
        out = torch.empty(3, 5, dtype=theirs.dtype, device=DEV)
        assert ops.mul(*args, out=out) is out
        testing.assert_close(out, theirs, exact=True)
    launched = LAUNCHES["mul"]
    with flaggems_exp.use_gems(include=["mul"]):
        ours = torch.mul(first, x)
    testing.assert_close(ours, torch.mul(first, x), exact=True)
    assert LAUNCHES["mul"] == launched + 1


def test_mul_of_numbers_alone_is_pytorchs():
    """``torch.mul(2, 3)``: PyTorch's CPU tensor. No tensor says where our kernels would run:
    a direct call raises NotCovered; routed on the CPU, the hand-over gives PyTorch's result."""
    with pytest.raises(NotCovered, match="flaggems_exp.mul: no tensor operand"):
        ops.mul(2, 3)
    with pytest.raises(TypeError, match=r"mul_\(\): argument 'self' \(position 1\) must be Tensor"):
        ops.mul_(2, torch.ones(3, device=DEV))
    with flaggems_exp.use_gems(include=["mul"]):
        ours = [torch.mul(2, 3), torch.mul(2.5, 3), torch.mul(True, 1j)]
    for a, b in zip(ours, [torch.mul(2, 3), torch.mul(2.5, 3), torch.mul(True, 1j)]):
        assert_same(a, b)


# ---- direct calls ask for our kernel: they raise ---------------------------------------------
def _direct_calls():
    z = torch.randn(3, 4, dtype=torch.complex64, device=DEV)
    coo = torch.randn(3, 4).to_sparse().to(DEV)
    return {
        "sigmoid complex": (lambda: ops.sigmoid(z), "complex dtypes are not supported"),
        "mul complex": (lambda: ops.mul(z, 2), "complex dtypes are not supported"),
        "mul_ complex": (lambda: ops.mul_(z, z), "complex dtypes are not supported"),
        "soft_margin_loss complex": (lambda: ops.soft_margin_loss(z, torch.ones(3, 4, device=DEV)),
                                     "complex dtypes are not supported"),
        "sigmoid sparse": (lambda: ops.sigmoid(coo), "sparse_coo tensors are not supported"),
        "mul_ sparse": (lambda: ops.mul_(coo, 2), "sparse_coo tensors are not supported"),
        "trace csr": (lambda: ops.trace(coo.to_sparse_csr()),
                      "sparse_csr tensors are not supported"),
        "sigmoid meta": (lambda: ops.sigmoid(torch.empty(3, device="meta")), "not on meta ones"),
        "mul uint16": (lambda: ops.mul(torch.ones(3, dtype=torch.uint16, device=DEV), 2),
                       "dtype torch.uint16 is not supported"),
        "tril float8": (lambda: ops.tril(torch.ones(3, 3, device=DEV).to(torch.float8_e5m2)),
                        "dtype torch.float8_e5m2 is not supported"),
        "alias_copy quantized": (lambda: ops.alias_copy(torch.quantize_per_tensor(
            torch.ones(3), 0.1, 0, torch.quint8)), "quantized tensors are not supported"),
        "sigmoid negative view": (lambda: ops.sigmoid(torch.ones(3, device=DEV)._neg_view()),
                                  "negative-bit tensors are not supported"),
        "new_ones meta": (lambda: ops.new_ones(torch.ones(3, device=DEV), [2], device="meta"),
                          "not on meta ones"),
    }


@pytest.mark.parametrize("name", list(_direct_calls()))
def test_direct_calls_still_raise(name):
    """A direct call asks for our kernel: what it does not cover raises NotCovered (a
    NotImplementedError) with a clear message, before anything is written, whether or not
    enable() routes the op; nothing is handed over."""
    call, message = _direct_calls()[name]
    delegated = dict(DELEGATED)
    for routing in (contextlib.nullcontext(), flaggems_exp.use_gems()):
        with routing, pytest.raises(NotCovered, match=message):
            call()
    assert dict(DELEGATED) == delegated


def test_a_rejected_direct_call_writes_nothing():
    z = torch.randn(4, dtype=torch.complex64, device=DEV)
    x = torch.randn(4, device=DEV)
    out = torch.full((4,), 7 + 7j, device=DEV)
    before = (z.clone(), out.clone())
    for call in (lambda: ops.mul(z, x, out=out), lambda: ops.mul_(out, z), lambda: ops.exp_(out)):
        with pytest.raises(NotCovered):
            call()
    assert torch.equal(z, before[0]) and torch.equal(out, before[1])


# ---- covered inputs stay ours; the hot path is the op's own ----------------------------------
def test_covered_inputs_run_our_kernel_and_replay_their_plan():
    """Routed calls of covered inputs launch our kernel, twice for two calls of one signature
    (the second a replay of the plan the first made), and nothing is handed over."""
    op = REGISTRY["sigmoid"]
    op.plans.clear()
    x = torch.randn(64, device=DEV)
    launched, delegated = LAUNCHES["sigmoid"], DELEGATED["sigmoid"]
    with flaggems_exp.use_gems(include=["sigmoid"]):
        ours = [torch.sigmoid(x), torch.sigmoid(x)]
        # the replay: in C++ where the routes are (runtime/native_dispatch.py), else in Python
        replayed_in_cpp = native_dispatch.stats().get("sigmoid", (0, 0, 0))[1]
    for result in ours:
        testing.assert_close(result, torch.sigmoid(x))
    assert LAUNCHES["sigmoid"] == launched + 2 and DELEGATED["sigmoid"] == delegated
    assert sum(plan.replays for plan in op.plans.plans.values()) + replayed_in_cpp == 1


def test_the_dispatcher_calls_the_ops_own_call():
    """What the dispatcher calls for an op is its twin: the op's very ``serve`` (a direct call
    without its marking of the written tensor, which PyTorch makes) on the op's very state
    (plans included), so a planned call costs what a direct one does (in the interpreter,
    behind the check that hands the interpreter's own copies to ATen)."""
    checked = 0
    for qualname, kernel, key in dispatch._registrations(ROUTED):
        kernel = getattr(kernel, "__wrapped__", kernel) if flaggems_exp.device == "cpu" else kernel
        if isinstance(kernel, Op):
            op = next(o for o in ROUTED if kernel.__dict__ is o.__dict__)
            assert type(kernel).__call__ is Op.serve and isinstance(kernel, type(op))
            assert kernel.plans is op.plans and kernel.name == op.name
            checked += 1
    assert checked >= len(ROUTED)


def test_a_handed_over_signature_goes_straight_to_pytorch():
    """The first complex call of a signature runs the op's full path, which finds it not
    covered; the next calls of that signature go to PyTorch's kernel at once (each counted),
    and a direct call of it still raises."""
    op = REGISTRY["exp"]
    z = torch.randn(5, dtype=torch.complex64, device=DEV)
    full_paths = []
    call_out = type(op).call_out
    with contextlib.ExitStack() as stack:
        patch = stack.enter_context(pytest.MonkeyPatch.context())
        patch.setattr(type(op), "call_out",
                      lambda self, *a, **k: full_paths.append(1) or call_out(self, *a, **k))
        before = DELEGATED["exp"]
        x = torch.randn(5, device=DEV)
        with flaggems_exp.use_gems(include=["exp"]):
            results = [torch.exp(z) for _ in range(3)]
            real = torch.exp(x)
        assert len(full_paths) == 2  # the first complex call, then the real one
        assert DELEGATED["exp"] == before + 3
        with pytest.raises(NotCovered):
            ops.exp(z)
    for result in results:
        assert_same(result, torch.exp(z))
    testing.assert_close(real, torch.exp(x.double()).float())
