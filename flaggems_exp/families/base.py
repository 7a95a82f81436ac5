"""The base of every family: an op's names, its registry entry and its launch counter.

An op is a class that declares what is particular to it; ``@register`` makes one instance of it,
files it under its aten name and aliases, and derives its in-place form. Everything else — the
``experimental_ops`` namespace, ``enable()``, the tests and the benchmarks — reads ``REGISTRY``.
"""
import functools
import re

import torch

from . import autograd_calls, traced_calls
from .argument_types import is_dispatcher_op as _is_dispatcher_op
from .argument_types import quick_test, refusal
from ..runtime import coverage, errors
from ..runtime import launch as launching
from ..runtime.launch import LAUNCHES  # noqa: F401  (re-exported)
from ..runtime.plans import (PlanCache, Recorder, build, call_key, not_replayable,
                              signature_matcher)

_is_traced = torch.compiler.is_dynamo_compiling  # False when run; True while Dynamo traces
_increment_version = torch._C._increment_version  # of each tensor of a sequence

REGISTRY = {}
"""Every registered name (aliases and in-place forms included) -> the op object serving it."""


def _snake_case(name):
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def _mark_written(written):
    """A direct call's written tensor marked as PyTorch's ADInplaceOrView kernel marks it: a new
    version; an inference tensor has none, and outside inference mode its update is refused
    (after the write, as PyTorch refuses it)."""
    if written.is_inference():
        if not torch.is_inference_mode_enabled():
            raise errors.inference_tensor_update()
    else:
        _increment_version((written,))


