"""Launch geometry every kernel skeleton shares: how many elements a program takes, when indices
and offsets need int64, and the arithmetic that turns a flat row-major index into per-dim
coordinates and memory offsets.

Shapes and strides reach the flat kernels as tuples of runtime integers (never specialized on
their values, so one compiled kernel serves every shape of a rank), and the loops over dims are
unrolled (``tl.static_range`` over a constexpr rank): one division and one modulo per dim.
(IndexOp's tiled kernel specializes them instead: see ``families/index.py``.)
Offsets are int32 unless ``needs_int64``: int32 division is several times cheaper than int64.
"""
import triton
import triton.language as tl

from .device import INTERPRETED

BLOCK = 1 << 16 if INTERPRETED else 1024
"""Elements per program of a flat launch, at most: the interpreter runs one program at a time, so
fewer, larger programs run faster there."""

INT32_LIMIT = 2**31 - 1
"""The largest index or offset a kernel computes in int32 (tests lower it to take the int64 path
on small tensors)."""


def block_size(numel, whole=BLOCK):
    """Elements per program of a flat launch over ``numel`` elements: ``whole`` (a power of
    two), or the call's elements rounded up to a power of two where fewer."""
    return min(whole, triton.next_power_of_2(max(numel, 1)))


def program_area(numel, smallest, largest, programs):
    """Elements per program of a launch over ``numel`` elements whose programs grow with the
    call: ``largest`` (a power of two) where the call fills ``programs`` of them, else shrinking
    towards ``smallest`` so that a small call still spreads over the GPU."""
    return min(largest, max(smallest, triton.next_power_of_2(triton.cdiv(numel, programs))))


def grid_size(numel):
    """Programs of a flat launch over ``numel`` elements."""
    return triton.cdiv(numel, block_size(numel))


def vector_elements(dtype):
    """The elements of ``dtype`` in a 16-byte vector (what a thread loads or stores at once)."""
    return 16 // dtype.itemsize


@triton.jit
def block_offsets(BLOCK: tl.constexpr, INDEX_64: tl.constexpr):
    """The flat indices of this program's block of a flat launch (int64 where ``needs_int64``)."""
    if INDEX_64:
        return tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    else:
        return tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)


def extent(shape, strides):
    """The largest element offset from a view's first element through ``strides``."""
    return sum((n - 1) * abs(s) for n, s in zip(shape, strides))


def needs_int64(views, *indices):
    """Whether a launch must compute in int64: the largest offset into one of ``views`` ((shape,
    strides) pairs) or the largest index it forms (``indices``; masked lanes count, as a
    wrapped index compares below its bound: a flat launch forms every index below its grid
    size times its block) passes int32."""
    return max([extent(shape, strides) for shape, strides in views] + list(indices),
               default=0) > INT32_LIMIT


@triton.jit
def unravel(index, shape, FIRST: tl.constexpr, STOP: tl.constexpr):
    """The coordinates along dims FIRST..STOP-1 of ``shape`` of ``index``, a row-major flat index
    over dims ..STOP-1, and what is left of it: the flat index over the dims before FIRST (the
    coordinate along dim FIRST-1, unreduced)."""
    coords = ()
    for d in tl.static_range(STOP - 1, FIRST - 1, -1):  # innermost dim first
        coords = (index % shape[d],) + coords
        index = index // shape[d]
    return coords, index


@triton.jit
def offset(coords, strides, like):
    """The memory offset of the element at ``coords`` (one per dim) through ``strides``, shaped
    and typed as ``like`` (0 for no coordinates)."""
    result = tl.zeros_like(like)
    for d in tl.static_range(len(coords) - 1, -1, -1):  # innermost dim first
        result += coords[d] * strides[d]
    return result


@triton.jit
def strided_offsets(index, shape, strides, NDIM: tl.constexpr):
    """The memory offsets of the element at the row-major flat ``index`` over ``shape`` (NDIM
    dims), one through each stride tuple in ``strides``."""
    coords, _ = unravel(index, shape, 0, NDIM)
    offsets = ()
    for k in tl.static_range(len(strides)):
        offsets = offsets + (offset(coords, strides[k], index),)
    return offsets
