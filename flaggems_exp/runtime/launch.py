"""Kernel launches: every family launches through ``launch``, which counts the launch and, while a
call plan is being built (``plans.py``), records it so that later calls of the same signature can
replay it through the compiled kernel's own launcher.

Triton's public launch, ``kernel[grid](*args)``, costs about 8 µs of host time per call on an
H200 (binding, a cache key built from a stringified options dict, launch hooks); the compiled
kernel's launcher, called with the arguments in order, about 3. That launcher's positional
contract is internal to Triton and has changed between releases, so it is checked once, against
the release read here (``FAST_LAUNCH``); on any other Triton every launch takes the public path:
slower, never wrong. The interpreter (no GPU) always takes the public path.
"""
import contextlib
import collections.abc
import functools
import inspect
import threading

import numpy
import torch
import triton

from .device import INTERPRETED

class LaunchCounts(collections.abc.Mapping):
    """Launches per op name (0 for a name never launched). Each name's count lives in a cell of
    its own, a one-element list, so a call plan adds to it without a lookup by name."""

    def __init__(self):
        self._cells = {}
        self._ids = {}
        self.elsewhere = None  # counter id -> launches counted outside Python (native_dispatch)

    def cell(self, name):
        return self._cells.setdefault(name, [0])

    def counter(self, name):
        """A small integer standing for ``name``, for launches counted outside Python."""
        self.cell(name)
        return self._ids.setdefault(name, len(self._ids))

    def __getitem__(self, name):
        cell = self._cells.get(name)
        count = cell[0] if cell else 0
        if self.elsewhere is not None and name in self._ids:
            count += self.elsewhere(self._ids[name])
        return count

    def __iter__(self):
        return iter(self._cells)

    def __len__(self):
        return len(self._cells)


LAUNCHES = LaunchCounts()
"""Triton kernel launches per op name: the proof, in tests, that our kernel ran. An in-place
form counts under its functional op's name (``sigmoid_`` under ``sigmoid``): they share the
kernel."""

_state = threading.local()  # ``recorder``: the plan being built on this thread, if any
# (and ``interpreting``: Triton's interpreter is running one of our launches on this thread)


INTERPRETING_HOOKS = []
"""Functions told (True, then False) when this thread's interpreter starts and ends a launch:
dispatcher kernels outside Python (``native_dispatch``) leave the interpreter's own tensor ops
to ATen."""


def _mark_interpreting(on):
    for hook in INTERPRETING_HOOKS:
        hook(on)
    return True


def interpreting():
    """Whether Triton's interpreter is running one of our launches on this thread: the tensor
    ops it makes meanwhile (``copy_`` between its host copies of the arguments and the
    arguments) are its own bookkeeping, ATen's to run even under ``enable()``."""
    return getattr(_state, "interpreting", False)


def _launcher_contract():
    """Whether this Triton's compiled kernels can be launched directly, as read in triton 3.6:
    ``CompiledKernel.run`` is a ``CudaLauncher`` whose ``launch`` takes (gridX, gridY, gridZ,
    stream, function, cooperative, pdl, global scratch, profile scratch, packed metadata, launch
    metadata, enter hook, exit hook, *kernel arguments in signature order)."""
    if INTERPRETED or tuple(int(v) for v in triton.__version__.split(".")[:2]) != (3, 6):
        return False
    try:
        from triton.backends.nvidia.driver import CudaLauncher
        from triton.compiler.compiler import CompiledKernel
    except ImportError:
        return False
    return all(hasattr(CompiledKernel, a) for a in ("run", "_init_handles")) and callable(
        getattr(CudaLauncher, "__call__", None))


FAST_LAUNCH = _launcher_contract()


_interpreter_lock = threading.RLock()  # reentrant: a launch may copy_, which may launch


# what a launch asks to find the CUDA device it runs on (absent from CPU-only builds of torch)
_current_device = getattr(torch._C, "_cuda_getDevice", None)
_device_guard = torch.cuda.device


def device_guard(index):
    """A context making CUDA device ``index`` the current one, or None where it already is (or
    ``index`` is -1, a CPU tensor's). Triton compiles, loads and launches a kernel on the
    current device, on that device's current stream; PyTorch's kernels run under a guard
    setting the current device to their tensors' device, so a kernel for tensors on cuda:1
    called while cuda:0 is current must be launched under one too. Leaving the guard restores
    the previous device without creating a context there (``torch.cuda.device``)."""
    if index < 0 or index == _current_device():
        return None
    return _device_guard(index)


def run_kernel(kernel, grid, args, options):
    """``kernel[grid](*args, **options)`` on the device of ``args[0]`` (every skeleton's first
    argument is the tensor it writes). The interpreter keeps global state per launch, so
    its launches run one at a time (compiled launches stay concurrent); and its numpy warns on
    the inf/NaN that valid inputs produce (log of a negative, 0/0) where PyTorch does not, so
    those warnings are silenced for the launch alone (the user's own settings stay)."""
    if INTERPRETED:
        with _interpreter_lock, numpy.errstate(all="ignore"):
            _state.interpreting = True
            marked = INTERPRETING_HOOKS and _mark_interpreting(True)
            try:
                return kernel[grid](*args, **options)
            finally:
                _state.interpreting = False
                if marked:
                    _mark_interpreting(False)
    guard = device_guard(args[0].get_device())
    if guard is None:
        return kernel[grid](*args, **options)
    with guard:
        return kernel[grid](*args, **options)


