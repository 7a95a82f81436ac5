"""Inputs, references and tolerances shared by the test suite, the self-check and the benchmarks.

Every property is checked against PyTorch itself: the reference of an op runs on the CPU, once in
the inputs' own dtypes (result dtype, shape and errors) and once upcast to float64 (values).
"""
import itertools
import re

import attrs
import torch

from .families import REQUIRED, InplaceOp, LossOp, Op, PadOp, PointwiseOp
from .families.loss import MEAN, SUM
from .families.resample import NearestOp, ShuffleOp
from .runtime.device import DEVICE

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)
ALL_DTYPES = (torch.bool, *INT_DTYPES, *FLOAT_DTYPES)
SPECIAL_VALUES = (0.0, -0.0, float("inf"), float("-inf"), float("nan"), 1.0, -1.0, 0.5, -0.5,
                  3.0, -3.0, 1e-30, -2.5, 100.0)

# (rtol, atol) of a result against the float64 reference rounded to the result dtype
TOLERANCE = {
    torch.float16: (1e-3, 1e-3),
    torch.bfloat16: (1.6e-2, 1e-2),
    torch.float32: (1.3e-6, 1e-5),
    torch.float64: (1e-9, 1e-12),
}


@attrs.frozen
class Call:
    """One call of an op: positional args (CPU tensors and numbers) and keyword args."""

    args: tuple
    kwargs: dict = attrs.field(factory=dict)
    label: str = ""

    def on(self, device):
        """The same call with its tensors copied to ``device``, each keeping its exact layout
        (strides, steps, expanded dims), and those sharing memory sharing it there too (the
        same tensor twice, overlapping views), so the op under test sees the same views."""
        copies = copy_views([v for v in (*self.args, *self.kwargs.values())
                             if isinstance(v, torch.Tensor)], device)

        def moved(value):
            return copies[id(value)] if isinstance(value, torch.Tensor) else value

        kwargs = {k: moved(v) for k, v in self.kwargs.items()}
        if "device" in kwargs:  # a factory's own device argument follows the call
            kwargs["device"] = device
        return Call(tuple(moved(a) for a in self.args), kwargs, self.label)


def copy_view(t, device):
    """A copy of ``t`` on ``device`` with the same shape and strides: the memory span the view
    covers is copied, then viewed the same way (``Tensor.to`` would make strided views dense)."""
    if t.numel() == 0:
        return t.to(device, copy=True)
    span = 1 + sum((n - 1) * s for n, s in zip(t.shape, t.stride()))
    memory = t.as_strided((span,), (1,), t.storage_offset()).to(device, copy=True)
    return memory.as_strided(t.shape, t.stride())


def _byte_span(t):
    start = t.storage_offset() * t.element_size()
    return start, start + (1 + sum((n - 1) * s for n, s in zip(t.shape, t.stride()))) * (
        t.element_size())


def copy_views(tensors, device):
    """{id(t): a copy of t on ``device``} for ``tensors``, each with its shape and strides;
    tensors of one storage share memory in their copies as they do now (the bytes they span
    together copied once, each a view at its own offset), the same tensor once."""
    copies, shared = {}, {}
    for t in tensors:
        if id(t) in copies:
            continue
        copies[id(t)] = None
        if t.numel() and not t.requires_grad:
            shared.setdefault(t.untyped_storage().data_ptr(), []).append(t)
        else:
            copies[id(t)] = copy_view(t, device)
    for views in shared.values():
        spans = [_byte_span(t) for t in views]
        lo, hi = min(s for s, _ in spans), max(e for _, e in spans)
        if any((start - lo) % t.element_size() for t, (start, _) in zip(views, spans)):
            copies.update((id(t), copy_view(t, device)) for t in views)  # not one element grid
            continue
        memory = torch.empty(0, dtype=torch.uint8).set_(
            views[0].untyped_storage(), lo, (hi - lo,), (1,)).to(device, copy=True)
        for t, (start, _) in zip(views, spans):
            copies[id(t)] = torch.empty(0, dtype=t.dtype, device=device).set_(
                memory.untyped_storage(), (start - lo) // t.element_size(), t.shape, t.stride())
    return copies


def random_tensor(shape, dtype, domain=(-4.0, 4.0), generator=None):
    """Random values of ``dtype``: floats uniform in ``domain``, small integers, or bools."""
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=generator).bool()
    if not dtype.is_floating_point:
        lo = 0 if dtype == torch.uint8 else -5
        return torch.randint(lo, 10, shape, generator=generator).to(dtype)
    lo, hi = domain
    return (torch.rand(shape, generator=generator, dtype=torch.float64) * (hi - lo) + lo).to(dtype)


