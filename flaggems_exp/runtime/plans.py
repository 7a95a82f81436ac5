"""Call plans: what a call of one signature does, decided once and replayed.

A call's signature is everything an op's full path decides on without reading a value: for each
tensor argument its dtype, shape, strides, device, whether its data pointer is 16-byte aligned
(Triton specializes kernels on that) and whether autograd must record it (it requires grad and grad
mode is on: such a call never reaches a plan, see ``families.autograd_calls``); which arguments
are the very same tensor object; for each Python number its type, or its value where the op's host
code reads it (``Op.runtime_numbers``); every other argument as it is; and where the call writes
(``out=``, or self in place).

The first call of a signature runs the family's full path (bind, every check in PyTorch's order,
promotion, geometry, compilation) while a ``Recorder`` notes its launches. The plan built from that
record holds, for each launch, the compiled kernel's launcher and its arguments with the pointers
left blank, each pointer being "call tensor i plus k bytes" or "new buffer j plus k bytes". A later
call of the signature does only what depends on values: read the data pointers, check that the
written tensor overlaps no other argument (else it takes the full path, which knows PyTorch's
rules), allocate, encode the Python numbers the kernel receives, launch.

A call is not planned (it always takes the full path) when its full path did something a replay
would miss: read a value back to the host, ran an ATen kernel, resized ``out``, or read memory
neither an argument nor written by its own launches (``Recorder.cacheable``).

Building the key costs more than the rest of a planned call but the launch (a dozen attribute
reads per tensor, in Python). So each plan also gets a matcher (``signature_matcher``): a
function generated for its signature that compares a call with it directly, the tensors' dtype,
shape, strides, device and requires_grad in one C++ call (Dynamo's ``TensorGuards``, also
checking the thread's dispatch state), the rest in a few comparisons. An op tries first the
matchers of the plans that followed its last call's plan before (a model's step calls an op
through the same signatures in the same order; ``PlanCache.FOLLOWING`` of them, as one plan may
be followed by another in each place it serves), then those of the few plans it used last,
before it builds a key; a matcher accepts only calls whose key would equal the plan's. A call
found by its key whose tensors its plan's guards refuse (a tensor requiring grad below autograd,
where the key does not tell it from one that does not; another dispatch state) adds a guard for
them (``GUARDS`` at most).
"""
import functools
import struct
import threading

import torch
from torch.autograd import forward_ad as _forward_ad

from . import launch as launching
from . import native_launch
from .geometry import kernel_level, span_bytes
from .launch import LAUNCHES, current_stream, direct_launcher, run_kernel
from .triton_types import encode_scalar

PLAN_LIMIT = 256
"""Plans kept per op: a new signature beyond it evicts the oldest (each plan holds a few small
tuples and a reference to a compiled kernel, which Triton caches anyway)."""

_Tensor = torch.Tensor
_Parameter = torch.nn.Parameter
_grad_enabled = torch.is_grad_enabled
_excluded = torch._C._dispatch_tls_is_dispatch_key_excluded
_AUTOGRAD = torch._C.DispatchKey.AutogradFunctionality
_NUMBERS = frozenset((bool, int, float, complex))
_default_dtype = torch.get_default_dtype
_function_modes = torch._C._len_torch_function_stack
_DEVICE_CONTEXT = torch._GLOBAL_DEVICE_CONTEXT  # thread-local: set_default_device's context
_CPU = torch.device("cpu")


def _default_device():
    """``torch.get_default_device()``, without its cost where no default was set (no torch
    function mode active, no device context): CPU."""
    if not _function_modes() and getattr(_DEVICE_CONTEXT, "device_context", None) is None:
        return _CPU
    return torch.get_default_device()


def _defaults(kwargs):
    """What a call without tensor arguments (a factory) takes from PyTorch's defaults: the
    default dtype where its ``dtype`` is not given, the default device where its ``device`` is
    not (the dispatcher passes ``device`` to the factories it calls, the Python binding having
    filled it in)."""
    return (_default_dtype() if kwargs.get("dtype") is None else None,
            _default_device() if kwargs.get("device") is None else None)


def below_autograd():
    """Whether this call is made below autograd (by the dispatcher, under enable(), after
    autograd has recorded it)."""
    return _excluded(_AUTOGRAD)


