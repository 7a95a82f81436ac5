"""Index, scatter and triangular ops: pure data movement on the IndexOp skeleton."""
import warnings

import torch
import triton
import triton.language as tl

from ..families import register
from ..families.index import (AUX_RANKED, AUX_VALUE, IndexOp, Plan, copy, everywhere, nowhere,
                              on_diagonal)
from ..runtime import errors, geometry
from ..runtime.device import INTERPRETED
from ..runtime.plans import not_replayable


@register
class Take(IndexOp):
    @staticmethod
    @triton.jit
    def select(outer, row, col, ncols, index, rank, numel, s1, s2):
        # compiled in only under the plan's device_checks; lanes past the end read index 0,
        # in range (an empty self with indices is refused on the host, by shape)
        tl.device_assert((index >= -numel) & (index < numel), "take(): index out of range: "
                         "expected -self.numel() <= index < self.numel()")
        return nowhere(col), everywhere(col), tl.where(index < 0, index + numel, index)

    def prepare(self, out, inplace, x, index):
        if index.dtype != torch.int64:
            raise RuntimeError("take(): Expected a long tensor for index, but got "
                               + errors.scalar_type_name(index.dtype))
        if out is not None and out.dtype != x.dtype:
            names = errors.scalar_type_name(x.dtype), errors.scalar_type_name(out.dtype)
            raise RuntimeError("take(): self and out expected to have the same dtype, but got "
                               "self.dtype = {} and out.dtype = {}".format(*names))
        if x.numel() == 0 and index.numel():
            raise IndexError("take(): tried to take from an empty tensor")
        return Plan(tuple(index.shape), x.dtype, self.select, aux=(index, index.stride()),
                    aux_mode=AUX_VALUE, gather=x, scalars=(x.numel(),), device_checks=True)

    @staticmethod
    def bench_bytes(args, kwargs, result):
        """The index read, one element of self read per index, the result written."""
        index = args[1]
        return index.numel() * index.element_size() + 2 * result.numel() * result.element_size()

    def resized_out_strides(self, plan):
        # take.out iterates over (out, index) with TensorIterator: a resized out is laid out
        # as the index is
        return geometry.iteration_strides([plan.aux[0]], plan.shape)

    def check_out(self, out, plan, inputs):
        # take checks out= before resizing it: whatever its shape, it must not overlap itself
        # or an input (not even fully)
        self.check_out_dtype(out, plan.dtype)
        if geometry.has_internal_overlap(out):
            raise errors.internal_overlap()
        for t in inputs:
            if out.numel() and t.numel() and out.data_ptr() == t.data_ptr():
                raise errors.partial_overlap()
            geometry.check_no_partial_overlap(out, t)

    def validate(self, plan, out):
        # compiled, the kernel checks each index (select's device assert: PyTorch's own CUDA
        # behaviour, with no host read); the interpreter has no device asserts, so here the
        # bounds are read back before the launch, for PyTorch's error with out= untouched
        index, numel = plan.aux[0], plan.scalars[0]
        if INTERPRETED and index.numel():
            not_replayable()  # the bounds are read back to the host
            lo, hi = torch.stack(torch.aminmax(index)).tolist()
            if lo < -numel or hi >= numel:
                bad = index[(index < -numel) | (index >= numel)][0].item()
                raise IndexError(f"out of range: tried to access index {bad} on a tensor of "
                                 f"{numel} elements.")

    def sample_args(self, dtype, shape, make):
        x = make()
        n = x.numel()
        index = make(x.shape if n else (0,), torch.int64, (-n, max(n, 1)))
        calls = [((x, index), {}, "index like self"),
                 ((x, index.transpose(-1, -2) if index.dim() > 1 else index), {}, "transposed")]
        return calls + ([((x, index.reshape(-1)[0]), {}, "0-dim index")] if n else [])


