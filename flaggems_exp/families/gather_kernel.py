"""The gather skeleton: every output element written from one input element, through any
strides, in tiles laid so that both sides are read and written in memory order.

``GatherOp`` (gather.py: padding, nearest resampling, pixel (un)shuffle) launches it through
``launch_gather``; so do copies within one dtype whose source is a permutation of the
destination's layout (copy.py: ``t_copy``, ``copy_`` of a transposed tensor, ``clone`` of a
permuted one), which a flat walk of the destination would read with a large stride. It lives
apart from both families because each of them needs the other (gather.py computes an out=
sharing its input apart through copy.py's ``write``).

The kernel walks a BLOCK_R x BLOCK_C tile whose columns run along the output's innermost dim.
Its rows are either every other dim flattened (the output's next dims, each program a band of
rows), or, where the input's unit-stride dim is another one, that dim alone (a transposed
tile: loaded along its rows, stored along its columns; Triton converts between the two through
shared memory), the remaining dims then being the program's own, computed once per program.
A transposed tile of a few rows that is one run of memory on one side (pixel (un)shuffle's r
interleaved columns) is stacked along the program dim that continues its runs on the other
side, so that a program moves thousands of elements in whole vectors, not a few hundred.
A dense output whose rows do not start aligned (a pad or an upsampling to an odd width) is
walked flat instead, so that its stores are whole vectors: 16 bytes a thread, whose row,
column, rows' offsets and index maps are found once (a vector runs on along one row, or wraps
once onto the next), each element then adding its lane; a large call of 16-bit elements
whose rows are mapped gives each thread several vectors (``FLAT_AREA``).
Unit strides and the alignment of row and column offsets are compile-time facts
(constexprs chosen on the host from the iteration dims): without them, shapes and strides being
runtime integers, the compiler could prove no two lanes contiguous and would load and store
one element at a time.
"""
import math

import triton
import triton.language as tl

from ..runtime.device import INTERPRETED
from ..runtime.indexing import (BLOCK, block_size, needs_int64, offset, program_area, unravel,
                               vector_elements)
from ..runtime.launch import launch

TILE_AREA = BLOCK if INTERPRETED else 4 * BLOCK
"""Elements of a transposed tile, at most: 64 x 64 compiled (128-byte rows of float16 on both
sides; 8 KiB of shared memory for the conversion)."""

TILE_SIDE = math.isqrt(TILE_AREA)

# where the input's unit stride runs in a tile, for ``IN_UNIT``
_NOWHERE, _ROWS, _COLUMNS = 0, 1, 2

_MAX_ALIGN = 16  # elements: a 16-byte vector holds at most 16 one-byte elements

FLAT_AREA = BLOCK if INTERPRETED else 4096
"""Elements of a flat walk's program at most where its rows are mapped and its elements 16-bit
(``_flat_area``). Compiled, a call that fills ``FLAT_PROGRAMS`` of them gives each thread four
vectors, which share the program's setup and the rows' divisors' reciprocals, where each vector
also finds its rows' index maps (upsample_nearest3d to odd sizes, float16, sm_90 SASS: 195
instructions a vector against 232 in programs of 1024; at L on an H100 490.6 µs against
548.5, replication_pad3d and pad2d 3-4% faster). Rows passed through (the 1d pads and
upsamplings) gain less or lose (upsample_nearest1d float16 2.9% slower), and float32's eight
vectors a thread lose 0.5-1.7% on every op: those keep ``BLOCK``. A smaller call's programs
shrink towards ``BLOCK``, so that it still spreads over the GPU."""

FLAT_PROGRAMS = 1024
"""Programs a call fills with ``FLAT_AREA`` elements each before its programs shrink."""


@triton.jit
def unmapped(k, scale, size):
    return k  # the index map of a plain strided copy: never called, every dim passes through


@triton.jit
def _source(j, shift, scale, size, INDEX_MAP: tl.constexpr, IS_MAPPED: tl.constexpr):
    if IS_MAPPED:
        return INDEX_MAP(j + shift, scale, size)
    else:
        return j


