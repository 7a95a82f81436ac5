"""A launcher of our own for a call plan's launches: the kernel's parameters packed once, per call
only the pointers and numbers that change, then ``cuLaunchKernel``.

Triton's generated launcher (what ``launch.direct_launcher`` calls) parses every argument of
the kernel from a Python tuple on every call, constexprs and shape tuples included, runs the
launch hooks' checks and releases the GIL around the launch: 3.6-4.9 µs per call on an H200
for our skeletons, more than PyTorch's whole ``torch.sigmoid`` on a small tensor. A plan knows
which parameters change between calls (the pointers, the numbers encoded per call), so here
the others are packed once, when the plan is built, into one 8-byte slot per kernel parameter
(a parameter is read from its slot's first bytes: little-endian, as CUDA GPUs' hosts are),
and a call writes its changing values into a copy of those slots and launches.

The parameter list is Triton's: the kernel's arguments in order, tuples flattened, constexprs
left out, then the global and profile scratch pointers (null: plans only use this launcher for
kernels that need no scratch). Launches needing more than a plain ``cuLaunchKernel`` (clusters,
cooperative grids, programmatic dependent launch) keep Triton's launcher. The module is C
compiled on first use with the C compiler Triton uses for its own launchers and cached like
them; where that fails, plans keep Triton's launcher (``available()`` says which).
"""
import functools
import struct

