"""IndexOp: data movement in which each output element is an element of ``self``, an element
gathered from another tensor by a computed index, or a written zero."""
import math

import attrs
import torch
import triton
import triton.language as tl

from ..runtime import errors, geometry
from ..runtime.device import INTERPRETED
from ..runtime.indexing import block_size, grid_size, needs_int64, offset, unravel
from ..runtime.launch import launch
from ..runtime.plans import not_replayable
from ..runtime.triton_types import converted
from .base import Op, bind
from .copy import computed_apart

# how the auxiliary operand is read: not at all, as a value (take's index), or as a mask whose
# running count of hits is the gather index (masked_scatter: source is consumed in order)
AUX_NONE, AUX_VALUE, AUX_RANKED = 0, 1, 2


@triton.jit(do_not_specialize=["numel", "shape", "out_strides", "x_strides", "aux_strides",
                               "g_shape", "g_strides", "s0", "s1", "s2"])
def _index_kernel(
    out_ptr, x_ptr, aux_ptr, g_ptr, counts_ptr, numel, shape, out_strides, x_strides, aux_strides,
    g_shape, g_strides, s0, s1, s2,
    SELECT: tl.constexpr, NDIM: tl.constexpr, COL_DIMS: tl.constexpr, GDIM: tl.constexpr,
    READ_X: tl.constexpr,
    AUX: tl.constexpr, COUNT_ONLY: tl.constexpr, SPARSE: tl.constexpr, INDEX_64: tl.constexpr,
    DENSE: tl.constexpr,
    BLOCK: tl.constexpr,
):
    pid = tl.program_id(0)
    if INDEX_64:
        flat = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    else:
        flat = pid * BLOCK + tl.arange(0, BLOCK)
    inside = flat < numel
    # the output's row-major index -> its coordinates, and the coordinates SELECT sees: col
    # (the last COL_DIMS dims, flat; ncols of them), row (the dim before) and outer (the dims
    # before row, flat), which the unravelling leaves on its way
    if NDIM > COL_DIMS:
        inner, outer = unravel(flat, shape, NDIM - COL_DIMS - 1, NDIM)
        lead, _ = unravel(outer, shape, 0, NDIM - COL_DIMS - 1)
        coords = lead + inner
        row = inner[0]
    else:
        coords, _ = unravel(flat, shape, 0, NDIM)
        row = tl.zeros_like(flat)
        outer = tl.zeros_like(flat)
    col = tl.zeros_like(flat)
    ncols = 1
    for d in tl.static_range(NDIM - 1, NDIM - COL_DIMS - 1, -1):
        col += coords[d] * ncols
        ncols = ncols * shape[d]
    out_off = offset(coords, out_strides, flat)
    x_off = offset(coords, x_strides, flat)
    aux_off = offset(coords, aux_strides, flat)
    # out (bit 0) and x (bit 1) laid out row-major: their offset is the flat index itself, which
    # the compiler can see is contiguous, so those loads and stores are vectorized
    if DENSE & 1:
        out_off = flat
    if DENSE & 2:
        x_off = flat
    if AUX == 0:
        aux = tl.zeros_like(flat)
    else:
        aux = tl.load(aux_ptr + aux_off, mask=inside, other=0)
    if COUNT_ONLY:
        # first pass of a ranked gather: hits per block (an exclusive scan turns them into offsets)
        tl.store(counts_ptr + pid, tl.sum(aux.to(tl.int64), axis=0))
    else:
        rank = tl.zeros_like(flat).to(tl.int64)
        if AUX == 2:
            hits = aux.to(tl.int64)
            rank = tl.cumsum(hits, axis=0) - hits + tl.load(counts_ptr + pid)
        keep_x, take_g, g_index = SELECT(outer, row, col, ncols, aux, rank, s0, s1, s2)
        # masked-off lanes of x read as 0: the written zero of tril/diag
        value = tl.zeros([BLOCK], dtype=out_ptr.dtype.element_ty)
        if READ_X:
            value = tl.load(x_ptr + x_off, mask=inside & keep_x, other=0)
            value = converted(value, out_ptr.dtype.element_ty)
        if GDIM > 0:
            g_off = tl.zeros_like(g_index)
            for d in tl.static_range(GDIM - 1, -1, -1):  # g read in its logical row-major order
                g_off += (g_index % g_shape[d]) * g_strides[d]
                g_index = g_index // g_shape[d]
            gathered = tl.load(g_ptr + g_off, mask=inside & take_g, other=0)
            value = tl.where(take_g, converted(gathered, out_ptr.dtype.element_ty), value)
            if SPARSE:
                inside = inside & (take_g | (keep_x == 0))
        elif SPARSE:
            inside = inside & (keep_x == 0)
        tl.store(out_ptr + out_off, value, mask=inside)


