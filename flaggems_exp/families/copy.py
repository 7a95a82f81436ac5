"""CopyOp: a tensor's values (or a number) written, converted, into a new tensor or into self.

A copy is PyTorch's identity on PointwiseOp's strided skeleton, which it borrows rather than
owning a kernel: the source is read through its strides and broadcast, converted once into the
destination's dtype and stored through the destination's strides. ``write`` is that launch;
the creation family fills through it too, a Python number being the skeleton's scalar operand.
A copy within one dtype whose source runs along another dim than the destination (a transpose,
a permutation) takes the gather skeleton's transposed tiles instead, where the flat walk of the
destination would read the source with a large stride.
"""

import torch
import triton
import triton.language as tl  # noqa: F401  (Triton requires it in a jit function's module)
from torch._C import DispatchKey

from ..runtime import errors, geometry
from ..runtime.device import DEVICE
from ..runtime.dtypes import HALF
from ..runtime.plans import not_replayable, whole_storage
from ..runtime.triton_types import TL_DTYPE
from .base import Op, check_keywords, check_out_accepted
from .gather_kernel import launch_gather, transposes
from .pointwise import launch


@triton.jit
def identity(x):
    return x


_NUMBER_DTYPE = {bool: torch.bool, int: torch.int64, float: torch.float64,  # as PyTorch wraps them
                 complex: torch.complex128}
_SAME_WIDTH = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def movable(dst, src):
    """Whether ``write`` moves ``src`` values into a ``dst`` tensor: between dtypes the kernel
    converts, or within any one real dtype (float8, uint16... too): the bits move unchanged."""
    return dst in TL_DTYPE and src in TL_DTYPE or dst == src and not dst.is_complex


def check_movable(op_name, dst, src):
    if not movable(dst, src):
        raise errors.dtype_not_covered(op_name, dst if dst not in TL_DTYPE else src)


def _compute_dtype(src, dst):
    """The dtype a value passes through on its way from ``src`` to ``dst``: its own, except
    that PyTorch converts to and from float16/bfloat16 through float32 (so float64 -> float16
    rounds twice, as c10's conversions do)."""
    return torch.float32 if src in HALF or dst in HALF else src


def _bits(t):
    return t.view(_SAME_WIDTH[t.element_size()])


def check_device(op, out):
    """Refuses an ``out`` on a device our kernels do not run on (a factory's device=)."""
    if out.device.type != DEVICE:
        raise errors.NotCovered(f"flaggems_exp.{op.name}: the kernels run on {DEVICE} tensors, "
                                f"not on {out.device.type} ones")


def write(op, out, source):
    """``out[...] = source`` (a tensor broadcast to out's shape, or a number), converted to
    out's dtype, through out's strides; one launch of the pointwise skeleton with the identity
    as its math, counted for ``op``. A copy within one dtype moves bits, through integer views
    of the dtype's width; so does a zero fill (zero bits in every dtype, complex included)."""
    result = out
    if out.numel() == 0:
        return result
    check_device(op, out)
    is_tensor = isinstance(source, torch.Tensor)
    if is_tensor and source.dtype == out.dtype and not out.is_complex() and (
            out.is_floating_point() or out.dtype not in TL_DTYPE):
        out, source = _bits(out), _bits(source)
    elif not is_tensor and type(source) is int and source == 0 and out.dtype not in TL_DTYPE:
        out = (torch.view_as_real(out.conj() if out.is_conj() else out) if out.is_complex()
               else _bits(out))
    src_dtype = source.dtype if is_tensor else _NUMBER_DTYPE[type(source)]
    check_movable(op.name, out.dtype, src_dtype)
    compute = _compute_dtype(src_dtype, out.dtype)
    shape = tuple(out.shape)
    in_strides = geometry.expanded_strides(source, shape) if is_tensor else None
    if (is_tensor and src_dtype == out.dtype and out.dtype in TL_DTYPE
            and transposes(shape, out.stride(), in_strides)):
        launch_gather(op.name, out, source, shape, out.stride(), in_strides,
                      [None] * len(shape))
    else:
        launch(op.name, identity, out, shape, out.stride(), [source], (), compute)
    return result


def computed_apart(op, out, inputs, new, compute):
    """``compute(target)``, a launch writing a result into ``target``, run for ``out``: into out
    itself, or, where out shares memory with one of the ``inputs`` the launch reads, into a new
    tensor (``new()``) then written into out. So out gets the values of an out apart from the
    inputs, where a kernel writing it directly would read elements it had already written."""
    if not any(geometry.memory_overlaps(out, t) for t in inputs):
        compute(out)
        return
    apart = new()
    compute(apart)
    write(op, out, apart)