_SOURCE = r"""
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlfcn.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* the driver API's types, as cuda.h declares them */
typedef int CUresult;
typedef int CUdevice;
typedef void *CUcontext, *CUfunction, *CUstream;

static CUresult (*cu_launch)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned,
                             unsigned, unsigned, CUstream, void **, void **);
static CUresult (*cu_ctx_get_current)(CUcontext *);
static CUresult (*cu_ctx_set_current)(CUcontext);
static CUresult (*cu_device_get)(CUdevice *, int);
static CUresult (*cu_primary_ctx_retain)(CUcontext *, CUdevice);
static CUresult (*cu_error_string)(CUresult, const char **);

#define MAX_SLOTS 128

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    CUfunction function;
    unsigned grid[3], block, shared;
    int device;
    Py_ssize_t slot_count, changing_count;
    uint64_t slots[MAX_SLOTS];
    Py_ssize_t changing[MAX_SLOTS];
} Launch;

static int driver_error(CUresult status) {
    const char *text = NULL;
    if (cu_error_string == NULL || cu_error_string(status, &text) != 0 || text == NULL)
        text = "unknown error";
    PyErr_Format(PyExc_RuntimeError, "Triton Error [CUDA]: %s", text);
    return -1;
}

/* the device's primary context made current where the thread has none yet (a thread that
   never called the CUDA runtime), as PyTorch's own launches would */
static int ensure_context(int device) {
    CUcontext context = NULL;
    CUresult status = cu_ctx_get_current(&context);
    if (status != 0) return driver_error(status);
    if (context != NULL) return 0;
    CUdevice handle;
    if ((status = cu_device_get(&handle, device)) != 0) return driver_error(status);
    if ((status = cu_primary_ctx_retain(&context, handle)) != 0) return driver_error(status);
    if ((status = cu_ctx_set_current(context)) != 0) return driver_error(status);
    return 0;
}

/* launch(stream, *changing values): each value an int, written into its slot */
static PyObject *launch_call(PyObject *object, PyObject *const *args, size_t nargsf,
                             PyObject *kwnames) {
    Launch *self = (Launch *)object;
    Py_ssize_t count = PyVectorcall_NARGS(nargsf);
    if (kwnames != NULL || count != self->changing_count + 1) {
        PyErr_Format(PyExc_TypeError, "a launch takes the stream and %zd values",
                     self->changing_count);
        return NULL;
    }
    uint64_t values[MAX_SLOTS];
    void *params[MAX_SLOTS];
    memcpy(values, self->slots, (size_t)self->slot_count * sizeof(uint64_t));
    CUstream stream = (CUstream)(uintptr_t)PyLong_AsUnsignedLongLongMask(args[0]);
    for (Py_ssize_t i = 0; i < self->changing_count; i++)
        values[self->changing[i]] = PyLong_AsUnsignedLongLongMask(args[i + 1]);
    if (PyErr_Occurred()) return NULL;
    for (Py_ssize_t i = 0; i < self->slot_count; i++) params[i] = &values[i];
    if (ensure_context(self->device) < 0) return NULL;
    CUresult status = cu_launch(self->function, self->grid[0], self->grid[1], self->grid[2],
                                self->block, 1, 1, self->shared, stream, params, NULL);
    if (status != 0) {
        driver_error(status);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyTypeObject LaunchType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "flaggems_exp_launch.Launch",
    .tp_basicsize = sizeof(Launch),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(Launch, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_doc = "one kernel's launch with its parameters packed",
};

static int load_driver(void) {
    if (cu_launch != NULL) return 0;
    void *library = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
    if (library == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "libcuda.so.1 could not be opened");
        return -1;
    }
    *(void **)&cu_ctx_get_current = dlsym(library, "cuCtxGetCurrent");
    *(void **)&cu_ctx_set_current = dlsym(library, "cuCtxSetCurrent");
    *(void **)&cu_device_get = dlsym(library, "cuDeviceGet");
    *(void **)&cu_primary_ctx_retain = dlsym(library, "cuDevicePrimaryCtxRetain");
    *(void **)&cu_error_string = dlsym(library, "cuGetErrorString");
    *(void **)&cu_launch = dlsym(library, "cuLaunchKernel");
    if (!cu_ctx_get_current || !cu_ctx_set_current || !cu_device_get || !cu_primary_ctx_retain
            || !cu_error_string || !cu_launch) {
        cu_launch = NULL;
        PyErr_SetString(PyExc_RuntimeError, "libcuda.so.1 lacks a function the launcher calls");
        return -1;
    }
    return 0;
}

/* make(function, grid_x, grid_y, grid_z, block, shared, device, slots, changing) */
static PyObject *make(PyObject *module, PyObject *args) {
    unsigned long long function;
    unsigned grid_x, grid_y, grid_z, block, shared;
    int device;
    Py_buffer slots;
    PyObject *changing;
    if (!PyArg_ParseTuple(args, "KIIIIIiy*O!", &function, &grid_x, &grid_y, &grid_z, &block,
                          &shared, &device, &slots, &PyTuple_Type, &changing))
        return NULL;
    Py_ssize_t slot_count = slots.len / (Py_ssize_t)sizeof(uint64_t);
    Py_ssize_t changing_count = PyTuple_GET_SIZE(changing);
    if (slots.len % (Py_ssize_t)sizeof(uint64_t) || slot_count > MAX_SLOTS
            || changing_count > slot_count) {
        PyBuffer_Release(&slots);
        PyErr_SetString(PyExc_ValueError, "too many kernel parameters");
        return NULL;
    }
    if (load_driver() < 0) {
        PyBuffer_Release(&slots);
        return NULL;
    }
    Launch *self = PyObject_New(Launch, &LaunchType);
    if (self == NULL) {
        PyBuffer_Release(&slots);
        return NULL;
    }
    self->vectorcall = launch_call;
    self->function = (CUfunction)(uintptr_t)function;
    self->grid[0] = grid_x;
    self->grid[1] = grid_y;
    self->grid[2] = grid_z;
    self->block = block;
    self->shared = shared;
    self->device = device;
    self->slot_count = slot_count;
    self->changing_count = changing_count;
    memcpy(self->slots, slots.buf, (size_t)slots.len);
    PyBuffer_Release(&slots);
    for (Py_ssize_t i = 0; i < changing_count; i++) {
        Py_ssize_t slot = PyLong_AsSsize_t(PyTuple_GET_ITEM(changing, i));
        if (slot < 0 || slot >= slot_count) {
            Py_DECREF(self);
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "no such slot");
            return NULL;
        }
        self->changing[i] = slot;
    }
    return (PyObject *)self;
}

static PyMethodDef methods[] = {
    {"make", make, METH_VARARGS, "a Launch of one compiled kernel"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_definition = {
    PyModuleDef_HEAD_INIT, "flaggems_exp_launch", NULL, -1, methods,
};

PyMODINIT_FUNC PyInit_flaggems_exp_launch(void) {
    if (PyType_Ready(&LaunchType) < 0) return NULL;
    return PyModule_Create(&module_definition);
}
"""

MAX_SLOTS = 128


