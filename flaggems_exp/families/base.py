"""The base of every family: an op's names, its registry entry and its launch counter.

An op is a class that declares what is particular to it; ``@register`` makes one instance of it,
files it under its aten name and aliases, and derives its in-place form. Everything else — the
``experimental_ops`` namespace, ``enable()``, the tests and the benchmarks — reads ``REGISTRY``.
"""
import functools
import re

import torch

from . import autograd_calls, traced_calls
from ..runtime import coverage
from ..runtime import launch as launching
from ..runtime.launch import LAUNCHES  # noqa: F401  (re-exported)
from ..runtime.plans import PlanCache, Recorder, build, call_key, not_replayable

_is_traced = torch.compiler.is_dynamo_compiling  # False when run; True while Dynamo traces

REGISTRY = {}
"""Every registered name (aliases and in-place forms included) -> the op object serving it."""


def _snake_case(name):
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def _is_dispatcher_op(name, overload):
    """False for TorchScript-only overloads (``mul.int``, ``copy_.float``): not dispatcher ops."""
    try:
        torch._C._dispatch_find_schema_or_throw("aten::" + name, "" if overload == "default" else overload)
    except RuntimeError:
        return False
    return True


class Op:
    """An operator: one callable object, registered under one or more aten names.

    Class attributes an op may declare:
      name      the aten name (default: the class name in snake_case)
      aliases   further aten names served by the same kernel (aliases in PyTorch's sense)
      ref       the PyTorch reference the tests and benchmarks compare with
                (default: the aten op of the same name)
      inplace   derive ``name_`` (default: when aten has an in-place twin)
      domain, param_samples, special_values: the inputs tests and benchmarks use
    """

    name = None
    aliases = ()
    ref = None
    inplace = None
    family = "Op"
    # what tests and benchmarks feed the op (see flaggems_exp.testing)
    domain = (-4.0, 4.0)      # range of random floating inputs
    param_samples = ()        # non-default parameter sets worth testing, as {name: value}
    special_values = ()       # inputs beyond ±0, ±inf, NaN worth testing exactly (kinks)
    reference_in_float64 = True  # False where PyTorch's result depends on its working dtype
    runtime_numbers = False   # True: Python numbers reach the kernel unread (see plans.py)
    writes_self = False       # True for in-place forms: the first argument is written
    moves_any_tensor = False  # True: the family decides itself which dtypes and devices it moves

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
    def __call__(self, /, *args, out=None, **kwargs):  # ``self`` may be an aten keyword
        if _is_traced():  # Dynamo traces this call: an opaque custom op, not our host code
            return traced_calls.traced_call(self, args, kwargs, out)
        key, tensors, pointers = call_key(args, kwargs, out, self.numbers_by_value)
        if key is not None:
            plan = self.plans.get(key)
            if plan is not None:
                result = plan.replay(args, kwargs, tensors, pointers)
                if result is not None:
                    return result
        if autograd_calls.needs_grad(args, kwargs, out):  # never planned: the key says so
            return autograd_calls.recorded_call(self, args, kwargs, out)
        if getattr(launching._state, "recorder", None) is not None:
            # called from another op's full path: that call's plan would miss this one's
            not_replayable()
            return self.call(args, kwargs, out)
        if key is None:
            return self.call(args, kwargs, out)
        shapes = [t.shape for t in tensors]
        with Recorder() as recorder:
            result = self.call(args, kwargs, out)
        written = len(tensors) - 1 if out is not None else 0 if self.writes_self else None
        plan = build(recorder, tensors, shapes, written, result)
        if plan is not None:
            self.plans.put(key, plan)
        return result

    def call(self, args, kwargs, out):
        """The family's full path: what the kernels cover, every check in PyTorch's order, then
        allocate and launch."""
        coverage.check(self, args, kwargs, out)
        return self.call_out(args, kwargs, out, inplace=False)

    def call_out(self, args, kwargs, out, inplace):
        raise NotImplementedError

    @property
    def names(self):
        return (self.name, *self.aliases)

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


def bind(op, args, kwargs, out=None):
    """The call's arguments in aten schema order, defaults filled in (Python's own TypeErrors)."""
    params, has_out = _schema(op.name)
    if out is not None and not has_out:
        raise TypeError(f"{op.name}() got an unexpected keyword argument 'out'")
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


def sample_calls(op, dtype, shape, generator):
    """Calls of ``op`` (or its in-place form) for tests, self-check and benchmarks: the op's
    ``sample_args`` around a random tensor of ``shape`` and ``dtype`` (a family's
    ``sample_calls`` may delegate here)."""
    from ..testing import Call, random_tensor
    x = random_tensor(shape, dtype, op.domain, generator)
    return [Call(args, kwargs, label) for args, kwargs, label in op.sample_args(x, generator)]


def register(cls):
    """Register ``cls`` under its names; derive and register its in-place form too."""
    from .. import experimental_ops
    op = cls()
    for n in op.names:
        if n in REGISTRY:
            raise ValueError(f"{n} is already registered by {REGISTRY[n]!r}")
        REGISTRY[n] = op
        vars(experimental_ops).pop(n, None)  # the op kept there for a name since removed
    inplace_names = [n + "_" for n in op.names if hasattr(torch.ops.aten, n + "_")]
    if op.inplace is not False and inplace_names:
        from .inplace import InplaceOp
        register(type(cls.__name__ + "_", (InplaceOp,),
                      {"twin": op, "name": inplace_names[0], "aliases": tuple(inplace_names[1:])}))
    autograd_calls.served.cache_clear()  # its map of aten overloads to ops is now incomplete
    return cls