def autograd_records():
    """Whether autograd would record a call made now: grad mode is on and the call is not made
    below autograd."""
    return _grad_enabled() and not _excluded(_AUTOGRAD)


def _float_key(value):
    # the exact value: -0.0 and 0.0 differ, and NaN (never equal to itself) still hits
    return struct.pack("<d", value)


def _frozen(value):
    """A hashable stand-in for a non-tensor argument (lists become tuples)."""
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value


def call_key(args, kwargs, out, numbers_by_value, storages=False):
    """(signature key, tensors, their data pointers) of a call, or (None, ...) for a call that is
    never planned (a tensor subclass, a sparse or other tensor without strides). ``storages``:
    each tensor's storage size and offset are in the key too (an op whose result depends on
    them: ``copy``'s clones self's whole storage)."""
    if _forward_ad._current_level >= 0:
        # a dual level is open (forward-mode AD): whether a tensor carries a tangent is not in
        # the key, so no call is planned until it closes
        return None, None, None
    tensors, pointers = [], []
    key = [len(args)]
    values = args
    if kwargs:
        key.append(tuple(kwargs))
        values = (*args, *kwargs.values())
    if out is not None:
        values = (*values, out)
        key.append(True)
    try:
        for v in values:
            kind = type(v)
            if kind is _Tensor or kind is _Parameter:
                p = v.data_ptr()
                key += (v.dtype, v.shape, v.stride(), v.get_device(), p & 15 == 0,
                        v.requires_grad and autograd_records())
                if storages:
                    key += (v.untyped_storage().nbytes(), v.storage_offset())
                tensors.append(v)
                pointers.append(p)
            elif kind in _NUMBERS:
                if not numbers_by_value:
                    key.append(kind)
                elif kind is float:
                    key.append(_float_key(v))
                elif kind is complex:
                    key.append((_float_key(v.real), _float_key(v.imag)))
                else:
                    key.append((kind, v))
            elif isinstance(v, _Tensor):
                return None, None, None  # a subclass: its own dispatch decides
            else:
                key.append(_frozen(v))
    except RuntimeError:  # stride() of a sparse (or other strideless) tensor
        return None, None, None
    if not tensors:  # a factory: its result follows PyTorch's defaults where no argument says
        key.append(_defaults(kwargs))
        return tuple(key), tensors, pointers
    if _follows_default_dtype(tensors):
        key.append(_default_dtype())
    if len(tensors) > 1 and len(set(map(id, tensors))) < len(tensors):
        # which arguments are the same object (``x * x``): a plan maps each pointer to one
        key.append(_first_positions(tensors))
    return tuple(key), tensors, pointers


def _follows_default_dtype(tensors):
    """Whether a call of these tensors may take PyTorch's default dtype: an integer or bool
    tensor's result is of it where the op computes in floating point (``sigmoid``) or a
    Python float joins it (``x * 2.5``); floating tensors keep their own."""
    return not all(t.dtype.is_floating_point for t in tensors)


def _guard_maker():
    """``make(tensors)``: Dynamo's C++ check that tensors have the given ones' Python type,
    dtype, device, requires_grad flag, dispatch keys (under the thread's dispatch state then and
    now), shape and strides; None where this torch's ``TensorGuards`` does not behave as used
    here (it is internal to torch): matchers are then not made, and every call builds its key."""
    try:
        from torch._C._dynamo.guards import TensorGuards

        def make(tensors):
            return TensorGuards(*tensors, dynamic_dims_sizes=[list(t.shape) for t in tensors],
                                dynamic_dims_strides=[list(t.stride()) for t in tensors])

        x = torch.zeros(2, 3)
        guard = make([x])
        others = (torch.zeros(3, 2).t(), torch.zeros(2, 4)[:, :3], torch.zeros(3, 2),
                  torch.zeros(2, 3, dtype=torch.float64), torch.zeros(2, 3, requires_grad=True),
                  torch.nn.Parameter(torch.zeros(2, 3)), torch.zeros(6), 2.0, None)
        if guard.check(torch.ones(2, 3)) and not any(guard.check(o) for o in others):
            return make
    except Exception:  # noqa: BLE001 - any failure means: not usable here
        pass
    return None


_make_guard = _guard_maker()


