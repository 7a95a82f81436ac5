"""Call plans replayed in C++ behind PyTorch's dispatcher, for calls routed by ``enable()``.

A routed call reaches our Python kernel through the dispatcher's boxed path: PyTorch converts
every argument to a Python object and back (a Python kernel doing nothing but allocate its
result costs 5.8 µs a call on an H200's host, eager's whole ``torch.sigmoid`` 4.6), and the
planned call's Python (matcher, allocation through ``torch.empty_strided``, launch) costs
several µs more. PyTorch's own kernels do the same work in C++ and allocate below
the dispatcher, so a model that calls many small ops runs slower routed than not. Here each
routed overload gets a C++ kernel at the backend key (``native_dispatch.cpp``), in front of the
Python one (and at the autograd key of CompositeImplicitAutograd ops, where it replays only calls
autograd would not record and sends those it records straight to PyTorch's decomposition, as
the Python kernel there would): a call matching a plan it holds is replayed there (key
compared, the written tensor's overlap checked, numbers encoded, tensors allocated through the
caching allocator, kernels launched with ``cuLaunchKernel``); any other call goes to the
Python kernel, which then offers the plan that served it (``offering``), exported from its
Python ``Plan``.

A plan is exported when every launch has our own launcher's packed parameters (compiled) or
runs in Triton's interpreter (then the C++ replay calls back into Python for the launch, which
is how the CPU suite tests this path); when every number it encodes is real (the range
checks of ``CheckedScalar`` are made in C++, with the rounding of a value checked into
float16 or bfloat16; a value out of range goes to the full path, which raises PyTorch's
error); when it allocates no
storage larger than its view and its op's key holds no storage sizes. Everything else stays
with the Python kernel. A C++ plan also holds PyTorch's default dtype when it was made (a
factory without ``dtype`` and an integer tensor's floating result take it): another one
misses. Plans live as long as the routes: ``enable()`` after ``disable()``
starts without any (the Python kernel offers each again on its signature's first call).

The extension is built with ``torch.utils.cpp_extension`` on first use (a minute, cached after
in PyTorch's extensions folder); where that fails ``module()`` is None and routing stays Python.
"""
import atexit
import functools
import os
import pathlib
import types

import torch

from .device import DEVICE, INTERPRETED
from .launch import INTERPRETING_HOOKS, LAUNCHES, interpreting
from .plans import Plan
from .triton_types import CheckedScalar

_SOURCE = pathlib.Path(__file__).with_name("native_dispatch.cpp")
_routes = {}  # (qualified aten name, dispatch key) -> route index in the C++ module
FAILURE = None
"""Why the extension could not be built or loaded, where it could not."""


def _cuda_flags():
    """(compile flags, include folders, link flags) for the CUDA stream API of ``c10_cuda``
    (the CUDA runtime's headers from Triton's NVIDIA backend, which ships them), or none of
    them: then the stream is read through c10's device-generic interface."""
    import triton

    torch_lib = pathlib.Path(torch.__file__).parent / "lib"
    headers = pathlib.Path(triton.__file__).parent / "backends" / "nvidia" / "include"
    if (headers / "cuda_runtime_api.h").exists() and list(torch_lib.glob("libc10_cuda.so*")):
        return (["-DFLAGGEMS_CUDA_STREAMS"], [str(headers)],
                [f"-L{torch_lib}", "-lc10_cuda", f"-Wl,-rpath,{torch_lib}"])
    return [], [], []


@functools.lru_cache(maxsize=None)
def module():
    """The built C++ module, or None (``FAILURE`` says why)."""
    global FAILURE
    try:
        from torch.utils import cpp_extension

        flags, includes, links = _cuda_flags() if DEVICE == "cuda" else ([], [], [])
        built = cpp_extension.load(
            name="flaggems_exp_dispatch", sources=[str(_SOURCE)],
            extra_cflags=["-O2", *flags], extra_include_paths=includes, extra_ldflags=links,
            verbose=os.environ.get("FLAGGEMS_EXP_BUILD_VERBOSE") == "1")
    except Exception as error:  # noqa: BLE001 - any failure keeps routing in Python
        FAILURE = error
        return None
    LAUNCHES.elsewhere = built.launch_count
    if INTERPRETED:
        INTERPRETING_HOOKS.append(built.set_interpreting)
    return built


def route(qualname, key):
    """Route aten ``qualname``'s calls at dispatch ``key`` through a C++ kernel whose misses
    go to the kernel registered there now."""
    if not _routes:
        # before Python's end, while the plans' Python objects can still be released
        atexit.register(unroute)
    _routes[qualname, key] = module().route(qualname, key)


def unroute():
    """Every C++ route removed: the kernels registered before them serve again."""
    if _routes:
        atexit.unregister(unroute)
        module().unroute()
        _routes.clear()


def stats():
    """``{qualified aten name: (plans, replays, misses)}`` of the C++ routes now (an op
    routed at two keys, a CompositeImplicitAutograd one's, sums them)."""
    built, found = module(), {}
    for (name, _), index in _routes.items():
        found[name] = tuple(a + b for a, b in zip(found.get(name, (0, 0, 0)), built.stats(index)))
    return found


class Spec:
    """A plan as the C++ route takes it (see ``export``)."""

    __slots__ = ("tensors", "encoded", "numbers_by_value", "device", "allocations", "launches",
                 "result", "written", "spans", "resized")


