"""enable() / disable() / use_gems(): route PyTorch's own ops to ours through ``torch.library``.

Every registered op is registered for each of its aten names and overloads on the dispatch key
of the device in use (CUDA, or CPU where kernels run in Triton's interpreter). ``.out``
overloads get a wrapper that forwards ``out=``. Ops that PyTorch implements as a
CompositeImplicitAutograd decomposition have no autograd formula of their own: a backend kernel
alone would hide the decomposition from autograd, so for those an autograd-key kernel runs ours
when no gradient is needed and PyTorch's decomposition (which records the graph) when one is.

The dispatcher hands a registered kernel whatever PyTorch's op takes at that key, and some of
it our kernels do not cover: complex and other dtypes without a kernel, a factory asked for
another device (``x.new_ones(size, device="meta")``), numbers alone (``torch.mul(2, 3)``), and
at an autograd key sparse tensors themselves (AutogradCPU/AutogradCUDA serve sparse tensors
too; sparse kernels call our backend kernels only on their dense values). The full path raises
``NotCovered`` for them before anything is written, and the call becomes PyTorch's own: the
kernel the op had at that key before ``enable()`` replaced it takes it, counted in
``DELEGATED``; a direct call of the op raises instead. This costs nothing on a planned call:
what the dispatcher calls at the backend key is a twin of the op that shares its state (plans
included) and its way to a plan (``serve``, the direct call without its marking of the
written tensor, which PyTorch makes), and differs only in its full path, which only a plan
miss reaches. A signature handed over once goes straight to PyTorch's kernel on its next calls.
"""
import collections
import contextlib
import functools
import os
import warnings

import torch

from .families.autograd_calls import needs_grad
from .families.base import REGISTRY, Op
from .runtime.device import DEVICE, INTERPRETED
from .runtime.errors import NotCovered
from .runtime import native_dispatch
from .runtime.launch import interpreting
from .runtime.plans import PlanCache, not_replayable
from .runtime.promotion import Promotion, promote

_BACKEND_KEY = "CUDA" if DEVICE == "cuda" else "CPU"
_AUTOGRAD_KEY = "Autograd" + _BACKEND_KEY
_BACKEND_DISPATCH_KEY = getattr(torch._C.DispatchKey, _BACKEND_KEY)
# what the dispatcher hands a kernel at the backend key (measured): PyTorch's kernel gets it too
_KEYSET = torch._C.DispatchKeySet(_BACKEND_DISPATCH_KEY)
_library = None
_routed = ()  # the op objects routed while enabled

DELEGATED = collections.Counter()
"""Calls routed to flaggems_exp that PyTorch's own kernel served, per op name: inputs the
kernels do not cover (complex and other dtypes without a kernel, sparse tensors at a composite
op's autograd key, a factory asked for another device, numbers alone)."""


class _HandsOver:
    """Mixed in before an op's class for the twin the dispatcher calls (``_routed_op``): its
    full path hands what the kernels do not cover to PyTorch's kernel at the same key, and
    remembers the signature, whose later calls (plan misses all: a hand-over makes no plan)
    go over at once. Handing over is always right, PyTorch's kernel making every check."""

    __slots__ = ()
    # the dispatcher's call: PyTorch's ADInplaceOrView kernel marks the written tensor
    __call__ = Op.serve
    marks_writes = False
    binding_checked = True  # the dispatcher's call: PyTorch's binding read its arguments

    def unplanned(self, key, tensors, args, kwargs, out):
        if key is not None and self.handed_over.get(key):
            return self.hand_over(args, kwargs, out)
        try:
            return super().unplanned(key, tensors, args, kwargs, out)
        except NotCovered:
            if key is not None:  # what is covered follows from the signature alone
                self.handed_over.put(key, True)
            return self.hand_over(args, kwargs, out)

    def hand_over(self, args, kwargs, out):
        not_replayable()  # PyTorch's kernel, not ours: no plan for this signature
        DELEGATED[self.name] += 1
        if out is not None:
            kwargs = {**kwargs, "out": out}
        return self.pytorch_kernel.call_boxed(_KEYSET, *self.tensor_args(args), **kwargs)

    def tensor_args(self, args):
        """``args`` with each Python number where the schema has a tensor as the tensor PyTorch
        made of it (a wrapped number, which reached us as a number; a boxed call takes
        tensors only): a CPU scalar of the call's common dtype, which promotes as the wrapped
        number did and holds its value converted, as PyTorch's kernel converts it."""
        numbers = [i for i in self.tensor_positions if i < len(args)
                   and not isinstance(args[i], torch.Tensor)]
        if not numbers:
            return args
        operands = [args[i] for i in self.tensor_positions if i < len(args)]
        common = promote(operands, Promotion.DEFAULT)[1]
        return [torch.tensor(a, dtype=common) if i in numbers else a for i, a in enumerate(args)]


