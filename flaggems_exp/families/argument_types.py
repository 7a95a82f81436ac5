"""The argument types PyTorch's Python binding of an aten op takes, and its exception for others.

A direct call of an op stands for the call of ``torch.ops.aten.<name>``, whose binding converts
each argument to its schema type, trying the op's overloads in turn, before anything runs. An
argument no overload converts (a str for a Tensor, a float for an int, None where the schema
has no Optional) gets the binding's exception, whose message tells what each overload refused;
one it converts is not refused here, however unusual (a bool for an int, an int for a float, a
numpy integer, a dtype for an int). A tensor given for a number is read before, as the
functional binding (``torch.tril``) reads it (``base.numbers_of_tensors``).

Those rules are PyTorch's, and many: they are asked of PyTorch rather than copied. A test
generated per op (``quick_test``) vouches, in a few type comparisons, for a call made with the
types everyone uses (a tensor for a Tensor, an int or a bool for an int, a list of ints for an
int[], a dtype for a ScalarType...) in the positions and keywords of one of the op's dispatcher
overloads. Only a call it does not vouch for is put to PyTorch (``refusal``): the binding
resolves it against the op's overloads without running anything, and raises where it refuses.

The quick test leaves out what is no type: arguments beyond the most any overload takes,
keywords no overload names, required arguments not given, ``out=`` where no overload takes it.
The families raise their own errors for those. It runs on a call no plan served (``Op.unplanned``)
and not on the dispatcher's calls under ``enable()``, whose binding read the arguments. A plan
serves no call of another type than its own: a call's signature holds each Python number's type;
but it holds a list's elements by value, so that ``[2.0, 3]`` for an int[] takes the plan of a
call with ``[2, 3]`` (comparing the elements' types would cost every planned call with a list).
"""
import functools

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from ..runtime.plans import below_autograd

_Tensor = torch.Tensor
_inference_mode = torch.is_inference_mode_enabled
# the binding's own resolution of a call against an op's overloads (what Dynamo asks too)
_resolve = getattr(torch._C, "_jit_resolve_packet", None)
# the ops whose binding converts a Python number given for a Tensor (mul(x, 2), mul(2, x))
_numbers_as_tensors = getattr(torch._C, "_should_allow_numbers_as_tensors", lambda name: False)


@functools.lru_cache(maxsize=None)
def is_dispatcher_op(name, overload):
    """False for TorchScript-only overloads (``mul.int``, ``copy_.float``): not dispatcher ops.
    (aten's schemas are fixed once torch is imported: asked once per process.)"""
    try:
        torch._C._dispatch_find_schema_or_throw("aten::" + name,
                                                "" if overload == "default" else overload)
    except RuntimeError:
        return False
    return True


def dispatcher_schemas(name):
    """The schemas of aten ``name``'s dispatcher overloads, in the binding's order."""
    packet = getattr(torch.ops.aten, name, None)
    if packet is None:
        return ()
    return tuple(getattr(packet, o)._schema for o in packet.overloads()
                 if is_dispatcher_op(name, o))


# the classes vouched for a schema type, their subclasses included (a bool is an int, a numpy
# float64 a float: the binding converts both); a schema type not here is PyTorch's to judge. A
# Scalar ("number") is a float or an int, or a complex itself (not numpy's complex128)
_CLASSES = {"IntType": int, "SymIntType": int, "FloatType": (float, int),
            "NumberType": (float, int), "BoolType": bool, "StringType": str,
            "ScalarTypeType": torch.dtype, "LayoutType": torch.layout,
            "MemoryFormatType": torch.memory_format, "GeneratorType": torch.Generator}
# for a Tensor where the binding takes numbers too; the numbers first, as isinstance tries a
# tuple in order and a tensor is tested by its exact type first
_NUMBER_OR_TENSOR = (float, int, _Tensor)
# the element types vouched for in a list (exact types, compared one by one; a numpy integer or
# a tensor element is PyTorch's to judge)
_ELEMENTS = {"IntType": frozenset({int, bool}), "SymIntType": frozenset({int, bool}),
             "FloatType": frozenset({float, int, bool}), "BoolType": frozenset({bool})}


@functools.lru_cache(maxsize=64)
def names_a_device(text):
    """Whether a str given for a Device parses as one (``"cuda:0"``; the binding parses it as
    ``torch.device`` does, and refuses one that does not)."""
    try:
        torch.device(text)
    except RuntimeError:
        return False
    return True