@triton.jit
def _offsets(coords, shifts, scales, in_sizes, out_strides, in_strides, like,
             FIRST: tl.constexpr, INDEX_MAP: tl.constexpr, MAPPED: tl.constexpr):
    """The output and input offsets of ``coords``, the coordinates along dims FIRST.., shaped
    and typed as ``like``."""
    out_off = tl.zeros_like(like)
    in_off = tl.zeros_like(like)
    for k in tl.static_range(len(coords) - 1, -1, -1):
        src = _source(coords[k], shifts[FIRST + k], scales[FIRST + k], in_sizes[FIRST + k],
                      INDEX_MAP, (MAPPED >> (FIRST + k)) & 1)
        out_off += coords[k] * out_strides[FIRST + k]
        in_off += src * in_strides[FIRST + k]
    return out_off, in_off


@triton.jit
def _next_row(coords, shape, FIRST: tl.constexpr):
    """The coordinates (along dims FIRST.., the first one unbounded) of the row after the one
    at ``coords``: the innermost one plus 1, carried outwards."""
    carry = 1
    result = ()
    for k in tl.static_range(len(coords) - 1, 0, -1):
        n = coords[k] + carry
        carry = (n == shape[FIRST + k]).to(n.dtype)
        result = (n - carry * shape[FIRST + k],) + result
    return (coords[0] + carry,) + result


@triton.jit
def _blocked(coords, K: tl.constexpr, BLOCK_P: tl.constexpr):
    """``coords`` with the K-th one's block index made its first coordinate."""
    result = ()
    for k in tl.static_range(len(coords)):
        if k == K:
            result = result + (coords[k] * BLOCK_P,)
        else:
            result = result + (coords[k],)
    return result


@triton.jit
def _aligned(offsets, ALIGN: tl.constexpr):
    # the compiler's fact that every offset of a tile is a multiple of ALIGN (so vectors start
    # aligned)
    if ALIGN > 1:
        offsets = tl.multiple_of(offsets, [ALIGN, ALIGN])
    return offsets


@triton.jit
def _aligned_base(offset, ALIGN: tl.constexpr):
    # the same fact of a program's one offset
    if ALIGN > 1:
        offset = tl.multiple_of(offset, ALIGN)
    return offset


# rows and cols are specialized (divisible by 16 or not): the masks' lanes then come in aligned
# groups, which a vectorized access needs
@triton.jit(do_not_specialize=["row_blocks", "col_blocks", "reciprocal", "shift", "shape",
                               "out_strides", "in_strides", "shifts", "scales", "in_sizes"])
