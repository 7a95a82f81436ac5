"""Shapes, strides and memory overlap: everything a launch needs to know about tensor layout."""
import torch


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


def empty_like_layout(tensors, shape, dtype):
    """A new tensor of ``shape`` laid out like the first full-shape dense input (as PyTorch's
    TensorIterator keeps a transposed or channels-last layout), else contiguous.

    ``empty_strided`` rather than ``empty_like``: the result must not inherit an input's
    dispatch keys (an autograd ZeroTensor, say), only its memory order.
    """
    like = next((t for t in tensors if t.shape == shape and is_dense(t)), None)
    strides = like.stride() if like is not None else contiguous_strides(shape)
    return torch.empty_strided(shape, strides, dtype=dtype, device=tensors[0].device)


def contiguous_strides(shape):
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= max(n, 1)
    return tuple(reversed(strides))
