"""What one benchmark row measures: its inputs, its eager baseline, its bytes and its check.

Inputs are the op family's own natural call (``testing.sample_calls``, first call: the default
operand form and parameters), made at a principal shape looked up per family and size below.
The eager baseline is the reference the tests use (``op.ref``) resolved once to a concrete
``OpOverload``, because calling the packet re-resolves the overload on every call, which is
host time that PyTorch users do not pay when they call ``torch.sigmoid``.
"""
import math
import zlib

import attrs
import torch

import flaggems_exp  # noqa: F401  (sets up Triton's interpreter before any kernel is defined)
from flaggems_exp import testing
from flaggems_exp.families.inplace import InplaceOp

SIZES = ("S", "M", "L")
ELEMENTS = {"S": 1 << 12, "M": 1 << 20, "L": 1 << 26}
"""Elements of the principal tensor per size: about 4K, 1M and 64M."""

_PLANAR = {"S": ((64, 64),), "M": ((1024, 1024),), "L": ((8192, 8192),)}
# N,C,D,H,W / N,C,H,W / N,C,L, highest rank first: a 1-d op rejects a 4-D input, while a 2-d
# op would accept a 3-D one as unbatched C,H,W, so the first shape an op accepts has its rank
_SPATIAL = {
    "S": ((1, 4, 16, 8, 8), (1, 4, 32, 32), (2, 16, 128)),
    "M": ((2, 8, 16, 64, 64), (4, 16, 128, 128), (8, 32, 4096)),
    "L": ((4, 16, 64, 128, 128), (16, 64, 256, 256), (32, 64, 32768)),
}
SHAPES = {
    "PointwiseOp": _PLANAR, "ComparisonOp": _PLANAR, "LossOp": _PLANAR,
    "ReductionOp": _PLANAR, "IndexOp": _PLANAR, "CreationOp": _PLANAR, "CopyOp": _PLANAR,
    "PadOp": _SPATIAL, "ResampleOp": _SPATIAL,
}
"""Family name -> size -> candidate principal shapes, tried in order (see ``find_layout``)."""
_UNKNOWN_FAMILY = {size: _PLANAR[size] + _SPATIAL[size] for size in SIZES}

DEFAULT_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
INTEGER_DTYPES = (torch.int32, torch.int64)  # for ops whose every dtype is integral

# families whose ops write their output without reading self (fill_, zero_, copy_): the
# in-place self is written, not read; a creation op reads none of its tensor arguments (a
# ``*_like`` factory only looks at their shape and dtype)
_WRITE_ONLY_SELF = frozenset({"CreationOp", "CopyOp"})
_READS_NO_INPUT = frozenset({"CreationOp"})


def family(op):
    """The family that makes ``op``'s inputs: an in-place op's functional twin's."""
    return testing.twin(op).family


def shape_candidates(op, size, table=None):
    table = SHAPES if table is None else table
    per_family = table.get(family(op)) or table.get("*") or _UNKNOWN_FAMILY
    return tuple(tuple(s) for s in per_family[size])


def op_dtypes(op, requested=None):
    """The dtypes ``op`` is benchmarked in: ``requested`` (or the defaults) that it supports;
    an op whose dtypes are all integral gets integer dtypes instead of the floating defaults."""
    supported = getattr(testing.twin(op), "dtypes", None)
    if supported is None:
        return list(requested or DEFAULT_DTYPES)
    if requested:
        return [d for d in requested if d in supported]
    if not any(d.is_floating_point for d in supported):
        return [d for d in INTEGER_DTYPES if d in supported]
    return [d for d in DEFAULT_DTYPES if d in supported]


def dtype_name(dtype):
    return str(dtype).removeprefix("torch.")


def shape_name(shape):
    return "x".join(str(n) for n in shape) if shape else "()"


def seed(*parts):
    """A fixed seed per (op, dtype, size): the same inputs in every run and every process."""
    return zlib.crc32("/".join(str(p) for p in parts).encode())