def _value_test(expression, value, numbers_by_value, names, n):
    """Source lines rejecting a call whose non-tensor argument ``expression`` would give another
    key entry than ``value`` gave (see ``call_key``)."""
    kind = type(value)
    if value is None:
        return [f"    if {expression} is not None: return None"]
    if kind in _NUMBERS and not numbers_by_value:
        names[f"kind{n}"] = kind
        return [f"    if type({expression}) is not kind{n}: return None"]
    if kind is float:
        return [f"    if type({expression}) is not float or pack({expression}) != "
                f"{_float_key(value)!r}: return None"]
    if kind is complex:
        return [f"    if type({expression}) is not complex or pack({expression}.real) != "
                f"{_float_key(value.real)!r} or pack({expression}.imag) != "
                f"{_float_key(value.imag)!r}: return None"]
    names[f"value{n}"] = _frozen(value)
    if kind in (list, tuple):  # the key holds either as a tuple (``_frozen``)
        flat = not any(isinstance(v, list) for v in value)  # no list inside to freeze
        return [f"    if type({expression}) not in sequences or "
                f"{'tuple' if flat else 'frozen'}({expression}) != value{n}: return None"]
    names[f"kind{n}"] = kind
    return [f"    if type({expression}) is not kind{n} or frozen({expression}) != value{n}: "
            "return None"]


def signature_matcher(args, kwargs, out, tensors, numbers_by_value, storages=False):
    """``matches(args, kwargs, out)``: (tensors, data pointers) of a call whose key would be
    this call's (``call_key``, with the same ``numbers_by_value`` and ``storages``), or None.
    Generated for this call's signature; None where no matcher is made (no usable guard). Where
    a tensor requires grad (a Parameter in inference under no_grad, a call below autograd under
    enable()), the matcher also refuses calls that autograd would record: the guard compares
    the flag, not grad mode. A call without tensors (a factory) is compared value by value, and
    with the defaults its key holds."""
    if tensors and _make_guard is None:
        return None
    grads = any(t.requires_grad for t in tensors)
    names = {"pack": _float_key, "frozen": _frozen, "fwd": _forward_ad, "sequences": (list, tuple),
             "records": autograd_records, "defaults": _defaults}
    lines = ["def matches(args, kwargs, out):",
             "  try:",  # an argument compared with what it cannot be compared with: no match
             f"    if len(args) != {len(args)} or len(kwargs) != {len(kwargs)}: return None"]
    if out is None:
        lines.append("    if out is not None: return None")
    sources = [f"args[{i}]" for i in range(len(args))] + [f"kwargs[{k!r}]" for k in kwargs]
    values = [*args, *kwargs.values()]
    if out is not None:
        sources.append("out")
        values.append(out)
    found = []  # the tensors' sources, in key order
    for n, (source, value) in enumerate(zip(sources, values)):
        if isinstance(value, torch.Tensor):
            found.append(source)
        else:
            lines += _value_test(source, value, numbers_by_value, names, n)
    if not tensors:
        names["made_with"] = _defaults(kwargs)
        lines.append("    if fwd._current_level >= 0 or defaults(kwargs) != made_with: return None")
        return _made(lines, names, "[], []")
    # guards: the first one's, and others ``PlanCache.use`` adds for calls of the same key whose
    # tensors the first refuses; grads: whether a guard accepts tensors that require grad
    names.update(guard=[_make_guard(_distinct(tensors))], grads=[grads], others=_other_guards)
    variables = ", ".join(f"t{j}" for j in range(len(found)))
    # the guard takes each tensor once (Dynamo's refuses one tensor given twice); which
    # arguments are the same tensor is compared below
    guarded = ", ".join(f"t{i}" for i, j in enumerate(_first_positions(tensors)) if i == j)
    lines.append(f"    {variables}, = {', '.join(found)},")
    lines.append(f"    if fwd._current_level >= 0 or not (guard[0].check({guarded}) or "
                 f"others(guard, {guarded})): return None")
    lines.append("    if grads[0] and records(): return None")
    if _follows_default_dtype(tensors):
        names.update(default_dtype=_default_dtype, made_dtype=_default_dtype())
        lines.append("    if default_dtype() is not made_dtype: return None")
    for j, t in enumerate(tensors):
        aligned = t.data_ptr() & 15 == 0
        lines.append(f"    p{j} = t{j}.data_ptr()")
        lines.append(f"    if {'' if aligned else 'not '}p{j} & 15: return None")
        if storages:
            lines.append(f"    if t{j}.untyped_storage().nbytes() != "
                         f"{t.untyped_storage().nbytes()} or t{j}.storage_offset() != "
                         f"{t.storage_offset()}: return None")
        for i in range(j):
            same = tensors[i] is t
            lines.append(f"    if t{i} is {'not ' if same else ''}t{j}: return None")
    pointers = ", ".join(f"p{j}" for j in range(len(tensors)))
    return _made(lines, names, f"[{variables}], [{pointers}]")