@triton.jit(do_not_specialize=["n"])
def _exclusive_scan(counts_ptr, n, BLOCK: tl.constexpr):
    """counts[0:n] -> their exclusive prefix sums, and counts[n] = the total (one program)."""
    carry = tl.zeros([], dtype=tl.int64)
    for start in range(0, n, BLOCK):
        offsets = start + tl.arange(0, BLOCK)
        counts = tl.load(counts_ptr + offsets, mask=offsets < n, other=0)
        tl.store(counts_ptr + offsets, tl.cumsum(counts, axis=0) - counts + carry, mask=offsets < n)
        carry += tl.sum(counts, axis=0)
    tl.store(counts_ptr + n, carry)


@triton.jit
def everywhere(like):
    return tl.zeros_like(like) == 0


@triton.jit
def nowhere(like):
    return tl.zeros_like(like) != 0


@triton.jit
def copy(outer, row, col, ncols, aux, rank, s0, s1, s2):
    """Every element from x: a strided copy (of a matrix's diagonal, for diag)."""
    return everywhere(col), nowhere(col), col


@attrs.frozen
class Plan:
    """What one call moves: the result's shape and dtype and where each element comes from.

    x and aux are ``(tensor, strides)`` with strides aligned to the result dims, so broadcast
    or synthesized layouts (diag's) need no view; ``gather`` is read by flat index through its
    own shape and strides. ``pinned`` trailing dims are never merged, so that SELECT's row is
    the dim before the last ``col_dims`` (the dims its col flattens).
    """

    shape: tuple
    dtype: torch.dtype
    select: object
    x: tuple = None
    aux: tuple = None
    aux_mode: int = AUX_NONE
    gather: torch.Tensor = None
    scalars: tuple = ()
    pinned: int = 0
    col_dims: int = 1
    strides: tuple = None  # the result's strides when allocated (None: contiguous)
    counts: torch.Tensor = None  # block offsets of a ranked aux, from ``IndexOp.count_hits``
    device_checks: bool = False  # select checks values with tl.device_assert (see IndexOp)

    def allocate(self, device):
        if self.strides is None:
            return torch.empty(self.shape, dtype=self.dtype, device=device)
        return torch.empty_strided(self.shape, self.strides, dtype=self.dtype, device=device)


# a plan's device checks: tl.device_assert is compiled in only under Triton's debug option; the
# integer-overflow checks that debug would also add are left out (the kernel is otherwise the same)
_DEVICE_CHECKS = {"debug": True, "sanitize_overflow": False}
def _collapse(shape, strides_list, pinned):
    """Merge the leading dims (all but ``pinned`` trailing ones) where every operand allows it."""
    lead = len(shape) - pinned
    if lead > 0:
        cshape, cstrides = geometry.collapse(shape[:lead], [s[:lead] for s in strides_list])
    else:
        cshape, cstrides = (), [() for _ in strides_list]
    shape = tuple(cshape) + tuple(shape[lead:])
    strides = [tuple(c) + tuple(s[lead:]) for c, s in zip(cstrides, strides_list)]
    if not shape:
        return (1,), [(0,) for _ in strides_list]
    return shape, strides