@register
class MaskedScatter(IndexOp):
    launches_per_call = 3  # the mask's hits counted per block, their offsets, the scatter

    @staticmethod
    @triton.jit
    def select(outer, row, col, ncols, mask, rank, s0, s1, s2):
        return mask == 0, mask != 0, rank  # source is consumed in row-major order of the hits

    def prepare(self, out, inplace, x, mask, source):
        if inplace:  # PyTorch checks in place in this order; mask expands to self
            _check_same_dtype(x, source)
            shape = tuple(mask.expand(x.shape).shape)
        else:
            shape = tuple(torch._C._infer_size(mask.shape, x.shape))
            _check_same_dtype(x, source)
        if mask.dtype == torch.uint8:
            warnings.warn("masked_scatter_ received a mask with dtype torch.uint8, this behavior "
                          "is now deprecated,please use a mask with dtype torch.bool instead.")
        if mask.dtype != torch.bool:
            raise RuntimeError("masked_scatter_ only supports boolean masks, but got mask with "
                               "dtype " + errors.scalar_type_name(mask.dtype))
        if INTERPRETED:
            # compiled, the count is checked on the device, with no host read, as PyTorch's
            # CUDA kernel does (the plan's hits_check); the interpreter has no device asserts,
            # so here the hits are counted on the host
            not_replayable()  # the count is read back to the host
            if int(torch.count_nonzero(mask.expand(shape))) > source.numel():
                raise RuntimeError("Number of elements of source < number of ones in mask")
        return Plan(shape, x.dtype, self.select, x=(x, geometry.expanded_strides(x, shape)),
                    aux=(mask, geometry.expanded_strides(mask, shape)), aux_mode=AUX_RANKED,
                    gather=source, hits_check=(source.numel(), "masked_scatter: Number of "
                                               "elements of source < number of ones in mask"),
                    scattered=True)

    def sample_args(self, dtype, shape, make):
        x = make()
        mask = make(shape, torch.bool)
        source = make((x.numel() + 3,))
        row_mask = mask[(slice(0, 1),) * (x.dim() - 1)] if x.dim() else mask  # broadcast
        return [((x, mask, source), {}, ""),
                ((x, row_mask, source.reshape(1, -1).t()), {}, "broadcast mask, 2-d source")]


def _check_same_dtype(x, source):
    if x.dtype != source.dtype:
        raise RuntimeError(
            "masked_scatter: expected self and source to have same dtypes but got"
            f"{errors.scalar_type_name(x.dtype)} and {errors.scalar_type_name(source.dtype)}")


@register
class Tril(IndexOp):
    out_overlap = False  # PyTorch checks no overlap for tril; each element is written alone

    @staticmethod
    @triton.jit
    def select(outer, row, col, ncols, aux, rank, diagonal, s1, s2):
        return col - row <= diagonal, nowhere(col), col

    def prepare(self, out, inplace, x, diagonal):
        if x.dim() < 2:
            # PyTorch's message names the op (triu's too, its in-place form's too)
            raise RuntimeError(f"{self.name}: input tensor must have at least 2 dimensions")
        rows, cols = x.shape[-2:]
        diagonal = max(-rows, min(diagonal, cols))  # same result, and a 32-bit kernel scalar
        return Plan(tuple(x.shape), x.dtype, self.select, x=(x, x.stride()), scalars=(diagonal,),
                    pinned=2)

    def sample_args(self, dtype, shape, make):
        x = make()
        return [((x,) + k, {}, str(k)) for k in ((), (1,), (-2,))]