class Op:
    """An operator: one callable object, registered under one or more aten names.

    Class attributes an op may declare:
      name      the aten name (default: the class name in snake_case)
      aliases   further aten names served by the same kernel (aliases in PyTorch's sense)
      ref       the PyTorch reference the tests and benchmarks compare with
                (default: the aten op of the same name)
      inplace   derive ``name_`` (default: when aten has an in-place twin)
      domain, param_samples, special_values, sample_args: the inputs tests and benchmarks
                use (``flaggems_exp.testing`` turns them into calls)
    """

    name = None
    aliases = ()
    ref = None
    inplace = None
    family = "Op"
    # what tests and benchmarks feed the op: plain data, which flaggems_exp.testing turns into
    # calls as the op's family reads it
    domain = (-4.0, 4.0)      # range of random floating inputs
    param_samples = ()        # non-default parameter sets worth testing, as {name: value}
    special_values = ()       # inputs beyond ±0, ±inf, NaN worth testing exactly (kinks)
    launches_per_call = 1     # kernel launches of a call with a non-empty result (tests count them)
    reference_in_float64 = True  # False where PyTorch's result depends on its working dtype
    runtime_numbers = False   # True: Python numbers reach the kernel unread (see plans.py)
    writes_self = False       # True for in-place forms: the first argument is written
    # True where PyTorch's binding has read the call's arguments before it reaches the op (the
    # dispatcher's calls, under enable()): their types need no test of ours
    binding_checked = False
    # True where the call's written tensor is ours to mark (direct calls); the dispatcher's
    # twin leaves it to PyTorch's ADInplaceOrView kernel (see ``serve``)
    marks_writes = True
    moves_any_tensor = False  # True: the family decides itself which dtypes and devices it moves
    storage_in_key = False    # True: the result depends on the tensors' storage size and offset

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            cls.name = _snake_case(cls.__name__)

    def __init__(self):
        if self.ref is None:
            self.ref = getattr(torch.ops.aten, self.name)  # an op without aten twin names one
        self.plans = PlanCache()
        self.numbers_by_value = not self.runtime_numbers

    # ---- the call: a plan of its signature, or the family's full path (which makes one) ----
    def serve(self, /, *args, out=None, **kwargs):  # ``self`` may be an aten keyword
        """A call: a plan of its signature, or the full path. A direct call (``__call__``, this
        same function) marks the tensor it writes (``out``, an in-place form's self) as
        PyTorch's ADInplaceOrView kernel marks it after an aten op's kernel: a new version, so
        that autograd refuses a backward through a saved tensor the call changed, and a write
        into an inference tensor outside inference mode refused after the write, as PyTorch
        refuses it. The dispatcher's twin (``marks_writes`` False) leaves that to PyTorch, as
        it does a call autograd records (the aten op's). One function for both: a direct call
        costs one Python frame, the marking of a plan's replay one version bump."""
        if _is_traced():  # Dynamo traces a direct call: an opaque custom op, not our host code
            return traced_calls.traced_call(self, args, kwargs, out)
        plans = self.plans
        # the plans that served the call after the last one's plan before (a model's step
        # calls an op through the same signatures in the same order), then the plans used
        # last, each compared with the call directly
        predicted = plans.last.following
        for plan in predicted:
            hit = plan.matches(args, kwargs, out)
            if hit is not None:
                return self.matched(plan, hit, args, kwargs, out)
        for plan in plans.recent:
            if plan not in predicted:  # tried already
                hit = plan.matches(args, kwargs, out)
                if hit is not None:
                    return self.matched(plan, hit, args, kwargs, out)
        key, tensors, pointers = self.signature(args, kwargs, out)
        if key is not None:
            plan = plans.get(key)
            if plan is not None:
                result = plan.replay(args, kwargs, tensors, pointers)
                if result is not None:
                    plans.use(plan, tensors)
                    plans.served(plan)
                    if plan.marked is not None and self.marks_writes:
                        _mark_written(tensors[plan.marked])
                    return result
        return self.unplanned(key, tensors, args, kwargs, out)

    __call__ = serve

    def matched(self, plan, hit, args, kwargs, out):
        """The call ``plan``'s matcher accepted (``hit``: its tensors and data pointers)."""
        result = plan.replay(args, kwargs, *hit)
        if result is not None:
            self.plans.served(plan)
            if plan.marked is not None and self.marks_writes:
                _mark_written(hit[0][plan.marked])
            return result
        # the written tensor overlaps another: the full path applies PyTorch's rules
        return self.unplanned(self.signature(args, kwargs, out)[0], hit[0], args, kwargs, out)

    def signature(self, args, kwargs, out):
        """(the call's signature key, its tensors, their data pointers): see ``call_key``."""
        return call_key(args, kwargs, out, self.numbers_by_value, self.storage_in_key)

    def unplanned(self, key, tensors, args, kwargs, out):
        """A call no plan served (``key`` None: a call never planned): recorded by autograd,
        or the full path, whose launches become the signature's plan where they can. An
        argument of a type PyTorch's binding refuses gets its exception first, before
        anything is written (see ``argument_types``)."""
        given_args, given_kwargs = args, kwargs
        # numbers first, as PyTorch's binding reads them (a tensor given for one is no operand)
        args, kwargs, read = numbers_of_tensors(self.name, args, kwargs)
        if read:
            key = None  # its signature holds the tensors, not their values: never planned
        if not (self.binding_checked or self.well_typed(args, kwargs, out)):
            error = refusal(self.name, given_args, given_kwargs, out)
            if error is not None:
                raise error
        if autograd_calls.needs_grad(args, kwargs, out):  # never planned: the key says so
            return autograd_calls.recorded_call(self, args, kwargs, out)  # PyTorch marks it
        written = out if out is not None else (
            (args[0] if args else kwargs.get("self")) if self.writes_self else None)
        if not (self.marks_writes and isinstance(written, torch.Tensor)):
            return self.launched(key, tensors, args, kwargs, out)
        if written.is_inference():  # no version to count
            result = self.launched(key, tensors, args, kwargs, out)
            _mark_written(written)
            return result
        version = written._version
        result = self.launched(key, tensors, args, kwargs, out)
        if written._version == version:  # unless the path gave it one (a copy_ of PyTorch's)
            _increment_version((written,))
        return result

    def launched(self, key, tensors, args, kwargs, out):
        """The family's full path, whose launches become the signature's plan where they can."""
        if getattr(launching._state, "recorder", None) is not None:
            # called from another op's full path: that call's plan would miss this one's
            not_replayable()
            return self.call(args, kwargs, out)
        if key is None:
            return self.call(args, kwargs, out)
        shapes = [t.shape for t in tensors]
        bare_out = out is not None and not out.untyped_storage().nbytes()
        with Recorder() as recorder:
            result = self.call(args, kwargs, out)
        written = len(tensors) - 1 if out is not None else 0 if self.writes_self else None
        plan = build(recorder, tensors, shapes, written, result, bare_out)
        if plan is not None:
            plan.matches = signature_matcher(args, kwargs, out, tensors, self.numbers_by_value,
                                             self.storage_in_key)
            self.plans.put(key, plan)
            self.plans.served(plan)
        return result

    def call(self, args, kwargs, out):
        """The family's full path: what the kernels cover, every check in PyTorch's order, then
        allocate and launch."""
        coverage.check(self, args, kwargs, out)
        return self.call_out(args, kwargs, out, inplace=False)

    def call_out(self, args, kwargs, out, inplace):
        raise NotImplementedError

    @functools.cached_property
    def well_typed(self):
        """``well_typed(args, kwargs, out)``: whether a call's argument types are vouched for
        without asking PyTorch (``argument_types.quick_test`` of the op's aten name)."""
        return quick_test(self.name)

    @property
    def names(self):
        return (self.name, *self.aliases)

    def sample_args(self, dtype, shape, make):
        """Natural calls of the op for tests, self-check and benchmarks, as
        ``[(args, kwargs, label)]`` around inputs of ``dtype`` and about ``shape``;
        ``make(shape=shape, dtype=dtype, domain=None)`` draws a random tensor (the caller's
        generator, the op's ``domain``). A factory passes ``device="cpu"``: PyTorch's reference
        runs there, and a call moved to the device in use takes that device. Families whose
        samples are data (pointwise, pad, resample) do not read it."""
        return [((make(),), {}, "")]

    def aten_overloads(self):
        """``(name, overload)`` pairs this op serves, read from aten's own schema registry."""
        pairs = []
        for n in self.names:
            if hasattr(torch.ops.aten, n):
                packet = getattr(torch.ops.aten, n)
                pairs += [(n, o) for o in packet.overloads() if _is_dispatcher_op(n, o)]
        return pairs

    def __repr__(self):
        return f"<{self.family} {self.name}>"