@functools.lru_cache(maxsize=None)
def _module():
    """The compiled C module, or None where it cannot be built or loaded."""
    try:
        from triton.runtime.build import compile_module_from_src
        return compile_module_from_src(_SOURCE, "flaggems_exp_launch")
    except Exception:  # noqa: BLE001 - any failure keeps Triton's own launcher
        return None


def available():
    """Whether plans launch through this launcher (else through Triton's)."""
    return _module() is not None


_MASK = (1 << 64) - 1
_FLOAT_FORMATS = {"fp16": "<e", "fp32": "<f", "fp64": "<d"}


def _packed(value, kind):
    """A kernel parameter's 8-byte slot: its bytes as Triton's launcher passes them, zeros after."""
    if kind[0] == "*":
        if value is not None and not isinstance(value, int):
            raise TypeError("a fixed pointer parameter")
        return (value or 0).to_bytes(8, "little")
    if kind in _FLOAT_FORMATS:
        return struct.pack(_FLOAT_FORMATS[kind], value).ljust(8, b"\0")
    if kind == "bf16":  # Triton's launcher keeps a float32's top half (truncated)
        return struct.pack("<f", value)[2:].ljust(8, b"\0")
    if kind[0] in "iu" and kind[1:].isdigit():
        return (int(value) & _MASK).to_bytes(8, "little")
    raise TypeError(f"a parameter of type {kind}")


def _leaves(kind, value):
    """(type, value) of every parameter an argument becomes: tuples flattened."""
    if isinstance(kind, tuple):
        for k, v in zip(kind, value, strict=True):
            yield from _leaves(k, v)
    else:
        yield kind, value


def parameter_slots(signature, values, changing):
    """``(slots, slot of each changing argument)``: the packed parameters of a kernel whose
    arguments have the types ``signature`` (Triton's: one per argument in order, tuples for
    tuple arguments, "constexpr" for what is not a parameter) and the recorded ``values``;
    ``changing`` are the indices of the arguments a call gives anew (they are neither tuples
    nor constexprs). Raises TypeError for a parameter this launcher cannot pass."""
    if len(signature) != len(values):
        raise TypeError("the signature does not match the arguments")
    slots, slot_of = [], {}
    for index, (kind, value) in enumerate(zip(signature, values)):
        if index in changing:
            if isinstance(kind, tuple) or kind == "constexpr":
                raise TypeError("a changing argument that is not one parameter")
            slot_of[index] = len(slots)
            slots.append(bytes(8))
            continue
        for leaf_kind, leaf in _leaves(kind, value):
            if leaf_kind != "constexpr":
                slots.append(_packed(leaf, leaf_kind))
    slots += [bytes(8), bytes(8)]  # the global and profile scratch pointers: none
    if len(slots) > MAX_SLOTS:
        raise TypeError("too many kernel parameters")
    return b"".join(slots), tuple(slot_of[i] for i in sorted(changing))


def launch_spec(compiled, grid, values, changing):
    """``(function, grid x, y, z, threads per block, shared bytes, packed slots, slot of each
    changing argument)`` of a launch of ``compiled`` (a Triton ``CompiledKernel``, loaded) over
    ``grid`` (three dims), or None where a plain ``cuLaunchKernel`` with these slots cannot make
    it (then a plan keeps Triton's launcher)."""
    metadata = getattr(compiled, "metadata", None)
    if (metadata is None or getattr(metadata, "num_ctas", 1) != 1
            or getattr(metadata, "launch_cooperative_grid", False)
            or getattr(metadata, "launch_pdl", False) or not compiled.function):
        return None
    signature = getattr(compiled.src, "signature", None)
    if not isinstance(signature, dict):
        return None
    try:
        slots, changing_slots = parameter_slots(list(signature.values()), values, set(changing))
    except (TypeError, ValueError, OverflowError):
        return None
    return (compiled.function, *grid, 32 * metadata.num_warps, metadata.shared, slots,
            changing_slots)


def launcher(spec, device_index):
    """A launch made from ``spec`` (``launch_spec``), called as ``launch(stream, *values of the
    changing arguments in argument order)``; None where this launcher cannot make it (then the
    plan keeps Triton's)."""
    module = _module()
    if module is None or device_index is None or spec is None:
        return None
    try:
        return module.make(*spec[:6], device_index, *spec[6:])
    except (TypeError, ValueError, OverflowError, RuntimeError):
        return None
