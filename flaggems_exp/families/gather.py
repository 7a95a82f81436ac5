"""GatherOp: every output element written from exactly one input element.

Padding, nearest resampling and pixel (un)shuffle are such gathers. ``GatherOp`` holds what they
share: one Triton skeleton, ``_gather_kernel``, that walks the output and reads
``in[src_0, ..., src_n]`` where each source index is either the output index itself (a
pass-through dim) or ``INDEX_MAP(j + shift, scale, in_size)`` (a mapped dim), plus the host side
(binding the aten schemas, out=, layout, launch). ``PadOp`` (pad.py) maps the padded trailing
dims; ``ResampleOp`` (resample.py) maps resampled dims and runs pixel (un)shuffle as a plain
strided copy through views of the input and output.
"""
import array
import math

import torch
import triton
import triton.language as tl

from ..runtime import errors, geometry
from ..runtime.indexing import BLOCK, needs_int64, offset, unravel
from ..runtime.dtypes import ALL
from ..runtime.launch import launch
from .base import Op
from .copy import computed_apart


@triton.jit
def _unmapped(k, scale, size):
    return k  # the index map of a plain strided copy: never called, every dim passes through


@triton.jit
def _source(j, shift, scale, size, INDEX_MAP: tl.constexpr, IS_MAPPED: tl.constexpr):
    if IS_MAPPED:
        return INDEX_MAP(j + shift, scale, size)
    else:
        return j


@triton.jit(do_not_specialize=["rows", "cols", "col_blocks", "shape", "out_strides", "in_strides",
                               "shifts", "scales", "in_sizes"])