class IndexOp(Op):
    """Data movement with one skeleton: out[i] = gathered if take_g else (x if keep_x else 0).

    Declare on a subclass:
      select    ``@triton.jit def select(outer, row, col, ncols, aux, rank, s0, s1, s2)``
                returning ``(keep_x, take_g, g_index)`` for a block of output elements: ``col``
                is their flat index over the plan's last ``col_dims`` result dims (the last
                one by default; ``ncols`` of them), ``row`` their coordinate along the dim
                before and ``outer`` their flat index over the dims before that; ``aux`` the
                auxiliary operand's element
                (0 without one), ``rank`` the number of nonzero aux elements before this one in
                row-major order (ranked aux only); ``s0..s2`` the plan's integer scalars.
                ``g_index`` is a flat row-major index into the gathered tensor.
      prepare   ``prepare(out, inplace, *args)`` (args in schema order): validates with
                PyTorch's messages and returns a ``Plan`` (a plan may name another select).
      out_overlap  whether ``out=`` (and self in place) must not overlap itself.
      sample_args  ``sample_args(dtype, shape, make)`` -> [(args, kwargs, label)]: natural
                calls (``Op``'s hook).
    Optional: ``validate(plan, out)``, errors PyTorch raises after its out= checks.
    A plan with ``device_checks`` has a select that checks values with ``tl.device_assert`` (as
    PyTorch's CUDA_KERNEL_ASSERT: a bad value is reported at the next synchronization, with no
    host read); compiled kernels launch it with Triton's ``debug`` option. The interpreter
    ignores device asserts: there the op's ``validate`` checks on the host.

    The skeleton guarantees: every tensor read through its strides (no copies), int64 offsets
    only where needed, exact data movement for every dtype (a gathered value is cast into the
    result's dtype), and a written zero wherever neither source is selected. An in-place or
    out= call whose output shares memory with an input other than the identical view of x is
    computed into a temporary first; where out is x itself only changed elements are written.
    """

    family = "IndexOp"
    select = None
    out_overlap = True


    def call_out(self, args, kwargs, out, inplace):
        values = bind(self, args, kwargs, None if inplace else out)
        tensors = [v for v in values if isinstance(v, torch.Tensor)]
        if any(t.is_complex() for t in tensors) or (out is not None and out.is_complex()):
            raise errors.complex_unsupported(self.name)
        if inplace and self.out_overlap and geometry.has_internal_overlap(out):
            raise errors.internal_overlap()
        plan = self.prepare(None if inplace else out, inplace, *values)
        if out is None:
            out = plan.allocate(tensors[0].device)
        elif not inplace:
            self.check_out(out, plan, tensors)
        self.validate(plan, out)
        if tuple(out.shape) != tuple(plan.shape):  # the first write, after every check
            geometry.resize_out(out, plan.shape, self.resized_out_strides(plan))
        if out.numel():
            self.run(plan, out)
        return out

    # ---- hooks --------------------------------------------------------------------------
    def prepare(self, out, inplace, *args):
        raise NotImplementedError

    def validate(self, plan, out):
        pass

    def check_out_dtype(self, out, dtype):
        if out.dtype != dtype:
            raise errors.out_dtype_mismatch(out.dtype, dtype, errors.OutDtypeCheck.OUT_WRAPPER)

    def resized_out_strides(self, plan):
        """The layout of a resized ``out=``: None, contiguous (PyTorch's out= of these ops
        resizes out with ``resize_output``, or its meta function asks for no strides)."""
        return None

    def check_out(self, out, plan, inputs):
        """PyTorch's out= checks for this op, after the op's own (prepare's) errors."""
        self.check_out_dtype(out, plan.dtype)
        if self.out_overlap and geometry.keeps_internal_overlap(out, plan.shape):
            raise errors.internal_overlap()  # resize_output comes first

    # ---- the launch ---------------------------------------------------------------------
    def run(self, plan, out):
        """Write the plan's result into ``out``, through a temporary when an input aliases it;
        where out is x itself (in place), only the elements that change are written."""
        x = plan.x[0] if plan.x else None
        same_x = (x is not None and x.data_ptr() == out.data_ptr() and x.dtype == out.dtype
                  and tuple(plan.x[1]) == tuple(out.stride()))
        inputs = [t for t in (None if same_x else x, plan.aux and plan.aux[0], plan.gather)
                  if t is not None]
        computed_apart(self, out, inputs, lambda: plan.allocate(out.device),
                       lambda target: self.launch(plan, target, sparse=same_x and target is out))

    def count_hits(self, plan, device):
        """Block offsets of a ranked aux (first two passes of masked_scatter) and its total hits;
        ``plan.counts`` must carry the offsets into the main launch. Compiled, the total stays
        on the device (None): the op checks it there, in its select's device assert, as PyTorch's
        CUDA kernel does; the interpreter has no device asserts, so it reads the total back."""
        counts, total = None, 0
        numel = math.prod(plan.shape)
        if numel:
            nblocks = grid_size(numel)
            counts = torch.empty(nblocks + 1, dtype=torch.int64, device=device)
            self.launch(plan, None, counts=counts)
            launch(self.name, _exclusive_scan, (1,), counts, nblocks, BLOCK=block_size(nblocks))
            if not INTERPRETED:
                return counts, None
            not_replayable()  # the total is read back to the host
            total = counts[nblocks].item()
        return counts, total

    def launch(self, plan, out, sparse=False, counts=None):
        """One skeleton launch over the plan's result (``out`` None: the counting pass)."""
        count_only = out is None
        if count_only:
            view_shape = tuple(plan.shape)
            view_strides = (0,) * len(view_shape)
        else:
            view_shape, view_strides = tuple(out.shape), out.stride()
            counts = plan.counts
        numel = math.prod(view_shape)
        ndim = len(view_shape)
        x, x_strides = plan.x if plan.x else (None, (0,) * ndim)
        aux, aux_strides = plan.aux if plan.aux else (None, (0,) * ndim)
        shape, (out_strides, x_strides, aux_strides) = _collapse(
            view_shape, [view_strides, x_strides, aux_strides], plan.pinned)
        g = plan.gather
        if g is not None:
            g_shape, (g_strides,) = geometry.collapse(tuple(g.shape), [g.stride()])
            g_shape = tuple(max(n, 1) for n in g_shape)  # an empty g is never read
        else:
            g_shape, g_strides = (1,), (0,)
        row_major = geometry.contiguous_strides(shape)
        dense = ((not count_only and tuple(out_strides) == row_major)
                 | (x is not None and tuple(x_strides) == row_major) << 1)
        block, grid = block_size(numel), grid_size(numel)
        index_64 = needs_int64([(shape, out_strides), (shape, x_strides), (shape, aux_strides),
                                (g_shape, g_strides)], grid * block - 1)
        scalars = tuple(plan.scalars) + (0,) * (3 - len(plan.scalars))
        dummy = counts if counts is not None else (out if out is not None else aux)
        launch(
            self.name, _index_kernel, (grid,),
            dummy if count_only else out, x if x is not None else dummy,
            aux if aux is not None else dummy, g if g is not None else dummy,
            counts if counts is not None else dummy, numel, shape, out_strides, x_strides,
            aux_strides, g_shape, g_strides, *scalars,
            SELECT=plan.select, NDIM=len(shape), COL_DIMS=plan.col_dims,
            GDIM=len(g_shape) if g is not None else 0, READ_X=x is not None and not sparse,
            AUX=plan.aux_mode if aux is not None else AUX_NONE, COUNT_ONLY=count_only,
            SPARSE=sparse, INDEX_64=index_64, DENSE=dense, BLOCK=block,
            **(_DEVICE_CHECKS if plan.device_checks and not INTERPRETED else {}))