@functools.lru_cache(maxsize=None)
def _schema(name):
    """(the default overload's arguments, whether an ``.out`` overload exists) of aten's op."""
    packet = getattr(torch.ops.aten, name)
    return tuple(packet.default._schema.arguments), "out" in packet.overloads()


# the schema types of arguments that take numbers: "int", "float" and "Number" one, "ints" and
# "floats" a list of them
_NUMBER_KINDS = {"int": "int", "Optional[int]": "int", "float": "float",
                 "Optional[float]": "float", "number": "Number", "Optional[number]": "Number",
                 "List[int]": "ints", "Optional[List[int]]": "ints",
                 "List[float]": "floats", "Optional[List[float]]": "floats"}
_OPTION_NAMES = frozenset({"dtype", "layout", "memory_format", "device", "pin_memory"})


@functools.lru_cache(maxsize=None)
def _number_arguments(name):
    """((argument name, position, kind), ...) of aten ``name``'s default overload: the
    arguments that take numbers in every dispatcher overload of the op (none takes a tensor
    there; TorchScript's own overloads, ``lt.int``, are no calls of ours)."""
    packet = getattr(torch.ops.aten, name, None)
    overloads = [o for o in (packet.overloads() if packet is not None else ())
                 if _is_dispatcher_op(name, o)]
    if "default" not in overloads:
        return ()
    tensors = {a.name for o in overloads for a in getattr(packet, o)._schema.arguments
               if "Tensor" in str(a.type)}
    return tuple((a.name, i, _NUMBER_KINDS[str(a.type)]) for i, a in enumerate(_schema(name)[0])
                 if str(a.type) in _NUMBER_KINDS and a.name not in tensors | _OPTION_NAMES)


def _reads_as_number(value, kind):
    """Whether PyTorch's binding takes tensor ``value`` for a number of ``kind``: a 0-dim tensor
    for a Scalar or a float, a one-element integer tensor for an int (as an index: ``tril``,
    ``eye`` and the pads take ``tensor([1])``; ``diag``'s binding alone refuses it)."""
    if kind == "int":
        return value.numel() == 1 and not (value.is_floating_point() or value.is_complex())
    return value.dim() == 0


