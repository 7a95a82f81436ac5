"""ReductionOp: per-row statistics along one dim (rows of any length), then either an
elementwise pass over the row that uses them (softmax-like ops) or one value per row (trace)."""
import math

import attrs
import torch
import triton
import triton.language as tl

from ..runtime import errors, geometry
from ..runtime.device import INTERPRETED
from ..runtime.indexing import BLOCK, needs_int64, strided_offsets
from ..runtime.triton_types import TL_DTYPE, converted
from ..runtime.launch import launch
from ..runtime.plans import scratch
from .base import Op, bind

NEG_INF = tl.constexpr(float("-inf"))


@triton.jit
def _load_tile(x_ptr, y_ptr, x_base, y_base, cols, x_step, y_step, valid,
               CAST: tl.constexpr, COMPUTE: tl.constexpr, HAS_Y: tl.constexpr,
               EVICTION: tl.constexpr):
    """A [ROWS, BLOCK] tile: x as stored, x converted (through CAST) and y in the compute dtype.
    ``EVICTION``: "evict_last" where the tile is read again (the statistics pass of a long row
    with an output per element), "evict_first" where it is read the second and last time (the
    lines evict_last kept leave L2 first, not the next rows'), "" (the cache's default) where
    it is read once: evict_first there made the one pass of `_log_softmax_backward_data` 1-2%
    slower on an H100."""
    x = tl.load(x_ptr + x_base + cols * x_step, mask=valid, other=0, eviction_policy=EVICTION)
    xc = x.to(CAST).to(COMPUTE)
    if HAS_Y:
        yc = tl.load(y_ptr + y_base + cols * y_step, mask=valid, other=0,
                     eviction_policy=EVICTION).to(COMPUTE)
    else:
        yc = xc
    return x, xc, yc


@triton.jit
def _fold_tiles(a, b, c, x_ptr, y_ptr, x_base, y_base, cols, row_ok, first, end, row_len,
                x_step, y_step, STATS: tl.constexpr, COMBINE: tl.constexpr, CAST: tl.constexpr,
                COMPUTE: tl.constexpr, HAS_Y: tl.constexpr, EVICTION: tl.constexpr,
                BLOCK: tl.constexpr):
    """The statistics (a, b, c) with those of the rows' tiles from column ``first`` up to
    ``end`` folded in, tile by tile. Lanes are masked by ``row_len`` alone (tiles start at
    multiples of BLOCK), whose specialization proves the loads aligned."""
    for start in range(first, end, BLOCK):
        valid = row_ok & (start + cols < row_len)
        x, xc, yc = _load_tile(x_ptr, y_ptr, x_base, y_base, start + cols, x_step, y_step,
                               valid, CAST, COMPUTE, HAS_Y, EVICTION)
        a2, b2, c2 = STATS(x, xc, yc, valid)
        a, b, c = COMBINE(a, b, c, a2, b2, c2)
    return a, b, c


@triton.jit
def _write_tiles(out_ptr, x_ptr, y_ptr, out_base, x_base, y_base, cols, row_ok, first, end,
                 row_len, out_step, x_step, y_step, a, b, c, FINISH: tl.constexpr,
                 CAST: tl.constexpr, COMPUTE: tl.constexpr, HAS_Y: tl.constexpr,
                 BLOCK: tl.constexpr, LAST_FIRST: tl.constexpr = False):
    """The outputs of the rows' tiles from column ``first`` up to ``end``, from the rows'
    statistics: each tile read again (its last read: evict_first); ``LAST_FIRST``: the last
    tile first, while L2 still holds the tiles read last."""
    last = first + (end - first - 1) // BLOCK * BLOCK
    for step in range(first, end, BLOCK):
        start = last - (step - first) if LAST_FIRST else step
        valid = row_ok & (start + cols < row_len)
        x, xc, yc = _load_tile(x_ptr, y_ptr, x_base, y_base, start + cols, x_step, y_step,
                               valid, CAST, COMPUTE, HAS_Y, "evict_first")
        result = FINISH(xc, yc, a, b, c)
        tl.store(out_ptr + out_base + (start + cols) * out_step,
                 converted(result, out_ptr.dtype.element_ty), mask=valid)


@triton.jit
def _program_rows(pid, n_rows, outer_shape, out_strides, x_strides, y_strides,
                  OUTER_NDIM: tl.constexpr, INDEX_64: tl.constexpr, ROWS: tl.constexpr,
                  BLOCK: tl.constexpr):
    """Program ``pid``'s rows (ROWS of them): their numbers, their base offsets through the
    other (outer) dims, whether each is a row, all [ROWS, 1], and a tile's columns."""
    cols = tl.arange(0, BLOCK)[None, :]
    if INDEX_64:
        pid = pid.to(tl.int64)
        cols = cols.to(tl.int64)
    rows = pid * ROWS + tl.arange(0, ROWS)
    row_ok = rows < n_rows
    out_base, x_base, y_base = strided_offsets(rows, outer_shape,
                                               (out_strides, x_strides, y_strides), OUTER_NDIM)
    return (rows[:, None], out_base[:, None], x_base[:, None], y_base[:, None],
            row_ok[:, None], cols)


@triton.jit
def _chunk_span(pid, chunk_tiles, row_len, INDEX_64: tl.constexpr, CHUNKS: tl.constexpr,
                BLOCK: tl.constexpr):
    """The columns [first, end) of program ``pid``'s chunk of its rows in a split launch."""
    chunk = pid % CHUNKS
    if INDEX_64:
        chunk = chunk.to(tl.int64)
    first = chunk * chunk_tiles * BLOCK
    return first, tl.minimum(first + chunk_tiles * BLOCK, row_len)


