"""The ops as custom operators of the ``flaggems_exp`` torch.library namespace, for torch.compile.

Dynamo cannot trace our host code (it reads data pointers, caches plans, launches kernels), so a
direct call that Dynamo traces (``torch.compiler.is_dynamo_compiling()``, not ``is_compiling()``,
which stays true while the compiler runs real ops, ours under ``enable()`` among them) is a call of
the custom operator ``torch.ops.flaggems_exp.<name>`` (``torch.ops.flaggems_exp_out.<name>`` with
``out=``): an opaque node of the graph that runs our op. Each overload of an op's aten name is
defined with the aten overload's schema, the alias annotations of in-place and ``out=`` forms
included so that AOTAutograd functionalizes them, with one change: an in-place or ``out=``
overload returns nothing, and ``traced_call`` returns the argument it wrote (what the aten
overload returns), because torch 2.11's functionalization rejects a custom operator whose output
aliases an input. Each is registered with:

- the kernel: the op itself (CompositeExplicitAutograd: factories have no tensor to dispatch on);
- the fake kernel: the aten overload run on the fake tensors, which gives PyTorch's result shape,
  dtype and strides and raises PyTorch's errors at trace time;
- autograd: for a functional overload, PyTorch's derivative, as the vector-Jacobian product of the
  aten overload recomputed from the saved inputs in backward (so backward runs PyTorch's forward
  once more, or Inductor's); an in-place or ``out=`` overload raises when a gradient is needed.

The ``out=`` overloads live in a namespace of their own: Inductor lowers a functional custom op
to an ``out=`` overload of the same name when one exists, and its generated call then passes the
non-tensor arguments twice, positionally and by keyword (torch 2.13: ``huber_loss.out(x, y, 1,
1.0, reduction=1, delta=1.0, out=buf0)`` raises).

Registering the ~270 overloads takes about a tenth of a second, too slow for import: they are
registered together the first time Dynamo looks one up in ``OPS`` or ``OUT_OPS``, modules whose
missing attributes Dynamo reads for real (module ``__getattr__``) while it traces.
"""
import sys
import types

import torch

from .autograd_calls import needs_grad

NAMESPACE, OUT_NAMESPACE = "flaggems_exp", "flaggems_exp_out"
_libraries = {}
_registered = set()  # the op objects registered as custom ops
_TENSOR = object()  # a saved input's place in the call


def _lazy_namespace(namespace):
    """A module standing for ``torch.ops.<namespace>`` that registers every op on first use."""
    module = types.ModuleType(f"{__name__}.{namespace}", f"torch.ops.{namespace}, registered "
                              "on first use")

    def find(name):
        if name.startswith("__"):
            raise AttributeError(name)
        _register_new_ops()
        packet = getattr(getattr(torch.ops, namespace), name)
        setattr(module, name, packet)
        return packet
    module.__getattr__ = find
    sys.modules[module.__name__] = module
    return module


OPS, OUT_OPS = _lazy_namespace(NAMESPACE), _lazy_namespace(OUT_NAMESPACE)


def traced_call(op, args, kwargs, out):
    """``op``'s direct call as Dynamo traces it: a call of its custom operator."""
    if out is not None:
        getattr(OUT_OPS, op.name)(*args, out=out, **kwargs)
        return out
    result = getattr(OPS, op.name)(*args, **kwargs)
    if result is None:  # an in-place overload: every aten one writes and returns self
        return args[0] if args else kwargs["self"]
    return result


def _register_new_ops():
    """Every registered op not yet a custom op becomes one (ops may be added after the first
    lookup; an op without aten twin has no schema to take and stays out)."""
    from .base import REGISTRY
    if not _libraries:
        _libraries.update((namespace, torch.library.Library(namespace, "DEF"))
                          for namespace in (NAMESPACE, OUT_NAMESPACE))
    for op in dict.fromkeys(REGISTRY.values()):
        if op in _registered:
            continue
        _registered.add(op)
        for name, overload_name in op.aten_overloads():
            if name == op.name:  # aliases call the op by its own name
                overload = getattr(getattr(torch.ops.aten, name), overload_name)
                namespace = OUT_NAMESPACE if _is_out(overload) else NAMESPACE
                _register(_libraries[namespace], op, overload)


def _is_out(overload):
    return any(a.is_out for a in overload._schema.arguments)


def _register(library, op, aten_overload):
    schema = aten_overload._schema
    name = schema.name.split("::")[1]
    qualname = name + (f".{schema.overload_name}" if schema.overload_name else "")
    definition = str(schema).split("::", 1)[1]
    if schema.is_mutable:  # untagged: an ``out``-tagged schema must return its outputs
        definition = definition.rsplit(" -> ", 1)[0] + " -> ()"
        op, aten_overload = _returning_nothing(op), _returning_nothing(aten_overload)
    library.define(definition)
    library.impl(qualname, op, "CompositeExplicitAutograd")
    torch.library.register_fake(f"{library.ns}::{qualname}", aten_overload, lib=library)
    custom = getattr(getattr(getattr(torch.ops, library.ns), name),
                     schema.overload_name or "default")
    if schema.is_mutable:
        library.impl(qualname, _mutating_autograd(custom, schema), "Autograd")
    else:
        torch.library.register_autograd(
            f"{library.ns}::{qualname}", _vjp_backward(aten_overload),
            setup_context=_save_inputs, lib=library)


def _returning_nothing(fn):
    def written(*args, **kwargs):
        fn(*args, **kwargs)
    return written


def _mutating_autograd(custom, schema):
    written = [i for i, a in enumerate(schema.arguments)
               if a.alias_info is not None and a.alias_info.is_write]
    names = [a.name for a in schema.arguments]

    def kernel(*args, **kwargs):
        if needs_grad(args, kwargs, None):
            raise RuntimeError(
                f"{custom}: in-place and out= forms of flaggems_exp ops do not support automatic "
                "differentiation under torch.compile; call the functional form")
        with torch._C._AutoDispatchBelowAutograd():
            result = custom(*args, **kwargs)
        # what ADInplaceOrView does for aten ops: saved tensors see the write
        torch.autograd.graph.increment_version(
            [args[i] if i < len(args) else kwargs[names[i]] for i in written])
        return result
    return kernel


def _save_inputs(ctx, inputs, output, keyword_only_inputs=None):
    ctx.inputs = [_TENSOR if isinstance(v, torch.Tensor) else v for v in inputs]
    ctx.keyword_only_inputs = keyword_only_inputs or {}
    ctx.save_for_backward(*[v for v in inputs if isinstance(v, torch.Tensor)])


def _vjp_backward(aten_overload):
    def backward(ctx, *grads):
        saved = iter(ctx.saved_tensors)
        inputs = [next(saved).detach().requires_grad_(need) if v is _TENSOR else v
                  for v, need in zip(ctx.inputs, ctx.needs_input_grad)]
        wanted = [v for v, need in zip(inputs, ctx.needs_input_grad) if need]
        with torch.enable_grad():
            outputs = aten_overload(*inputs, **ctx.keyword_only_inputs)
        outputs = (outputs,) if isinstance(outputs, torch.Tensor) else outputs
        pairs = [(o, g) for o, g in zip(outputs, grads) if o.requires_grad and g is not None]
        found = iter(torch.autograd.grad(
            [o for o, _ in pairs], wanted, [g for _, g in pairs], allow_unused=True,
            create_graph=torch.is_grad_enabled()) if pairs else [None] * len(wanted))
        return tuple(next(found) if need else None for need in ctx.needs_input_grad)
    return backward