def _gather_kernel(
    out_ptr, in_ptr, rows, cols, row_blocks, col_blocks, reciprocal: tl.int64, shift, shape,
    out_strides, in_strides, shifts, scales, in_sizes, INDEX_MAP: tl.constexpr,
    MAPPED: tl.constexpr, NDIM: tl.constexpr, PROGRAM_DIMS: tl.constexpr, FLAT: tl.constexpr,
    OUT_UNIT: tl.constexpr, IN_UNIT: tl.constexpr, OUT_DENSE: tl.constexpr,
    IN_DENSE: tl.constexpr, REPEAT: tl.constexpr, VEC: tl.constexpr, FLOAT_INDEX: tl.constexpr,
    OUT_ALIGN: tl.constexpr, IN_ALIGN: tl.constexpr, INDEX_64: tl.constexpr,
    BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr, BLOCKED: tl.constexpr, BLOCK_P: tl.constexpr,
):
    # dims 0..PROGRAM_DIMS-1 are the program's own, then the rows' dims, then the columns (the
    # output's innermost dim): the index arithmetic of each is done once per program, per row,
    # per column. OUT_UNIT: the columns' output stride is 1; IN_UNIT: the input's stride is 1
    # along the rows (1, a single pass-through dim) or the columns (2); the ALIGNs divide the
    # other dims' offsets (with a DENSE side, the program's offset). OUT_DENSE: the tile is one
    # run of the output (its one row dim's stride is cols, BLOCK_C covering them); IN_DENSE: one
    # run of the input (the columns' stride is rows, BLOCK_R covering them). REPEAT: the
    # columns' source index is c // REPEAT (an exact nearest upsampling). FLAT: a dense output
    # walked flat (whole vectors stored whatever its row width) in vectors of VEC elements,
    # each vector's row from its first flat index times cols' reciprocal (``_reciprocal``)
    # where int32; FLOAT_INDEX: the columns' index map takes exact float32 indices (one
    # conversion a vector instead of one an element). BLOCK_P > 1: a small dense tile (one
    # whole tile, BLOCK_R == rows, BLOCK_C == cols) stacked BLOCK_P times along program dim
    # BLOCKED (``shape`` holding its blocks), whose stride on the dense side's other side
    # continues that side's tile runs: where IN_DENSE, its output stride is cols (each tile
    # row's BLOCK_P copies are one output run), where OUT_DENSE, its input stride is rows; the
    # program then loads BLOCK_P input runs and stores BLOCK_R output runs (or the mirror)
    pid = tl.program_id(0)
    if INDEX_64:
        pid = pid.to(tl.int64)
    if FLAT:
        # VEC consecutive elements a vector (stored as one): the row and column are found once
        # a vector, whose elements run on along that row or wrap once onto the next (cols >=
        # VEC), so the division, the rows' unravelling and their index maps are shared
        base = pid * BLOCK_C + tl.arange(0, BLOCK_C // VEC)[:, None] * VEC
        flat = base + tl.arange(0, VEC)[None, :]
        if INDEX_64:
            r = base // cols
        else:
            # a 64-bit product (the interpreter of Triton 3.6 sign-extends umulhi's operands)
            r = ((base.to(tl.int64) * reciprocal) >> shift).to(tl.int32)
        lane = tl.arange(0, VEC)[None, :]
        start = base - r * cols  # the vector's first column
        if VEC > 1:
            wrapped = lane >= cols - start
            c = tl.where(wrapped, start - cols, start) + lane
        else:
            c = start + lane
        mask = flat < tl.cast(rows, flat.dtype) * cols  # in int64 too
    else:
        col_block = pid % col_blocks
        pid = pid // col_blocks
        row_block = pid % row_blocks
        r = row_block * BLOCK_R + tl.arange(0, BLOCK_R)[:, None]
        c = col_block * BLOCK_C + tl.arange(0, BLOCK_C)[None, :]
        mask = (r < rows) & (c < cols)
    if PROGRAM_DIMS > 0:
        # pid // row_blocks < the program dims' count: unravelling leaves dim 0's coordinate
        inner, first = unravel(pid // row_blocks, shape, 1, PROGRAM_DIMS)
        coords = (first,) + inner
        if BLOCK_P > 1:
            coords = _blocked(coords, BLOCKED, BLOCK_P)
        program_out, program_in = _offsets(coords, shifts, scales, in_sizes, out_strides,
                                           in_strides, pid, 0, INDEX_MAP, MAPPED)
    else:
        program_out = tl.zeros_like(pid)
        program_in = tl.zeros_like(pid)
    if NDIM - 1 > PROGRAM_DIMS:
        # r < rows: what unravelling the rows' later dims leaves of r is their first coordinate
        inner, first = unravel(r, shape, PROGRAM_DIMS + 1, NDIM - 1)
        row_out, row_in = _offsets((first,) + inner, shifts, scales, in_sizes, out_strides,
                                   in_strides, r, PROGRAM_DIMS, INDEX_MAP, MAPPED)
        if FLAT and VEC > 1:  # the elements wrapped onto the next row read from there
            row_in = tl.where(wrapped, _offsets(
                _next_row((first,) + inner, shape, PROGRAM_DIMS), shifts, scales, in_sizes,
                out_strides, in_strides, r, PROGRAM_DIMS, INDEX_MAP, MAPPED)[1], row_in)
    else:
        row_out = tl.zeros_like(r)
        row_in = tl.zeros_like(r)
    if BLOCK_P > 1 and IN_DENSE:
        # BLOCK_P input runs, one a tile, each (c, r) ordered: to (r, p, c), each tile row's
        # copies side by side
        p = tl.arange(0, BLOCK_P)[:, None].to(pid.dtype)  # int64 offsets where they must be
        run = tl.arange(0, BLOCK_C * BLOCK_R)[None, :]
        loaded = tl.load(in_ptr + _aligned(program_in + p * in_strides[BLOCKED], IN_ALIGN) + run)
        value = tl.reshape(tl.permute(tl.reshape(loaded, [BLOCK_P, BLOCK_C, BLOCK_R]), (2, 0, 1)),
                           [BLOCK_R, BLOCK_P * BLOCK_C])
    elif BLOCK_P > 1:  # OUT_DENSE: a column's BLOCK_P tiles are one input run, (p, r) ordered
        col = tl.arange(0, BLOCK_C)[:, None].to(pid.dtype)
        run = tl.arange(0, BLOCK_P * BLOCK_R)[None, :]
        loaded = tl.load(in_ptr + _aligned(program_in + col * in_strides[NDIM - 1], IN_ALIGN)
                         + run)
        value = tl.reshape(tl.permute(tl.reshape(loaded, [BLOCK_C, BLOCK_P, BLOCK_R]), (1, 2, 0)),
                           [BLOCK_P, BLOCK_R * BLOCK_C])
    elif IN_DENSE:
        run = col_block * (BLOCK_C * BLOCK_R) + tl.arange(0, BLOCK_C * BLOCK_R)
        loaded = tl.load(in_ptr + _aligned_base(program_in, IN_ALIGN) + run,
                         mask=run < tl.cast(cols, run.dtype) * BLOCK_R)
        value = tl.trans(tl.reshape(loaded, [BLOCK_C, BLOCK_R]))
    elif REPEAT > 1:
        # the row's source columns loaded once, side by side, each then written REPEAT times
        source = col_block * (BLOCK_C // REPEAT) + tl.arange(0, BLOCK_C // REPEAT)[None, :]
        if IN_UNIT == 2:
            in_off = _aligned(program_in + row_in, IN_ALIGN) + source
        else:
            in_off = program_in + row_in + source * in_strides[NDIM - 1]
        loaded = tl.load(in_ptr + in_off, mask=(r < rows) & (source < cols // REPEAT))
        value = tl.reshape(tl.broadcast_to(loaded[:, :, None], [BLOCK_R, BLOCK_C // REPEAT,
                                                                REPEAT]), [BLOCK_R, BLOCK_C])
    elif FLAT:
        if (MAPPED >> (NDIM - 1)) & 1:
            k = start + shifts[NDIM - 1]
            if FLOAT_INDEX:  # two conversions a vector, then exact float32 additions
                k = k.to(tl.float32)
                if VEC > 1:
                    k = tl.where(wrapped, (start - cols + shifts[NDIM - 1]).to(tl.float32), k)
                k = k + lane.to(tl.float32)
            else:
                k = c + shifts[NDIM - 1]
            source = INDEX_MAP(k, scales[NDIM - 1], in_sizes[NDIM - 1])
        else:
            source = c
        if IN_UNIT == 2:
            in_off = row_in + source
        else:
            in_off = row_in + source * in_strides[NDIM - 1]
        value = tl.load(in_ptr + in_off, mask=mask)
    else:
        col_in = _offsets((c,), shifts, scales, in_sizes, out_strides, in_strides, c, NDIM - 1,
                          INDEX_MAP, MAPPED)[1]
        if IN_UNIT == 1:
            in_off = _aligned(program_in + col_in, IN_ALIGN) + r
        elif IN_UNIT == 2:
            in_off = _aligned(program_in + row_in, IN_ALIGN) + c
        else:
            in_off = program_in + row_in + col_in
        value = tl.load(in_ptr + in_off, mask=mask)
    if FLAT:
        tl.store(out_ptr + flat, value, mask=mask)
    elif BLOCK_P > 1 and IN_DENSE:
        run = tl.arange(0, BLOCK_P * BLOCK_C)[None, :]
        tl.store(out_ptr + _aligned(program_out + row_out, OUT_ALIGN) + run, value)
    elif BLOCK_P > 1:  # OUT_DENSE: each tile one output run
        p = tl.arange(0, BLOCK_P)[:, None].to(pid.dtype)
        run = tl.arange(0, BLOCK_R * BLOCK_C)[None, :]
        tl.store(out_ptr + _aligned(program_out + p * out_strides[BLOCKED], OUT_ALIGN) + run,
                 value)
    elif OUT_DENSE:
        run = row_block * (BLOCK_R * BLOCK_C) + tl.arange(0, BLOCK_R * BLOCK_C)
        tl.store(out_ptr + _aligned_base(program_out, OUT_ALIGN) + run,
                 tl.reshape(value, [BLOCK_R * BLOCK_C]),
                 mask=run < tl.cast(rows, run.dtype) * BLOCK_C)
    elif OUT_UNIT:
        tl.store(out_ptr + _aligned(program_out + row_out, OUT_ALIGN) + c, value, mask=mask)
    else:
        tl.store(out_ptr + program_out + row_out + c * out_strides[NDIM - 1], value, mask=mask)


def _iteration(shape, out_strides, in_strides, maps):
    """The dims the kernel walks, as (size, out stride, in stride, map): in the output's memory
    order (outermost first, so the tile's columns are the output's innermost dim), without
    size-1 pass-through dims, and with neighbouring pass-through dims merged where both tensors
    walk them as one."""
    dims = []
    for d in sorted(range(len(shape)), key=lambda d: -out_strides[d]):  # stable: ties keep order
        n, so, si, m = shape[d], out_strides[d], in_strides[d], maps[d]
        if n == 1 and m is None:
            continue
        outer = dims[-1] if dims else None
        if m is None and outer and outer[3] is None and outer[1:3] == (so * n, si * n):
            dims[-1] = (outer[0] * n, so, si, None)
        else:
            dims.append((n, so, si, m))
    return dims or [(1, 1, 1, None)]


def _dense(dims):
    """Whether the output walked through ``dims`` is one run of memory in their order."""
    step = 1
    for size, out_stride, _, _ in reversed(dims):
        if out_stride != step:
            return False
        step *= size
    return True


def _transposed_rows(dims):
    """The index of the dim a transposed tile's rows run along: the input's unit-stride
    (pass-through) dim, where it is not the columns' own; None where there is none."""
    *outer, columns = dims
    if columns[2] == 1 and columns[3] is None:
        return None
    return next((k for k, d in enumerate(outer) if d[2] == 1 and d[3] is None), None)


def transposes(shape, out_strides, in_strides):
    """Whether a plain strided copy between these layouts runs in transposed tiles: the input's
    unit stride runs along another dim than the output's."""
    return _transposed_rows(_iteration(shape, out_strides, in_strides, [None] * len(shape))) \
        is not None


def _stack(program, rows, cols, in_dense):
    """(k, n): a small whole tile, one run of memory on one side (the input where
    ``in_dense``, else the output), taken n at a time along program dim k, n consecutive
    indices whose tiles' runs on the other side continue each other: k's stride there is the
    other side's run (cols of the output, rows of the input), the innermost such pass-through
    dim, n the largest power of two dividing its size with n tiles at most TILE_AREA (so no
    tile is partly outside it). (0, 1) where there is none."""
    for k in reversed(range(len(program))):
        size, out_stride, in_stride, dim_map = program[k]
        if dim_map is None and size > 1 and (out_stride == cols if in_dense else
                                             in_stride == rows):
            n = min(size & -size, TILE_AREA // (rows * cols))
            return (k, n) if n > 1 else (0, 1)
    return 0, 1


def _tile_warps(elements):
    """Warps of a transposed tile of ``elements``: a small one (a side short) takes fewer, 8
    elements a thread at least, up to 4."""
    return max(1, min(4, elements // 256))


def _alignment(strides):
    """The largest power of two (at most ``_MAX_ALIGN``) dividing every one of ``strides``."""
    return math.gcd(_MAX_ALIGN, *strides)


def _flat_area(numel, dims, itemsize):
    """Elements of a flat walk's program over ``numel`` outputs: see ``FLAT_AREA``."""
    rows_mapped = any(d[3] for d in dims[:-1])
    if itemsize != 2 or not rows_mapped:
        return BLOCK
    return program_area(numel, BLOCK, FLAT_AREA, FLAT_PROGRAMS)


def _reciprocal(d):
    """(m, s) with ``n // d == (n * m) >> s`` for every 0 <= n < 2**31, d > 1: with
    l = ceil(log2 d), m = ceil(2**(31 + l) / d) < 2**32 and s = 31 + l (Granlund and
    Montgomery: the error of m / 2**s against 1 / d, times n, stays below 1 / d), so the
    product fits in int64."""
    l = (d - 1).bit_length()
    return -(-(1 << (31 + l)) // d), 31 + l


def launch_gather(name, out, x, shape, out_strides, in_strides, maps, index_map=unmapped,
                  repeats=None, float_index=False):
    """``out[i] = x[source(i)]`` over ``shape``, out and x walked through the given strides,
    ``maps`` giving each dim's source index: None (the output's own) or ``(shift, scale,
    in_size)``, read through ``index_map(k + shift, scale, in_size)``; counted for ``name``.
    ``repeats(map, size)``, where given, says of a mapped dim of ``size`` output indices whether
    its map is exactly ``k // n`` for all of them: that ``n``, else 1. ``float_index``: the
    index map converts its index to float32 first and takes a float32 one as well (a flat walk
    then hands it the columns' indices as float32 sums, exact below 2**24)."""
    dims = _iteration(shape, out_strides, in_strides, maps)
    columns = dims[-1]
    repeat = repeats(columns[3], columns[0]) if repeats and columns[3] else 1
    rows_dim = None if repeat > 1 else _transposed_rows(dims)
    if rows_dim is not None:  # the program dims first, then the rows' single dim
        dims = [d for k, d in enumerate(dims[:-1]) if k != rows_dim] + [dims[rows_dim], columns]
        program_dims = len(dims) - 2
    else:
        program_dims = 0
    sizes = tuple(d[0] for d in dims)
    cols, rows = sizes[-1], math.prod(sizes[program_dims:-1])
    options = {}
    # a dense output whose rows do not start 16-byte aligned: walked flat, a vector of VEC
    # elements (16 bytes) at a time where the rows are that long at least
    flat = (rows_dim is None and len(dims) >= 2 and cols > 1 and _dense(dims)
            and math.gcd(16, cols * out.element_size()) < 16)
    vec = 1
    if flat:
        repeat = 1
        block_c = block_size(rows * cols, _flat_area(rows * cols, dims, out.element_size()))
        block_r = 1
        # 16 bytes (one store) a vector, where the rows are that long (a wider vector is split
        # between threads by the compiler's layout, each redoing the vector's work)
        vec = min(vector_elements(out.dtype), block_c)
        if cols < vec:
            vec = 1
    elif rows_dim is not None:
        block_r = min(triton.next_power_of_2(rows), TILE_SIDE)
        block_c = min(triton.next_power_of_2(cols), TILE_AREA // block_r)
        block_r = min(triton.next_power_of_2(rows), TILE_AREA // block_c)
        options["num_warps"] = _tile_warps(block_r * block_c)
    else:
        block_c = min(triton.next_power_of_2(cols), BLOCK)
        block_r = min(BLOCK // block_c, triton.next_power_of_2(rows))
    if flat:
        row_blocks, col_blocks = 1, triton.cdiv(rows * cols, block_c)
    else:
        row_blocks, col_blocks = triton.cdiv(rows, block_r), triton.cdiv(cols, block_c)
    grid = math.prod(sizes[:program_dims]) * row_blocks * col_blocks
    # the rows and columns of the tiles (a flat walk's indices), masked lanes included
    index_64 = needs_int64([(t.shape, t.stride()) for t in (out, x)],
                           grid * block_c - 1 if flat else grid - 1,
                           row_blocks * block_r - 1, col_blocks * block_c - 1)
    reciprocal, shift = _reciprocal(cols) if flat else (0, 0)
    rows_dims, program = dims[program_dims:-1], dims[:program_dims]
    out_unit = columns[1] == 1
    out_dense = (not flat and out_unit and len(rows_dims) == 1
                 and rows_dims[0][1] == cols == block_c)
    if not out_unit:
        out_aligned = None
    else:
        out_aligned = [d[1] for d in (program if out_dense else dims[:-1])]
    in_dense = False
    blocked, block_p = 0, 1
    if rows_dim is not None:
        in_unit = _ROWS
        # a run of the input holds a tile's columns only where they are its own (unmapped): a
        # pad's or an upsampling's columns read other input columns, or fewer
        columns_own = columns[3] is None
        in_dense = columns_own and columns[2] == rows == block_r
        in_aligned = [d[2] for d in program] + ([] if in_dense else [columns[2]])
        # a dense input's stacked rows are output runs only where the columns' output stride is
        # 1; a dense output's stacked tiles load each column's input run from that column's
        # own offset, so they too need the columns unmapped
        if (columns_own and (in_dense and out_unit or out_dense) and rows == block_r
                and cols == block_c):
            blocked, block_p = _stack(program, rows, cols, in_dense)
            if block_p > 1:
                grid //= block_p
                sizes = sizes[:blocked] + (sizes[blocked] // block_p,) + sizes[blocked + 1:]
                options["num_warps"] = _tile_warps(block_p * block_r * block_c)
    elif flat and columns[2] == 1:
        in_unit, in_aligned = _COLUMNS, None
    elif columns[2] == 1 and (columns[3] is None or repeat > 1) and not flat:
        in_unit, in_aligned = _COLUMNS, [d[2] for d in dims[:-1]]
    else:
        in_unit, in_aligned = _NOWHERE, None
    mapped = sum(1 << i for i, d in enumerate(dims) if d[3])
    launch(
        name, _gather_kernel, (grid,), out, x, rows, cols, row_blocks, col_blocks, reciprocal,
        shift, sizes, tuple(d[1] for d in dims), tuple(d[2] for d in dims),
        tuple(d[3][0] if d[3] else 0 for d in dims),
        tuple(float(d[3][1]) if d[3] else 1.0 for d in dims),
        tuple(d[3][2] if d[3] else d[0] for d in dims),
        INDEX_MAP=index_map if mapped else unmapped, MAPPED=mapped, NDIM=len(dims),
        PROGRAM_DIMS=program_dims, FLAT=flat, OUT_UNIT=out_unit, IN_UNIT=in_unit,
        OUT_DENSE=out_dense, IN_DENSE=in_dense, REPEAT=repeat, VEC=vec,
        FLOAT_INDEX=bool(float_index and flat and columns[3]
                         and cols + abs(columns[3][0]) + vec < 2**24),
        OUT_ALIGN=1 if out_aligned is None else _alignment(out_aligned),
        IN_ALIGN=1 if in_aligned is None else _alignment(in_aligned),
        INDEX_64=index_64, BLOCK_R=block_r, BLOCK_C=block_c, BLOCKED=blocked, BLOCK_P=block_p,
        **options)