def _gather_kernel(
    out_ptr, in_ptr, rows, cols, col_blocks, shape, out_strides, in_strides, shifts, scales,
    in_sizes, INDEX_MAP: tl.constexpr, MAPPED: tl.constexpr, NDIM: tl.constexpr,
    INDEX_64: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
):
    # a BLOCK_R x BLOCK_C tile: columns run along the innermost dim (the output's, in memory),
    # rows over all outer dims together, so the outer index arithmetic is done once per row
    pid = tl.program_id(0)
    if INDEX_64:
        pid = pid.to(tl.int64)
    r = (pid // col_blocks) * BLOCK_R + tl.arange(0, BLOCK_R)[:, None]
    c = (pid % col_blocks) * BLOCK_C + tl.arange(0, BLOCK_C)[None, :]
    mask = (r < rows) & (c < cols)
    if NDIM > 1:
        # r < rows: what unravelling dims 1..NDIM-2 leaves of r is dim 0's coordinate
        inner, first = unravel(r, shape, 1, NDIM - 1)
        outer = (first,) + inner
    else:
        outer = ()
    row_out = offset(outer, out_strides, r)
    row_in = tl.zeros_like(r)
    for d in tl.static_range(NDIM - 2, -1, -1):
        src = _source(outer[d], shifts[d], scales[d], in_sizes[d], INDEX_MAP, (MAPPED >> d) & 1)
        row_in += src * in_strides[d]
    for d in tl.static_range(NDIM - 1, NDIM):  # the columns (a constexpr d for the tuples)
        src = _source(c, shifts[d], scales[d], in_sizes[d], INDEX_MAP, (MAPPED >> d) & 1)
        out_off = row_out + c * out_strides[d]
        in_off = row_in + src * in_strides[d]
    tl.store(out_ptr + out_off, tl.load(in_ptr + in_off, mask=mask), mask=mask)


_MISSING = object()


def float32(value):
    """``value`` rounded to float32 as C++'s ``static_cast<float>`` does (inf beyond its range)."""
    return array.array("f", [value])[0]


def _fits(value, schema_type):
    """Whether a Python value can bind to an argument of this aten schema type."""
    if schema_type.startswith("Optional["):
        return value is None or _fits(value, schema_type[9:-1])
    if schema_type.startswith("List["):
        return isinstance(value, (list, tuple)) and all(_fits(v, schema_type[5:-1]) for v in value)
    if schema_type == "Tensor":
        return isinstance(value, torch.Tensor)
    if schema_type in ("int", "SymInt"):
        return isinstance(value, int) and not isinstance(value, bool)
    if schema_type == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return True


def _iteration(shape, out_strides, in_strides, maps):
    """The dims the kernel walks: in the output's memory order (outermost first, so the tile's
    columns are the output's innermost dim), without size-1 pass-through dims, and with
    neighbouring pass-through dims merged where both tensors walk them as one."""
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


class GatherOp(Op):
    """An op whose every output element is one input element: the base of PadOp and ResampleOp.

    A family declares:
      geometry(x, overload, *args) -> (output shape, memory format of a new output, plan):
                 every check of the arguments, raising PyTorch's errors; ``args`` are the aten
                 schema's arguments after the input, ``overload`` the aten overload they bound to.
      views(x, out, plan) -> (shape, out strides, in strides, maps): the copy the kernel runs;
                 by default the output's own shape and strides with ``plan`` as the maps, one
                 per dim: None (source index = output index) or ``(shift, scale, in_size)``.
      index_map  ``@triton.jit def index_map(k, scale, size)``: the source index of a mapped
                 dim, ``k`` being the output index plus the dim's shift.
      out_dtype_check  which of PyTorch's checks refuses an out= of another dtype (below).
      dtypes     input dtypes the kernel supports; others raise PyTorch's NotImplementedError
                 naming ``dispatch_name`` (default: the op name); complex raises ours where
                 PyTorch accepts complex (``complex_accepted``), else PyTorch's not-implemented;
                 with ``dtype_checked_when_empty`` False an empty input is never rejected.
    The skeleton copies bits (no casts, exact for every dtype), reads through any strides and
    writes through the output's strides (an out= of any layout), in int64 only where needed;
    an out= sharing the input's memory gets the result computed apart, then copied in.
    """

    family = "GatherOp"
    dtypes = ALL
    dispatch_name = None
    complex_accepted = True
    dtype_checked_when_empty = True  # False: an empty input's output returns before the check
    # which PyTorch check refuses an out= of another dtype: a structured kernel's out= wrapper,
    # before the input's dtype (the default); or, for a kernel that is not structured, its typed
    # pointer into out (DATA_POINTER), after the input's dtype, and only for a non-empty result
    out_dtype_check = errors.OutDtypeCheck.OUT_WRAPPER
    index_map = None
    reference_in_float64 = False  # data movement: PyTorch's own result is the reference

    def __init__(self):
        super().__init__()
        # the functional aten overloads, each as [(argument name, schema type, default)]
        self.signatures = []
        for name, overload in self.aten_overloads():
            arguments = getattr(getattr(torch.ops.aten, name), overload)._schema.arguments
            if not any(a.kwarg_only and a.name == "out" for a in arguments):
                self.signatures.append((overload, [
                    (a.name, str(a.type), a.default_value if a.has_default_value() else _MISSING)
                    for a in arguments]))

    def resolve_overload(self, args, kwargs):
        """(overload, argument values in schema order) of the first aten overload the call fits,
        as PyTorch resolves ``torch.ops.aten.<op>(...)``."""
        for overload, signature in self.signatures:
            names = [n for n, _, _ in signature]
            if len(args) > len(names) or any(k not in names[len(args):] for k in kwargs):
                continue
            values = [args[i] if i < len(args) else kwargs.get(n, default)
                      for i, (n, _, default) in enumerate(signature)]
            if all(v is not _MISSING and _fits(v, t) for v, (_, t, _) in zip(values, signature)):
                return overload, values
        raise TypeError(f"{self.name}() received an invalid combination of arguments: "
                        f"{len(args)} positional, keywords {sorted(kwargs)}")

    def geometry(self, x, overload, *args):
        raise NotImplementedError

    def views(self, x, out, plan):
        return tuple(out.shape), out.stride(), x.stride(), plan

    def check_dtype(self, dtype):
        if dtype in self.dtypes:
            return
        if dtype.is_complex and self.complex_accepted:
            raise errors.complex_unsupported(self.name)
        raise errors.not_implemented(self.dispatch_name or self.name, dtype)

    # ---- the run: validate everything, then allocate and launch -------------------------
    def call_out(self, args, kwargs, out, inplace):
        overload, (x, *rest) = self.resolve_overload(args, kwargs)
        shape, memory_format, plan = self.geometry(x, overload, *rest)
        wrong_out_dtype = out is not None and out.dtype != x.dtype
        wrapper_checks_out = self.out_dtype_check is errors.OutDtypeCheck.OUT_WRAPPER
        if wrong_out_dtype and wrapper_checks_out:
            raise errors.out_dtype_mismatch(out.dtype, x.dtype, self.out_dtype_check)
        if x.numel() or self.dtype_checked_when_empty:
            self.check_dtype(x.dtype)
        if wrong_out_dtype and math.prod(shape):
            # the kernel's typed pointer into out: after the dtype dispatch, and only where there
            # is something to write (PyTorch's CUDA kernels return before it for an empty result;
            # its CPU kernels check anyway)
            raise errors.out_dtype_mismatch(out.dtype, x.dtype, self.out_dtype_check)

        def new():
            return torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=memory_format)

        if out is None:
            out = new()
        else:
            if geometry.keeps_internal_overlap(out, shape):  # resize_output comes first
                raise errors.internal_overlap()
            if out is x:  # read through a view that resizing out (x itself) leaves as it is
                x = x.view(x.shape)
            # the first write, after every check; a kernel that is not structured resizes its
            # out= with resize_, without resize_output's warning
            geometry.resize_out(out, shape, memory_format=memory_format,
                                warn=self.out_dtype_check is errors.OutDtypeCheck.OUT_WRAPPER)
        if out.numel():
            # PyTorch's kernels do not check whether out= shares the input's memory, and then
            # read elements they have written; ours give the values of an out apart from it
            computed_apart(self, out, [x], new,
                           lambda target: self.launch(target, x, *self.views(x, target, plan)))
        return out

    def launch(self, out, x, shape, out_strides, in_strides, maps):
        dims = _iteration(shape, out_strides, in_strides, maps)
        sizes = tuple(d[0] for d in dims)
        cols, rows = sizes[-1], math.prod(sizes[:-1])
        block_c = min(triton.next_power_of_2(cols), BLOCK)
        block_r = min(BLOCK // block_c, triton.next_power_of_2(rows))
        col_blocks = triton.cdiv(cols, block_c)
        # the rows and columns of the tiles, masked lanes included
        index_64 = needs_int64([(t.shape, t.stride()) for t in (out, x)],
                               triton.cdiv(rows, block_r) * block_r - 1, col_blocks * block_c - 1)
        mapped = sum(1 << i for i, d in enumerate(dims) if d[3])
        launch(
            self.name, _gather_kernel, (triton.cdiv(rows, block_r) * col_blocks,),
            out, x, rows, cols, col_blocks, sizes, tuple(d[1] for d in dims),
            tuple(d[2] for d in dims), tuple(d[3][0] if d[3] else 0 for d in dims),
            tuple(float(d[3][1]) if d[3] else 1.0 for d in dims),
            tuple(d[3][2] if d[3] else d[0] for d in dims),
            INDEX_MAP=self.index_map if mapped else _unmapped, MAPPED=mapped, NDIM=len(dims),
            INDEX_64=index_64, BLOCK_R=block_r, BLOCK_C=block_c)