# n_rows alone is left unspecialized: the row length, strides and steps are fixed by a call's
# signature, and Triton's specialization of them (a step of 1 becomes a constant, a length or
# stride divisible by 16 says so) is what lets it prove that a row is contiguous and aligned,
# and load and store it 16 bytes at a time
@triton.jit(do_not_specialize=["n_rows"])
def _reduction_kernel(
    out_ptr, x_ptr, y_ptr, n_rows, row_len, outer_shape, out_strides, x_strides, y_strides,
    out_step, x_step, y_step,
    STATS: tl.constexpr, COMBINE: tl.constexpr, FINISH: tl.constexpr, PER_ROW: tl.constexpr,
    OUTER_NDIM: tl.constexpr, CAST: tl.constexpr, COMPUTE: tl.constexpr, HAS_Y: tl.constexpr,
    ONE_PASS: tl.constexpr, INDEX_64: tl.constexpr, ROWS: tl.constexpr, BLOCK: tl.constexpr,
):
    _, out_base, x_base, y_base, row_ok, cols = _program_rows(
        tl.program_id(0), n_rows, outer_shape, out_strides, x_strides, y_strides, OUTER_NDIM,
        INDEX_64, ROWS, BLOCK)
    # the first tile's statistics; a longer row folds in each further tile's
    valid = row_ok & (cols < row_len)
    # a row longer than the tile with an output per element is read twice: its first reads
    # are kept in L2 for the second
    x, xc, yc = _load_tile(x_ptr, y_ptr, x_base, y_base, cols, x_step, y_step, valid,
                           CAST, COMPUTE, HAS_Y, "" if ONE_PASS or PER_ROW else "evict_last")
    a, b, c = STATS(x, xc, yc, valid)
    if ONE_PASS:  # the whole row is held in one tile: read once, written from registers
        if not PER_ROW:
            result = FINISH(xc, yc, a, b, c)
            tl.store(out_ptr + out_base + cols * out_step,
                     converted(result, out_ptr.dtype.element_ty), mask=valid)
    else:
        a, b, c = _fold_tiles(a, b, c, x_ptr, y_ptr, x_base, y_base, cols, row_ok, BLOCK, row_len,
                              row_len, x_step, y_step, STATS, COMBINE, CAST, COMPUTE, HAS_Y,
                              "" if PER_ROW else "evict_last", BLOCK)
        if not PER_ROW:  # the row read again, tile by tile, for the output
            _write_tiles(out_ptr, x_ptr, y_ptr, out_base, x_base, y_base, cols, row_ok, 0, row_len,
                         row_len, out_step, x_step, y_step, a, b, c, FINISH, CAST, COMPUTE, HAS_Y,
                         BLOCK)
    if PER_ROW:
        tl.store(out_ptr + out_base, converted(b, out_ptr.dtype.element_ty), mask=row_ok)


# a row split across programs: each program folds the statistics of one chunk of its rows
# (CHUNKS a row, ``chunk_tiles`` tiles each) into ``partials`` ([3, rows, CHUNKS]: a, b, c, each
# ``plane`` apart, rows padded to whole programs);
# a second launch combines each row's chunks and writes one chunk of outputs a program
@triton.jit(do_not_specialize=["n_rows", "chunk_tiles"])
def _chunk_stats_kernel(
    partials_ptr, x_ptr, y_ptr, n_rows, row_len, chunk_tiles, plane, outer_shape, x_strides,
    y_strides, x_step, y_step,
    STATS: tl.constexpr, COMBINE: tl.constexpr, PER_ROW: tl.constexpr,
    OUTER_NDIM: tl.constexpr, CAST: tl.constexpr, COMPUTE: tl.constexpr, HAS_Y: tl.constexpr,
    INDEX_64: tl.constexpr, ROWS: tl.constexpr, BLOCK: tl.constexpr, CHUNKS: tl.constexpr,
):
    pid = tl.program_id(0)
    rows, _, x_base, y_base, row_ok, cols = _program_rows(  # (no output: x's strides stand in)
        pid // CHUNKS, n_rows, outer_shape, x_strides, x_strides, y_strides, OUTER_NDIM,
        INDEX_64, ROWS, BLOCK)
    first, end = _chunk_span(pid, chunk_tiles, row_len, INDEX_64, CHUNKS, BLOCK)
    # a chunk past the row's end (CHUNKS is a power of two) loads nothing: its statistics are
    # those of masked lanes, which add nothing when combined
    eviction: tl.constexpr = "" if PER_ROW else "evict_last"
    valid = row_ok & (first + cols < row_len)
    x, xc, yc = _load_tile(x_ptr, y_ptr, x_base, y_base, first + cols, x_step, y_step, valid,
                           CAST, COMPUTE, HAS_Y, eviction)
    a, b, c = STATS(x, xc, yc, valid)
    a, b, c = _fold_tiles(a, b, c, x_ptr, y_ptr, x_base, y_base, cols, row_ok, first + BLOCK,
                          end, row_len, x_step, y_step, STATS, COMBINE, CAST, COMPUTE, HAS_Y,
                          eviction, BLOCK)
    part = partials_ptr + rows * CHUNKS + pid % CHUNKS
    tl.store(part, a)
    tl.store(part + plane, b)
    tl.store(part + 2 * plane, c)