def twin(op):
    return op.twin if isinstance(op, InplaceOp) else op


def operand_forms(op):
    """Which operands are tensors (True) or Python numbers (False), one tuple per aten overload."""
    nin = twin(op).nin
    forms = []
    for name, overload in op.aten_overloads():
        schema = getattr(getattr(torch.ops.aten, name), overload)._schema
        if any(a.kwarg_only and a.name == "out" for a in schema.arguments):
            continue
        args = [a for a in schema.arguments if not a.kwarg_only][:nin]
        form = tuple(str(a.type).startswith("Tensor") for a in args)
        if form not in forms:
            forms.append(form)
    return forms or [(True,) * nin]  # an op without aten schema: tensors only


def param_sets(op):
    return [{}, *op.param_samples] if not _required_params(op) else list(op.param_samples)


def grid_calls(op, values):
    """Calls of a pointwise ``op`` (or its in-place form) over every combination of ``values``
    for its operands, one per parameter set (``param_sets``)."""
    grids = torch.meshgrid(*[values] * twin(op).nin, indexing="ij")
    return [Call(tuple(g.reshape(-1) for g in grids), params) for params in param_sets(op)]


def _required_params(op):
    return [k for k, v in twin(op).scalars.items() if v is REQUIRED]


def operand_shapes(op, shape):
    """Operand shapes of a natural call of a pointwise ``op`` whose result has ``shape``: each
    operand takes the dims of ``shape`` its ``sample_operand_dims`` slice picks (all of them
    by default)."""
    picks = twin(op).sample_operand_dims or (slice(None),) * twin(op).nin
    return [tuple(shape)[pick] for pick in picks]


def pointwise_calls(op, dtype, shape=(5, 8), generator=None):
    """Calls of a pointwise op (functional or in place) with every operand ``dtype``."""
    calls = []
    shapes = operand_shapes(op, shape)
    for form, params in itertools.product(operand_forms(op), param_sets(op)):
        # a Python number operand is tried as an int, a float and a bool
        numbers = (2, -1.5, True) if not all(form) else (None,)
        for number in numbers:
            args = tuple(random_tensor(s, dtype, op.domain, generator) if is_tensor else number
                         for s, is_tensor in zip(shapes, form))
            label = "-".join("T" if f else repr(number) for f in form)
            calls.append(Call(args, dict(params), label + str(params or "")))
    return calls


_PAD_SPATIAL = {1: (7,), 2: (5, 6), 3: (3, 4, 5)}  # odd, non-square sizes by padded dims


def pad_calls(op, dtype, shape=None, generator=None):
    """Batched and unbatched inputs; positive, negative (cropping), zero and large pads."""
    n = twin(op).dims
    shape = tuple(shape or (2, 3, *_PAD_SPATIAL[n]))
    x = random_tensor(shape, dtype, generator=generator)
    spatial = shape[-n:]
    # beyond the input for replication; the most reflection allows
    large = [s - 1 if twin(op).reflective else s + 4 + i for s in reversed(spatial) for i in (0, 1)]
    pads = {"pad": [1, 2, 2, 1, 0, 2], "crop": [-1, 2, 0, -2, 1, 0], "zero": [0] * 6,
            "large": large}
    calls = [Call((x, p[:2 * n]), {}, label) for label, p in pads.items()]
    calls.append(Call((x[0], pads["pad"][:2 * n]), {}, "unbatched"))
    calls.append(Call((x[:0], pads["pad"][:2 * n]), {}, "empty batch"))
    return calls


