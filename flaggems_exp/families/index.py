"""IndexOp: data movement in which each output element is an element of ``self``, an element
gathered from another tensor by a computed index, or a written zero."""
import math

import attrs
import torch
import triton
import triton.language as tl

from ..runtime import errors, geometry
from ..runtime.device import INTERPRETED
from ..runtime.indexing import needs_int64, offset, program_area, unravel
from ..runtime.launch import launch, load_ahead
from ..runtime.plans import scratch
from ..runtime.triton_types import converted
from .base import Op, bind
from .copy import computed_apart, write

# how the auxiliary operand is read: not at all, as a value (take's index), or as a mask whose
# running count of hits is the gather index (masked_scatter: source is consumed in order)
AUX_NONE, AUX_VALUE, AUX_RANKED = 0, 1, 2

TILE = 1 << 16 if INTERPRETED else 4096
"""Elements per program (one tile) at most: the interpreter runs one program at a time, so
fewer, larger tiles run faster there."""

SMALL_TILE = TILE if INTERPRETED else 1024
"""Elements per tile at least, where a call is too small to fill ``TILE_PROGRAMS`` tiles of
``TILE``: compiled, tiles shrink from ``TILE`` to this so that a call of 1M elements still
makes 1024 programs: 256 programs of 4096 (about 2 an SM, each thread waiting on 32 loads)
took take at M 19.2 µs, 1024 of 1024 16.6-17.3, eager 15.6 (H100, float16, event time); at L
4096 stays the fastest. A launch that gathers by value goes further (``GATHER_SMALL_TILE``)."""

TILE_PROGRAMS = 1024
"""Programs a call fills with tiles of ``TILE`` at least (about 8 an SM of an H100) before its
tiles shrink."""

GATHER_SMALL_TILE, GATHER_TILE_PROGRAMS = (TILE, TILE_PROGRAMS) if INTERPRETED else (512, 2048)
"""``SMALL_TILE`` and ``TILE_PROGRAMS`` of a launch that gathers by value (take: each load's
address is an element it has just read), compiled on ``GATHER_WARPS``: such loads wait on
their latency, and twice the programs of twice the warps keep more of them in flight. take at
M on an H100, kernel time: 1024 programs of 1024 on 4 warps 13.70 µs (float16) and 15.74
(float32), 2048 of 512 on 8 warps 12.77 and 14.37, eager 12.22 and 13.41; at L (4096 a tile
either way) 8 warps are within 0.2% of 4."""

GATHER_WARPS = 8

TILE_COLS = TILE if INTERPRETED else 256
"""Columns per tile at most where tiles may be any rectangle: compiled, 256 columns are a warp's
whole row of 16-byte vectors (float16), and tiles near square leave few of them across a
diagonal, where every element is read."""

SCAN_BLOCK = 1 << 16 if INTERPRETED else 16384
"""Tile counts the block scan takes at once: one pass for up to 64M elements in 4096-element
tiles (with 16 warps, 32 per thread)."""


@triton.jit
def _x_elements(x_ptr, coords, first, middle, zero, x_strides, shape, inside,
                X_ROWS: tl.constexpr):
    """x at a tile's ``coords`` (every one inside x), all of them with one mask along whole
    vectors; where x is constant along the columns (X_ROWS, a broadcast vector), one element
    a row."""
    if X_ROWS:
        row_coords = (first,) + middle + (tl.zeros_like(first),)
        kept = tl.load(x_ptr + offset(row_coords, x_strides, first), mask=first < shape[0],
                       other=0)
    else:
        kept = tl.load(x_ptr + offset(coords, x_strides, zero), mask=inside, other=0)
    return kept