@triton.jit(do_not_specialize=["n_rows", "chunk_tiles"])
def _chunk_finish_kernel(
    out_ptr, partials_ptr, x_ptr, y_ptr, n_rows, row_len, chunk_tiles, plane, outer_shape,
    out_strides, x_strides, y_strides, out_step, x_step, y_step,
    COMBINE_CHUNKS: tl.constexpr, FINISH: tl.constexpr,
    PER_ROW: tl.constexpr, OUTER_NDIM: tl.constexpr, CAST: tl.constexpr, COMPUTE: tl.constexpr,
    HAS_Y: tl.constexpr, INDEX_64: tl.constexpr, ROWS: tl.constexpr, BLOCK: tl.constexpr,
    CHUNKS: tl.constexpr,
):
    # programs in the reverse order of the statistics': the first to run read the chunks read
    # last, which L2 still holds
    pid = tl.num_programs(0) - 1 - tl.program_id(0)
    group = pid if PER_ROW else pid // CHUNKS
    rows, out_base, x_base, y_base, row_ok, cols = _program_rows(
        group, n_rows, outer_shape, out_strides, x_strides, y_strides, OUTER_NDIM, INDEX_64,
        ROWS, BLOCK)
    # the chunks' statistics loaded across a tile's lanes and reduced in the tile's layout, as
    # a row's statistics are: the compiler then broadcasts them to the tiles as it does there
    # (loaded as [ROWS, CHUNKS], Triton 3.6 laid out a finish's [1, BLOCK] operand with every
    # lane in each thread, and spilled it)
    valid = row_ok & (cols < CHUNKS)
    part = partials_ptr + rows * CHUNKS + cols
    a, b, c = COMBINE_CHUNKS(tl.load(part, mask=valid, other=0),
                             tl.load(part + plane, mask=valid, other=0),
                             tl.load(part + 2 * plane, mask=valid, other=0), valid)
    if PER_ROW:
        tl.store(out_ptr + out_base, converted(b, out_ptr.dtype.element_ty), mask=row_ok)
    else:
        first, end = _chunk_span(pid, chunk_tiles, row_len, INDEX_64, CHUNKS, BLOCK)
        _write_tiles(out_ptr, x_ptr, y_ptr, out_base, x_base, y_base, cols, row_ok, first, end,
                     row_len, out_step, x_step, y_step, a, b, c, FINISH, CAST, COMPUTE, HAS_Y,
                     BLOCK, LAST_FIRST=True)


@triton.jit
def _add_in_order(sums, values, index, COUNT: tl.constexpr):
    """``sums`` with each of its lanes' ``COUNT`` values along dim 1 of ``values`` (``index``
    their positions there) added one after the other (the order of a ``tl.sum`` along them is
    the compiler's, or numpy's, to choose). Value k is picked out by a sum with -0.0s, exact
    (x + -0.0 is x), which the compiler drops where a thread holds all of a lane's values
    (x + -0.0 folds to x; + 0.0 would not)."""
    for k in tl.static_range(COUNT):
        sums += tl.sum(tl.where(index == k, values, -0.0), axis=1)
    return sums


@triton.jit
def _halved(v, GROUPS: tl.constexpr, HALF: tl.constexpr):
    """[GROUPS, 2 * HALF] -> [GROUPS, HALF]: each group's element i plus its element i + HALF,
    one addition each (the same sum whatever the layout)."""
    return tl.sum(tl.reshape(v, [GROUPS, 2, HALF]), axis=1)


@triton.jit
def _shuffle_down_sums(sums, ROWS: tl.constexpr, THREADS: tl.constexpr):
    """[ROWS, THREADS] -> [ROWS, 1]: each row's threads' sums (a power of two of them) added as
    PyTorch's block reductions add them (``cuda_utils::BlockReduce``): within each warp lane l
    plus lane l + 16, then + 8, 4, 2, 1 (a shuffle-down tree, ending in lane 0); then the
    warps' sums alike. Fewer than 32 threads are the lanes of one warp (PyTorch's warp softmax
    kernels add theirs in a butterfly, lane l plus lane l ^ 16, ..., whose sum in every lane
    is this tree's). Written as sums of two: ``tl.sum`` over many lanes reduces in the order
    of the layout Triton picks, which is not that tree where it cannot prove a row's vectors
    aligned."""
    LANES: tl.constexpr = THREADS if THREADS < 32 else 32
    WARPS: tl.constexpr = THREADS // LANES
    v = tl.reshape(sums, [ROWS * WARPS, LANES])
    for k in tl.static_range(5):
        if (LANES >> k) > 1:
            v = _halved(v, ROWS * WARPS, LANES >> (k + 1))
    v = tl.reshape(v, [ROWS, WARPS])
    for k in tl.static_range(5):
        if (WARPS >> k) > 1:
            v = _halved(v, ROWS, WARPS >> (k + 1))
    return v


@triton.jit
def _shuffle_down_sum(sums, THREADS: tl.constexpr):
    """[THREADS] -> [1, 1]: ``_shuffle_down_sums`` of one row."""
    return _shuffle_down_sums(tl.reshape(sums, [1, THREADS]), 1, THREADS)


# rows whose statistics are the family's sum, summed in the order of PyTorch's CUDA softmax
# backward where it caches a row in shared memory (``ReductionOp.sum_order``, on THREADS
# threads): thread t adds, one after the other, the VECTOR elements of its vector at
# t * VECTOR, then those of the vector a stretch (THREADS * VECTOR elements) further on, and so
# on to the row's end; then the threads' sums across the program in PyTorch's tree
# (``_shuffle_down_sum``). The row is streamed a stretch at a time, then read again for the
# outputs (from L2: the first reads keep their lines): a thread holds one vector of it at a
# time (sm_90, 16-bit rows of 8192: 32 registers, where the row held in one tile takes 56). On
# an H100 it gave eager's results in every row it took and ran within 0.5% of the tiles' time
# (NOTES "The compiled runs of 2026-12-07 (night, H100)")
@triton.jit(do_not_specialize=["n_rows"])
def _ordered_sum_kernel(
    out_ptr, x_ptr, y_ptr, n_rows, row_len, outer_shape, out_strides, x_strides, y_strides,
    out_step, x_step, y_step,
    FINISH: tl.constexpr, OUTER_NDIM: tl.constexpr, CAST: tl.constexpr, COMPUTE: tl.constexpr,
    HAS_Y: tl.constexpr, INDEX_64: tl.constexpr, THREADS: tl.constexpr, VECTOR: tl.constexpr,
):
    stretch: tl.constexpr = THREADS * VECTOR
    out_base, x_base, y_base, row_ok = _program_rows(
        tl.program_id(0), n_rows, outer_shape, out_strides, x_strides, y_strides, OUTER_NDIM,
        INDEX_64, 1, stretch)[1:5]
    thread = tl.arange(0, THREADS)[:, None]
    element = tl.arange(0, VECTOR)[None, :]
    if INDEX_64:
        thread = thread.to(tl.int64)
    vectors = thread * VECTOR + element  # [THREADS, VECTOR]: each thread's vector
    sums = tl.zeros([THREADS], COMPUTE)
    for start in range(0, row_len, stretch):
        # (rows of whole vectors: a vector past the row's end adds zeros, exactly nothing)
        xc = _load_tile(x_ptr, y_ptr, x_base, y_base, start + vectors, x_step, y_step,
                        row_ok & (start + vectors < row_len), CAST, COMPUTE, False,
                        "evict_last")[1]
        sums = _add_in_order(sums, xc, element, VECTOR)
    total = _shuffle_down_sum(sums, THREADS)
    _write_tiles(out_ptr, x_ptr, y_ptr, out_base, x_base, y_base, vectors, row_ok, 0, row_len,
                 row_len, out_step, x_step, y_step, total, total, total, FINISH, CAST, COMPUTE,
                 HAS_Y, stretch)


