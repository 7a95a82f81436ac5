"""Shapes, strides and memory overlap: everything a launch needs to know about tensor layout."""
import warnings

import torch

from . import errors


def broadcast_shape(shapes):
    """PyTorch's broadcast of several shapes, raising its message on a mismatch."""
    first = tuple(shapes[0])
    if all(tuple(s) == first for s in shapes[1:]):
        return first
    result = torch.Size(first)
    for shape in shapes[1:]:
        # TensorIterator's own message on a mismatch, and far cheaper than broadcast_shapes
        result = torch._C._infer_size(result, torch.Size(shape))
    return tuple(result)


def expanded_strides(t, shape):
    """Strides of ``t`` broadcast to ``shape`` (stride 0 along broadcast dims), without a copy."""
    pad = len(shape) - t.dim()
    strides = [0] * pad + list(t.stride())
    sizes = [1] * pad + list(t.shape)
    return tuple(0 if sz == 1 and n != 1 else st for sz, st, n in zip(sizes, strides, shape))


def collapse(shape, strides_list):
    """Drop size-1 dims and merge neighbours that every operand walks contiguously.

    Returns the reduced shape and the matching strides of each operand; a dense, same-layout
    set of operands collapses to a single dim, the kernel's flat fast path.
    """
    dims = [i for i, n in enumerate(shape) if n != 1]
    out_shape = [shape[i] for i in dims]
    out_strides = [[s[i] for i in dims] for s in strides_list]
    k = len(out_shape) - 1
    while k > 0:
        # merge dim k into dim k-1 when stride[k-1] == stride[k] * size[k] for every operand
        if all(st[k - 1] == st[k] * out_shape[k] for st in out_strides):
            out_shape[k - 1] *= out_shape[k]
            del out_shape[k]
            for st in out_strides:
                st[k - 1] = st[k]
                del st[k]
        k -= 1
    if not out_shape:
        return (1,), [(1,) for _ in strides_list]
    return tuple(out_shape), [tuple(st) for st in out_strides]


def is_dense(t):
    """True when ``t`` covers its memory exactly once (any dim order, no gaps, no overlap)."""
    return strides_are_dense(t.shape, t.stride())


def strides_are_dense(shape, strides):
    expected = 1
    for size, stride in sorted(zip(shape, strides), key=lambda p: p[1]):
        if size == 1:
            continue
        if stride != expected:
            return False
        expected *= size
    return True


def has_internal_overlap(t):
    """PyTorch's definite internal overlap: a stride-0 dim of size > 1 (an expanded tensor)."""
    return t.numel() > 0 and any(st == 0 and n > 1 for n, st in zip(t.shape, t.stride()))


def keeps_internal_overlap(out, shape):
    """Whether an ``out=`` that PyTorch resizes to ``shape`` (``resize_output``) still overlaps
    itself when it is written: only one of that very shape can, as resizing gives an out of
    another shape a new, dense layout before anything checks it."""
    return tuple(out.shape) == tuple(shape) and has_internal_overlap(out)


def same_storage(a, b):
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


def _memory_span(t):
    start = t.data_ptr()
    extent = sum((n - 1) * st for n, st in zip(t.shape, t.stride()) if n > 0)
    return start, start + (extent + 1) * t.element_size()


def span_bytes(t):
    """Bytes from ``t``'s first element to one past its last (0 when it is empty)."""
    if t.numel() == 0:
        return 0
    start, end = _memory_span(t)
    return end - start


def memory_overlaps(a, b):
    """True when the memory spans of ``a`` and ``b`` (non-empty, one storage) intersect."""
    if a.numel() == 0 or b.numel() == 0 or not same_storage(a, b):
        return False
    (a0, a1), (b0, b1) = _memory_span(a), _memory_span(b)
    return a0 < b1 and b0 < a1


def partially_overlaps(out, inp):
    """PyTorch's partial overlap of a written tensor with an input: some, but not exactly all,
    of their memory shared. Only dense pairs are judged (PyTorch deems others too hard and lets
    them pass: interleaved views such as x[::2], x[1::2] do)."""
    if not (is_dense(out) and is_dense(inp)) or not memory_overlaps(out, inp):
        return False
    # the same bytes walked the same way (a view in another dtype too) overlap fully: each
    # element is read before it is written, which is safe
    return not (_memory_span(out) == _memory_span(inp) and out.stride() == inp.stride())


def check_no_partial_overlap(out, inp):
    """Raise PyTorch's error when ``inp`` partially overlaps ``out``."""
    if partially_overlaps(out, inp):
        from .errors import partial_overlap
        raise partial_overlap()