@register
class Diag(IndexOp):
    def prepare(self, out, inplace, x, diagonal):
        if x.dim() == 1:  # a square matrix whose diagonal-th diagonal is x
            n = x.shape[0] + abs(diagonal)
            strides = (x.stride(0), 0) if diagonal >= 0 else (0, x.stride(0))
            return Plan((n, n), x.dtype, on_diagonal, x=(x, strides), scalars=(diagonal,),
                        pinned=2)
        if x.dim() == 2:  # a copy of the diagonal (a strided view)
            d = torch.diagonal(x, diagonal)
            return Plan(tuple(d.shape), x.dtype, copy, x=(d, d.stride()))
        prefix = "diag(): " if out is None else ""
        raise RuntimeError(f"{prefix}Supports 1D or 2D tensors. Got {x.dim()}D")

    def check_out(self, out, plan, inputs):
        # PyTorch's diag.out of a vector tests the cast first, then wants the result's dtype
        # exactly (as its generated out= wrappers, diag_embed's and diagonal_copy's, do); of a
        # matrix, only the latter
        x = inputs[0]
        if x.dim() == 1 and not torch.can_cast(x.dtype, out.dtype):
            raise RuntimeError(f"diag: result type {errors.scalar_type_name(x.dtype)} can't be "
                               f"cast to the desired out= type "
                               f"{errors.scalar_type_name(out.dtype)}")
        super().check_out(out, plan, inputs)

    @staticmethod
    def bench_bytes(args, kwargs, result):
        """2-d: only the diagonal is read; 1-d: the default count (x read, the square written)."""
        if args[0].dim() == 2:
            return 2 * result.numel() * result.element_size()
        return None

    def sample_args(self, dtype, shape, make):
        x = make()
        # the first row (a square of its size): a 1-d input
        v = x[(slice(0, 1),) * (x.dim() - 1)].reshape(-1) if x.dim() > 1 else x
        return [((v, k), {}, f"1-d, {k}") for k in (0, 2, -1)] + [
            ((x, k), {}, f"2-d, {k}") for k in (0, 1, -2)]


@register
class SliceScatter(IndexOp):
    @staticmethod
    @triton.jit
    def select(outer, row, col, ncols, aux, rank, start, step, length):
        # row runs along the sliced dim, col over the dims after it: out keeps self's memory
        # order, and src (before + (length,) + after, row-major) is read at (outer, k, col)
        k = (row - start) // step
        hit = (row >= start) & ((row - start) % step == 0) & (k < length)
        return hit == 0, hit, (outer * length + k) * ncols + col

    def prepare(self, out, inplace, x, src, dim, start, end, step):
        if x.dim() == 0:
            raise IndexError("slice() cannot be applied to a 0-dim tensor.")
        dim = errors.wrap_dim(dim, x.dim())
        if step <= 0:
            raise RuntimeError("slice step must be positive")
        start, end = _clamp_slice(x.shape[dim], start, end)
        length = (end - start + step - 1) // step
        sliced = list(x.shape)
        sliced[dim] = length
        if list(src.shape) != sliced:
            raise RuntimeError("expected src to have a size equal to the slice of self. src size = "
                               f"{list(src.shape)}, slice size = {sliced}")
        # self's strides kept, as PyTorch's clone_preserve_strides keeps them; it also keeps
        # self's storage offset, allocating the whole of self's storage (a slice of a large
        # tensor gets a result as large): ours allocates the result's own extent, offset 0
        layout = None if geometry.has_internal_overlap(x) else x.stride()
        if length == x.shape[dim]:
            # every element of self replaced (functionalization's ``x[:] = y``): src copied into
            # self's layout, read by coordinates like x (vectorized) rather than gathered by a
            # flat index that takes a division per dim and element
            return Plan(tuple(x.shape), x.dtype, copy, x=(src, src.stride()), strides=layout)
        after = x.dim() - dim - 1
        return Plan(tuple(x.shape), x.dtype, self.select, x=(x, x.stride()), gather=src,
                    scalars=(start, step, length), pinned=after + 1, col_dims=after,
                    strides=layout)

    def sample_args(self, dtype, shape, make):
        x = make()
        calls = []
        for dim, start, end, step in ((0, None, None, 1), (-1, 1, -1, 2), (0, -3, 100, 1)):
            if x.dim() == 0:
                break
            view = x[(slice(None),) * (dim % x.dim()) + (slice(start, end, step),)]
            src = make(view.shape)
            calls.append(((x, src, dim, start, end, step), {}, f"{dim}:{start}:{end}:{step}"))
        return calls or [((x, x.clone(), 0), {}, "0-dim")]


def _clamp_slice(size, start, end):
    """PyTorch's slice bounds: None -> 0 / size, negatives from the end, clamped to [0, size]."""
    start = 0 if start is None else start
    end = size if end is None else end
    start = start + size if start < 0 else start
    end = end + size if end < 0 else end
    start = min(max(start, 0), size)
    return start, min(max(end, start), size)