# Compiled kernels keep float32 subnormal numbers, as PyTorch's CUDA kernels do (nvcc builds
# them without -ftz): by default Triton links libdevice with its flush-to-zero branches taken
# (the NVIDIA backend's ``enable_reflect_ftz``), so rsqrt(1e-40) is inf, log(1e-40) -inf and
# log1p(1e-40) 0 where PyTorch gives 1e20, -92.1 and 1e-40. They also contract a * b + c into
# one fused multiply-add, as nvcc does by default (-fmad=true) in PyTorch's kernels and in the
# compiled code our written-out math follows: said, not left to Triton's default, which Triton
# 3.10 turns off (3.9 warns of it). Recorded with each launch, so a plan's replay runs
# the same compiled kernel.
COMPILE_OPTIONS = {} if INTERPRETED else {"enable_reflect_ftz": False, "enable_fp_fusion": True}


def flushing_subnormals():
    """Launch options that take libdevice's flush-to-zero branches after all (Triton's default),
    for launches proven to give the same results with them (none in the interpreter)."""
    return {} if INTERPRETED else {"enable_reflect_ftz": True}


def launch(name, kernel, grid, *args, **options):
    """``kernel[grid](*args, **options)``, counted for ``name`` and recorded for a call plan
    (compiled with ``COMPILE_OPTIONS`` where ``options`` do not say otherwise)."""
    options = {**COMPILE_OPTIONS, **options}
    compiled = run_kernel(kernel, grid, args, options)
    LAUNCHES.cell(name)[0] += 1
    recorder = getattr(_state, "recorder", None)
    if recorder is not None:
        recorder.launches.append(Recorded(name, kernel, tuple(grid), args, options, compiled))
    return compiled


def load_ahead(kernel, grid, *args, **options):
    """Compile and load, without launching, the kernel that ``launch`` with these arguments
    would launch. A call launching several kernels loads the later ones first: the first may
    fail a device-side assertion, and a module loaded after that (CUDA reports the error to
    every later driver call) would raise at the call, where PyTorch's kernels return and
    report it at the next synchronization. Nothing to do in the interpreter."""
    if INTERPRETED:
        return
    options = {**COMPILE_OPTIONS, **options}
    guard = device_guard(args[0].get_device())
    with guard if guard is not None else contextlib.nullcontext():
        load_kernel(kernel, grid, args, options)


def load_kernel(kernel, grid, args, options):
    """Compile ``kernel`` for these arguments and load it onto the device. Tools that compile
    without a GPU replace it (and ``run_kernel``) with a compilation alone."""
    compiled = kernel.warmup(*args, grid=grid, **options)
    init_handles = getattr(compiled, "_init_handles", None)  # Triton loads lazily
    if init_handles is not None:
        init_handles()


class Recorded:
    """One launch as the public path made it: enough to make it again with other pointers."""

    __slots__ = ("name", "kernel", "grid", "args", "options", "compiled", "numbers")

    def __init__(self, name, kernel, grid, args, options, compiled):
        self.name, self.kernel, self.grid = name, kernel, grid
        self.args, self.options, self.compiled = args, options, compiled
        self.numbers = {}  # argument index -> (its source in the call, compute dtype)

    def arguments(self):
        """Every kernel parameter's value in signature order (defaults filled in), and the
        launch options (num_warps...) that are not parameters."""
        params = _parameters(self.kernel)
        values = list(self.args)
        for param in params[len(values):]:
            values.append(self.options[param.name] if param.name in self.options
                          else param.default)
        names = {p.name for p in params}
        options = {k: v for k, v in self.options.items() if k not in names}
        return values, options


@functools.lru_cache(maxsize=None)
def _parameters(kernel):
    """A kernel's parameters (compiled and interpreted kernels both keep the Python function)."""
    return list(inspect.signature(kernel.fn).parameters.values())


def direct_launcher(recorded):
    """``(launch, grid, fixed)`` to launch ``recorded``'s compiled kernel through its own
    launcher, skipping Triton's per-call binding, as
    ``launch(*grid, stream, *fixed, *kernel arguments in signature order)``; None where the
    contract does not hold (then a plan launches through ``kernel[grid]``)."""
    compiled = recorded.compiled
    if not FAST_LAUNCH or compiled is None or not hasattr(compiled, "packed_metadata"):
        return None
    runner = compiled.run  # loads the module on first use
    raw = getattr(runner, "launch", None)
    if raw is None or getattr(runner, "global_scratch_size", 1) or getattr(
            runner, "profile_scratch_size", 1):
        return None
    grid = (tuple(recorded.grid) + (1, 1))[:3]
    # function, cooperative grid, PDL, global and profile scratch, metadata, launch metadata
    # and the enter/exit hooks (None: no hook runs)
    fixed = (compiled.function, runner.launch_cooperative_grid, runner.launch_pdl, None, None,
             compiled.packed_metadata, None, None, None)
    return raw, grid, fixed


def current_stream(device_index):
    """The raw handle of the current CUDA stream of a device (what Triton itself launches on)."""
    return torch._C._cuda_getCurrentRawStream(device_index)