@functools.cache
def _routed_class(cls):
    slots = ("pytorch_kernel", "tensor_positions", "handed_over")
    routed = type(cls.__name__, (_HandsOver, cls), {"__slots__": slots, "__module__": __name__})
    # the families' __init_subclass__ derive class attributes (name, runtime_numbers) of a new
    # class from it: the twin reads its op class's own instead, whatever they are now
    for attribute in set(vars(routed)) - set(slots):
        if not attribute.startswith("__"):
            delattr(routed, attribute)
    return routed


def _routed_op(op, overload):
    """``op`` as the dispatcher calls it at the backend key for ``overload``: the same object
    state (a shared ``__dict__``: plans, counters, anything patched) and the same ``serve``,
    with the kernel PyTorch has at that key now, fetched before ``enable()`` replaces it."""
    routed = object.__new__(_routed_class(type(op)))
    routed.__dict__ = op.__dict__
    # the key as its enum member: get_kernel looks a string up in the enum's member table,
    # which pybind builds anew on each read (6 µs a call, 2 ms an enable())
    routed.pytorch_kernel = torch.library.get_kernel(overload, _BACKEND_DISPATCH_KEY)
    routed.handed_over = PlanCache()  # the signatures handed over (a bounded set)
    routed.tensor_positions = _schema_facts(overload)[0]
    return routed


@functools.lru_cache(maxsize=None)
def _schema_facts(overload):
    """(the positions of aten ``overload``'s positional tensor arguments, the names of its
    keyword-only ones), read from its schema once per process (see
    ``native_dispatch.argument_positions``)."""
    tensor = torch._C.TensorType.get()
    arguments = overload._schema.arguments
    return (tuple(i for i, a in enumerate(arguments)
                  if not a.kwarg_only and a.type.isSubtypeOf(tensor)),
            frozenset(a.name for a in arguments if a.kwarg_only))


def _aten_while_interpreting(kernel, routed):
    """``kernel``, except for the calls Triton's interpreter makes while it runs one of our
    launches (CPU only): PyTorch's kernel takes those. The interpreter copies each tensor
    argument to a host copy and back with ``copy_``; served by ours, each would launch a copy
    through the interpreter again, and mark the launching call's plan unreplayable (another
    op called from its full path)."""
    def interpreter_aware(*args, **kwargs):
        if interpreting():
            return routed.pytorch_kernel.call_boxed(_KEYSET, *args, **kwargs)
        return kernel(*args, **kwargs)
    interpreter_aware.__wrapped__ = kernel
    return interpreter_aware


def _out_kernel(op):
    def kernel(*args, out, **kwargs):
        return op(*args, out=out, **kwargs)
    return kernel


def _composite_kernel(op, overload):
    """The autograd-key kernel of a CompositeImplicitAutograd op: ours below autograd, or
    PyTorch's C++ decomposition (the kernel the op had at this key) where a gradient is needed,
    recorded by autograd, or where ours does not cover the call (sparse tensors reach this key:
    AutogradCPU and AutogradCUDA serve them too), outside the guard, as the dispatcher would
    have run it. (``decompose()`` would prefer a Python decomposition that may bypass our
    kernels, e.g. an index gather.)"""
    def kernel(*args, **kwargs):
        if not needs_grad(args, kwargs, None):
            try:
                with torch._C._AutoDispatchBelowAutograd():
                    return op(*args, **kwargs)
            except NotCovered:
                DELEGATED[op.name] += 1
        return overload._op_dk(torch._C.DispatchKey.CompositeImplicitAutograd, *args, **kwargs)
    return kernel