def nearest_calls(op, dtype, shape=None, generator=None):
    """Both overloads; up- and downsampling by non-integer ratios; explicit scales.

    Explicit scales are never paired with an output of 1x or 2x the input: PyTorch's CPU
    kernel copies those (index j, j >> 1) whatever the scales, its CUDA kernel (which ours
    follows) applies the scales."""
    n = twin(op).spatial
    shape = tuple(shape or (2, 3, *(3, 4, 5)[3 - n:]))
    x = random_tensor(shape, dtype, generator=generator)
    up = [2 * s + 1 for s in shape[2:]]
    down = [max(1, s * 2 // 3) for s in shape[2:]]
    scales = [2.3, None, 1.7][:n]
    return [Call((x, up), {}, "up"), Call((x, down), {}, "down"),
            Call((x, up, *scales), {}, "scales"),
            Call((x, None, [2.5, 1.3, 0.6][:n]), {}, "vec scale_factors"),
            Call((x, None, [2.0] * n), {}, "vec 2x"),
            Call((x, down, None), {}, "vec output_size"),
            Call((x[:0], up), {}, "empty batch")]


def shuffle_calls(op, dtype, shape=None, generator=None):
    """The op's ``sample_cases`` (input shape, factor); at a given ``shape``, factor 2."""
    cases = twin(op).sample_cases if shape is None else [(tuple(shape), 2)]
    return [Call((random_tensor(s, dtype, generator=generator), r), {}, f"{list(s)} r={r}")
            for s, r in cases]


def tensor_factory(op, dtype, shape, generator=None):
    """``make(shape=shape, dtype=dtype, domain=None)``: a random tensor for an op's
    ``sample_args``. Floats are uniform in ``domain`` (the op's own by default); integers are
    small ones, or uniform in [lo, hi) of a ``domain`` given for them."""
    def make(size=shape, dtype=dtype, domain=None):
        if domain is not None and not dtype.is_floating_point and dtype != torch.bool:
            lo, hi = domain
            return torch.randint(lo, hi, size, generator=generator).to(dtype)
        return random_tensor(size, dtype, domain or op.domain, generator)
    return make


def declared_calls(op, dtype, shape=(5, 8), generator=None):
    """The calls an op's ``sample_args(dtype, shape, make)`` declares, ``make`` drawing its
    random tensors from ``generator``."""
    declared = twin(op)
    shape = tuple(shape)
    make = tensor_factory(declared, dtype, shape, generator)
    return [Call(tuple(args), dict(kwargs), label)
            for args, kwargs, label in declared.sample_args(dtype, shape, make)]


# (family class, the builder of its calls), most particular first: the families whose samples
# are data (operand forms, parameter sets, padded or resampled dims), then every other op's
# ``sample_args``
_SAMPLE_BUILDERS = ((PointwiseOp, pointwise_calls), (PadOp, pad_calls),
                    (NearestOp, nearest_calls), (ShuffleOp, shuffle_calls), (Op, declared_calls))


def builder_of(op):
    """The function that builds ``op``'s sample calls, as its family reads its declarations."""
    return next(b for family, b in _SAMPLE_BUILDERS if isinstance(twin(op), family))


def sample_calls(op, dtype, shape=None, generator=None):
    """Natural calls of ``op`` (functional or in place) with ``dtype`` inputs, built from what
    the op declares, as its family reads it; ``shape`` (the family's own sizes by default)
    sizes the main input."""
    return builder_of(op)(op, dtype, generator=generator, **({} if shape is None else {"shape": shape}))


def pytorch_op(op):
    """PyTorch's own op of ``op``'s name, whichever device it runs on (the op's reference where
    aten has none of that name; ``op.ref`` may stand for the CUDA kernel on the CPU)."""
    return getattr(torch.ops.aten, op.name, None) or op.ref


def run(fn, call):
    """``fn(*call.args, **call.kwargs)``: its result, or the exception it raised."""
    try:
        return fn(*call.args, **call.kwargs)
    except Exception as exc:  # noqa: BLE001 - the exception is the result under test
        return exc


def _own_dtype(op, call):
    """The dtype of PyTorch's result of an ``out=`` call made without it (None otherwise)."""
    if "out" not in call.kwargs or isinstance(op, InplaceOp):
        return None
    own = run(op.ref, Call(call.args, {k: v for k, v in call.kwargs.items() if k != "out"}))
    return own.dtype if isinstance(own, torch.Tensor) else None


def _widened(value, single):
    """An argument of the float64 reference: a floating tensor in float64; a Python float as
    a kernel computing in float32 (``single``) holds it. PyTorch converts a Scalar or a number
    operand to its compute dtype, float32 below float64, so widening the number would change
    the result where its precision matters (logit's eps=1.9e-240 is 0 in float32: -inf)."""
    if isinstance(value, torch.Tensor):
        return value.double() if value.is_floating_point() else value
    if single and type(value) is float:
        return torch.tensor(value, dtype=torch.float32).item()
    return value


def _kernel_error(op, call, error):
    """Whether PyTorch's functional ``op`` raises ``error`` on ``call`` too: an error of the
    kernel both forms share (which a reference standing for the CUDA kernel may not raise),
    rather than one of the in-place rules."""
    functional = run(getattr(torch.ops.aten, op.name), call.on("cpu"))
    return type(functional) is type(error) and str(functional) == str(error)


def reference(op, call):
    """PyTorch's answer on the CPU: (native result or exception, float64-accurate expected).

    For an in-place op the native result comes from PyTorch's own in-place op (its errors) and
    the values from the functional reference cast into self's dtype.
    """
    if isinstance(op, InplaceOp):
        native = run(getattr(torch.ops.aten, op.name), call.on("cpu"))
        functional, expected = reference(op.twin, call)
        kernel_error = isinstance(native, Exception) and _kernel_error(op.twin, call, native)
        if type(op.twin).ref is not None and (
                not isinstance(native, Exception) or isinstance(native, NotImplementedError)
                or kernel_error):
            # the twin's own reference stands for PyTorch's CUDA behaviour where the CPU kernel
            # differs (abs of a bool, signed zeros, a Scalar's conversion): in place it is the
            # functional result cast, or the functional kernel's own error
            if kernel_error and isinstance(functional, Exception):
                return functional, None
            self_tensor = call.args[0]
            if (not isinstance(functional, Exception) and functional.shape == self_tensor.shape
                    and torch.can_cast(functional.dtype, self_tensor.dtype)):
                return functional.to(self_tensor.dtype), expected.to(self_tensor.dtype)
        if isinstance(native, Exception):
            return native, None
        return native, expected.to(native.dtype)
    native = run(op.ref, call)
    if (isinstance(native, Exception) or not op.reference_in_float64
            or not native.is_floating_point()):
        return native, native
    own = _own_dtype(op, call)
    single = (own or native.dtype) != torch.float64
    wide = Call(tuple(_widened(a, single) for a in call.args),
                {k: _widened(v, single) for k, v in call.kwargs.items() if k != "out"})
    expected = run(op.ref, wide)
    if isinstance(expected, Exception):
        return native, native
    if own is not None:
        # PyTorch computes in the op's own result dtype and casts that into out=
        expected = expected.to(own)
    return native, expected.to(native.dtype)


# messages of errors PyTorch's CPU kernels raise where its CUDA kernels (and ours, compiled)
# check on the device instead: a failed device assertion ends the CUDA context, so such calls
# are not compared there
_DEVICE_ASSERTED = ("tried to access index",  # take's bad index
                    "Number of elements of source < number of ones in mask")  # masked_scatter


def asserted_on_device(error):
    """Whether ``error`` (PyTorch's, on the CPU) is, on the device in use, a device assertion."""
    return (DEVICE != "cpu" and isinstance(error, Exception)
            and any(m in str(error) for m in _DEVICE_ASSERTED))


def normalize_message(message):
    """A PyTorch message with its backend-specific kernel name ("elu_cpu") blanked out."""
    message = re.sub(r'"\w+" not implemented for', '"<kernel>" not implemented for', str(message))
    return re.sub(r"\b(CPU|CUDA)(\w+Type)\b", r"<device>\2", message)  # expand(CUDABoolType...


def bits(t):
    """A tensor's values as bytes, in its shape's order, on the CPU: equal bytes, equal bits
    (signed zeros, NaN payloads; float8, which has no ``torch.equal``)."""
    return t.detach().cpu().reshape(-1).contiguous().view(torch.uint8)


def assert_identical(ours, theirs):
    """Two results identical: the same exception, or tensors alike in dtype, shape, strides
    and device and equal bit for bit."""
    if isinstance(theirs, Exception):
        assert_same_error(ours, theirs)
        return
    assert not isinstance(ours, Exception), f"raised {type(ours).__name__}: {ours}"
    assert ((ours.dtype, ours.shape, ours.stride(), ours.device)
            == (theirs.dtype, theirs.shape, theirs.stride(), theirs.device))
    assert torch.equal(bits(ours), bits(theirs)), "results differ in their bits"


def assert_same_error(ours, theirs):
    assert isinstance(ours, Exception), f"expected {type(theirs).__name__}: {theirs}; got a result"
    assert type(ours) is type(theirs), f"{type(ours).__name__}: {ours} != {type(theirs).__name__}: {theirs}"
    assert normalize_message(ours) == normalize_message(theirs)


def assert_close(ours, expected, exact=False, signed_zeros=False):
    """``ours`` (any device) equals ``expected`` in dtype and shape, values within tolerance."""
    if isinstance(ours, Exception):
        raise AssertionError(f"raised {type(ours).__name__}: {ours}")
    ours, expected = ours.cpu(), expected.cpu()
    assert ours.dtype == expected.dtype, (ours.dtype, expected.dtype)
    assert ours.shape == expected.shape, (ours.shape, expected.shape)
    rtol, atol = (0, 0) if exact else TOLERANCE.get(expected.dtype, (0, 0))
    torch.testing.assert_close(ours, expected, rtol=rtol, atol=atol, equal_nan=True)
    if signed_zeros and expected.is_floating_point():
        zero = (expected == 0) & (ours == 0)
        assert torch.equal(torch.signbit(ours[zero]), torch.signbit(expected[zero])), "sign of zero"


def on_device(call):
    return call.on(DEVICE)


def check_call(op, call, exact=False):
    """Run ``call`` through PyTorch (CPU) and through ``op`` (on the device in use); they must
    agree: the same error (type and message), or the same values, dtype and shape.

    A rejected call must leave every input exactly as it was; an in-place op returns self.
    Returns our result (None when the call was rejected).
    """
    native, expected = reference(op, call)
    ours_call = on_device(call)
    before = [a.clone() for a in ours_call.args if isinstance(a, torch.Tensor)]
    ours = run(op, ours_call)
    if isinstance(native, Exception):
        assert_same_error(ours, native)
        after = [a for a in ours_call.args if isinstance(a, torch.Tensor)]
        assert all(torch.equal(a, b) or (a.is_floating_point() and torch.equal(a.isnan(), b.isnan()))
                   for a, b in zip(after, before)), "a rejected call changed an input"
        return None
    own = _own_dtype(op, call)
    if own is not None and own != expected.dtype and own.is_floating_point and (
            expected.is_floating_point()) and not isinstance(ours, Exception):
        # out= of another dtype holds a value of the op's own dtype: compared at its precision
        assert ours.dtype == expected.dtype and ours.shape == expected.shape
        assert_close(ours.to(own), expected.to(own), exact=exact)
    else:
        assert_close(ours, expected, exact=exact or not expected.is_floating_point())
    if isinstance(op, InplaceOp):
        assert ours is ours_call.args[0], "in-place must return self, the same object"
    return ours


def expected_launches(op, call, result):
    """How many kernel launches ``op`` makes for ``call``, which gave ``result``: none for an
    empty result, else the op's ``launches_per_call`` (a loss not reduced launches once)."""
    if not isinstance(result, torch.Tensor) or result.numel() == 0:
        return 0
    if isinstance(twin(op), LossOp):
        _, params = twin(op).operands_and_params(call.args, call.kwargs)
        if params["reduction"] not in (MEAN, SUM):
            return 1
    return twin(op).launches_per_call