def iteration_strides(operands, shape):
    """The strides TensorIterator gives a new result of ``shape`` computed from ``operands``
    (tensors, and Python numbers, which it sees as 0-dim tensors), as its ``fast_set_up``,
    ``reorder_dimensions`` and ``allocate_or_resize_outputs`` decide them:

    - every operand of the result's shape and contiguous: contiguous; every one channels_last:
      channels_last; every one dense with the same strides: those strides;
    - otherwise the dims are sorted by the operands' strides (the first operand with a strict
      order between two dims decides; a broadcast dim (stride 0) has no say; equal strides put
      the smaller dim inside) and the result is dense in that order; with no order found at
      all, contiguous. So ``sigmoid(x.t()[:, ::2])`` is column-major as ``x.t()`` is.
    """
    shape = tuple(shape)
    tensors = [t for t in operands if isinstance(t, torch.Tensor)]
    if tensors and all(isinstance(o, torch.Tensor) and o.shape == shape for o in operands):
        if all(t.is_contiguous() for t in tensors):
            return contiguous_strides(shape)
        if all(t.is_contiguous(memory_format=torch.channels_last) for t in tensors):
            return _dense_strides(shape, (1, 3, 2, 0), skip_empty=True)
        if all(is_dense(t) for t in tensors) and len({t.stride() for t in tensors}) == 1:
            return tensors[0].stride()
    ndim = len(shape)
    inner_first = list(range(ndim - 1, -1, -1))
    if ndim <= 1:
        return contiguous_strides(shape)
    strides = [expanded_strides(t, shape) for t in tensors]

    def order(d0, d1):
        """1: d0 goes outside d1; -1: inside; 0: no operand says."""
        for st in strides:
            s0, s1 = st[d0], st[d1]
            if s0 == 0 or s1 == 0:
                continue
            if s0 != s1:
                return 1 if s0 > s1 else -1
            if shape[d0] > shape[d1]:
                return 1
        return 0

    perm = list(inner_first)  # perm[0]: the innermost dim
    for i in range(1, ndim):  # insertion sort that stops at an ambiguous comparison's "no"
        d1 = i
        for d0 in range(i - 1, -1, -1):
            comparison = order(perm[d0], perm[d1])
            if comparison > 0:
                perm[d0], perm[d1] = perm[d1], perm[d0]
                d1 = d0
            elif comparison < 0:
                break
    if perm == inner_first:
        return contiguous_strides(shape)
    return _dense_strides(shape, perm, skip_empty=False)


def _dense_strides(shape, inner_first, skip_empty):
    """Dense strides with the dims laid out from ``inner_first[0]`` (innermost) outwards; a
    size-0 dim counts as 1 with ``skip_empty`` (``empty``'s rule) and as 0 without it
    (TensorIterator's ``compatible_stride``)."""
    strides, step = [0] * len(shape), 1
    for d in inner_first:
        strides[d] = step
        step *= max(shape[d], 1) if skip_empty else shape[d]
    return tuple(strides)


def new_result(operands, shape, dtype, device):
    """An uninitialised result of ``shape`` laid out as TensorIterator lays it out (above).

    ``empty_strided`` rather than ``empty_like``: the result must not inherit an input's
    dispatch keys (an autograd ZeroTensor, say), only its memory order.
    """
    return torch.empty_strided(shape, iteration_strides(operands, shape), dtype=dtype,
                               device=device)


def resize_out(out, shape, strides=None, memory_format=torch.contiguous_format, warn=True):
    """PyTorch's ``resize_output`` of an ``out=`` tensor whose shape differs from the result's:
    its deprecation warning when ``out`` had elements (unless not ``warn``: a kernel calling
    ``resize_`` itself), then the resize to the layout a new result would have, as structured
    kernels restride a resized out: ``strides``, or else ``memory_format``. The first write of
    a call: every check comes before. Returns whether it resized (a call that resizes its out=
    is never planned)."""
    shape = tuple(shape)
    if tuple(out.shape) == shape:
        return False
    if out.numel() and warn:
        warnings.warn(
            f"An output with one or more elements was resized since it had shape "
            f"{list(out.shape)}, which does not match the required output shape {list(shape)}. "
            "This behavior is deprecated, and in a future PyTorch release outputs will not be "
            "resized unless they have zero elements. You can explicitly reuse an out tensor t "
            "by resizing it, inplace, to zero elements with t.resize_(0).", UserWarning)
    with kernel_level():
        out.resize_(shape, memory_format=memory_format)
        if strides is not None and tuple(strides) != out.stride():
            out.as_strided_(shape, strides)
    return True


def kernel_level():
    """A context in which a tensor's own resize and restride run as PyTorch's kernels run
    them (``resize_output`` below autograd): no version bump, no refusal of an inference
    tensor outside inference mode or of a tensor that requires grad; those are decided around
    the whole call (a direct call's ``Op.serve``, PyTorch's autograd kernel)."""
    return torch._C._AutoDispatchBelowADInplaceOrView()


def contiguous_strides(shape):
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= max(n, 1)
    return tuple(reversed(strides))


def as_contiguous(t):
    """``t``'s memory from its first element seen as a contiguous tensor of its shape (a
    kernel that writes an out= as if it were contiguous writes there); ``t`` itself where it
    is contiguous."""
    if t.is_contiguous():
        return t
    return t.as_strided(t.shape, contiguous_strides(t.shape), t.storage_offset())


def wrapper_out(out, dtype, shape):
    """``out=`` as PyTorch's generated out= wrappers take it: its dtype must be the result's,
    then ``resize_output``, which refuses an out that overlaps itself. The first write of a
    call: every other check comes before."""
    if out.dtype != dtype:
        raise errors.out_dtype_mismatch(out.dtype, dtype, errors.OutDtypeCheck.OUT_WRAPPER)
    if keeps_internal_overlap(out, shape):
        raise errors.internal_overlap()
    resize_out(out, shape)