def numbers_of_tensors(name, args, kwargs):
    """(``args``, ``kwargs``, whether any was read) of a direct call of aten ``name`` with each
    tensor given for a number (``tril(x, torch.tensor(1))``, ``hardtanh(x, torch.tensor(-0.5))``)
    replaced by its value, as PyTorch's binding reads it (the dispatcher passes numbers). The
    call's signature holds the tensor, not its value: such a call gets no plan, which would
    keep the first call's value."""
    found = False
    for argument, position, kind in _number_arguments(name):
        in_args = position < len(args)
        value = args[position] if in_args else kwargs.get(argument)
        if isinstance(value, torch.Tensor):
            if not _reads_as_number(value, kind):
                raise TypeError(f"{name}(): argument '{argument}' (position {position + 1}) "
                                f"must be {kind}, not Tensor")
            number = value.item()
        elif kind in ("ints", "floats") and isinstance(value, (list, tuple)) and any(
                isinstance(v, torch.Tensor) for v in value):
            for j, v in enumerate(value):
                if isinstance(v, torch.Tensor) and not _reads_as_number(v, kind[:-1]):
                    raise TypeError(f"{name}(): argument '{argument}' (position "
                                    f"{position + 1}) must be tuple of {kind}, but found "
                                    f"element of type Tensor at pos {j}")
            number = [v.item() if isinstance(v, torch.Tensor) else v for v in value]
        else:
            continue
        if not found:
            args, kwargs, found = list(args), dict(kwargs), True
        if in_args:
            args[position] = number
        else:
            kwargs[argument] = number
    return (tuple(args), kwargs, True) if found else (args, kwargs, False)


def check_out_accepted(op, out):
    """An ``out=`` given to an op aten has no out= overload for: the TypeError of PyTorch's
    Python binding."""
    if out is not None and not _schema(op.name)[1]:
        raise TypeError(f"{op.name}() got an unexpected keyword argument 'out'")


@functools.lru_cache(maxsize=None)
def _keyword_names(name):
    """Every argument name of every overload of aten ``name``."""
    packet = getattr(torch.ops.aten, name)
    return frozenset(a.name for overload in packet.overloads()
                     for a in getattr(packet, overload)._schema.arguments)


def check_keywords(op, kwargs):
    """A keyword that no overload of the op names: the TypeError every family raises for it
    (a family that hands its keywords to its own hooks checks them first, so that the error
    names the op, not the hook)."""
    for key in kwargs:
        if key not in _keyword_names(op.name):
            raise TypeError(f"{op.name}() got an unexpected keyword argument '{key}'")


def bind(op, args, kwargs, out=None):
    """The call's arguments in aten schema order, defaults filled in (Python's own TypeErrors)."""
    params, _ = _schema(op.name)
    check_out_accepted(op, out)
    if len(args) > len(params):
        raise TypeError(f"{op.name}() takes {len(params)} arguments but {len(args)} were given")
    values, kwargs = list(args), dict(kwargs)
    for param in params[len(args):]:
        if param.name in kwargs:
            values.append(kwargs.pop(param.name))
        elif param.has_default_value():
            values.append(param.default_value)
        else:
            raise TypeError(f"{op.name}() missing required argument '{param.name}'")
    if kwargs:
        raise TypeError(f"{op.name}() got an unexpected keyword argument '{next(iter(kwargs))}'")
    return values


def register(cls):
    """Register ``cls`` under its names; derive and register its in-place form too."""
    op = cls()
    for n in op.names:
        if n in REGISTRY:
            raise ValueError(f"{n} is already registered by {REGISTRY[n]!r}")
        REGISTRY[n] = op
    inplace_names = [n + "_" for n in op.names if hasattr(torch.ops.aten, n + "_")]
    if op.inplace is not False and inplace_names:
        from .inplace import InplaceOp
        register(type(cls.__name__ + "_", (InplaceOp,),
                      {"twin": op, "name": inplace_names[0], "aliases": tuple(inplace_names[1:])}))
    autograd_calls.served.cache_clear()  # its map of aten overloads to ops is now incomplete
    return cls
