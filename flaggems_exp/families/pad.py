"""PadOp: replication and reflection padding, as a gather (``GatherOp``) from output index to
source index."""
import torch

from ..runtime.dtypes import REAL
from .gather import GatherOp


class PadOp(GatherOp):
    """Padding of the last ``dims`` dims (1: W, 2: H, W, 3: D, H, W), ``padding`` listing
    (before, after) pairs from the last dim backwards, as PyTorch orders it.

    Declare ``dims`` and ``index_map(k, scale, size)``: the source index of output index
    ``k + before`` along a dim of input size ``size`` (``scale`` is unused); ``k`` is below 0 in
    the leading pad and ``size`` or more in the trailing one. A negative pad crops. With
    ``reflective``, each pad must be smaller than its dim, as reflection needs.
    The output is contiguous, as PyTorch's CUDA kernels make it (its CPU kernels keep
    channels_last).
    """

    family = "PadOp"
    dims = 1
    reflective = False
    dtypes = REAL
    # PyTorch's messages for an output with no element in any padded dim, by ``dims``
    # (replication_pad2d's has a space before its parenthesis, reflection_pad2d's has not)
    _TOO_SMALL = {1: "input (W: {0}) is too small. Calculated output W: {1}",
                  2: "input (H: {0}, W: {1}{space}) is too small. Calculated output H: {2} W: {3}",
                  3: "input (D: {0} H: {1}, W: {2}) is too small. "
                     "Calculated output D: {3} H: {4} W: {5}"}

    def geometry(self, x, overload, padding):
        n = self.dims
        if len(padding) != 2 * n:
            raise RuntimeError(f"padding size is expected to be {2 * n}"
                               + (f", but got: {len(padding)}" if self.reflective else ""))
        inner = x.shape[1:] if x.dim() == n + 2 else x.shape  # the batch dim may be empty
        if x.dim() not in (n + 1, n + 2) or 0 in inner:
            raise RuntimeError(
                f"Expected {n + 1}D or {n + 2}D (batch mode) tensor with possibly 0 batch size and "
                f"other non-zero dimensions for input, but got: {list(x.shape)}")
        sizes = tuple(x.shape[-n:])
        before, after = padding[-2::-2], padding[::-2]  # per padded dim, outermost first
        if self.reflective:
            for k in range(n):  # innermost first, as PyTorch checks
                b, a, size = before[n - 1 - k], after[n - 1 - k], sizes[n - 1 - k]
                if not (b < size and a < size):
                    raise RuntimeError(
                        f"Argument #{4 + 2 * k}: Padding size should be less than the "
                        f"corresponding input dimension, but got: padding ({b}, {a}) at "
                        f"dimension {x.dim() - 1 - k} of input {list(x.shape)}")
        outs = [s + b + a for s, b, a in zip(sizes, before, after)]
        if all(o < 1 for o in outs):  # one empty padded dim is fine (an empty output)
            raise RuntimeError(self._TOO_SMALL[n].format(*sizes, *outs,
                                                         space="" if self.reflective else " "))
        shape = (*x.shape[:-n], *outs)
        if min(shape) < 0:
            raise RuntimeError(f"Trying to create tensor with negative dimension "
                               f"{next(o for o in shape if o < 0)}: {list(shape)}")
        maps = [None] * (x.dim() - n) + [(-b, 1.0, s) for b, s in zip(before, sizes)]
        return shape, torch.contiguous_format, maps