def _made(lines, names, returned):
    """The matcher whose checks are ``lines`` (in its ``try``), returning ``returned`` where
    they pass; its guards and grads cells (None for a call without tensors) on it, for
    ``PlanCache.use`` to add to."""
    lines += [f"    return {returned}", "  except Exception:", "    return None"]
    exec("\n".join(lines), names)  # noqa: S102 - our own text, built from the call
    matches = names["matches"]
    matches.guard, matches.grads = names.get("guard"), names.get("grads")
    return matches


GUARDS = 4
"""Guards of one matcher, at most (the tensors of one key seen with other requires_grad flags,
Python types or dispatch states)."""


def _other_guards(guards, *tensors):
    """Whether a guard after the first accepts ``tensors``."""
    for guard in guards[1:]:
        if guard.check(*tensors):
            return True
    return False


def _first_positions(tensors):
    """Per tensor, the position of its first occurrence among ``tensors``, by identity: which
    arguments are the same tensor (``x * x``)."""
    return tuple(next(j for j, u in enumerate(tensors) if u is t) for t in tensors)


def _distinct(tensors):
    """``tensors`` without repeats (``x * x``): what a guard takes."""
    if len(tensors) > 1 and len(set(map(id, tensors))) < len(tensors):
        return [t for i, (j, t) in enumerate(zip(_first_positions(tensors), tensors)) if i == j]
    return tensors


def _add_guard(matches, tensors):
    """``matches``'s guards, plus one for ``tensors`` where none accepts them: a call of the
    plan's key whose tensors differ from the guarded ones in what the key leaves out (a tensor
    requiring grad in a call below autograd, where the key's flag is False; a Parameter for a
    Tensor; another dispatch state: enable()'s calls below autograd, direct ones above it)."""
    guards = matches.guard
    if guards is None or not tensors:
        return
    tensors = _distinct(tensors)
    if any(g.check(*tensors) for g in guards):
        return
    if len(guards) >= GUARDS:
        guards.pop()
    guards.append(_make_guard(tensors))
    if any(t.requires_grad for t in tensors):
        matches.grads[0] = True  # the matcher now refuses calls autograd would record


class Recorder:
    """What one call's full path launched, and whether a replay could stand for it."""

    def __init__(self):
        self.launches = []
        self.cacheable = True
        self.scratch = set()  # storages of buffers declared with ``scratch``
        self.whole = set()    # storages of results declared with ``whole_storage``
        self.constants = set()  # storages of tensors declared with ``constant``

    def __enter__(self):
        self.outer = getattr(launching._state, "recorder", None)
        launching._state.recorder = self
        return self

    def __exit__(self, *exc):
        launching._state.recorder = self.outer


def scratch(tensor):
    """Declare ``tensor``, a buffer the full path has just allocated, as one that our launches
    write before they read it (a kernel's workspace): a plan allocates it anew per call, whichever
    launch argument it first appears as. Returns it."""
    recorder = getattr(launching._state, "recorder", None)
    if recorder is not None:
        recorder.scratch.add(tensor.untyped_storage().data_ptr())
    return tensor


def constant(tensor):
    """Declare ``tensor`` as one our launches only read and that outlives every plan (a table
    an op keeps for good): a plan passes that very tensor to each replay, as a fixed argument.
    Returns it."""
    recorder = getattr(launching._state, "recorder", None)
    if recorder is not None:
        recorder.constants.add(tensor.untyped_storage().data_ptr())
    return tensor


def whole_storage(result):
    """Declare ``result``, a view the full path has just made of a new storage (another size than
    the view's span, or an offset into it), as one whose whole storage our launches write: a plan
    allocates such a storage per call and returns the same view of it. Returns it."""
    recorder = getattr(launching._state, "recorder", None)
    if recorder is not None:
        recorder.whole.add(result.untyped_storage().data_ptr())
    return result