# ---- tensors in calls and results ---------------------------------------------------------
def tensors(obj):
    """Every tensor in ``obj`` (a tensor, or nested tuples, lists and dict values), in order."""
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for item in obj:
            yield from tensors(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from tensors(item)


def clone_args(args, kwargs):
    """Fresh copies of every tensor argument (for in-place calls), on the same device."""
    def copy(a):
        if isinstance(a, torch.Tensor):
            return a.clone()
        if isinstance(a, (tuple, list)):
            return type(a)(copy(x) for x in a)
        return a
    return tuple(copy(a) for a in args), {k: copy(v) for k, v in kwargs.items()}


def to_device(call, device):
    """``call``'s arguments on ``device``: fresh copies of its tensors (in nested lists too),
    and ``device`` for its device arguments (a factory's ``device="cpu"``)."""
    def move(a):
        if isinstance(a, torch.Tensor):
            return a.to(device, copy=True)
        if isinstance(a, torch.device):
            return torch.device(device)
        if isinstance(a, (tuple, list)):
            return type(a)(move(x) for x in a)
        return a
    kwargs = {k: (device if k == "device" and v is not None else move(v))
              for k, v in call.kwargs.items()}
    return tuple(move(a) for a in call.args), kwargs


def mutates_self(op):
    """Whether ``op`` writes into its first argument: a derived in-place form, or an op whose
    aten schema marks ``self`` as written (``zero_``, ``copy_``, ``tril_``)."""
    if isinstance(op, InplaceOp):
        return True
    packet = getattr(torch.ops.aten, op.name, None)
    for name in packet.overloads() if packet is not None else ():
        args = getattr(packet, name)._schema.arguments
        first = args[0] if args else None
        if first is not None and not first.kwarg_only and first.alias_info and first.alias_info.is_write:
            return True
    return False


# ---- byte counting ------------------------------------------------------------------------
def count_bytes(args, kwargs, result, *, family_name, inplace):
    """The bytes a call must move at least: every distinct tensor input read once, every
    output written once (an in-place op's self is read and written; a 0-dim output counts its
    own size). This is the roofline's numerator, not a measurement of DRAM traffic.

    Ops that read only part of an input (``take``, ``diag``, ``trace``) are over-counted by
    this rule; ``op_bytes`` lets an op (or its family) state its own count."""
    seen, moved = set(), 0
    self_tensor = args[0] if args and isinstance(args[0], torch.Tensor) else None
    for t in tensors((args, kwargs)):
        if id(t) in seen:
            continue
        seen.add(id(t))
        if family_name in _READS_NO_INPUT:
            continue
        if inplace and t is self_tensor and family_name in _WRITE_ONLY_SELF:
            continue
        moved += t.numel() * t.element_size()
    written = set()
    for t in tensors(result):
        if id(t) not in written:
            written.add(id(t))
            moved += t.numel() * t.element_size()
    return moved


def op_bytes(op, args, kwargs, result):
    """``count_bytes`` for ``op``, unless its functional twin's
    ``bench_bytes(args, kwargs, result)`` (for ops that read part of an input) gives a count."""
    own = getattr(testing.twin(op), "bench_bytes", None)
    counted = own(args, kwargs, result) if own is not None else None
    if counted is not None:
        return counted
    return count_bytes(args, kwargs, result, family_name=family(op), inplace=mutates_self(op))


# ---- the eager baseline -------------------------------------------------------------------
@attrs.frozen
class Baseline:
    """PyTorch's side of a row: ``fn`` is a concrete ``OpOverload`` or, where the tests use a
    Python reference function, that function; ``name`` says which."""

    fn: object
    name: str

    @property
    def is_overload(self):
        return isinstance(self.fn, torch._ops.OpOverload)


def _reference_packet(op):
    """The aten packet PyTorch users call for ``op``: for a derived in-place form, aten's own
    ``op_`` (its reference is its functional twin's)."""
    if isinstance(op, InplaceOp):
        return getattr(torch.ops.aten, op.name, None)
    ref = getattr(op.ref, "__wrapped__", op.ref)  # a reference adjusted to PyTorch's CUDA kernel
    return ref if isinstance(ref, torch._ops.OpOverloadPacket) else None


def _same(a, b):
    """Bit-equal results (NaN equal to NaN): what the packet and its overload must give."""
    ta, tb = list(tensors(a)), list(tensors(b))
    if len(ta) != len(tb) or (not ta and a != b):
        return False
    try:
        for x, y in zip(ta, tb):
            torch.testing.assert_close(x, y, rtol=0, atol=0, equal_nan=True)
    except AssertionError:
        return False
    return True


def resolve_baseline(op, args, kwargs):
    """``op``'s eager reference, resolved once for calls shaped like ``args``/``kwargs``.

    Tries each overload of the aten packet (out= overloads aside) on fresh copies of the
    inputs and keeps the first one that accepts them and gives the packet's own result.
    Raises the packet's exception where PyTorch rejects the call."""
    packet = _reference_packet(op)
    if packet is None:
        ref = op.ref
        return Baseline(ref, f"python:{getattr(ref, '__module__', '?')}.{getattr(ref, '__name__', ref)}")
    a, k = clone_args(args, kwargs)
    expected = packet(*a, **k)
    for name in packet.overloads():
        overload = getattr(packet, name)
        if any(a.kwarg_only and a.name == "out" for a in overload._schema.arguments):
            continue
        a, k = clone_args(args, kwargs)
        try:
            result = overload(*a, **k)
        except Exception:  # noqa: BLE001 - this overload does not take these arguments
            continue
        if _same(result, expected):
            return Baseline(overload, str(overload))
    raise RuntimeError(f"no overload of {packet} reproduces the packet's result")


# ---- inputs -------------------------------------------------------------------------------
@attrs.frozen
class Case:
    """One (op, dtype, size): the family's natural first call at ``shape``."""

    op: object
    dtype: torch.dtype
    size: str
    shape: tuple
    call: testing.Call
    note: str = ""  # where the inputs are not what the size asks for


def make_case(op, dtype, size, layout=0, table=None, device="cpu"):
    """The case of ``op`` at ``size``, with the ``layout``-th candidate shape of its family.

    The inputs are drawn on ``device``, the benchmark's own: drawing 64M values on the CPU
    takes seconds per tensor, on the GPU milliseconds. A family whose builder cannot work
    there (it is written for CPU tensors) gets its inputs drawn on the CPU instead."""
    shape = shape_candidates(op, size, table)[layout]
    try:
        calls = _draw_calls(op, dtype, size, shape, device)
    except Exception:  # noqa: BLE001 - the CPU draw below raises the builder's own error
        if torch.device(device).type == "cpu":
            raise
        calls = _draw_calls(op, dtype, size, shape, "cpu")
    if not calls:
        raise RuntimeError(f"testing.sample_calls gave {op.name} no call for shape {shape}")
    call = calls[0]
    return Case(op, dtype, size, shape, call, _size_note(call, shape))


def runner_inputs(op, dtype, size, device):
    """The runner's case of ``op`` at ``size`` (its first layout), ready on ``device``:
    (eager baseline, args, kwargs)."""
    layout = find_layout(op, dtype, device)
    case = make_case(op, dtype, size, layout.index, None, device)
    return (layout.baseline, *to_device(case.call, device))


def _draw_calls(op, dtype, size, shape, device):
    """The family's sample calls at ``shape``, every factory inside them defaulting to
    ``device`` and drawing from a generator there, seeded per (op, dtype, size)."""
    gen = torch.Generator(device=device).manual_seed(seed(op.name, dtype_name(dtype), size))
    with torch.device(device):
        return testing.sample_calls(op, dtype, shape=shape, generator=gen)


def _size_note(call, shape):
    """A note where the family read ``shape`` differently: its largest input is not within a
    factor 2 of the shape's element count (ops with no tensor input are not checked)."""
    inputs = [t.numel() for t in tensors((call.args, call.kwargs))]
    wanted = math.prod(shape)
    if inputs and not wanted / 2 <= max(inputs) <= wanted * 2:
        return f"note: largest input has {max(inputs)} elements for shape {shape_name(shape)}"
    return ""


@attrs.frozen
class Layout:
    """Which candidate shape an op takes (found once, at S) and its resolved baseline."""

    index: int
    baseline: Baseline


def find_layout(op, dtype, device, table=None):
    """The first candidate shape (at S) whose first call the family makes and PyTorch accepts.

    Families differ in how they read ``shape`` (a 1-d pad needs N,C,L; a 2-d one N,C,H,W);
    trying the candidates in order finds each op's own. Raises when none works, with every
    candidate's reason."""
    reasons = []
    for index, shape in enumerate(shape_candidates(op, "S", table)):
        try:
            case = make_case(op, dtype, "S", index, table, device)
            args, kwargs = to_device(case.call, device)
            return Layout(index, resolve_baseline(op, args, kwargs))
        except Exception as exc:  # noqa: BLE001 - try the next shape, report them all
            reasons.append(f"{shape_name(shape)}: {type(exc).__name__}: {one_line(exc)}")
    raise RuntimeError("no input shape works: " + " | ".join(reasons))


# ---- correctness --------------------------------------------------------------------------
def one_line(exc, limit=300):
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def error_line(exc):
    """'Type: message' of ``exc`` on one line, as the benchmarks record a failure."""
    return f"{type(exc).__name__}: {one_line(exc)}"


def values_comparable(op, baseline):
    """False for outputs whose values are not defined: uninitialised memory (``empty*``
    factories) and random draws; those are compared in shape and dtype only."""
    if "empty" in op.name:
        return False
    return not (baseline.is_overload and torch.Tag.nondeterministic_seeded in baseline.fn.tags)


def compare(actual, expected, values=True):
    """(True, "") where ``actual`` matches eager's ``expected`` within the tests' tolerance of
    the result dtype (exact for integers and bool; NaN matches NaN); else (False, why).
    Without ``values``, only shapes and dtypes must match."""
    ta, te = list(tensors(actual)), list(tensors(expected))
    if len(ta) != len(te):
        return False, f"{len(ta)} tensors returned, eager returned {len(te)}"
    try:
        for a, e in zip(ta, te):
            if not values:
                assert (a.shape, a.dtype) == (e.shape, e.dtype), \
                    f"{a.shape} {a.dtype} != {e.shape} {e.dtype}"
                continue
            rtol, atol = testing.TOLERANCE.get(e.dtype, (0, 0))
            torch.testing.assert_close(a, e, rtol=rtol, atol=atol, equal_nan=True)
    except AssertionError as exc:
        return False, "mismatch: " + one_line(exc)
    return True, ""