@triton.jit
def _index_kernel(
    out_ptr, x_ptr, aux_ptr, g_ptr, counts_ptr, shape, out_strides, x_strides, aux_strides,
    g_shape, g_strides, s0, s1, s2,
    SELECT: tl.constexpr, NDIM: tl.constexpr, COL_DIMS: tl.constexpr, GDIM: tl.constexpr,
    READ_X: tl.constexpr, X_ROWS: tl.constexpr, FILL: tl.constexpr, AUX: tl.constexpr,
    COUNT_ONLY: tl.constexpr,
    SPARSE: tl.constexpr, INDEX_64: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
):
    # one program per tile of BLOCK_R rows (the row-major index over every dim but the last)
    # by BLOCK_C columns (the last dim), tiles in row-major order: columns come from an arange
    # and a row's coordinates from one division per dim but the first and last, so no element
    # divides by a size. Sizes and strides are specialized (divisible by 16, or 1): the
    # compiler then sees unit-stride columns and aligned rows, and vectorizes
    pid = tl.program_id(0)
    if INDEX_64:
        pid = pid.to(tl.int64)
    col_tiles = tl.cdiv(shape[NDIM - 1], BLOCK_C)
    tile_row = pid // col_tiles
    cols = (pid - tile_row * col_tiles) * BLOCK_C + tl.arange(0, BLOCK_C)[None, :]
    middle, first = unravel(tile_row * BLOCK_R + tl.arange(0, BLOCK_R)[:, None], shape, 1,
                            NDIM - 1)
    coords = (first,) + middle + (cols,)
    inside = (first < shape[0]) & (cols < shape[NDIM - 1])
    zero = tl.zeros([BLOCK_R, BLOCK_C], dtype=pid.dtype)
    # the coordinates SELECT sees: col (the last COL_DIMS dims, flat; ncols of them), row (the
    # dim before) and outer (the dims before row, flat)
    outer = tl.zeros([1, 1], dtype=pid.dtype)
    for d in tl.static_range(NDIM - COL_DIMS - 1):
        outer = outer * shape[d] + coords[d]
    row = tl.zeros([1, 1], dtype=pid.dtype)
    if NDIM > COL_DIMS:
        row += coords[NDIM - COL_DIMS - 1]
    col = tl.zeros([1, 1], dtype=pid.dtype)
    ncols = 1
    for d in tl.static_range(NDIM - 1, NDIM - COL_DIMS - 1, -1):
        col += coords[d] * ncols
        ncols = ncols * shape[d]
    if AUX == 0:
        aux = zero
    else:
        aux = tl.load(aux_ptr + offset(coords, aux_strides, zero), mask=inside, other=0)
    if COUNT_ONLY:
        # first pass of a ranked gather: hits per tile (an exclusive scan turns them into offsets)
        tl.store(counts_ptr + pid, tl.sum(aux.to(zero.dtype)).to(tl.int64))
    else:
        rank = zero
        if AUX == 2:
            # the tile's first rank (the scan's) and x are loaded with the aux, before the
            # tile's own scans, whose barriers would otherwise hold them back: their latency
            # overlaps the aux's (x is read whole, even where every element is a hit)
            first_rank = tl.load(counts_ptr + pid)
            if READ_X:
                kept = _x_elements(x_ptr, coords, first, middle, zero, x_strides, shape, inside,
                                   X_ROWS)
            # hits before each element in row-major order: a tile is whole rows or a piece of one
            hits = aux.to(zero.dtype)
            row_hits = tl.sum(hits, axis=1)
            rows_before = tl.cumsum(row_hits, axis=0) - row_hits
            rank = (tl.cumsum(hits, axis=1) - hits + rows_before[:, None]
                    + first_rank.to(zero.dtype))
        keep_x, take_g, g_index = SELECT(outer, row, col, ncols, aux, rank, s0, s1, s2)
        keep_x = inside & keep_x
        take_g = inside & take_g
        # the written zero of tril/diag where x is not kept, FILL where a plan without x keeps
        value = tl.zeros([BLOCK_R, BLOCK_C], dtype=out_ptr.dtype.element_ty)
        if FILL != 0:
            value = tl.where(keep_x, tl.full([BLOCK_R, BLOCK_C], FILL, value.dtype), value)
        if READ_X:
            if AUX == 2:
                value = tl.where(keep_x, converted(kept, out_ptr.dtype.element_ty), value)
            else:
                # a tile that keeps no element of x reads none
                if tl.max(keep_x.to(tl.int8)) > 0:
                    kept = _x_elements(x_ptr, coords, first, middle, zero, x_strides, shape,
                                       inside, X_ROWS)
                    value = tl.where(keep_x, converted(kept, out_ptr.dtype.element_ty), value)
        if GDIM > 0:
            g_index = (zero + g_index).to(zero.dtype)
            g_off = zero
            for d in tl.static_range(GDIM - 1, 0, -1):  # g read in its logical row-major order
                g_off += (g_index % g_shape[d]) * g_strides[d]
                g_index = g_index // g_shape[d]
            g_off += g_index * g_strides[0]  # a taken index is below g's numel
            if tl.max(take_g.to(tl.int8)) > 0:
                gathered = tl.load(g_ptr + g_off, mask=take_g, other=0)
                value = tl.where(take_g, converted(gathered, out_ptr.dtype.element_ty), value)
        out_ptrs = out_ptr + offset(coords, out_strides, zero)
        if SPARSE:
            # only the elements that change; a tile that changes all of them stores whole vectors
            # (two ifs, not if/else: the compiler merges an if/else pair of stores to the same
            # addresses into one store masked per element, which it cannot vectorize)
            changed = take_g | (inside & (keep_x == 0))
            whole = tl.min((changed | (inside == 0)).to(tl.int8)) > 0
            if whole:
                tl.store(out_ptrs, value, mask=inside)
            if (tl.max(changed.to(tl.int8)) > 0) & (whole == 0):
                tl.store(out_ptrs, value, mask=changed)
        else:
            tl.store(out_ptrs, value, mask=inside)