def _constant(names, value):
    """The name of ``value`` among the generated test's ``names`` (one name per value)."""
    for name, known in names.items():
        if type(known) is type(value) and known == value:
            return name
    name = f"c{len(names)}"
    names[name] = value
    return name


def _checks(jit_type, value, names, numbers_as_tensors):
    """Source lines that ``break`` out of the enclosing block unless ``value`` (an expression)
    is vouched for as an argument of ``jit_type``; constants they name are put in ``names``."""
    kind = jit_type.kind()
    if kind == "OptionalType":
        inner = _checks(jit_type.getElementType(), value, names, numbers_as_tensors)
        return [f"if {value} is not None:", *("    " + line for line in inner)]
    if kind == "ListType":
        elements = _ELEMENTS.get(jit_type.getElementType().kind())
        if elements is None:
            return ["break"]
        # ``e`` is the element refused, else the ``vouched`` sentinel (an empty list too)
        return [f"if not isinstance({value}, sequences): break",
                f"for e in {value}:",  # an int first: most lists are of ints
                f"    if type(e) is not int and type(e) not in {_constant(names, elements)}:"
                " break",
                "else:",
                "    e = vouched",
                "if e is not vouched: break"]
    if kind == "DeviceObjType":
        return [f"if not (isinstance({value}, device) or "
                f"(type({value}) is str and names_a_device({value}))): break"]
    if kind == "TensorType" and numbers_as_tensors:
        return [f"if not (type({value}) is Tensor or isinstance({value}, "
                f"{_constant(names, _NUMBER_OR_TENSOR)}) or type({value}) is complex): break"]
    if kind == "NumberType":
        return [f"if not (isinstance({value}, {_constant(names, _CLASSES[kind])}) or "
                f"type({value}) is complex): break"]
    classes = _Tensor if kind == "TensorType" else _CLASSES.get(kind)
    if classes is None:
        return ["break"]
    return [f"if not isinstance({value}, {_constant(names, classes)}): break"]


def _overload_block(schema, given, every_name, names, numbers_as_tensors):
    """Source lines of a block that returns True where a call of ``given`` positional
    arguments (``a0``, ``a1``...), ``kwargs`` and ``out`` is vouched for as a call of the
    overload of ``schema`` (and breaks out of itself where not); None where the overload takes
    fewer positional arguments."""
    positional = [a for a in schema.arguments if not a.kwarg_only]
    if given > len(positional):
        return None
    lines = []
    for i, argument in enumerate(positional[:given]):
        lines += _checks(argument.real_type, f"a{i}", names, numbers_as_tensors)
    for argument in schema.arguments:
        if argument.name == "out":
            lines += _checks(argument.real_type, "out", names, numbers_as_tensors)
    # a keyword another overload names, and this one not; then the arguments a keyword may
    # give (one given positionally as well is the families' arity error)
    keywords = [f"if {name!r} in kwargs: break"
                for name in sorted(every_name - {a.name for a in schema.arguments})]
    for argument in [*positional[given:], *(a for a in schema.arguments if a.kwarg_only)]:
        if argument.name != "out":
            keywords += [f"if {argument.name!r} in kwargs:",
                         f"    value = kwargs[{argument.name!r}]"]
            keywords += ["    " + line for line in
                         _checks(argument.real_type, "value", names, numbers_as_tensors)]
    if keywords:
        lines += ["if kwargs:", *("    " + line for line in keywords)]
    lines.append("return True")
    return ["while True:", *("    " + line for line in lines)]


