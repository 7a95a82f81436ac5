"""Copies: view_copy ops materialised, clone-likes, and copy (whose in-place form is copy_)."""
import torch

from ..families import register
from ..families.copy import CopyOp
from ..runtime.triton_types import checked_scalar


@register
class TCopy(CopyOp):
    name = "t_copy"

    def view(self, x):
        return x.t()  # PyTorch's own error beyond 2 dims

    def sample_args(self, dtype, shape, make):
        return [((make(),), {}, "2-d"), ((make(shape[-1:]),), {}, "1-d"), ((make(()),), {}, "0-d"),
                ((make((2, *shape)),), {}, "3-d")]


@register
class AliasCopy(CopyOp):
    pass


@register
class LiftFreshCopy(CopyOp):
    pass


@register
class Copy(CopyOp):
    """copy(self, src): laid out like self, holding src's values; in place this is copy_."""

    layout = "storage"
    storage_in_key = True

    def copy_arguments(self, x, src, non_blocking=False):
        return x, src, non_blocking

    def sample_args(self, dtype, shape, make):
        x = make()
        other = (make(shape, torch.int64) if dtype.is_floating_point
                 else make(shape, torch.float32, (0.0, 100.0)))  # in range of every dtype
        return [((x, make()), {}, "same dtype"), ((x, other), {}, "other dtype"),
                ((x, make(shape[-1:])), {}, "broadcast src"), ((x, make(())), {}, "0-d src"),
                ((x, make(), True), {}, "non_blocking")]


@register
class FunctionalSymConstrainRangeForSize(CopyOp):
    """Host-side checks of ``size`` against [min, max], then a clone of dep_token."""

    name = "_functional_sym_constrain_range_for_size"
    layout = "preserve"

    def view(self, size, min, max, dep_token):
        if max is not None and max <= 2:
            raise RuntimeError(
                f"Max value to constrain_range_for_size must be greater than 2. got: {max}")
        low, high = 0 if min is None else min, 2**63 - 1 if max is None else max
        value = int(checked_scalar(size, torch.int64))  # Scalar -> int64 as PyTorch's toLong
        if high < low:
            raise RuntimeError(
                f"Max must be greater than or equal to min. Got min={low} max={high}")
        if not low <= value <= high:
            raise RuntimeError(f"Invalid value range for {value} between [{low}, {high}].")
        return dep_token

    def sample_args(self, dtype, shape, make):
        x = make()
        return [((size, low, high, x), {}, f"{size} in [{low}, {high}]")
                for size, low, high in ((3, 2, 10), (5, None, None), (2.7, None, 3), (11, 2, 10),
                                        (5, None, 2), (5, 10, 4), (-1, None, None))]
