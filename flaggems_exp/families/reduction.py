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
from .base import Op, bind

NEG_INF = tl.constexpr(float("-inf"))


@triton.jit
def _load_tile(x_ptr, y_ptr, x_base, y_base, cols, x_step, y_step, valid,
               CAST: tl.constexpr, COMPUTE: tl.constexpr, HAS_Y: tl.constexpr):
    """A [ROWS, BLOCK] tile: x as stored, x converted (through CAST) and y in the compute dtype."""
    x = tl.load(x_ptr + x_base + cols * x_step, mask=valid, other=0)
    xc = x.to(CAST).to(COMPUTE)
    if HAS_Y:
        yc = tl.load(y_ptr + y_base + cols * y_step, mask=valid, other=0).to(COMPUTE)
    else:
        yc = xc
    return x, xc, yc


@triton.jit(do_not_specialize=["n_rows", "row_len", "outer_shape", "out_strides", "x_strides",
                               "y_strides", "out_step", "x_step", "y_step"])
def _reduction_kernel(
    out_ptr, x_ptr, y_ptr, n_rows, row_len, outer_shape, out_strides, x_strides, y_strides,
    out_step, x_step, y_step,
    STEP: tl.constexpr, MERGE: tl.constexpr, FINISH: tl.constexpr, PER_ROW: tl.constexpr,
    OUTER_NDIM: tl.constexpr, CAST: tl.constexpr, COMPUTE: tl.constexpr, HAS_Y: tl.constexpr,
    ONE_PASS: tl.constexpr, INDEX_64: tl.constexpr, ROWS: tl.constexpr, BLOCK: tl.constexpr,
):
    pid = tl.program_id(0)
    cols = tl.arange(0, BLOCK)[None, :]
    if INDEX_64:
        pid = pid.to(tl.int64)
        cols = cols.to(tl.int64)
    rows = pid * ROWS + tl.arange(0, ROWS)
    row_ok = rows < n_rows
    # row number -> base offsets through the other (outer) dims
    out_base, x_base, y_base = strided_offsets(rows, outer_shape, (out_strides, x_strides, y_strides),
                                               OUTER_NDIM)
    out_base = out_base[:, None]
    x_base = x_base[:, None]
    y_base = y_base[:, None]
    row_ok = row_ok[:, None]
    # per-lane running state; MERGE folds the lanes of each row into [ROWS, 1]
    if COMPUTE.is_floating():
        a = tl.full([ROWS, BLOCK], NEG_INF, COMPUTE)
    else:
        a = tl.zeros([ROWS, BLOCK], COMPUTE)
    b = tl.zeros([ROWS, BLOCK], COMPUTE)
    c = tl.zeros([ROWS, BLOCK], COMPUTE)
    if ONE_PASS:  # the whole row fits one tile: read it once
        valid = row_ok & (cols < row_len)
        x, xc, yc = _load_tile(x_ptr, y_ptr, x_base, y_base, cols, x_step, y_step, valid,
                               CAST, COMPUTE, HAS_Y)
        a, b, c = STEP(a, b, c, x, xc, yc, valid)
        a, b, c = MERGE(a, b, c)
        if not PER_ROW:
            result = FINISH(xc, yc, a, b, c)
            tl.store(out_ptr + out_base + cols * out_step, converted(result, out_ptr.dtype.element_ty),
                     mask=valid)
    else:
        for start in range(0, row_len, BLOCK):
            valid = row_ok & (start + cols < row_len)
            x, xc, yc = _load_tile(x_ptr, y_ptr, x_base, y_base, start + cols, x_step, y_step,
                                   valid, CAST, COMPUTE, HAS_Y)
            a, b, c = STEP(a, b, c, x, xc, yc, valid)
        a, b, c = MERGE(a, b, c)
        if not PER_ROW:
            for start in range(0, row_len, BLOCK):
                valid = row_ok & (start + cols < row_len)
                x, xc, yc = _load_tile(x_ptr, y_ptr, x_base, y_base, start + cols, x_step, y_step,
                                       valid, CAST, COMPUTE, HAS_Y)
                result = FINISH(xc, yc, a, b, c)
                tl.store(out_ptr + out_base + (start + cols) * out_step,
                         converted(result, out_ptr.dtype.element_ty), mask=valid)
    if PER_ROW:
        tl.store(out_ptr + out_base, converted(b, out_ptr.dtype.element_ty), mask=row_ok)


@triton.jit
def sum_step(a, b, c, x, xc, yc, valid):
    return a, b + tl.where(valid, xc, 0), c


@triton.jit
def sum_merge(a, b, c):
    return a, tl.sum(b, axis=1, keep_dims=True), c


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


# elements per program: a row block times the rows sharing it (the interpreter's flat block)
_TILE = BLOCK if INTERPRETED else 4096


def _plan_tile(row_len, n_rows, strided):
    block = min(triton.next_power_of_2(max(row_len, 1)), _TILE)
    if strided and not INTERPRETED:
        block = min(block, 256)  # rows along a strided dim: neighbouring rows share cache lines
    rows = min(triton.next_power_of_2(max(n_rows, 1)), max(1, _TILE // block))
    return rows, block


class ReductionOp(Op):
    """Rows along one dim of any length, read through their strides in one kernel skeleton.

    Declare on a subclass:
      step      ``@triton.jit def step(a, b, c, x, xc, yc, valid) -> (a, b, c)``: fold one tile
                into the per-lane state: ``x`` as stored, ``xc`` x in the compute dtype (rounded
                through ``Rows.cast`` first), ``yc`` the second input (or xc), ``valid`` the
                lanes inside the row; the state starts as (-inf, 0, 0) (0, 0, 0 for integers).
      merge     ``merge(a, b, c)`` -> the row's statistics, each of shape [ROWS, 1].
      finish    ``finish(xc, yc, a, b, c)`` -> the output element in the compute dtype; None for
                an op with one value per row: then ``b`` after merge is the result.
      prepare   ``prepare(out, *args)`` (schema order): PyTorch's checks -> ``Rows``.
      sample_args  ``sample_args(dtype, shape, make)`` -> [(args, kwargs, label)] (``Op``'s).
    A row that fits one tile is read once, a longer one twice (state pass, then output pass).
    """

    family = "ReductionOp"
    step = staticmethod(sum_step)
    merge = staticmethod(sum_merge)
    finish = None

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
            geometry.wrapper_out(out, rows.dtype, rows.shape)
        if out.numel():
            self.launch(rows, out)
        return out

    def prepare(self, out, *args):
        raise NotImplementedError

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
        rows_per_program, block = _plan_tile(row_len, n_rows, steps[1] != 1)
        grid = triton.cdiv(n_rows, rows_per_program)
        # the rows and the columns of their last tile, masked lanes included
        index_64 = needs_int64([((*outer, row_len), (*st, step)) for st, step in zip(strides, steps)],
                               grid * rows_per_program - 1, triton.cdiv(row_len, block) * block - 1)
        launch(
            self.name, _reduction_kernel, (grid,),
            out_view, x, y if y is not None else x, n_rows, row_len, outer, *strides, *steps,
            STEP=self.step, MERGE=self.merge, FINISH=self.finish, PER_ROW=per_row,
            OUTER_NDIM=len(outer), CAST=TL_DTYPE[rows.cast or x.dtype],
            COMPUTE=TL_DTYPE[rows.compute], HAS_Y=y is not None, ONE_PASS=row_len <= block,
            INDEX_64=index_64, ROWS=rows_per_program, BLOCK=block,
            num_warps=4 if rows_per_program * block <= 2048 else 8)