@triton.jit(do_not_specialize=["n", "limit"])
def _exclusive_scan(counts_ptr, n, limit, MESSAGE: tl.constexpr, BLOCK: tl.constexpr):
    """counts[0:n] -> their exclusive prefix sums, and counts[n] = the total (one program); a
    total above ``limit`` is reported with MESSAGE (a device assertion: compiled in only under
    Triton's debug option)."""
    carry = tl.zeros([], dtype=tl.int64)
    for start in range(0, n, BLOCK):
        offsets = start + tl.arange(0, BLOCK)
        counts = tl.load(counts_ptr + offsets, mask=offsets < n, other=0)
        tl.store(counts_ptr + offsets, tl.cumsum(counts, axis=0) - counts + carry, mask=offsets < n)
        carry += tl.sum(counts, axis=0)
    tl.store(counts_ptr + n, carry)
    if MESSAGE is not None:
        tl.device_assert(carry <= limit, MESSAGE)


@triton.jit
def everywhere(like):
    return tl.zeros_like(like) == 0


@triton.jit
def nowhere(like):
    return tl.zeros_like(like) != 0


@triton.jit
def on_diagonal(outer, row, col, ncols, aux, rank, k, s1, s2):
    """x (or the plan's fill) on the k-th diagonal of each matrix, zeros elsewhere."""
    return col - row == k, nowhere(col), col


@triton.jit
def copy(outer, row, col, ncols, aux, rank, s0, s1, s2):
    """Every element from x: a strided copy (of a matrix's diagonal, for diag)."""
    return everywhere(col), nowhere(col), col