_NO_CHECK = (0, 0.0, 0.0, 0, 0, 0)
_ROUNDING = {torch.float16: 1, torch.bfloat16: 2}  # the C++ replay's codes


def _number_use(compute):
    """(encoding, range check) of a number reaching a kernel of ``compute`` (a dtype or a
    ``CheckedScalar``: see ``encode_scalar`` and ``checked_scalar``), as the C++ replay takes
    them, or None for what it does not encode: a complex. A check into float16 or bfloat16
    also rounds the value to that type (``checked_scalar``)."""
    check = _NO_CHECK
    if type(compute) is CheckedScalar:
        checked, compute = compute.checked, compute.compute
        if checked in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
            info = torch.finfo(checked)
            check = (1, info.min, info.max, 0, 0, _ROUNDING.get(checked, 0))
            if check[5] and not compute.is_floating_point:
                return None  # a rounded value is encoded as a float
        elif checked.is_floating_point or checked.is_complex:
            return None
        elif checked != torch.bool:
            info = torch.iinfo(checked)
            int_low = -info.max if checked == torch.uint8 else info.min
            check = (2, float(info.min), 0.0, int_low, info.max, 0)
    if compute.is_complex:
        return None
    if compute.is_floating_point:
        return 0, check
    return (1 if compute == torch.bool else 2), check


def export(op, positions, args, kwargs):
    """The C++ route's ``Spec`` of the plan that served ``op``'s call of ``args``, ``kwargs``
    (as the dispatcher passed them: ``out`` among the keywords), or None where no plan served
    it or its plan cannot be replayed there. ``positions``: each argument name's position in
    the overload's schema."""
    plan = op.plans.last
    if not isinstance(plan, Plan) or plan.matches is None or op.storage_in_key:
        return None
    out = kwargs.get("out")
    named = {k: v for k, v in kwargs.items() if k != "out"} if out is not None else kwargs
    if plan.matches(args, named, out) is None:  # another call's plan: not this signature's
        return None
    sources = [i for i, a in enumerate(args) if isinstance(a, torch.Tensor)]
    sources += [positions[k] for k, v in named.items() if isinstance(v, torch.Tensor)]
    if out is not None:
        sources.append(positions["out"])
    if any(len(made) == 6 for made in plan.made):
        return None  # a view of a larger new storage
    spec = Spec()
    spec.tensors = sources
    spec.numbers_by_value = op.numbers_by_value
    spec.device = -1 if plan.device_index is None else plan.device_index
    spec.allocations = [(False, made[0], made[1], made[2]) if len(made) == 4
                        else (True, (made[0],), (1,), torch.uint8) for made in plan.made]
    spec.launches, encoded = [], set()
    for launch in plan.launches:
        numbers = []
        for slot, (kind, where), compute in launch.numbers:
            use = _number_use(compute)
            if use is None:
                return None
            position = where if kind == "args" else positions[where]
            numbers.append((slot, position, *use))
            encoded.add(position)
        if INTERPRETED:
            spec.launches.append((None, (), numbers, launch.run,
                                  LAUNCHES.counter(launch.name)))
            continue
        if launch.native_spec is None:
            return None
        function, gx, gy, gz, block, shared, slots, changing = launch.native_spec
        slot_of = dict(zip(launch.changing, changing))
        spec.launches.append((
            (function, gx, gy, gz, block, shared, slots),
            [(slot_of[argument], base, offset) for argument, base, offset in launch.pointers],
            [(slot_of[argument], *use) for argument, *use in numbers],
            None, LAUNCHES.counter(launch.name)))
    spec.encoded = sorted(encoded)
    kind, index = plan.result
    spec.result = (kind == "new", index)
    spec.written = -1 if plan.written is None else plan.written
    spec.spans = list(plan.spans)
    # an out= without storage, resized first: (its index among the tensors, shape, strides)
    spec.resized = None if plan.resized is None else (len(sources) - 1, *plan.resized)
    return spec


@functools.lru_cache(maxsize=None)
def argument_positions(overload):
    """{argument name: position} of aten ``overload``'s schema, read once per process: every
    ``enable()`` asks again, and each read of a schema's arguments builds them anew (about
    20 µs an overload, a third of ``enable()``'s time before this cache). Read-only: every
    route of the overload shares it."""
    return types.MappingProxyType({a.name: i for i, a in enumerate(overload._schema.arguments)})


def offering(kernel, op, overload, autograd_key=False):
    """``kernel`` (our Python kernel for aten ``overload`` at the backend key, or with
    ``autograd_key`` at the autograd key of a CompositeImplicitAutograd op, whose kernel runs
    the op below autograd), offering the C++ route that called it on a miss the plan that
    served the call."""
    built = module()
    awaiting, offer = built.awaiting, built.offer
    positions = argument_positions(overload)

    def offers(*args, **kwargs):
        result = kernel(*args, **kwargs)
        if awaiting() and not interpreting():
            if autograd_key:  # the plan's guards hold the dispatch state it was made in
                with torch._C._AutoDispatchBelowAutograd():
                    spec = export(op, positions, args, kwargs)
            else:
                spec = export(op, positions, args, kwargs)
            if spec is not None:
                offer(spec)
        return result

    offers.__wrapped__ = kernel
    return offers
