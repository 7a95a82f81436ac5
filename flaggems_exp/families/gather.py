"""GatherOp: every output element written from exactly one input element.

Padding, nearest resampling and pixel (un)shuffle are such gathers. ``GatherOp`` holds what they
share: the gather skeleton (gather_kernel.py), which walks the output and reads
``in[src_0, ..., src_n]`` where each source index is either the output index itself (a
pass-through dim) or ``INDEX_MAP(j + shift, scale, in_size)`` (a mapped dim), and the host side
(binding the aten schemas, out=, layout, launch). ``PadOp`` (pad.py) maps the padded trailing
dims; ``ResampleOp`` (resample.py) maps resampled dims and runs pixel (un)shuffle as a plain
strided copy through views of the input and output.
"""
import array
import math

import torch

from ..runtime import errors, geometry
from ..runtime.dtypes import ALL
from .base import Op
from .copy import computed_apart
from .gather_kernel import launch_gather


_MISSING = object()


def float32(value):
    """``value`` rounded to float32 as C++'s ``static_cast<float>`` does (inf beyond its range)."""
    return array.array("f", [value])[0]


def _fits(value, schema_type):
    """Whether a Python value can bind to an argument of this aten schema type (a bool is an
    int there, as PyTorch's binding of the aten op takes it)."""
    if schema_type.startswith("Optional["):
        return value is None or _fits(value, schema_type[9:-1])
    if schema_type.startswith("List["):
        return isinstance(value, (list, tuple)) and all(_fits(v, schema_type[5:-1]) for v in value)
    if schema_type == "Tensor":
        return isinstance(value, torch.Tensor)
    if schema_type in ("int", "SymInt"):
        return isinstance(value, int)
    if schema_type == "float":
        return isinstance(value, (int, float))
    return True


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
    # repeats(map, size): n where the index map of a mapped dim of ``size`` output indices is
    # exactly k // n for each (n a power of two up to 16), else 1; None: never
    repeats = None
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
        index_map, float_index = self.kernel_map(shape, maps)
        launch_gather(self.name, out, x, shape, out_strides, in_strides, maps, index_map,
                      self.repeats, float_index=float_index)

    def kernel_map(self, shape, maps):
        """(the index map the kernel applies for this call's ``maps``, whether it takes float32
        indices: see ``launch_gather``): ``index_map`` itself."""
        return self.index_map, False