@attrs.frozen
class Plan:
    """What one call moves: the result's shape and dtype and where each element comes from.

    x and aux are ``(tensor, strides)`` with strides aligned to the result dims, so broadcast
    or synthesized layouts (diag's) need no view; without x, kept elements are ``fill``; ``gather`` is read by flat index through its
    own shape and strides. ``pinned`` trailing dims are never merged into the dims before them,
    so that SELECT's row is the dim before the last ``col_dims`` (the dims its col flattens,
    merged among themselves where every operand allows it).
    """

    shape: tuple
    dtype: torch.dtype
    select: object
    x: tuple = None
    aux: tuple = None
    aux_mode: int = AUX_NONE
    gather: torch.Tensor = None
    scalars: tuple = ()
    fill: object = 0  # the kept elements' value where there is no x (eye's 1)
    pinned: int = 0
    col_dims: int = 1
    strides: tuple = None  # the result's strides when allocated (None: contiguous)
    device_checks: bool = False  # select checks values with tl.device_assert (see IndexOp)
    # (most hits, message): a ranked aux with more hits is an error, checked on the device
    hits_check: tuple = None
    # the elements it changes lie anywhere (a mask's hits), so in place it rewrites every
    # element, x's own value where kept, in whole vectors, as PyTorch's kernel does: stores
    # masked element by element leave partly written sectors (H100, masked_scatter_ of a
    # random mask over 8192x8192 float16: 425 µs so, against 248 for the full write out of
    # place). Without it, in place writes only what changes (tril_'s zeros)
    scattered: bool = False

    def allocate(self, device):
        if self.strides is None:
            return torch.empty(self.shape, dtype=self.dtype, device=device)
        return torch.empty_strided(self.shape, self.strides, dtype=self.dtype, device=device)


# a plan's device checks: tl.device_assert is compiled in only under Triton's debug option; the
# integer-overflow checks that debug would also add are left out (the kernel is otherwise the same)
_DEVICE_CHECKS = {"debug": True, "sanitize_overflow": False}


def _collapse(shape, strides_list, pinned, col_dims):
    """Merge dims where every operand allows it: all of them without ``pinned`` ones, else the
    leading dims and the ``col_dims`` (SELECT's col) among themselves, the row dim between
    them alone. Returns the shape, each operand's strides and the col dims left (at least two
    dims: a leading 1 where fewer are left)."""
    groups = [(0, len(shape))] if not pinned else [
        (0, len(shape) - pinned), (len(shape) - pinned, len(shape) - col_dims),
        (len(shape) - col_dims, len(shape))]
    merged_shape, merged_strides = (), [() for _ in strides_list]
    for first, stop in groups:
        if first == stop:
            continue
        group_shape, group_strides = geometry.collapse(
            shape[first:stop], [s[first:stop] for s in strides_list])
        merged_shape += tuple(group_shape)
        merged_strides = [m + tuple(g) for m, g in zip(merged_strides, group_strides)]
        if stop == len(shape) and pinned:
            col_dims = len(group_shape) if col_dims else 0
    pad = max(0, 2 - len(merged_shape))
    return ((1,) * pad + merged_shape, [(0,) * pad + m for m in merged_strides], col_dims)