@functools.lru_cache(maxsize=None)
def quick_test(name):
    """``well_typed(args, kwargs, out)``, generated for aten ``name``: True for a call whose
    every argument is of a type vouched for (see the module's text) in one dispatcher
    overload; False leaves the call to ``refusal``. True for every call of a name aten does
    not have (no binding to follow)."""
    schemas = dispatcher_schemas(name)
    if not schemas:
        return lambda args, kwargs, out: True
    numbers_as_tensors = _numbers_as_tensors(name)
    most = max(sum(not a.kwarg_only for a in s.arguments) for s in schemas)
    every_name = frozenset(a.name for s in schemas for a in s.arguments if a.name != "out")
    takes_out = [s for s in schemas if any(a.name == "out" for a in s.arguments)]
    names = {"Tensor": _Tensor, "device": torch.device, "names_a_device": names_a_device,
             "sequences": (list, tuple), "vouched": object()}
    lines = ["def well_typed(args, kwargs, out):", "    n = len(args)"]
    # an out= where an overload takes one: the call is of those overloads (elsewhere: ignored)
    groups = [("out is None", [s for s in schemas if s not in takes_out]),
              ("out is not None", takes_out)] if takes_out else [("True", list(schemas))]
    for condition, group in groups:
        lines.append(f"    if {condition}:")
        branch = "if"
        for given in reversed(range(most + 1)):  # a call gives every argument, mostly
            blocks = [_overload_block(s, given, every_name, names, numbers_as_tensors)
                      for s in group]
            blocks = list(dict.fromkeys(map(tuple, filter(None, blocks))))  # each once
            if not blocks:
                continue
            lines.append(f"        {branch} n == {given}:")
            branch = "elif"
            if given:
                lines.append(f"            {', '.join(f'a{i}' for i in range(given))}, = args")
            lines += ["            " + line for block in blocks for line in block]
    # arguments beyond the most an overload takes: the families' arity error; the others' types
    lines += [f"    return n > {most} and well_typed(args[:{most}], kwargs, out)"]
    source = "\n".join(lines)
    exec(source, names)  # noqa: S102 - our own text, built from aten's schemas
    well_typed = names["well_typed"]
    well_typed.source = source
    return well_typed


def _on_meta(value):
    """A tensor as a tensor of the same dtype, shape and strides on the meta device, where
    nothing is read or written (in a list or a tuple too); any other value as it is."""
    if isinstance(value, _Tensor):
        return torch.empty_like(value, device="meta", requires_grad=value.requires_grad)
    if isinstance(value, (list, tuple)):
        return type(value)(map(_on_meta, value))
    return value


class _PastAutograd(Exception):
    """An undefined tensor got past PyTorch's autograd kernels, to a backend's kernel."""


class _UndefinedPastAutograd(TorchDispatchMode):
    """Stops a call where an undefined tensor (None for a Tensor) gets past PyTorch's autograd
    kernels: what they refuse is refused alike on every device, what a backend's kernel makes
    of it is that kernel's own (the meta device's may differ from the CPU's and CUDA's). The
    other calls run (a composite op's steps, on meta tensors: nothing is computed)."""

    @classmethod
    def _should_skip_dynamo(cls):
        return False  # nothing here is compiled: no need to import Dynamo to wrap the handler

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        arguments = func._schema.arguments
        given = {**dict(zip((a.name for a in arguments if not a.kwarg_only), args)), **kwargs}
        if any(given.get(a.name, 0) is None and a.real_type.kind() == "TensorType"
               for a in arguments):
            raise _PastAutograd
        return func(*args, **kwargs)


def refusal(name, args, kwargs, out):
    """The exception PyTorch raises, before anything runs, for a direct call of aten ``name``
    (``args`` and ``kwargs`` as the call gave them) that ``quick_test`` did not vouch for; None
    where PyTorch takes the call (an unusual type it converts), or where the dispatcher made
    the call (below autograd, outside inference mode: its binding read the arguments).

    That is the binding's own exception where it refuses an argument. The binding takes None
    for a Tensor (an undefined tensor), which PyTorch's autograd kernel of the op then refuses
    (``Expected a proper Tensor but got None``, its own or a composite op's step's): that
    exception, of the resolved overload called on meta tensors, so that nothing runs on the
    call's own tensors nor in our kernels (under enable()); an undefined tensor PyTorch's
    autograd kernels pass on is left to the op."""
    if _resolve is None or (below_autograd() and not _inference_mode()):
        return None
    if out is not None:
        kwargs = {**kwargs, "out": out}
    try:
        overload = _resolve("aten::" + name, *args, **kwargs)
    except Exception as error:  # noqa: BLE001 - the binding's exception, whichever it is
        return error
    overload = getattr(getattr(torch.ops.aten, name), overload or "default")
    arguments = overload._schema.arguments
    positional = [a for a in arguments if not a.kwarg_only]
    undefined = [a for a, v in zip(positional, args) if v is None] + [
        a for a in arguments if a.name in kwargs and kwargs[a.name] is None]
    if not any(a.real_type.kind() == "TensorType" for a in undefined):
        return None
    try:
        args, kwargs = [_on_meta(v) for v in args], {k: _on_meta(v) for k, v in kwargs.items()}
    except RuntimeError:  # a tensor with no meta twin (a layout meta tensors lack)
        return None
    try:
        with _UndefinedPastAutograd():
            overload(*args, **kwargs)
    except _PastAutograd:
        return None
    except Exception as error:  # noqa: BLE001 - PyTorch's exception, whichever it is
        return error
    return None