def not_replayable():
    """Called by a full path that does what a replay would miss (see the module docstring)."""
    recorder = getattr(launching._state, "recorder", None)
    if recorder is not None:
        recorder.cacheable = False


def bind_numbers(bindings):
    """Declare, for the launch just recorded, which kernel arguments are Python numbers of the
    call, encoded per call: ``{argument index: (("args", i) or ("kwargs", name), compute)}``."""
    recorder = getattr(launching._state, "recorder", None)
    if recorder is not None and recorder.launches:
        recorder.launches[-1].numbers = bindings


class _Launch:
    """One recorded launch, replayable: the argument list with blanks, what fills them, and how
    to launch (the compiled kernel's own launcher, or ``kernel[grid]``)."""

    __slots__ = ("name", "kernel", "grid", "values", "options", "pointers", "numbers", "direct",
                 "changing", "native_spec", "native", "views")

    def __init__(self, recorded, pointers, numbers, views, device_index):
        self.name, self.kernel, self.grid = recorded.name, recorded.kernel, recorded.grid
        self.values, self.options = recorded.arguments()
        self.pointers = tuple(pointers)  # (argument index, base index, byte offset)
        self.numbers = tuple(numbers)    # (argument index, ("args"|"kwargs", i), compute dtype)
        self.views = views               # argument index -> (dtype, size, stride) (public path)
        self.direct = direct_launcher(recorded)
        # the arguments a call gives anew, in argument order: pointers and encoded numbers
        self.changing = tuple(sorted({p[0] for p in self.pointers} | {n[0] for n in self.numbers}))
        # our own launcher, given the stream and the changing arguments in argument order; it
        # packs a fixed tensor (``constant``) as its data pointer
        fixed = [v.data_ptr() if isinstance(v, _Tensor) else v for v in self.values]
        self.native_spec = None if self.direct is None else native_launch.launch_spec(
            recorded.compiled, self.direct[1], fixed, self.changing)
        self.native = native_launch.launcher(self.native_spec, device_index)
        # every call fills the pointer slots anew: holding the recorded call's tensors there
        # would keep its inputs and result alive for as long as the plan is cached
        blank = {p[0] for p in self.pointers}
        self.values = [None if i in blank else v for i, v in enumerate(self.values)]

    def run(self, bases, encoded):
        """This launch through ``kernel[grid]`` (the interpreter, or a Triton whose launcher
        contract is not the one read here): each pointer as a tensor viewing the memory of one
        of ``bases`` (the call's tensors, then the plan's new ones), the numbers ``encoded`` in
        the order of ``numbers``."""
        values = list(self.values)
        for slot, base, offset in self.pointers:
            dtype, size, stride = self.views[slot]
            memory = bases[base].untyped_storage()
            start = bases[base].data_ptr() + offset - memory.data_ptr()
            values[slot] = torch.empty(0, dtype=dtype, device=bases[base].device).set_(
                memory, start // dtype.itemsize, size, stride)
        for (slot, _, _), value in zip(self.numbers, encoded):
            values[slot] = value
        run_kernel(self.kernel, self.grid, values, self.options)
        LAUNCHES.cell(self.name)[0] += 1


def _allocation(made):
    """A function allocating a new tensor of a plan as the full path's was: (size, stride,
    dtype, device) a result, (storage elements, size, stride, offset, dtype, device) a result
    viewing a storage of its own, (bytes, device) a buffer."""
    if len(made) == 4:
        return functools.partial(torch.empty_strided, made[0], made[1], dtype=made[2],
                                 device=made[3])
    if len(made) == 2:
        return functools.partial(torch.empty, made[0], dtype=torch.uint8, device=made[1])
    numel, size, stride, offset, dtype, device = made
    return lambda: torch.empty(numel, dtype=dtype, device=device).as_strided(size, stride, offset)


class Plan:
    """A recorded call, replayed: ``plan.replay(args, kwargs, tensors, pointers)`` returns the
    call's result, or None where the written tensor overlaps another argument (the caller then
    takes the full path). With the compiled kernels' own launchers the replay is a function
    generated for this plan (the checks, allocations and launches written out, constants bound),
    so a call runs no loop over the plan's parts."""

    def __init__(self, launches, allocations, result, written, spans, device_index,
                 resized=None):
        self.launches = tuple(launches)
        self.made = tuple(allocations)  # what each new tensor is (see ``_allocation``)
        self.allocations = tuple(map(_allocation, allocations))  # one function per new tensor
        self.result = result                   # ("call", i) or ("new", j)
        self.written = written                 # index of the written call tensor, or None
        self.spans = spans                     # bytes each call tensor covers
        self.device_index = device_index
        # (shape, strides) an out= without storage (the last call tensor, the result) is
        # resized to first, or None
        self.resized = resized
        self.others = () if written is None else tuple(
            i for i, s in enumerate(spans) if i != written and s)
        self.replays = 0  # calls this plan served
        # index of the call tensor the call writes (an in-place form's self, out=), which a
        # direct call's replay marks with a new version (see ``Op.serve``), or None: an out=
        # resized from no storage is written too (the last call tensor), though its new memory
        # needs no overlap test (``written`` None)
        self.marked = written if resized is None else len(spans) - 1
        self.matches = None  # set by the op that made it (``signature_matcher``)
        # the plans that served its op's next call, the latest first (see PlanCache.served)
        self.following = ()
        self.direct = all(launch.direct is not None for launch in self.launches)
        self.replay = _generated_replay(self) if self.direct else self._replay

    def _overlaps(self, tensors, pointers):
        written = self.written
        if written is None or not self.spans[written]:
            return False
        lo = pointers[written]
        hi = lo + self.spans[written]
        return any(pointers[i] < hi and lo < pointers[i] + self.spans[i]
                   and tensors[i] is not tensors[written] for i in self.others)

    def _replay(self, args, kwargs, tensors, pointers):
        """The launches through ``kernel[grid]`` (the interpreter, or a Triton whose launcher
        contract is not the one read here): pointers as tensors viewing the bases' memory."""
        if self._overlaps(tensors, pointers):
            return None
        if self.resized is not None and not resize_bare(tensors[-1], *self.resized):
            return None
        news = [allocate() for allocate in self.allocations]
        bases = tensors + news
        for launch in self.launches:
            launch.run(bases, [encode_scalar(args[where] if kind == "args" else kwargs[where],
                                             compute)
                               for _, (kind, where), compute in launch.numbers])
        self.replays += 1
        kind, index = self.result
        return tensors[index] if kind == "call" else news[index]


def resize_bare(out, shape, strides):
    """``out`` resized to ``shape`` and ``strides`` as the full path resized it, where it still
    has no storage (False, unchanged, where it has: the full path decides)."""
    if out.untyped_storage().nbytes():
        return False
    with kernel_level():
        out.resize_(shape)
        if out.stride() != strides:
            out.as_strided_(shape, strides)
    return True


def _generated_replay(plan):
    """``plan``'s replay as straight-line Python: what ``Plan._replay`` does, with each launch
    through the compiled kernel's own launcher and pointers passed as integers (our checks
    already guarantee their device, so the launcher need not ask the driver)."""
    names = {"current_stream": current_stream, "encode": encode_scalar, "plan": plan}
    lines = ["def replay(args, kwargs, tensors, pointers):"]
    if plan.device_index is not None:
        # the launchers run in the current device's context (``launch.device_guard``): one
        # comparison per call, a guard only where the tensors' device is not the current one
        names.update(current_device=launching._current_device,
                     on_device=launching._device_guard)
        lines += [f"    if current_device() != {plan.device_index}:",
                  f"        with on_device({plan.device_index}):",
                  "            return replay(args, kwargs, tensors, pointers)"]
    w = plan.written
    if w is not None and plan.spans[w]:
        lines += [f"    lo = pointers[{w}]", f"    hi = lo + {plan.spans[w]}"]
        for i in plan.others:
            lines += [f"    p = pointers[{i}]",
                      f"    if p < hi and lo < p + {plan.spans[i]} and "
                      f"tensors[{i}] is not tensors[{w}]:",
                      "        return None"]
    count = len(plan.spans)
    bases = {base for launch in plan.launches for _, base, _ in launch.pointers if base < count}
    if plan.resized is not None:
        names.update(resize_bare=resize_bare, resized=plan.resized)
        lines += ["    out = tensors[-1]",
                  "    if not resize_bare(out, *resized): return None",
                  f"    b{count - 1} = out.data_ptr()"]
        bases.discard(count - 1)
    for i in sorted(bases):
        lines.append(f"    b{i} = pointers[{i}]")
    for j, allocate in enumerate(plan.allocations):
        names[f"allocate{j}"] = allocate
        lines += [f"    new{j} = allocate{j}()", f"    b{count + j} = new{j}.data_ptr()"]
    if plan.launches:
        lines.append(f"    stream = current_stream({plan.device_index})")
    for k, launch in enumerate(plan.launches):
        raw, grid, fixed = launch.direct
        pointers = {slot: (base, offset) for slot, base, offset in launch.pointers}
        numbers = {slot: (source, compute) for slot, source, compute in launch.numbers}
        if launch.native is not None:  # the stream, then only what changes
            names[f"launch{k}"] = launch.native
            arguments = ["stream"]
        else:  # Triton's launcher: the grid, the stream, its fixed arguments, every argument
            names[f"launch{k}"] = raw
            arguments = [str(g) for g in grid] + ["stream"]
            for m, value in enumerate(fixed):
                names[f"fixed{k}_{m}"] = value
                arguments.append(f"fixed{k}_{m}")
        for slot, value in enumerate(launch.values):
            if slot in pointers:
                base, offset = pointers[slot]
                arguments.append(f"b{base} + {offset}" if offset else f"b{base}")
            elif slot in numbers:
                (where, key), compute = numbers[slot]
                names[f"compute{k}_{slot}"] = compute
                arguments.append(f"encode({where}[{key!r}], compute{k}_{slot})")
            elif launch.native is None:
                names[f"value{k}_{slot}"] = value
                arguments.append(f"value{k}_{slot}")
        names[f"count{k}"] = LAUNCHES.cell(launch.name)
        lines += [f"    launch{k}({', '.join(arguments)})", f"    count{k}[0] += 1"]
    kind, index = plan.result
    lines += ["    plan.replays += 1",
              f"    return tensors[{index}]" if kind == "call" else f"    return new{index}"]
    exec("\n".join(lines), names)  # noqa: S102 - our own text, built from the recorded plan
    return names["replay"]


_CONSTANT = object()


def build(recorder, tensors, shapes, written, result, bare_out=False):
    """The plan of a finished full-path call, or None where a replay could not stand for it.

    ``tensors`` are the call's tensor arguments (``shapes`` their shapes before the call),
    ``written`` the index of the one it writes (or None), ``result`` what it returned;
    ``bare_out``: the call's out= (the last tensor) had no storage before it."""
    if not recorder.cacheable or not isinstance(result, _Tensor):
        return None
    resized = None
    changed = [i for i, (t, s) in enumerate(zip(tensors, shapes)) if t.shape != s]
    if changed:
        if not bare_out or changed != [len(tensors) - 1] or result is not tensors[-1]:
            return None  # an out= with storage resized: PyTorch warns, a replay would not
        # an out= without storage (``at::empty({0})`` given to an ``_out`` kernel, as ATen's
        # composite kernels do) resized without a warning into memory no other tensor holds:
        # a replay resizes such an out= alike
        resized = (tuple(result.shape), result.stride())
        written = None  # new memory: nothing to check for overlap
    storages = [t.untyped_storage().data_ptr() for t in tensors]
    if written is not None and tensors[written].numel():
        w = tensors[written]
        if any(storages[i] == storages[written] and t is not w and t.numel()
               for i, t in enumerate(tensors)):
            return None  # the written tensor shares memory: the full path decides each time
    # fresh: storage pointer -> (index among the new tensors, the data pointer launch offsets
    # into that storage are taken from: the new tensor's own)
    allocations, fresh = [], {}
    result_source = next((("call", i) for i, t in enumerate(tensors) if t is result), None)
    result_storage = result.untyped_storage().data_ptr()
    if result_source is None:
        if result_storage in storages:
            return None
        if result_storage in recorder.whole:
            allocations.append((result.untyped_storage().nbytes() // result.element_size(),
                                tuple(result.shape), result.stride(), result.storage_offset(),
                                result.dtype, result.device))
        elif result.storage_offset() or result.untyped_storage().nbytes() != span_bytes(result):
            return None
        else:
            allocations.append((tuple(result.shape), result.stride(), result.dtype,
                                result.device))
        fresh[result_storage] = (0, result.data_ptr())
        result_source = ("new", 0)

    def locate(t, position):
        """(base index, byte offset) of a launch's tensor argument; None: not replayable;
        ``_CONSTANT``: a fixed argument (``constant``)."""
        for i, u in enumerate(tensors):
            if t is u:
                return i, 0
        storage = t.untyped_storage().data_ptr()
        if storage in recorder.constants:
            return _CONSTANT
        owners = {id(u): i for i, u in enumerate(tensors) if storages[i] == storage and storage}
        if len(owners) > 1:
            return None
        if owners:
            i = owners.popitem()[1]
            return i, t.data_ptr() - tensors[i].data_ptr()
        if storage not in fresh:
            if position != 0 and storage not in recorder.scratch:
                # every skeleton writes its first pointer: a buffer first seen elsewhere, unless
                # declared scratch, holds values made outside our launches
                return None
            fresh[storage] = (len(allocations), storage)
            allocations.append((t.untyped_storage().nbytes(), t.device))
        index, origin = fresh[storage]
        return len(tensors) + index, t.data_ptr() - origin

    device_index = result.device.index if result.device.type == "cuda" else None
    launches = []
    for recorded in recorder.launches:
        values, _ = recorded.arguments()
        pointers, views = [], {}
        for position, v in enumerate(values):
            if isinstance(v, _Tensor):
                where = locate(v, position)
                if where is None:
                    return None
                if where is _CONSTANT:
                    continue  # stays among the launch's fixed arguments
                pointers.append((position, *where))
                views[position] = (v.dtype, tuple(v.shape), v.stride())
        numbers = [(slot, source, compute)
                   for slot, (source, compute) in recorded.numbers.items()]
        launches.append(_Launch(recorded, pointers, numbers, views, device_index))
    return Plan(launches, allocations, result_source, written, [span_bytes(t) for t in tensors],
                device_index, resized)


class PlanCache:
    """Plans of one op by call signature, at most ``PLAN_LIMIT`` (the oldest goes first)."""

    RECENT = 4
    """Plans whose matchers a call tries before it builds a key: the last ones a call used."""
    FOLLOWING = 3
    """Plans a plan remembers as having served its op's next call: a plan of a model's step is
    followed by one plan in one place and by another elsewhere (a layer's last call by the next
    layer's first, and at the end of the forward by the backward's)."""

    def __init__(self):
        self.plans = {}
        self.lock = threading.Lock()
        self.recent = ()
        # the plan that served the op's last call (the cache itself before any: the start of
        # the chains of ``following`` plans, which predict the next call's plan)
        self.last = self
        self.following = ()

    def served(self, plan):
        """``plan`` served the op's call after the last plan's: predicted next time after it
        (where it has a matcher to check the prediction), first if it is new there. The order
        is not changed for a plan already there: a step's calls then write nothing."""
        if plan.matches is not None:
            last = self.last
            following = last.following
            if plan not in following:
                last.following = (plan, *following[:self.FOLLOWING - 1])
            self.last = plan

    def use(self, plan, tensors=None):
        """``plan`` served a call found by its key (``tensors``, its tensor arguments): its
        matcher is tried first from now on, and accepts such tensors too (``_add_guard``)."""
        matches = getattr(plan, "matches", None)  # handed_over holds True, not plans
        if matches is None:
            return
        if tensors:
            _add_guard(matches, tensors)
        recent = self.recent
        if not recent or recent[0] is not plan:
            self.recent = (plan, *[p for p in recent if p is not plan][:self.RECENT - 1])

    def get(self, key):
        try:
            return self.plans.get(key)
        except TypeError:  # an unhashable argument: never planned
            return None

    def put(self, key, plan):
        try:
            hash(key)
        except TypeError:
            return
        with self.lock:
            if len(self.plans) >= PLAN_LIMIT:
                evicted = self.plans.pop(next(iter(self.plans)))
                self.recent = tuple(p for p in self.recent if p is not evicted)
                evicted.following = ()  # a plan predicted still serves, but holds no chain
            self.plans[key] = plan
        self.use(plan)

    def __len__(self):
        return len(self.plans)

    def clear(self):
        self.plans.clear()
        self.recent = ()
        self.last, self.following = self, ()
