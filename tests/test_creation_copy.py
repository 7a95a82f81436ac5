"""CreationOp and CopyOp (and the in-place forms derived from them, zero_ and copy_) against
PyTorch, exactly: every op on every dtype through its sample calls, then the layouts PyTorch
gives each result, copy_'s rules (overlap, broadcasting, conversions, ATen's copy for transfers
and complex), out=, the launches each op makes, enable() routing and autograd."""
import contextlib
import warnings

import pytest
import torch

import flaggems_exp
import gather_claims
from generic_checks import launched_kernels
from flaggems_exp import LAUNCHES, REGISTRY, experimental_ops as ops, testing
from flaggems_exp.families import InplaceOp
from flaggems_exp.runtime.plans import PlanCache
from flaggems_exp.testing import ALL_DTYPES, Call, assert_close, assert_same_error, run

DEV = flaggems_exp.device
A = torch.ops.aten
OPS = [op for op in dict.fromkeys(REGISTRY.values())
       if testing.twin(op).family in ("CreationOp", "CopyOp")]
FUNCTIONAL = [op for op in OPS if not isinstance(op, InplaceOp)]


def ids(op):
    return op.name


def check(op, call):
    return testing.check_call(op, call, exact=True)  # Call.on points device= at the device


def assert_same_result(ours, theirs, storage=False):
    """The same error, or the same dtype, shape, strides, storage offset and values (and with
    ``storage`` the whole storage's values, as copy() clones all of self's storage)."""
    if isinstance(theirs, Exception):
        assert_same_error(ours, theirs)
        return
    assert_close(ours, theirs, exact=True)
    assert (ours.stride(), ours.storage_offset()) == (theirs.stride(), theirs.storage_offset())
    if storage:
        def whole(t):
            return t.as_strided((t.untyped_storage().nbytes() // t.element_size(),), (1,), 0)
        assert_close(whole(ours), whole(theirs), exact=True)


def launches(op):
    return LAUNCHES[testing.twin(op).name]


# views PyTorch lays results out differently for: (base shape, view of the base)
VIEWS = {
    "contiguous": ((4, 6), lambda b: b),
    "transposed": ((6, 4), lambda b: b.t()),
    "stepped": ((4, 12), lambda b: b[:, ::2]),
    "expanded": ((1, 6), lambda b: b.expand(4, 6)),
    "offset": ((4, 12), lambda b: b[:, 1:7]),
    "permuted": ((2, 3, 4, 5), lambda b: b.permute(0, 2, 3, 1)[:, :, ::2]),  # 4-D, not dense
    "zero-dim": ((), lambda b: b),
    "empty": ((0, 3), lambda b: b.t()),
}


def view(kind, dtype, device, seed=0):
    """The same values, on ``device``, in the same kind of view of a bigger tensor."""
    shape, make_view = VIEWS[kind]
    gen = torch.Generator().manual_seed(seed)
    return make_view(testing.random_tensor(shape, dtype, generator=gen).to(device))


def base_of(t):
    return t if t._base is None else t._base


def calls_on_views(op, kind, dtype):
    """(CPU call, device call) pairs: ``op``'s sample calls with the tensor their first call
    draws (self, or the dep token) replaced by the same values in a ``kind`` view, made on each
    side (so the whole storage is alike too)."""
    x_cpu, x = view(kind, dtype, "cpu"), view(kind, dtype, DEV)
    calls = testing.sample_calls(op, dtype, shape=tuple(x.shape),
                                 generator=torch.Generator().manual_seed(1))
    drawn = next(a for a in calls[0].args if isinstance(a, torch.Tensor))
    pairs = []
    for call in calls:
        moved = call.on(DEV)
        pairs.append((Call(tuple(x_cpu if a is drawn else a for a in call.args), call.kwargs),
                      Call(tuple(x if a is drawn else b for a, b in zip(call.args, moved.args)),
                           moved.kwargs)))
    return pairs


# ---- layouts: strides as PyTorch's ------------------------------------------------------
@pytest.mark.parametrize("op", [op for op in FUNCTIONAL if op.family == "CopyOp"], ids=ids)
@pytest.mark.parametrize("kind", list(VIEWS))
def test_copies_of_views(op, kind):
    """Any strided input is read through its strides; the result is laid out as PyTorch's:
    contiguous (view_copy ops), clone()'s layout (the dep token), or self's storage (copy)."""
    for dtype in (torch.float32, torch.int16):
        for theirs_call, ours_call in calls_on_views(op, kind, dtype):
            theirs, ours = run(op.ref, theirs_call), run(op, ours_call)
            assert_same_result(ours, theirs, storage=op.name == "copy")


@pytest.mark.parametrize("kind", list(VIEWS))
def test_zero_and_new_ones_layouts(kind):
    """zero keeps self's layout as clone() does (dense strides in self's order when self is
    not dense); zero_ writes through self's strides (also an expanded self: a fill may);
    new_ones is contiguous."""
    x_cpu, x = view(kind, torch.float32, "cpu"), view(kind, torch.float32, DEV)
    assert_same_result(ops.zero(x), A.zero(x_cpu))
    assert_same_result(ops.new_ones(x, [3, 2]), A.new_ones(x_cpu, [3, 2]))
    assert_same_result(ops.new_ones(x, [2], dtype=torch.int8),
                       A.new_ones(x_cpu, [2], dtype=torch.int8))
    assert ops.zero_(x) is x
    A.zero_(x_cpu)
    assert_close(base_of(x), base_of(x_cpu), exact=True)  # the view's neighbours are untouched


@pytest.mark.parametrize("size, layout", [
    ([2, 3, 4], [0, 2, 1]), ([2, 3, 4], [2, 1, 0]), ([5], [0]), ([], []), ([2, 0, 4], [0, 2, 1]),
    ([1, 3, 1, 2], [3, 0, 2, 1]), ([2, 3, 4, 5], [0, 2, 3, 1])])
def test_empty_permuted_only_allocates(size, layout):
    """Strides put the dims in physical_layout order (outermost first); nothing is launched;
    out= is resized (contiguous) as PyTorch's."""
    for dtype in (torch.float32, torch.bool, torch.complex64):
        before = sum(LAUNCHES.values())
        ours = ops.empty_permuted(size, layout, dtype=dtype, device=DEV)
        theirs = A.empty_permuted(size, layout, dtype=dtype)
        assert (ours.shape, ours.stride()) == (theirs.shape, theirs.stride())
        assert ours.dtype == theirs.dtype
        assert sum(LAUNCHES.values()) == before
    out, out_cpu = torch.empty(7, 1, device=DEV), torch.empty(7, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyTorch warns that it resizes a non-empty out
        assert ops.empty_permuted(size, layout, out=out) is out
        A.empty_permuted.out(size, layout, out=out_cpu)
    assert (out.shape, out.stride()) == (out_cpu.shape, out_cpu.stride())


# ---- eye and scalar_tensor ---------------------------------------------------------------
@pytest.mark.parametrize("n, m", [(0, 3), (3, 0), (1, 1), (7, 3), (3, 7), (6, None)])
def test_eye_sizes(n, m):
    args = (n,) if m is None else (n, m)
    for dtype in (torch.bool, torch.uint8, torch.float16, torch.float64):
        check(REGISTRY["eye"], Call(args, {"dtype": dtype, "device": "cpu"}))


SCALARS = [0, 1, -1, 127, 128, -128, -129, 255, 256, -255, -256, 2**31, 2**63 - 1, -2**63, 2**63,
           2**64, 1.5, -1.5, -0.5, -0.99, 255.9, 70000.0, 65520.0, 3.4e38, 3.5e38, 1e300,
           float("inf"), float("-inf"), float("nan"), True, False, 2 + 0j, 2 + 1j, 1e39 + 0j]


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=str)
def test_scalar_tensor_converts_as_pytorch(dtype):
    """float -> int truncates within range, uint8 wraps ints down to -255, a floating type
    rejects finite overflow (float16 and bfloat16 too: the CUDA kernel's checked fill), -> bool
    is != 0, complex needs imag 0, an int beyond 64 bits is Python's OverflowError."""
    for s in SCALARS:
        check(REGISTRY["scalar_tensor"], Call((s,), {"dtype": dtype, "device": "cpu"}))


def test_scalar_tensor_and_eye_out():
    """out= takes the out's dtype (converted and checked as for dtype=) and shape."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyTorch warns that it resizes a non-empty out
        for s, dtype, shape in [(3.75, torch.int64, (0,)), (300, torch.uint8, ()),
                                (-2.5, torch.float16, (2, 2))]:
            out_cpu, out = (torch.full(shape, 9, dtype=dtype, device=d) for d in ("cpu", DEV))
            assert_same_result(run(lambda: ops.scalar_tensor(s, out=out), Call(())),
                               run(lambda: A.scalar_tensor.out(s, out=out_cpu), Call(())))
            assert_close(out, out_cpu, exact=True)  # written, or untouched when rejected
        for args, shape, transposed in [((3,), (5, 5), False), ((2, 3), (3, 2), True),
                                        ((3, 4), (0,), False)]:
            out_cpu, out = (torch.full(shape, 7, dtype=torch.int32, device=d) for d in ("cpu", DEV))
            if transposed:
                out_cpu, out = out_cpu.t(), out.t()
            theirs = (A.eye.out if len(args) == 1 else A.eye.m_out)(*args, out=out_cpu)
            assert_same_result(ops.eye(*args, out=out), theirs)


# ---- copy_ ---------------------------------------------------------------------------------
@pytest.mark.parametrize("src_dtype", ALL_DTYPES, ids=str)
def test_copy_converts_every_dtype(src_dtype):
    """Into every dtype: float -> int truncates, -> bool is != 0, int -> float rounds; float16
    and bfloat16 go through float32 as in PyTorch (float64 -> float16 rounds twice)."""
    gen = torch.Generator().manual_seed(2)
    src = testing.random_tensor((4, 5), src_dtype, (0.0, 100.0), gen)  # in range of every dtype
    if src_dtype.is_floating_point:
        src[0, :4] = torch.tensor([0.0, -0.0, float("inf"), float("nan")], dtype=src_dtype)
    for dtype in ALL_DTYPES:
        s = src if dtype.is_floating_point or dtype == torch.bool else src[1:]  # no inf/NaN -> int
        check(REGISTRY["copy_"], Call((torch.zeros(s.shape, dtype=dtype), s)))
    twice = torch.tensor([1.0 + 2**-11 + 2**-40, 2**-25 + 2**-60, 65519.99], dtype=torch.float64)
    check(REGISTRY["copy_"], Call((torch.zeros(3, dtype=torch.float16), twice)))


def test_copy_into_a_strided_self():
    """Written through self's strides (a stepped, transposed view); its neighbours stay."""
    for kind in ("transposed", "stepped", "offset", "permuted"):
        self_cpu, self_ = view(kind, torch.float32, "cpu"), view(kind, torch.float32, DEV)
        src_cpu = testing.random_tensor(self_.shape[-1:], torch.float64)
        assert ops.copy_(self_, src_cpu.to(DEV)) is self_
        self_cpu.copy_(src_cpu)
        assert_same_result(self_, self_cpu)
        assert_close(base_of(self_), base_of(self_cpu), exact=True)


# copy_(self, src) with self and src views of one tensor, ``b`` (check_call moves each argument
# to the device separately, which would undo the aliasing): label -> (self, src)
ALIASED = {
    "self overlaps itself": lambda b: (b[:1].expand(3), b[4:7]),
    "... and would grow": lambda b: (b[:1].expand(3), b[:6].view(2, 3)),
    "shifted dense views": lambda b: (b[1:], b[:-1]),
    "self transposed": lambda b: (b[:9].view(3, 3), b[:9].view(3, 3).t()),
    "src bigger": lambda b: (b[:3], b[:6].view(2, 3)),
    "interleaved: too hard to tell, allowed": lambda b: (b[::2], b[1::2]),
    "disjoint views": lambda b: (b[:6], b[6:]),
    "one span, another dtype: a full overlap": lambda b: (b.view(torch.int32), b),
    "empty expanded self": lambda b: (b[:0].view(1, 0).expand(3, 0), b[:0]),
    "same elements, another tensor": lambda b: (b[1:], b[1:]),
    "same elements, expanded": lambda b: (b[:2].view(1, 2).expand(3, 2),) * 2,
}


@pytest.mark.parametrize("label", list(ALIASED))
def test_copy_overlap_rules(label):
    """PyTorch's order: internal overlap, partial overlap of two dense tensors, then shapes;
    the same elements are no copy at all (and launch nothing)."""
    self_cpu, src_cpu = ALIASED[label](torch.arange(12.0))
    self_, src = ALIASED[label](torch.arange(12.0, device=DEV))
    theirs = run(A.copy_, Call((self_cpu, src_cpu)))
    before = LAUNCHES["copy"]
    ours = run(ops.copy_, Call((self_, src)))
    assert_same_result(ours, theirs)
    if not isinstance(theirs, Exception):
        assert ours is self_
    assert_close(base_of(self_), base_of(self_cpu), exact=True)
    if label.startswith("same"):
        assert LAUNCHES["copy"] == before


def test_copy_of_the_same_tensor_launches_nothing():
    x = torch.randn(3, 4, device=DEV)
    before = LAUNCHES["copy"]
    assert ops.copy_(x, x) is x and A.copy(x, x).equal(x)
    assert LAUNCHES["copy"] == before


@pytest.mark.parametrize("self_shape, src_shape", [((3,), (2, 3)), ((2,), (3,)), ((0, 3), (2, 3)),
                                                   ((2, 3), (3,)), ((2, 0), (1,)), ((), (1, 1))])
def test_copy_broadcasts_src_only(self_shape, src_shape):
    for op in (REGISTRY["copy_"], REGISTRY["copy"]):
        check(op, Call((torch.zeros(self_shape), torch.randn(src_shape))))


def test_copy_of_a_number():
    """A Python number (PyTorch's binding wraps it in a tensor) fills self, converted."""
    for value, dtype in [(2.75, torch.int32), (-1, torch.uint8), (1e-40, torch.float16),
                         (True, torch.float32)]:
        ours = ops.copy_(torch.zeros(3, dtype=dtype, device=DEV), value)
        assert_close(ours, torch.zeros(3, dtype=dtype).copy_(value), exact=True)


def test_copy_delegates_transfers_and_complex_to_aten():
    """Another device or complex values: ATen's own copy_, not our kernel; and under enable()
    in the interpreter, the copies it makes while it runs one of our launches."""
    before = LAUNCHES["copy"]
    meta = torch.empty(3, 4, device="meta")
    assert ops.copy_(meta, torch.randn(3, 4, device=DEV)) is meta
    for self_dtype in (torch.float32, torch.complex64):
        src = torch.tensor([1 + 2j, -3.5 + 0j], device=DEV)
        ours = torch.zeros(2, dtype=self_dtype, device=DEV)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PyTorch warns that it discards imaginary parts
            assert ops.copy_(ours, src) is ours
            theirs = torch.zeros(2, dtype=self_dtype).copy_(src.cpu())
        assert torch.equal(ours.cpu(), theirs)
    assert LAUNCHES["copy"] == before
    if DEV == "cpu":
        from flaggems_exp.runtime import launch as launching
        x = torch.zeros(5, device=DEV)
        with flaggems_exp.use_gems(include=["copy_"]):
            launching._state.interpreting = True
            try:
                x.copy_(torch.arange(5.0, device=DEV))
            finally:
                launching._state.interpreting = False
        assert torch.equal(x.cpu(), torch.arange(5.0))
        assert LAUNCHES["copy"] == before
        with flaggems_exp.use_gems(include=["copy_"]):
            x.copy_(torch.ones(5, device=DEV))  # otherwise ours
        assert LAUNCHES["copy"] == before + 1


def test_dtypes_without_a_kernel():
    """float8, uint16/32/64 and complex: zeros and uninitialised tensors are zero bits or no
    bits, copies within one real dtype move bits, all exactly as PyTorch's; conversions the
    kernel lacks are ATen's copy_; the other ops refuse them with our NotImplementedError."""
    def bits(t):
        return t.cpu().view(torch.uint8)

    z = torch.tensor([[1 + 2j, 3 - 1j]], device=DEV)
    assert torch.equal(ops.zero(z).cpu(), A.zero(z.cpu()))
    assert ops.zero_(z.conj()) is not None and not z.cpu().any()
    for dtype in (torch.uint16, torch.uint64, torch.float8_e4m3fn):
        x_cpu = torch.arange(1, 7).view(2, 3).to(dtype)
        x = x_cpu.to(DEV, copy=True)
        for name in ("t_copy", "alias_copy", "lift_fresh_copy", "copy"):
            args = (x.t(),) if name != "copy" else (x, x.t().t())
            theirs = REGISTRY[name].ref(*[a.cpu() for a in args])
            assert torch.equal(bits(REGISTRY[name](*args)), bits(theirs))
        assert ops.zero_(x.t()).dtype == dtype and not bits(x).any()
        assert ops.copy_(x, x_cpu.to(DEV)) is x and torch.equal(bits(x), bits(x_cpu))
        assert ops.zero(x).dtype == dtype
        assert ops.empty_permuted([2, 3], [1, 0], dtype=dtype, device=DEV).stride() == (1, 2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PyTorch warns that it discards imaginary parts
            assert ops.copy_(x, torch.tensor([5 + 2j], device=DEV)) is x  # ATen's conversion
        assert torch.equal(x.cpu(), torch.full((2, 3), 5).to(dtype))
        with pytest.raises(NotImplementedError, match=f"dtype {dtype} is not supported"):
            ops.copy(x, torch.ones(3, device=DEV))
    refused = [lambda: ops.t_copy(z), lambda: ops.alias_copy(z), lambda: ops.lift_fresh_copy(z),
               lambda: ops.copy(z, z), lambda: ops.eye(2, dtype=torch.complex64, device=DEV),
               lambda: ops.new_ones(z, [2]), lambda: ops.scalar_tensor(1j, dtype=torch.complex64),
               lambda: ops._functional_sym_constrain_range_for_size(3, None, None, z),
               lambda: ops.copy_(torch.ones(2, device=DEV), 1j)]
    for call in refused:
        with pytest.raises(NotImplementedError, match="complex dtypes are not supported"):
            call()
    with pytest.raises(NotImplementedError, match="dtype torch.uint16 is not supported"):
        ops.eye(3, dtype=torch.uint16, device=DEV)


# ---- out= ------------------------------------------------------------------------------------
OUT_CALLS = [  # (name, aten out overload, args builder on a device)
    ("zero", A.zero.out, lambda d: (torch.randn(3, 4, device=d),)),
    ("new_ones", A.new_ones.out, lambda d: (torch.randn(3, device=d), [4, 3])),
    ("t_copy", A.t_copy.out, lambda d: (torch.randn(3, 4, device=d),)),
    ("alias_copy", A.alias_copy.out, lambda d: (torch.randn(4, 3, device=d),)),
    ("lift_fresh_copy", A.lift_fresh_copy.out, lambda d: (torch.randn(4, 3, device=d)[::2],)),
    ("copy", A.copy.out, lambda d: (torch.randn(4, 3, device=d), torch.randn(3, device=d))),
]


@pytest.mark.parametrize("name, overload, build", OUT_CALLS, ids=[c[0] for c in OUT_CALLS])
def test_out(name, overload, build):
    """out= is written through its strides (a transposed out stays so), resized when its shape
    differs, and must have the result's dtype when PyTorch's out= wrapper says so."""
    torch.manual_seed(0)
    args_cpu = build("cpu")
    args = tuple(a.to(DEV) if isinstance(a, torch.Tensor) else a for a in args_cpu)
    for make_out in (lambda d: torch.zeros(3, 4, device=d).t(), lambda d: torch.zeros(0, device=d),
                     lambda d: torch.zeros(2, dtype=torch.float64, device=d),
                     lambda d: torch.zeros(4, 3, dtype=torch.int32, device=d)):
        out_cpu, out = make_out("cpu"), make_out(DEV)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PyTorch warns that it resizes a non-empty out
            theirs = run(overload, Call(args_cpu, {"out": out_cpu}))
            ours = run(REGISTRY[name], Call(args, {"out": out}))
        assert_same_result(ours, theirs)
        if isinstance(theirs, Exception):
            # PyTorch resizes out before it checks out's dtype; ours checks first and leaves
            # a rejected call's out as it was
            assert_close(out, make_out("cpu"), exact=True)
        else:
            assert ours is out
            assert_close(out, out_cpu, exact=True)


def test_out_aliasing_an_input():
    """PyTorch copies into out from a temporary: out may be the input itself."""
    x_cpu = torch.randn(4, 4)
    x = x_cpu.to(DEV, copy=True)
    assert ops.t_copy(x, out=x) is x
    A.t_copy.out(x_cpu, out=x_cpu)
    assert_close(x, x_cpu, exact=True)


# ---- _functional_sym_constrain_range_for_size ------------------------------------------------
def test_constrain_range_checks_on_the_host_then_clones():
    """A rejected size launches nothing; an accepted one is one clone, in dep_token's layout."""
    token = torch.randn(4, 3, device=DEV).t()
    op = REGISTRY["_functional_sym_constrain_range_for_size"]
    before = LAUNCHES[op.name]
    for args in [(11, 2, 10), (5, None, 2), (5, 10, 4), (float("nan"), None, None), (2.5, 3, None)]:
        with pytest.raises(RuntimeError):
            op(*args, token)
    assert LAUNCHES[op.name] == before
    for args in [(5.7, 5, 5), (True, None, 3), (-2, -3, None), (2 + 0j, None, None)]:
        ours = op(*args, token)
        assert_same_result(ours, op.ref(*args, token.cpu()))
        assert ours.data_ptr() != token.data_ptr()
    assert LAUNCHES[op.name] == before + 4


# ---- enable(): routing, the interpreter's own copies, autograd ----------------------------
# PyTorch's own entry points that reach a creation or copy op only through its aten op (a
# factory, a method, ``.to()``), beyond the generic suite's call of the op itself under enable()
ROUTED = {  # op name -> a PyTorch call that must reach our kernel under enable()
    "zero": lambda x: A.zero(x),
    "zero_": lambda x: torch.zeros(3, 2, device=x.device),
    "eye": lambda x: torch.eye(3, 5, dtype=torch.int64, device=x.device),
    "scalar_tensor": lambda x: torch.scalar_tensor(2.5, dtype=torch.bfloat16, device=x.device),
    "new_ones": lambda x: x.new_ones(2, 3),
    "empty_permuted": lambda x: torch.empty_permuted((2, 3, 4), (2, 0, 1), device=x.device),
    "t_copy": lambda x: A.t_copy(x),
    "alias_copy": lambda x: A.alias_copy(x),
    "lift_fresh_copy": lambda x: A.lift_fresh_copy(x),
    "copy": lambda x: A.copy(x, x[0]),
    "copy_": lambda x: x.to(torch.float16),
    "_functional_sym_constrain_range_for_size":
        lambda x: A._functional_sym_constrain_range_for_size(3, None, 5, x),
}


@pytest.mark.parametrize("op", [op for op in OPS if op.name in ROUTED], ids=ids)
def test_enable_routes_to_our_kernel(op, monkeypatch):
    """torch's own calls reach our op (empty_permuted, which launches nothing, is spied on)."""
    calls = []
    if op.name == "empty_permuted":
        geometry = type(op).geometry
        monkeypatch.setattr(type(op), "geometry",
                            lambda self, *a: calls.append(a) or geometry(self, *a))
    x = torch.randn(4, 3, device=DEV)
    expected = ROUTED[op.name](x)
    before = launches(op)
    with flaggems_exp.use_gems():
        ours = ROUTED[op.name](x)
    assert launches(op) > before or calls
    if op.name == "empty_permuted":
        assert ours.stride() == expected.stride()
    else:
        assert_same_result(ours, expected)


def test_interpreter_copies_do_not_recurse():
    """In Triton's interpreter every launch copies its arguments back with copy_: under
    enable() on the CPU that copy_ is ours (the same elements: nothing to do). Conversions to
    dtypes without a kernel here stay ATen's."""
    x = torch.randn(64, device=DEV)
    with flaggems_exp.use_gems():
        y = torch.sigmoid(x)
        z = torch.empty(64, device=DEV).copy_(x)
        text = repr(torch.tensor([1.5, -2.0]))
        f8 = x.to(torch.float8_e5m2)
        u16 = torch.zeros(3, dtype=torch.uint16, device=DEV)
    torch.testing.assert_close(y, torch.sigmoid(x))
    assert torch.equal(z, x) and "1.5000" in text
    assert torch.equal(f8.view(torch.uint8), x.to(torch.float8_e5m2).view(torch.uint8))
    assert u16.dtype == torch.uint16 and not u16.view(torch.int16).any()


AUTOGRAD = {  # label -> (the counter of the op in the forward, the forward)
    "t_copy": ("t_copy", lambda x: A.t_copy(x)),
    "alias_copy": ("alias_copy", lambda x: A.alias_copy(x)),
    "lift_fresh_copy": ("lift_fresh_copy", lambda x: A.lift_fresh_copy(x)),
    "copy_": ("copy", lambda x: torch.zeros(4, 3, dtype=x.dtype, device=x.device).t().copy_(x * 2)),
    "copy_, cast": ("copy", lambda x: torch.zeros(3, 4, device=x.device).copy_(x)),
    "zero": ("zero", lambda x: A.zero(x) + x),
}


@pytest.mark.parametrize("label", list(AUTOGRAD))
def test_autograd_under_enable(label):
    """The gradients of PyTorch's formulas, with our kernels in the forward."""
    counter, forward = AUTOGRAD[label]

    def grads(context):
        x = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        x = x.to(DEV).requires_grad_()
        with context:
            y = forward(x)
            (y * torch.arange(y.numel(), device=DEV).view(y.shape)).sum().backward()
        return x.grad

    before = LAUNCHES[counter]
    ours = grads(flaggems_exp.use_gems())
    assert LAUNCHES[counter] > before
    torch.testing.assert_close(ours, grads(contextlib.nullcontext()), rtol=0, atol=0)


def test_factories_follow_pytorchs_default_device():
    """No device=: PyTorch's default device (the CPU), where our kernels run only when they
    run in the interpreter."""
    if DEV == "cpu":
        assert ops.eye(2).device.type == "cpu" and torch.equal(ops.eye(2), torch.eye(2))
    else:
        with pytest.raises(RuntimeError, match="kernels run on cuda"):
            ops.eye(2)
    assert ops.empty_permuted([2, 3], [1, 0]).device.type == "cpu"  # allocation only


def test_out_refused_where_aten_has_no_out_overload():
    """_functional_sym_constrain_range_for_size has no out= overload: an out= is refused with
    the TypeError of PyTorch's binding, before anything is written."""
    x, out = torch.randn(3, device=DEV), torch.zeros(3, device=DEV)
    with pytest.raises(TypeError, match="unexpected keyword argument 'out'"):
        ops._functional_sym_constrain_range_for_size(3, 2, 10, x, out=out)
    assert not out.any()
    with pytest.raises(RuntimeError, match="expected at most 4 argument"):  # aten refuses it too
        A._functional_sym_constrain_range_for_size(3, 2, 10, x.cpu(), out=out.cpu())


# ---- permuted sources: the gather skeleton's transposed tiles -----------------------------
# sources whose unit stride runs along another dim than a contiguous result's innermost:
# label -> (base shape, the view); odd sizes leave partial tiles, offsets unaligned starts
PERMUTED = {
    "transposed": ((37, 70), lambda b: b.t()),
    "transposed, offset": ((9, 70), lambda b: b[:, 3:].t()),
    "3-d permuted": ((5, 7, 9), lambda b: b.permute(2, 0, 1)),
    "channels_last": ((2, 3, 4, 5), lambda b: b.permute(0, 2, 3, 1)),
    "permuted, stepped outer dim": ((6, 5, 8), lambda b: b[::2].permute(0, 2, 1)),
    "expanded, transposed": ((1, 9, 11), lambda b: b.expand(3, 9, 11).transpose(1, 2)),
}


@pytest.mark.parametrize("label", list(PERMUTED))
@pytest.mark.parametrize("dtype", [torch.float16, torch.bool, torch.int8, torch.float64,
                                   torch.bfloat16], ids=str)
def test_copies_of_permuted_sources_take_transposed_tiles(label, dtype, monkeypatch):
    """copy_ into a contiguous self, copy() and clone() (under use_gems: its copy_) of a permuted
    source: PyTorch's values bit for bit, each through one launch of the gather skeleton whose
    tile reads along the source's unit-stride dim (the flat walk read it with a large stride)."""
    shape, make_view = PERMUTED[label]
    gen = torch.Generator().manual_seed(4)
    src_cpu = make_view(testing.random_tensor(shape, dtype, generator=gen))
    src = make_view(testing.random_tensor(shape, dtype,
                                          generator=torch.Generator().manual_seed(4)).to(DEV))
    launched = launched_kernels(monkeypatch)
    monkeypatch.setattr(REGISTRY["copy_"], "plans", PlanCache())  # a replay skips run_kernel
    monkeypatch.setattr(REGISTRY["copy"], "plans", PlanCache())
    before = LAUNCHES["copy"]
    self_ = torch.zeros(src.shape, dtype=dtype, device=DEV)
    assert ops.copy_(self_, src) is self_
    assert_same_result(self_, torch.zeros(src_cpu.shape, dtype=dtype).copy_(src_cpu))
    assert_same_result(ops.copy(torch.zeros_like(self_), src), src_cpu.contiguous())
    with flaggems_exp.use_gems():
        ours = src.contiguous()
    assert_same_result(ours, src_cpu.contiguous())
    # the third copy replays the first's plan (the same signature), which recorded its launch
    assert LAUNCHES["copy"] == before + 3
    assert [(name, options["IN_UNIT"]) for name, options in launched] == [("_gather_kernel", 1)] * 2


def test_t_copy_takes_transposed_tiles(monkeypatch):
    """t_copy of a row-major matrix reads it along its rows (a transposed tile) and writes
    PyTorch's values; of a column-major one it is a plain flat copy."""
    launched = launched_kernels(monkeypatch)
    monkeypatch.setattr(REGISTRY["t_copy"], "plans", PlanCache())
    for shape in ((70, 37), (1, 9), (130, 2)):
        x = testing.random_tensor(shape, torch.float16, generator=torch.Generator().manual_seed(6))
        assert_same_result(ops.t_copy(x.to(DEV)), A.t_copy(x))
    assert [name for name, _ in launched] == ["_gather_kernel", "_pointwise_kernel",
                                              "_gather_kernel"]
    x = testing.random_tensor((5, 8), torch.float32).t()
    assert_same_result(ops.t_copy(x.to(DEV).t().t()), A.t_copy(x))
    assert launched[-1][0] == "_pointwise_kernel"


@pytest.mark.parametrize("label", list(PERMUTED))
def test_transposed_tiles_claim_only_true_alignment(label, monkeypatch):
    """Into a contiguous self and into one with an unaligned row start (see gather_claims)."""
    launched = gather_claims.record_launches(monkeypatch)
    monkeypatch.setattr(REGISTRY["copy_"], "plans", PlanCache())  # no replay of another test's
    shape, make_view = PERMUTED[label]
    src = make_view(torch.randn(shape, device=DEV).to(torch.float16))
    for self_ in (torch.empty(src.shape, dtype=src.dtype, device=DEV),
                  torch.empty((*src.shape[:-1], src.shape[-1] + 3), dtype=src.dtype,
                              device=DEV)[..., 3:]):
        ops.copy_(self_, src)
    assert len(launched) == 2
    for launch in launched:
        gather_claims.assert_true_claims(*launch)


def test_transposed_tiles_int64_path(monkeypatch):
    """The transposed tiles' int64 variant (past 2**31 - 1 elements or offsets), forced on small
    tensors by lowering the limit: PyTorch's values from every permuted source."""
    from flaggems_exp.runtime import indexing
    monkeypatch.setattr(indexing, "INT32_LIMIT", 16)
    monkeypatch.setattr(REGISTRY["copy_"], "plans", PlanCache())  # earlier plans launch int32
    launched = launched_kernels(monkeypatch)
    for label, (shape, make_view) in PERMUTED.items():
        src = make_view(testing.random_tensor(shape, torch.float32))
        self_ = torch.zeros(src.shape, device=DEV)
        assert_same_result(ops.copy_(self_, src.to(DEV)), src.contiguous())
    assert [(name, options["INDEX_64"]) for name, options in launched] == \
        [("_gather_kernel", True)] * len(PERMUTED)