def native_copy_(self, src, non_blocking=False):
    """ATen's own copy_, reached past the kernel ``enable()`` registers for it (copy_ is a
    CompositeExplicitAutograd op: its native kernel sits under that key, not under CPU/CUDA)."""
    not_replayable()  # ATen's kernel, not ours: a call plan would miss it
    return torch.ops.aten.copy_.default._op_dk(
        DispatchKey.CompositeExplicitAutograd, self, src, non_blocking)


def _same_data(a, b):
    """PyTorch's early exit of copy_: the very same elements, nothing to do."""
    return (a.data_ptr() == b.data_ptr() and a.dtype == b.dtype and a.shape == b.shape
            and a.stride() == b.stride() and geometry.same_storage(a, b))


class CopyOp(Op):
    """Copies: ``like``-shaped results holding a source's values, converted to like's dtype.

    Declare on a subclass:
      view(*args)  validate the op's arguments (PyTorch's errors; nothing is written before) and
                   return the tensor to copy: an argument or a view of it (t_copy: ``self.t()``).
      layout       how a new result is laid out: "contiguous" (PyTorch's view_copy ops clone
                   their view contiguous), "preserve" (``clone()``: a dense source keeps its
                   strides, others get dense strides in the same order) or "storage" (``copy``:
                   self's whole storage cloned and viewed with self's sizes, strides and offset).
    The general form is ``copy_arguments(*args) -> (like, src, non_blocking)``: the result has
    like's shape, dtype and layout and src's values broadcast to it (``view`` ops copy the view
    into its own likeness). ``copy`` binds (self, src); its derived in-place form is PyTorch's
    ``copy_``, with copy_'s rules: nothing to do for the same elements; self must not overlap
    itself nor partly src (dense pairs only, as PyTorch); src broadcasts to self, never the
    reverse; any dtype converts (float -> int truncates, -> bool is != 0). Transfers between
    devices, and conversions the kernel lacks (complex, float8...), are ATen's own copy_:
    under ``enable()`` copy_ also serves every ``.to()``/``.cuda()``/``.cpu()``.
    """

    family = "CopyOp"
    moves_any_tensor = True  # ``movable`` decides, and ATen's copy_ transfers between devices
    layout = "contiguous"
    reference_in_float64 = False  # data movement: PyTorch's own result is the reference

    def view(self, x):
        return x

    def copy_arguments(self, *args, **kwargs):
        src = self.view(*args, **kwargs)
        return src, src, False

    def call_out(self, args, kwargs, out, inplace):
        check_keywords(self, kwargs)
        if not inplace:
            check_out_accepted(self, out)
        like, src, non_blocking = self.copy_arguments(*args, **kwargs)
        is_tensor = isinstance(src, torch.Tensor)
        if inplace and is_tensor:
            if src is like or _same_data(like, src):
                return like
            if not movable(like.dtype, src.dtype) or src.device != like.device:
                # ATen's copy: transfers, and dtypes without a kernel here
                return native_copy_(like, src, non_blocking)
        check_movable(self.name, like.dtype, src.dtype if is_tensor else _NUMBER_DTYPE[type(src)])
        if inplace:
            if like.numel() and geometry.has_internal_overlap(like):
                raise errors.internal_overlap()
            if is_tensor and geometry.partially_overlaps(like, src):
                raise errors.partial_overlap()
        if is_tensor:
            shape = torch._C._infer_size(like.shape, src.shape)  # TensorIterator's message
            if shape != like.shape:
                raise errors.broadcast_mismatch(like.shape, shape)
        if inplace:
            return write(self, like, src)
        if out is None:
            out = self.new(like)
        else:
            # PyTorch's out= of a copy resizes out (contiguous), then copy_s the result into
            # it: copy_'s rule that the written tensor must not overlap itself applies
            geometry.wrapper_out(out, like.dtype, like.shape)
            if is_tensor and src.numel() and out.numel() and geometry.same_storage(out, src):
                src = write(self, torch.empty_like(src), src)  # as PyTorch: via a temporary
        if is_tensor and src.device != out.device:
            return native_copy_(out, src, non_blocking)
        return write(self, out, src)

    def new(self, like):
        """An uninitialised result for ``like``'s values, laid out as ``layout`` says."""
        if self.layout == "contiguous":
            return torch.empty(like.shape, dtype=like.dtype, device=like.device)
        if self.layout == "preserve" or geometry.has_internal_overlap(like):
            return torch.empty_like(like)
        # self's storage size and offset are in the signature (``storage_in_key``): a plan
        # allocates the same storage and writes it whole, as here
        numel = like.untyped_storage().nbytes() // like.element_size()
        storage = torch.empty(numel, dtype=like.dtype, device=like.device)
        if like.numel() < numel:  # the elements outside the view keep self's values
            write(self, storage, like.as_strided((numel,), (1,), 0))
        return whole_storage(storage.as_strided(like.shape, like.stride(), like.storage_offset()))