def _tile(shape, whole_rows, gathers=False):
    """(BLOCK_R, BLOCK_C, programs, the padded shape) of a launch over ``shape`` in tiles of
    rows (every dim but the last, flat) by columns; with ``whole_rows`` a tile is whole rows or
    a piece of one row, so that tiles in launch order hold the elements in row-major order, and
    tiles of up to ``TILE`` elements whatever the call's size (the ranked launch takes 8 warps
    for a whole one); other tiles shrink towards ``SMALL_TILE`` for small calls (with
    ``gathers``, a launch gathering by value, the ``GATHER_`` constants). A tile is
    one row of ``BLOCK_C`` at least. The padded shape holds every coordinate a tile forms,
    its masked lanes' too."""
    rows, cols = math.prod(shape[:-1]), shape[-1]
    small, programs = (GATHER_SMALL_TILE, GATHER_TILE_PROGRAMS) if gathers else (
        SMALL_TILE, TILE_PROGRAMS)
    area = TILE if whole_rows else program_area(rows * cols, small, TILE, programs)
    block_c = min(triton.next_power_of_2(cols),
                  area if whole_rows else max(TILE_COLS, area // triton.next_power_of_2(rows)))
    block_r = max(1, min(triton.next_power_of_2(rows), area // block_c))
    row_tiles, col_tiles = triton.cdiv(rows, block_r), triton.cdiv(cols, block_c)
    padded = ((triton.cdiv(row_tiles * block_r, math.prod(shape[1:-1])),) + tuple(shape[1:-1])
              + (col_tiles * block_c,))
    return block_r, block_c, row_tiles * col_tiles, padded


class IndexOp(Op):
    """Data movement with one skeleton: out[i] = gathered if take_g else (x if keep_x else 0).

    Declare on a subclass:
      select    ``@triton.jit def select(outer, row, col, ncols, aux, rank, s0, s1, s2)``
                returning ``(keep_x, take_g, g_index)`` for a tile of output elements: ``col``
                is their flat index over the plan's last ``col_dims`` result dims (the last
                one by default; ``ncols`` of them), ``row`` their coordinate along the dim
                before and ``outer`` their flat index over the dims before that (each a 2-d
                tensor that may be one row or one column of the tile, broadcast as they
                combine: what depends on rows only is computed once per row); ``aux`` the
                auxiliary operand's element (0 without one), ``rank`` the number of nonzero
                aux elements before this one in row-major order (ranked aux only);
                ``s0..s2`` the plan's integer scalars (specialized: a 1 is a constant).
                ``g_index`` is a flat row-major index into the gathered tensor.
      prepare   ``prepare(out, inplace, *args)`` (args in schema order): validates with
                PyTorch's messages and returns a ``Plan`` (a plan may name another select).
      out_overlap  whether ``out=`` (and self in place) must not overlap itself.
      sample_args  ``sample_args(dtype, shape, make)`` -> [(args, kwargs, label)]: natural
                calls (``Op``'s hook).
    Optional: ``validate(plan, out)``, errors PyTorch raises after its out= checks.
    A plan with ``device_checks`` has a select that checks values with ``tl.device_assert`` (as
    PyTorch's CUDA_KERNEL_ASSERT: a bad value is reported at the next synchronization, with no
    host read); compiled kernels launch it with Triton's ``debug`` option. A plan's
    ``hits_check`` is made so too, once, on the ranked aux's total (PyTorch's CUDA size check
    of masked_scatter). The interpreter ignores device asserts: there the op checks on the host.

    The skeleton guarantees: every tensor read through its strides (no copies), int64 offsets
    only where needed, exact data movement for every dtype (a gathered value is cast into the
    result's dtype), and a written zero wherever neither source is selected. It runs in tiles of
    rows (every dim but the last, after merging dims) by columns, sizes and strides
    specialized, so a row-major operand moves in 16-byte vectors; a tile that keeps no element of x reads none of
    it, and one that gathers nothing reads no g. An in-place or
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
        where out is x itself (in place), only the elements that change are written, unless
        they are ``scattered``."""
        x = plan.x[0] if plan.x else None
        if (plan.select is copy and x is not None and plan.aux is None and plan.gather is None
                and not plan.device_checks):
            # every element from x, through its strides: the copy family's write, a flat walk
            # where the layouts agree (transposed tiles where they do not), not this skeleton's
            # 2-d tiles of coordinates (H100, slice_scatter of a whole 8192x8192 float16: 96.1
            # µs, a flat copy 93.7)
            source = x.as_strided(plan.shape, plan.x[1])
            computed_apart(self, out, [x], lambda: plan.allocate(out.device),
                           lambda target: write(self, target, source))
            return
        same_x = (x is not None and x.data_ptr() == out.data_ptr() and x.dtype == out.dtype
                  and tuple(plan.x[1]) == tuple(out.stride()))
        inputs = [t for t in (None if same_x else x, plan.aux and plan.aux[0], plan.gather)
                  if t is not None]
        computed_apart(self, out, inputs, lambda: plan.allocate(out.device),
                       lambda target: launch_plan(self.name, plan, target,
                                                  sparse=same_x and target is out
                                                  and not plan.scattered))


def launch_plan(name, plan, out, sparse=False):
    """The skeleton's launches over a plan's result in ``out``, counted for ``name``: one, or
    for a ranked aux three (hits counted per tile, their offsets, the result); ``sparse``: out
    is x itself, only the elements that change are written."""
    ndim = len(out.shape)
    x, x_strides = plan.x if plan.x else (None, (0,) * ndim)
    aux, aux_strides = plan.aux if plan.aux else (None, (0,) * ndim)
    if aux is not None and aux.dtype == torch.bool:
        aux = aux.view(torch.uint8)  # read as bytes: compiled, a bool load unpacks bit by bit
    shape, (out_strides, x_strides, aux_strides), col_dims = _collapse(
        tuple(out.shape), [out.stride(), x_strides, aux_strides], plan.pinned, plan.col_dims)
    g = plan.gather
    if g is not None:
        g_shape, (g_strides,) = geometry.collapse(tuple(g.shape), [g.stride()])
        g_shape = tuple(max(n, 1) for n in g_shape)  # an empty g is never read
    else:
        g_shape, g_strides = (1,), (0,)
    ranked = aux is not None and plan.aux_mode == AUX_RANKED
    by_value = aux is not None and plan.aux_mode == AUX_VALUE
    block_r, block_c, tiles, padded = _tile(shape, whole_rows=ranked, gathers=by_value)
    index_64 = needs_int64([(padded, out_strides), (padded, x_strides),
                            (padded, aux_strides), (g_shape, g_strides)], math.prod(padded))
    scalars = tuple(plan.scalars) + (0,) * (3 - len(plan.scalars))
    counts = None
    if ranked:
        counts = scratch(torch.empty(tiles + 1, dtype=torch.int64, device=out.device))
    args = [out, x if x is not None else out, aux if aux is not None else out,
            g if g is not None else out, counts if counts is not None else out, shape,
            out_strides, x_strides, aux_strides, g_shape, g_strides, *scalars]
    constants = dict(
        SELECT=plan.select, NDIM=len(shape), COL_DIMS=col_dims,
        GDIM=len(g_shape) if g is not None else 0, READ_X=x is not None and not sparse,
        X_ROWS=x is not None and x_strides[-1] == 0, FILL=plan.fill,
        AUX=plan.aux_mode if aux is not None else AUX_NONE, SPARSE=sparse,
        INDEX_64=index_64, BLOCK_R=block_r, BLOCK_C=block_c,
        **(_DEVICE_CHECKS if plan.device_checks and not INTERPRETED else {}))
    main = constants
    if by_value and not INTERPRETED:
        main = {**constants, "num_warps": GATHER_WARPS}
    if ranked and not sparse and not INTERPRETED and block_r * block_c == TILE:
        # a whole ranked tile of 4096 on 8 warps: 59 registers where 4 warps held 112, so
        # twice the warps an SM hide its gathers' latency (H100, masked_scatter 8192x8192
        # float16: 245.9 µs against 277.6); in place (sparse), 4 warps stay faster (425 to 447)
        main = {**constants, "num_warps": 8}
    if ranked:
        limit, message = plan.hits_check or (0, None)
        scan = ((1,), counts, tiles, limit)
        scan_options = dict(MESSAGE=message, BLOCK=min(triton.next_power_of_2(tiles), SCAN_BLOCK),
                            num_warps=16,
                            **(_DEVICE_CHECKS if message is not None and not INTERPRETED else {}))
        # the scan checks the hits (a device-side assertion): what follows it is loaded first
        load_ahead(_index_kernel, (tiles,), *args, COUNT_ONLY=False, **main)
        load_ahead(_exclusive_scan, *scan, **scan_options)
        launch(name, _index_kernel, (tiles,), *args, COUNT_ONLY=True, **constants)
        launch(name, _exclusive_scan, *scan, **scan_options)
    launch(name, _index_kernel, (tiles,), *args, COUNT_ONLY=False, **main)