def _registrations(ops, offering=False):
    """[(qualified aten name, kernel, dispatch key)] for every name and overload of ``ops``,
    made before any is registered, so that each holds PyTorch's own kernel at its key.
    ``offering``: the backend key's kernels offer their plans to C++ routes
    (``native_dispatch``)."""
    seen, registrations = set(), []
    for op in ops:
        for name, overload_name in op.aten_overloads():
            overload = getattr(getattr(torch.ops.aten, name), overload_name)
            qualname = name if overload_name == "default" else f"{name}.{overload_name}"
            if qualname in seen:
                continue
            seen.add(qualname)
            routed = _routed_op(op, overload)
            keywords = _schema_facts(overload)[1]
            kernel = _out_kernel(routed) if "out" in keywords else routed
            if INTERPRETED:
                kernel = _aten_while_interpreting(kernel, routed)
            if offering:
                kernel = native_dispatch.offering(kernel, routed, overload)
            registrations.append((qualname, kernel, _BACKEND_KEY))
            if "out" not in keywords and torch._C._dispatch_has_kernel_for_dispatch_key(
                    overload.name(), "CompositeImplicitAutograd"):
                kernel = _composite_kernel(op, overload)
                if offering:
                    kernel = native_dispatch.offering(kernel, routed, overload, autograd_key=True)
                registrations.append((qualname, kernel, _AUTOGRAD_KEY))
    return registrations


def _ops(names):
    """The set of op objects serving ``names`` (aliases resolve to their op)."""
    unknown = sorted(set(names) - set(REGISTRY))
    if unknown:
        raise ValueError(f"not flaggems_exp ops: {', '.join(unknown)} "
                         "(see flaggems_exp.list_ops())")
    return {REGISTRY[n] for n in names}


def selection(include=None, exclude=None):
    """The ops ``enable(include, exclude)`` routes, in registry order: every op, or those
    ``include`` names, less those ``exclude`` names. A name is an op's aten name or alias;
    an in-place form is an op of its own (``exclude=["mul", "mul_"]`` leaves both to PyTorch)."""
    if isinstance(include, str) or isinstance(exclude, str):
        raise TypeError("include and exclude take a list of op names, not one string")
    chosen = _ops(include) if include is not None else None
    dropped = _ops(exclude or ())
    return tuple(op for op in dict.fromkeys(REGISTRY.values())
                 if (chosen is None or op in chosen) and op not in dropped)


NATIVE = os.environ.get("FLAGGEMS_EXP_NATIVE_DISPATCH", "1") != "0"
"""Whether ``enable()`` puts a C++ kernel replaying plans in front of each Python kernel it
registers (``runtime/native_dispatch.py``): yes unless FLAGGEMS_EXP_NATIVE_DISPATCH=0 (or this
set False before ``enable()``). Where the extension cannot be built, routing stays Python."""


def _route(ops):
    global _library, _routed
    disable()
    library = torch.library.Library("aten", "IMPL")
    native = NATIVE and native_dispatch.module() is not None
    registrations = _registrations(ops, offering=native)
    with warnings.catch_warnings():
        # overriding PyTorch's kernels is the point: silence its warning that we do
        warnings.filterwarnings("ignore", message=".*[Oo]verrid")
        for qualname, kernel, key in registrations:
            library.impl(qualname, kernel, key)
    if native:  # in front of the Python kernels just registered, which serve their misses
        for qualname, _, key in registrations:
            native_dispatch.route(qualname, key)
    _library, _routed = library, ops


def enable(include=None, exclude=None):
    """Route PyTorch's aten ops to flaggems_exp's kernels until ``disable()``: every registered
    op, or only the ``include`` names, less the ``exclude`` names (see ``selection``). Calling
    it again with another choice replaces the first."""
    ops = selection(include, exclude)
    if _library is None or ops != _routed:
        _route(ops)


def disable():
    """Restore PyTorch's own kernels for every op ``enable()`` replaced."""
    global _library, _routed
    if _library is not None:
        native_dispatch.unroute()  # first: its misses go to the Python kernels
        _library._destroy()
        _library, _routed = None, ()


def is_enabled():
    return _library is not None


def routed():
    """The names of the aten ops routed to flaggems_exp now (sorted; empty when disabled)."""
    return sorted(n for op in _routed for n in op.names)


@contextlib.contextmanager
def use_gems(include=None, exclude=None):
    """Route aten ops to flaggems_exp inside the block only (``include``/``exclude`` as in
    ``enable``); restores the previous state, the previous choice of ops included."""
    previous = _routed if is_enabled() else None
    enable(include, exclude)
    try:
        yield
    finally:
        if previous is None:
            disable()
        elif previous != _routed:
            _route(previous)