# rows PyTorch reads an element a thread at a time (``sum_order``'s vector 1: its warp softmax
# kernels, a warp a row, and its forward's register kernel, 1024 threads a row), held in
# registers: a program reads ROWS rows once as a [ROWS, STRETCHES, THREADS] tile, lane t of
# stretch s being the row's element s * THREADS + t; the op's TERM of each element (its own
# value for the family's sum; a softmax's exp, given the max a PRIOR took over the tile) is
# added to its lane's sum a stretch at a time (``_add_in_order``), the lanes' sums
# in PyTorch's tree, and FINISH writes the outputs from the tile. Only the lanes' dim may span
# threads (the launch sees to it: one warp for a warp's rows, its warps all on the lanes
# otherwise), so a thread holds every stretch of its lanes and no pick crosses threads (the
# census tests check it); LOAD lanes a thread (an element each for a warp's rows, as
# PyTorch loads them). WHOLE: every lane of every stretch is in the row (no lane to compare
# with row_len); ALL_ROWS: as many rows as the programs take (no row to mask)
@triton.jit(do_not_specialize=["n_rows"])
def _held_ordered_kernel(
    out_ptr, x_ptr, y_ptr, n_rows, row_len, outer_shape, out_strides, x_strides, y_strides,
    out_step, x_step, y_step,
    PRIOR: tl.constexpr, TERM: tl.constexpr, FINISH: tl.constexpr,
    HAS_PRIOR: tl.constexpr, OUTER_NDIM: tl.constexpr, CAST: tl.constexpr,
    COMPUTE: tl.constexpr, HAS_Y: tl.constexpr, INDEX_64: tl.constexpr, ROWS: tl.constexpr,
    STRETCHES: tl.constexpr, THREADS: tl.constexpr, LOAD: tl.constexpr, WHOLE: tl.constexpr,
    ALL_ROWS: tl.constexpr,
):
    out_base, x_base, y_base, row_ok, lane = _program_rows(
        tl.program_id(0), n_rows, outer_shape, out_strides, x_strides, y_strides, OUTER_NDIM,
        INDEX_64, ROWS, THREADS)[1:6]
    stretch = tl.arange(0, STRETCHES)[None, :, None]
    if INDEX_64:
        stretch = stretch.to(tl.int64)
    cols = stretch * THREADS + lane[:, None, :]  # [1, STRETCHES, THREADS]
    cols = tl.multiple_of(cols, [1, 1, LOAD])  # (what Triton may load at once, not 16 bytes)
    out_base, x_base = out_base[:, :, None], x_base[:, :, None]
    y_base, row_ok = y_base[:, :, None], row_ok[:, :, None]
    # a mask an element, held in registers and tested before each element's max, term and
    # sum, took 28-34% of a warp's rows' instructions and their registers from 64 to 95-112
    # (sm_90, float16 rows of 1024): rows of whole stretches have none; in others, the first
    # half of the stretches is whole (the launch rounds the row's stretches up to a power of
    # two), its masks constants. (A constexpr count of whole stretches would leave one
    # stretch masked, but compile a kernel for every 32 lengths of a warp's rows.)
    if WHOLE:
        valid = tl.full([1, STRETCHES, 1], 1, tl.int1)
    else:
        valid = (stretch < STRETCHES // 2) | (cols < row_len)
    if not ALL_ROWS:
        valid = valid & row_ok
    valid = tl.broadcast_to(valid, [ROWS, STRETCHES, THREADS])
    x, xc, yc = _load_tile(x_ptr, y_ptr, x_base, y_base, cols, x_step, y_step, valid, CAST,
                           COMPUTE, HAS_Y, "")
    if HAS_PRIOR:
        # the family's [ROWS, BLOCK] rows, in the row's order (no element changes threads)
        flat: tl.constexpr = STRETCHES * THREADS
        a, c = PRIOR(tl.reshape(x, [ROWS, flat]), tl.reshape(xc, [ROWS, flat]),
                     tl.reshape(yc, [ROWS, flat]), tl.reshape(valid, [ROWS, flat]))
        a, c = a[:, :, None], c[:, :, None]
        terms = tl.where(valid, TERM(xc, yc, a, c), 0.0)
    else:
        terms = xc  # (lanes past the row's end hold zeros: they add exactly nothing)
    # (PyTorch's sums start at 0, as these do)
    sums = _add_in_order(tl.zeros([ROWS, THREADS], COMPUTE), terms,
                         tl.arange(0, STRETCHES)[None, :, None], STRETCHES)
    total = _shuffle_down_sums(sums, ROWS, THREADS)[:, :, None]
    if not HAS_PRIOR:
        a = total
        c = total
    tl.store(out_ptr + out_base + cols * out_step,
             converted(FINISH(xc, yc, a, total, c), out_ptr.dtype.element_ty), mask=valid)


@triton.jit
def sum_stats(x, xc, yc, valid):
    total = tl.sum(tl.where(valid, xc, 0), axis=1, keep_dims=True)
    return total, total, total


@triton.jit
def sum_combine(a, b, c, a2, b2, c2):
    total = b + b2
    return total, total, total


@triton.jit
def sum_combine_chunks(a, b, c, valid):
    """``sum_combine`` over each row's chunks at once."""
    total = tl.sum(tl.where(valid, b, 0), axis=1, keep_dims=True)
    return total, total, total


@attrs.frozen
class Rows:
    """One call's rows: ``x`` (and ``y``, same shape) read along ``dim``; the result has
    ``shape`` and ``dtype`` (contiguous; for an op without ``finish``, one value per row);
    ``cast`` is the dtype x is rounded to before the math, ``compute`` the dtype it runs in."""

    x: torch.Tensor
    dim: int
    shape: tuple
    dtype: torch.dtype
    compute: torch.dtype
    cast: torch.dtype = None
    y: torch.Tensor = None


# Compiled, a row of up to _ROW_TILE elements is one tile, held in registers: read once,
# written from there (an 8192-long float16 softmax row moves 32 KB, not 48); a program takes
# several short rows, up to _TILE elements. The interpreter runs one program at a time:
# fewer, larger programs run faster there.
_ROW_TILE = BLOCK if INTERPRETED else 16384
_TILE = BLOCK if INTERPRETED else 4096
_ELEMENTS_PER_THREAD = 16  # of a tile, per thread: larger tiles get more warps (4 to 16)
_PROGRAMS = 1024
"""Compiled, the programs a call with that many rows makes at least: a program takes several
short rows only where the rows outnumber them (1024 rows of 1024 made 256 programs of 4 rows
on 8 warps, 2 an SM of an H100, where take's gathers at the same size ran 10% faster on 1024
programs than on 256)."""


_LOAD_AHEAD_REGISTERS = 64
"""Compiled, the registers a thread may take (ptxas's ``.maxnreg``) in a one-pass launch with a
second input. Left to itself, ptxas fits such a program in 40 registers (sm_90, 16-bit, 16
elements of each input a thread) by loading y only after x's sum has freed x's registers: two
memory round trips, one after the other, in every program. Allowed 64, it takes 56 to 62 and
issues every load before the sum, as it does by itself for float32 (52 registers), whose rows
ran at 99% of the copy ceiling on an H200 where 16-bit ones ran at 93%. Two programs of 16 warps
an SM either way for float32; for 16-bit, two instead of three. On an H100, where the 16-bit
one pass was already within 1.2% of torch.compile's, it measured 0 to 1.2% faster."""


def elements_per_thread(tile):
    """The elements of a (rows per program, tile length, warps) tile each thread holds."""
    rows, block, warps = tile
    return rows * block // (32 * warps)


def _padded(row_len, block):
    """A row's length rounded up to whole tiles of ``block``."""
    return triton.cdiv(row_len, block) * block


def _warps(elements):
    """The warps of a program of a tile of ``elements``: ``_ELEMENTS_PER_THREAD`` a thread, 4 to
    16 warps."""
    return min(16, max(4, elements // (32 * _ELEMENTS_PER_THREAD)))


_ALONE_ON_AN_SM = 64
"""Compiled, the bytes of a tile each thread holds above which a program of 16 warps takes more
than 64 registers (sm_90: 81 for a float32 tile of 16384, 32 elements a thread), so runs alone
on its SM."""


def _tile_halves(row_len, block, itemsize):
    """Whether a row read twice (longer than ``block``) reads faster in tiles of ``block // 2``.

    A row read twice costs its tiles' lanes, masked ones too (each tile's statistics are a
    reduction across it): on an H100, rows of 20000 in tiles of 8192 rather than two of 16384
    took float32 softmax from 311.7 to 206.8 µs, float16 164.2 to 135.4; where both pad alike
    the larger ran faster (fewer reductions a row), except a row of two tiles of a program
    alone on its SM: float32 rows of 32768, 227.8 µs in two tiles of 16384, 196.8 in four of
    8192 (three programs an SM), where rows of 65536 ran at 218.4 and 251.6 (NOTES "Rows read
    twice: the tile that pads them least", "Float32 rows of two tiles: a program alone on its
    SM")."""
    if _padded(row_len, block // 2) < _padded(row_len, block):
        return True
    held = elements_per_thread((1, block, _warps(block))) * itemsize  # bytes a thread
    return not INTERPRETED and row_len <= 2 * block and held > _ALONE_ON_AN_SM


def _plan_tile(row_len, n_rows, strided, itemsize, read_twice):
    """(rows per program, tile length, warps) of a launch of rows of ``itemsize``-byte
    elements, which, longer than a tile, are ``read_twice`` (statistics, then an output an
    element) or once (one value a row)."""
    block = min(triton.next_power_of_2(max(row_len, 1)), _ROW_TILE)
    # (a row read once, as trace's diagonal in one program, waits on one round trip of loads
    # a tile: the fewer tiles the better)
    if row_len > block and read_twice and _tile_halves(row_len, block, itemsize):
        block //= 2
    if strided and n_rows > 1 and not INTERPRETED:
        block = min(block, 256)  # rows along a strided dim: neighbouring rows share cache lines
    rows = min(triton.next_power_of_2(max(n_rows, 1)), max(1, _TILE // block))
    if not (INTERPRETED or strided):
        # (the interpreter runs one program at a time: the fewer the faster; strided rows keep
        # their neighbours, which share cache lines)
        rows = min(rows, 1 << (max(1, n_rows // _PROGRAMS).bit_length() - 1))
    return rows, block, _warps(rows * block)


_SPLIT_BELOW = 128
"""Rows longer than a tile in a launch of fewer programs than this (one per row, or a few strided
rows a program), fewer than an H100's or H200's SMs, are split across programs: each row in
``_split_chunks`` chunks, a power of two, enough for ``_SPLIT_PROGRAMS``. A program reads its
chunk's statistics, a second launch combines each row's and writes one chunk's outputs. On
an H100, float16: one row of 2**24 took 49.5 µs split and 4375 in one program; 8 rows of
4194304 83.9 and 905.4; 128 rows of 262144 83.3 and 84.3; 200 rows of 131072 69.9 split and
61.3 in 200 programs (split, the second launch reads from memory what one program a row
reads again from L2; NOTES "Few long rows split across programs")."""
_SPLIT_PROGRAMS = 256
"""The programs a split launch makes at least: two of 16 warps an SM, as ``_TWO_PROGRAMS``
allows."""
_SPLIT_ELEMENTS = 1 << 18
"""The elements of a launch from which it splits its rows: below, two launches cost more than
one program reading a row."""


_HELD_LANES = 4
"""Lanes of PyTorch's register kernel (1024 threads) each thread of an ordered launch holds:
on 8 warps, 8-byte loads of 16-bit rows (H100, float16 8192 x 8192: 100.4 µs, the tiles'
100.0; 2 lanes on 16 warps 130.9, 1 on 32 warps 258.4: NOTES "Softmax sums in PyTorch's
order")."""
_HELD_REGISTERS = {} if INTERPRETED else {"maxnreg": 128}
"""Compiled, the registers a thread of a held ordered launch of more than 32 elements a thread
may take where lanes are masked (rows not of whole stretches): a warp's float16 rows of 2048
(64 elements a thread), each lane masked, took 168 left alone; held to 128 they ran in 110.5
µs (32768 x 2048 on an H100) instead of 133.8. With only the second half of the stretches
masked, rows of 2000 take 128 with the cap or without it under Triton 3.6, 168 without it
under 3.9 (sm_90): kept for the compilers that take more. Others are left alone: given 128,
ptxas takes it, and whole rows of 2048 take 80."""
_HELD_ORDERED = 8192
"""The longest rows (rounded up to whole stretches, a power of two of them) an ordered launch
of an element a thread holds in registers: a warp's rows (up to 2048) and the register
kernel's up to 8192; the register kernel's rows of 8193 to 9216 (nine stretches, padded to
16) are not held (a softmax's keep the tiles)."""


_TWO_PROGRAMS = {} if INTERPRETED else {"maxnreg": 64}
"""Compiled, the register allowance of the output launch of split rows: two programs of 16 warps
an SM. Measured with the first split (its chunks combined pairwise): bfloat16 softmax, 8 x
4194304 on an H100, 92.1 µs at 64 registers, 96.3 left to take 73. Since the chunks are
combined across a tile's lanes, ptxas takes 56-64 within it (sm_90, Triton 3.6 and 3.9)."""


def _split_chunks(programs, elements, tiles, block):
    """The chunks each row of a two-pass launch of ``programs`` programs over ``elements``
    elements, ``tiles`` tiles of ``block`` a row, is split into: 1 for no split; else a power
    of two, at most one per tile (rounded up) and one per lane of a tile (the second launch
    combines a row's chunks across a tile's lanes)."""
    if programs >= _SPLIT_BELOW or elements < _SPLIT_ELEMENTS or tiles < 2:
        return 1
    return min(triton.next_power_of_2(triton.cdiv(_SPLIT_PROGRAMS, programs)),
               triton.next_power_of_2(tiles), block)


def _stretches(row_len, threads):
    """The stretches (``threads`` lanes each) of a held ordered launch's rows of ``row_len``:
    as many as hold a row, rounded up to a power of two."""
    return triton.next_power_of_2(triton.cdiv(row_len, threads))


def _held(order, row_len):
    """Whether an ordered launch of ``order`` (threads, vector) holds rows of ``row_len`` in
    registers (``_held_ordered_kernel``): an element a thread at a time, in at most
    ``_HELD_ORDERED`` elements rounded up to whole stretches (``_stretches``)."""
    threads, vector = order
    return vector == 1 and _stretches(row_len, threads) * threads <= _HELD_ORDERED


class ReductionOp(Op):
    """Rows along one dim of any length, read through their strides in one kernel skeleton.

    Declare on a subclass:
      stats     ``@triton.jit def stats(x, xc, yc, valid) -> (a, b, c)``: the statistics of
                one [ROWS, BLOCK] tile's rows, each of shape [ROWS, 1]: ``x`` as stored, ``xc``
                x in the compute dtype (rounded through ``Rows.cast`` first), ``yc`` the second
                input (or xc), ``valid`` the lanes inside the row (the others hold 0).
      combine   ``combine(a, b, c, a2, b2, c2)`` -> the statistics of a row from those of its
                first tiles (a, b, c) and of the next one; only rows longer than one tile use it.
      combine_chunks  ``combine_chunks(a, b, c, valid)`` -> the [ROWS, 1] statistics of rows
                split across programs from those of their chunks, as ``combine`` folds them,
                in one reduction: each chunk's in a lane of a [ROWS, BLOCK] tile, ``valid``
                the lanes holding one. Declared with ``combine`` (a class declaring
                ``combine`` alone gets None); the family's for ``sum_combine``. None: rows
                are never split (a program reads each row).
      finish    ``finish(xc, yc, a, b, c)`` -> the output element in the compute dtype; None for
                an op with one value per row: then ``b`` is the result.
      prepare   ``prepare(out, *args)`` (schema order): PyTorch's checks -> ``Rows``.
      sample_args  ``sample_args(dtype, shape, make)`` -> [(args, kwargs, label)] (``Op``'s).
      out_resized_first  True where PyTorch's out= form is generated from the functional op
                (``trace.out``): out is resized to the result before its dtype is checked.
      out_written_as_contiguous  True where PyTorch's kernel writes an out= as if it were
                contiguous, from its first element, whatever its strides.
      one_pass_registers  ``one_pass_registers(rows, tile)`` -> ptxas's register allowance
                for a compiled one-pass launch, or None (the family's: see the method).
      kernel_functions  ``kernel_functions(rows, tile, one_pass)`` -> (stats, combine,
                finish) of a launch, where an op uses others for some launches; ``tile``
                None: an ordered launch (``sum_order``), which takes its finish alone.
      sum_order  ``sum_order(rows, out)`` -> for an op with an output an element whose
                statistics are the family's sum, or a sum of ``sum_terms``: (threads, vector)
                of PyTorch's CUDA kernel for the rows of a call writing ``out``: each thread
                adds its ``vector`` elements one after the other, then those a stretch
                (threads x vector elements) further on, to the row's end, then the threads'
                sums are added in a shuffle-down tree (``_held_ordered_kernel`` for vector 1
                where the rows fit registers, else ``_ordered_sum_kernel``); or None where
                PyTorch sums them in another way: the family's tiles. Asked only for rows
                along the last dim (PyTorch sums a contiguous copy of strided ones), not split
                across programs, where ``tile`` is not declared; streamed rows are taken only
                contiguous. None (the family's): tile by tile.
      sum_terms  for ``sum_order``, where the op's statistics are not the family's sum:
                (prior, term). ``prior(x, xc, yc, valid)`` -> (a, c), [ROWS, 1] statistics
                whose order does not matter (a max) of rows held whole, taken first;
                ``term(xc, yc, a, c)`` -> what each element adds to ``b`` (a softmax's
                exp(xc - a)). ``finish`` then gets a, b, c. Such rows are taken only where held
                (``_held``): streamed, they would be read three times.
    A row that fits one tile is read once, a longer one twice (statistics tile by tile, then the
    output). By default the statistics are the row's sum (in ``b``).
    """

    family = "ReductionOp"
    stats = staticmethod(sum_stats)
    combine = staticmethod(sum_combine)
    combine_chunks = staticmethod(sum_combine_chunks)
    finish = None
    out_resized_first = False
    out_written_as_contiguous = False
    sum_order = None
    sum_terms = None
    tile = None
    """(rows per program, tile length, warps) of every launch where declared (a power of two
    each; ``benchmarks.programs`` times others this way); None: ``_plan_tile``'s, by the rows'
    length and count."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "combine" in cls.__dict__ and "combine_chunks" not in cls.__dict__:
            cls.combine_chunks = None  # an inherited one reduces another combine
        if "stats" in cls.__dict__ and "sum_terms" not in cls.__dict__:
            cls.sum_terms = None  # inherited ones are another statistics' parts

    def call_out(self, args, kwargs, out, inplace):
        values = bind(self, args, kwargs, out)
        # prepare first: where PyTorch rejects complex itself (softmax), its error comes first
        rows = self.prepare(out, *values)
        if any(isinstance(v, torch.Tensor) and v.is_complex() for v in values) or (
                out is not None and out.is_complex()):
            raise errors.complex_unsupported(self.name)
        if out is None:
            out = torch.empty(rows.shape, dtype=rows.dtype, device=rows.x.device)
        else:
            if self.out_resized_first:
                geometry.resize_out(out, rows.shape)
            geometry.wrapper_out(out, rows.dtype, rows.shape)
        if out.numel():
            self.launch(rows, geometry.as_contiguous(out) if self.out_written_as_contiguous
                        else out)
        return out

    def prepare(self, out, *args):
        raise NotImplementedError

    def kernel_functions(self, rows, tile, one_pass):
        """(stats, combine, finish) of one launch of ``rows`` in ``tile`` (rows per program,
        tile length, warps), one pass or two: the declared ones; an op may choose others for
        some launches (a cheaper output where the launch's registers allow it)."""
        return self.stats, self.combine, self.finish

    def one_pass_registers(self, rows, tile):
        """Compiled, the registers a thread of a one-pass launch of ``rows`` in ``tile`` (rows
        per program, tile length, warps) may take (ptxas's ``maxnreg``), or None for ptxas's
        own choice: ``_LOAD_AHEAD_REGISTERS`` for rows with a second input."""
        return _LOAD_AHEAD_REGISTERS if rows.y is not None else None

    def _ordered_layout(self, rows, out, row_len, chunks, step):
        """(threads, vector) of an ordered launch (``sum_order``) of these rows, or None: for
        an op with an output an element whose statistics are the family's sum or declared
        ``sum_terms``, over rows along the last dim (PyTorch reads those in a block a row,
        from a contiguous copy where they are strided; it sums rows along another dim in
        another order), not split across programs (``chunks`` > 1: a few long rows, which
        PyTorch's one block a row would take many times longer to read), where no ``tile``
        is declared. Streamed rows (not held: ``_held``) are taken only contiguous (``step``
        1) and without a prior."""
        summed = self.sum_terms is not None or (self.stats, self.combine) == (sum_stats,
                                                                               sum_combine)
        if (self.sum_order is None or self.tile or self.finish is None or not summed
                or chunks > 1 or math.prod(rows.x.shape[rows.dim + 1:]) != 1):
            return None
        order = self.sum_order(rows, out)
        if order and not _held(order, row_len) and (step != 1 or self.sum_terms is not None):
            # streamed, a prior pass makes three reads of each row: softmax rows of 12000 and
            # 16384 float16 took 143.8 and 148.0 µs on an H100 where the tiles took 81.0 and
            # 96.2 (NOTES "Softmax sums in PyTorch's order")
            return None
        return order

    def _launch_ordered(self, rows, order, out_view, x, y, n_rows, row_len, outer, strides,
                        steps, spans, layout):
        """The ordered launch of ``sum_order``'s (threads, vector): rows of an element a
        thread held in registers where they fit ``_HELD_ORDERED`` (``_held_ordered_kernel``),
        others (the family's sum alone: ``_ordered_layout``) streamed a stretch at a time
        (``_ordered_sum_kernel``)."""
        threads, vector = order
        prior, term = self.sum_terms or (None, None)
        functions = dict(PRIOR=prior, TERM=term,
                         FINISH=self.kernel_functions(rows, None, False)[2],
                         HAS_PRIOR=prior is not None, **layout)
        if _held(order, row_len):
            stretches = _stretches(row_len, threads)
            # where PyTorch gives a row a warp: a program of one warp, its lanes an element a
            # thread, rows of a few stretches several to a program (up to 32 elements a
            # thread); else a row a program, _HELD_LANES lanes a thread, the warps on the
            # lanes: either way only the lanes' dim spans threads, whichever order Triton
            # gives the others (3.6 and 3.9 differ), so every stretch of a lane is its thread's
            warp_rows = threads <= 32
            rows_per_program = max(1, min(4, 32 // stretches)) if warp_rows else 1
            lanes = 1 if warp_rows else _HELD_LANES
            whole = row_len == stretches * threads
            all_rows = n_rows % rows_per_program == 0
            capped = not whole and rows_per_program * stretches * lanes > 32
            programs = triton.cdiv(n_rows, rows_per_program)
            launch(self.name, _held_ordered_kernel, (programs,),
                   out_view, x, y, n_rows, row_len, outer, *strides, *steps,
                   INDEX_64=needs_int64(spans, programs * rows_per_program - 1,
                                        stretches * threads),
                   ROWS=rows_per_program, STRETCHES=stretches, THREADS=threads, LOAD=lanes,
                   WHOLE=whole, ALL_ROWS=all_rows,
                   num_warps=1 if warp_rows else threads // (32 * lanes), **functions,
                   **(_HELD_REGISTERS if capped else {}))
            return
        stretch = threads * vector
        launch(self.name, _ordered_sum_kernel, (n_rows,),
               out_view, x, y, n_rows, row_len, outer, *strides, *steps,
               FINISH=functions["FINISH"],
               INDEX_64=needs_int64(spans, n_rows - 1, triton.cdiv(row_len, stretch) * stretch),
               THREADS=threads, VECTOR=vector, num_warps=threads * vector * x.element_size()
               // 512, **layout)  # a 16-byte vector a thread

    def launch(self, rows, out):
        x, y, dim = rows.x, rows.y, rows.dim
        out_view = out
        if x.dim() == 0:  # a 0-dim tensor is one row of one element
            x, out_view = x.reshape(1), out.reshape(1)
            y = y.reshape(1) if y is not None else None
        per_row = self.finish is None
        others = [d for d in range(x.dim()) if d != dim]
        tensors = (None if per_row else out_view, x, y)  # one value per row: written at out
        outer, strides = geometry.collapse(
            tuple(x.shape[d] for d in others),
            [tuple(t.stride(d) for d in others) if t is not None else (0,) * len(others)
             for t in tensors])
        steps = [t.stride(dim) if t is not None else 0 for t in tensors]
        row_len = x.shape[dim]
        n_rows = math.prod(outer)
        rows_per_program, block, warps = (self.tile
                                          or _plan_tile(row_len, n_rows, steps[1] != 1,
                                                        x.element_size(), not per_row))
        one_pass = row_len <= block
        tile = (rows_per_program, block, warps)
        stats, combine, finish = self.kernel_functions(rows, tile, one_pass)
        allowance = self.one_pass_registers(rows, tile) if one_pass and not INTERPRETED else None
        registers = {"maxnreg": allowance} if allowance else {}
        grid = triton.cdiv(n_rows, rows_per_program)
        tiles = triton.cdiv(row_len, block)
        # rows split across programs where the op combines chunks for this launch's combine
        combine_chunks = self.combine_chunks if combine is self.combine else None
        chunks = 1 if one_pass or combine_chunks is None else _split_chunks(
            grid, n_rows * row_len, tiles, block)
        chunk_tiles = triton.cdiv(tiles, chunks)
        spans = [((*outer, row_len), (*st, step)) for st, step in zip(strides, steps)]
        # what every kernel of these rows is specialized on, the tiles' and the ordered one's
        layout = dict(OUTER_NDIM=len(outer), CAST=TL_DTYPE[rows.cast or x.dtype],
                      COMPUTE=TL_DTYPE[rows.compute], HAS_Y=y is not None)
        y = y if y is not None else x
        order = self._ordered_layout(rows, out, row_len, chunks, steps[1])
        if order:
            self._launch_ordered(rows, order, out_view, x, y, n_rows, row_len, outer, strides,
                                 steps, spans, layout)
            return
        # the rows, and the columns up to the end of the last tile, masked lanes included: a
        # tile loop's counter and the last chunk's end reach it (chunks past the row's end
        # start further); a row just under 2**31 long in 256 chunks of 512 tiles of 16384
        # ends its last chunk at 2**31
        index_64 = needs_int64(spans, grid * rows_per_program - 1,
                               max(tiles, chunks * chunk_tiles) * block)
        shared = dict(**layout, INDEX_64=index_64, ROWS=rows_per_program, BLOCK=block,
                      num_warps=warps)
        if chunks > 1:
            padded_rows = grid * rows_per_program
            # a, b and c of each chunk of each row, in the compute dtype (the statistics' own)
            partials = scratch(torch.empty((3, padded_rows, chunks), dtype=rows.compute,
                                           device=x.device))
            plane = padded_rows * chunks
            launch(self.name, _chunk_stats_kernel, (grid * chunks,),
                   partials, x, y, n_rows, row_len, chunk_tiles, plane, outer, strides[1],
                   strides[2], steps[1], steps[2], STATS=stats, COMBINE=combine,
                   PER_ROW=per_row, CHUNKS=chunks, **shared)
            launch(self.name, _chunk_finish_kernel, (grid if per_row else grid * chunks,),
                   out_view, partials, x, y, n_rows, row_len, chunk_tiles, plane, outer,
                   *strides, *steps, COMBINE_CHUNKS=combine_chunks, FINISH=finish,
                   PER_ROW=per_row, CHUNKS=chunks, **shared, **_TWO_PROGRAMS)
            return
        launch(
            self.name, _reduction_kernel, (grid,),
            out_view, x, y, n_rows, row_len, outer, *strides, *steps,
            STATS=stats, COMBINE=combine, FINISH=finish, PER_ROW=per_row, ONE_PASS=one_pass,
            **shared, **registers)
