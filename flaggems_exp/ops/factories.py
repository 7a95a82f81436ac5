"""Fills and factories: zero (and its in-place form zero_), eye, scalar_tensor, new_ones,
empty_permuted."""
import torch

from ..families import register
from ..families.copy import check_device, write
from ..families.creation import CreationOp, check_sizes
from ..families.index import Plan, launch_plan, on_diagonal
from ..runtime import geometry
from ..runtime.triton_types import checked_scalar
from ._common import cuda_scalar_tensor


@register
class Zero(CreationOp):
    """A new tensor of zeros laid out as clone() lays out self."""

    out_dtype_must_match = True
    any_dtype = True

    def geometry(self, x):
        return x.shape, "like", x

    def sample_args(self, dtype, shape, make):
        return [((make(),), {}, "")]


@register
class Eye(CreationOp):
    out_is_copied = False  # eye.out resizes out and fills it: no warning, an expanded out is filled

    def geometry(self, n, m=None):
        if n < 0:
            raise RuntimeError(f"n must be greater or equal to 0, got {n}")
        if m is not None and m < 0:
            raise RuntimeError(f"m must be greater or equal to 0, got {m}")
        return (n, n if m is None else m), None, None

    def fill(self, out, value):
        if geometry.has_internal_overlap(out):
            # as PyTorch: zeros, then ones on the diagonal (a strided view), so that an element
            # of an out= that overlaps itself ends as PyTorch leaves it
            write(self, out, 0)
            write(self, out.as_strided((min(out.shape),), (out.stride(0) + out.stride(1),)), 1)
        elif out.numel():  # one pass: ones on the diagonal, zeros elsewhere
            check_device(self, out)
            launch_plan(self.name, Plan(tuple(out.shape), out.dtype, on_diagonal, scalars=(0,),
                                        fill=1, pinned=2), out)

    def sample_args(self, dtype, shape, make):
        n, m = (tuple(shape) + (3, 4))[:2]
        calls = [(size, {"dtype": dtype, "device": "cpu"}, str(size))
                 for size in [(n,), (n, m), (m, n), (-1,), (3, -1)]]
        return calls + ([((n,), {"device": "cpu"}, "default dtype")]
                        if dtype == torch.float32 else [])


@register
class ScalarTensor(CreationOp):
    """PyTorch's CUDA scalar_tensor is ``empty({}).fill_(s)``: its fill converts s checked
    (c10's checked_convert), so float16 and bfloat16 reject a finite value beyond their range
    (its CPU kernel writes the one element unchecked: 1e39 is inf there)."""

    ref = staticmethod(cuda_scalar_tensor)

    def geometry(self, s):
        return (), None, None

    def fill_value(self, dtype, s):
        value = checked_scalar(s, dtype)  # then as the C++ cast: 2.7 -> 2, 2+1j -> True
        return (bool if dtype == torch.bool else float if dtype.is_floating_point else int)(
            value)

    def sample_args(self, dtype, shape, make):
        values = (2.75, -3, True, 300, float("nan"), 1e39, 2 + 0j)
        calls = [((s,), {"dtype": dtype, "device": "cpu"}, repr(s)) for s in values]
        return calls + ([((7,), {"device": "cpu"}, "default dtype")]
                        if dtype == torch.float32 else [])


@register
class NewOnes(CreationOp):
    value = 1

    def geometry(self, x, size):
        return tuple(size), None, x

    def sample_args(self, dtype, shape, make):
        x = make()
        return [((x, list(shape)), {}, "like self"),
                ((x.t() if x.dim() == 2 else x, [3, 2]), {}, "transposed self"),
                ((x, [2]), {"dtype": torch.float64}, "dtype=float64"), ((x, []), {}, "0-dim"),
                ((x, [-1, 3]), {}, "negative size")]


@register
class EmptyPermuted(CreationOp):
    """Uninitialised: strides put the dims in ``physical_layout`` order, outermost first."""

    value = None
    any_dtype = True
    launches_per_call = 0

    def geometry(self, size, physical_layout):
        ndim = len(size)
        if ndim != len(physical_layout):
            raise RuntimeError(
                "Number of dimensions in size does not match the length of the physical_layout; "
                f"i.e. len(size) = {ndim} is not equal to len(physical_layout) = "
                f"{len(physical_layout)}")
        for i, d in enumerate(physical_layout):
            if not 0 <= d < ndim:
                raise RuntimeError(
                    f"Dimension out of range (expected to be between 0 and {ndim - 1}, but got "
                    f"{d} at index {i}).  NB: negative dims not currently supported; file an "
                    "issue if you want it.")
            if d in physical_layout[:i]:
                raise RuntimeError("Duplicate dim not allowed")
        check_sizes([size[d] for d in physical_layout])  # PyTorch allocates in physical order
        strides, step = [0] * ndim, 1
        for d in reversed(physical_layout):
            strides[d], step = step, step * max(size[d], 1)
        return tuple(size), tuple(strides), None

    def sample_args(self, dtype, shape, make):
        # the contents are unspecified: the calls whose results can be compared are empty ones
        # (their shape, dtype and errors); the tests compare strides on full-size calls too
        size = [*shape, 0]
        order = list(range(len(size)))[::-1]
        errors = [([2, 3], [0]), ([2, 3], [0, 2]), ([2, 3], [1, 1]), ([2, -1], [1, 0])]
        return [((size, order), {"dtype": dtype, "device": "cpu"}, "reversed")] + [
            (args, {"device": "cpu"}, f"{args}") for args in errors]
