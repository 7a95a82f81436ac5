"""ResampleOp: nearest-neighbour upsampling and pixel (un)shuffle, gathers on PadOp's skeleton.

Both kinds write each output element from one input element, so they run on ``_gather_kernel``
(pad.py) like the pads: nearest resampling maps each resampled dim through ``nearest`` or
``nearest_exact``, and pixel (un)shuffle maps nothing at all: it is a strided copy between a
view of the input split and permuted into the output's order and a view of the output split
likewise (no data is moved to build the views; they are strides only).
"""
import math

import torch
import triton
import triton.language as tl
from torch._prims_common import suggest_memory_format

from ..runtime.dtypes import ALL, FLOATING
from .gather import GatherOp, float32

_NO_OVERFLOW = tl.constexpr(1e18)  # below 2**63: safe to convert to int64


@triton.jit
def _nearest_source(j, scale, size, OFFSET: tl.constexpr):
    # PyTorch's float32 arithmetic: min(floor((j + offset) * scale), size - 1); the product is
    # never negative, so the conversion's truncation is the floor
    x = (j.to(tl.float32) + OFFSET) * scale
    # a huge 1/scales clamps too; NaN (0 * inf, where 1/scales overflowed float32) is index 0,
    # as CUDA's conversion to an integer makes it (PyTorch's CPU kernel reads out of bounds)
    x = tl.where(x < _NO_OVERFLOW, x, tl.where(x == x, _NO_OVERFLOW, 0.0))
    return tl.minimum(x.to(tl.int64), size - 1).to(j.dtype)


@triton.jit
def _bounded_source(j, scale, size, OFFSET: tl.constexpr):
    # _nearest_source where the host has found every product finite and below 2**31: its
    # truncation fits int32 (one 32-bit conversion, no guards); j may be an exact float32
    x = (j.to(tl.float32) + OFFSET) * scale
    return tl.minimum(x.to(tl.int32), size - 1)


@triton.jit
def nearest(k, scale, size):
    return _nearest_source(k, scale, size, 0.0)


@triton.jit
def nearest_exact(k, scale, size):
    return _nearest_source(k, scale, size, 0.5)  # pixel centres aligned


@triton.jit
def _nearest_bounded(k, scale, size):
    return _bounded_source(k, scale, size, 0.0)


@triton.jit
def _nearest_exact_bounded(k, scale, size):
    return _bounded_source(k, scale, size, 0.5)


# each map -> (its offset, its twin for products the host has bounded)
_BOUNDED = {nearest: (0.0, _nearest_bounded), nearest_exact: (0.5, _nearest_exact_bounded)}


def _bounded(dim_map, size, offset):
    """Whether every source product of a mapped dim of ``size`` output indices, computed in
    float32 as the kernel does, is finite and below 2**31: scale is never negative, so the
    last index's is the largest (an infinite scale fails here, and with it the first index's
    0 * inf)."""
    shift, scale, _ = dim_map
    return float32(float32(float32(size - 1 + shift) + offset) * scale) < 2.0**31


def _pytorch_check(condition):
    """The message of a bare ``TORCH_CHECK(condition)`` in PyTorch's C++."""
    return RuntimeError(f"Expected {condition} to be true, but got false.  (Could this error "
                        "message be improved?  If so, please report an enhancement request to "
                        "PyTorch.)")


def _scale(in_size, out_size, scales):
    """PyTorch's ``compute_scales_value<float>``: 1/scales when given and positive, else
    in/out, both rounded to float32 (float32(in) / float32(out) is correctly rounded from
    double: division does not suffer from double rounding)."""
    if scales is not None and scales > 0:
        return float32(1.0 / scales)
    return float32(float32(in_size) / float32(out_size))


def _int64(value):
    """C++'s checked double -> int64_t conversion (truncation)."""
    if math.isnan(value) or not -2.0**63 <= value <= 2.0**63:
        raise RuntimeError("value cannot be converted to type int64_t without overflow")
    return int(value)


class ResampleOp(GatherOp):
    """The resampling family: ``NearestOp`` (upsample_nearest*) and ``ShuffleOp`` (pixel
    (un)shuffle) are its two kinds; ops are declarations on them."""

    family = "ResampleOp"


def _empty_before_dtype_check(aten_op):
    """``aten_op`` as PyTorch's CUDA kernels run it: an empty input's output, of the input's
    dtype, whatever the dtype (the CPU kernels reject bool, integers and complex first)."""
    def reference(*args, **kwargs):
        try:
            return aten_op(*args, **kwargs)
        except NotImplementedError:
            x = args[0] if args else kwargs.pop("input")
            if x.numel():
                raise
            return aten_op(torch.empty_like(x, dtype=torch.float32), *args[1:],
                           **kwargs).to(x.dtype)
    reference.__name__ = reference.__qualname__ = f"{aten_op.__name__}_cuda"
    reference.__wrapped__ = aten_op  # PyTorch's own op, for the benchmarks' eager baseline
    return reference


class NearestOp(ResampleOp):
    """Nearest-neighbour resampling of the last ``spatial`` dims of an (N, C, *spatial) input.

    Declare ``spatial`` and ``index_map``: ``nearest`` (source = floor(j * scale)) or
    ``nearest_exact`` (floor((j + 0.5) * scale)), clamped to the last input index, in float32
    exactly as PyTorch's CPU and CUDA kernels compute it. scale is float32(1 / scales) when a
    positive ``scales`` is given, else float32(in) / float32(out).
    Overloads: the default (output_size, one optional ``scales`` per dim) and ``.vec``
    (output_size xor scale_factors; out = trunc(in * s) in double, s passed on as ``scales``).
    The output keeps a channels_last_3d input's layout, as PyTorch does.
    """

    spatial = 1
    index_map = staticmethod(nearest)
    dtypes = FLOATING | {torch.uint8}
    complex_accepted = False  # PyTorch's own not-implemented error
    # PyTorch's CUDA kernels return an empty input's (empty) output before their dtype
    # dispatch; its CPU kernels dispatch first, and reject it. CUDA's behaviour is ours, on
    # every device (``ref`` follows it too)
    dtype_checked_when_empty = False

    def __init__(self):
        super().__init__()
        self.ref = _empty_before_dtype_check(self.ref)

    @staticmethod
    def repeats(dim_map, size):
        """Where PyTorch's float32 map of a dim, floor((k + offset) * scale) clamped, is exactly
        k // n: scale is 1/n (a power of two: the product is exact), the output n times the
        input (no clamp), and every k + 0.5 exact in float32 (k below 2**23)."""
        shift, scale, in_size = dim_map
        for n in (2, 4, 8, 16):
            if shift == 0 and scale == 1.0 / n and in_size * n == size and size <= 2**23:
                return n
        return 1

    def vec_sizes(self, x, output_size, scale_factors):
        """PyTorch's ``compute_output_size`` of a ``.vec`` call -> (output_size, scales)."""
        n = x.dim() - 2
        if (output_size is None) == (scale_factors is None):
            raise RuntimeError("Must specify exactly one of output_size and scale_factors")
        given = "output_size" if output_size is not None else "scale_factors"
        if len(output_size if output_size is not None else scale_factors) != n:
            raise _pytorch_check(f"static_cast<int64_t>({given}->size()) == spatial_dimensions")
        if output_size is not None:
            return output_size, [None] * n
        sizes = [_int64(x.shape[2 + i] * float(s)) for i, s in enumerate(scale_factors)]
        return sizes, scale_factors

    def geometry(self, x, overload, output_size, *scales):
        if overload == "vec":
            output_size, scales = self.vec_sizes(x, output_size, scales[0])
        n = self.spatial
        if len(output_size) != n:
            raise RuntimeError(f"It is expected output_size equals to {n}, but got size "
                               f"{len(output_size)}")
        if x.dim() != n + 2:
            raise RuntimeError(f"It is expected input_size equals to {n + 2}, but got size "
                               f"{x.dim()}")
        sizes = tuple(x.shape[2:])
        if min(*sizes, *output_size) <= 0:
            inputs, outputs = (", ".join(f"{d}: {v}" for d, v in zip("DHW"[3 - n:], values))
                               for values in (sizes, output_size))
            raise RuntimeError(f"Input and output sizes should be greater than 0, but got input "
                               f"({inputs}){' and' if n == 1 else ''} output ({outputs})")
        if x.shape[1] == 0:  # the batch may be empty, the channels not
            raise RuntimeError(f"Non-empty {n + 2}D data tensor expected but got a tensor with "
                               f"sizes {list(x.shape)}")
        maps = [None, None] + [(0, _scale(i, o, s), i)
                               for i, o, s in zip(sizes, output_size, scales)]
        return (*x.shape[:2], *output_size), suggest_memory_format(x), maps

    def kernel_map(self, shape, maps):
        # the bounded twin of the map where every mapped dim's products are bounded
        offset, bounded_map = _BOUNDED.get(self.index_map, (None, None))
        if bounded_map and all(m is None or _bounded(m, n, offset) for m, n in zip(maps, shape)):
            return bounded_map, True
        return self.index_map, False


class ShuffleOp(ResampleOp):
    """pixel_shuffle (``upscale``): (*, C*r*r, H, W) -> (*, C, H*r, W*r), and pixel_unshuffle,
    its inverse; any number of leading batch dims. Always a new contiguous tensor, as PyTorch's
    CUDA kernel (the device-generic one) makes it."""

    upscale = True
    dtypes = ALL
    sample_cases = ()  # (input shape, factor) of the natural calls tests and benchmarks make

    def geometry(self, x, overload, r):
        word = "upscale_factor" if self.upscale else "downscale_factor"
        if x.dim() < 3:
            raise RuntimeError(f"{self.name} expects input to have at least 3 dimensions, but got "
                               f"input with {x.dim()} dimension(s)")
        if r <= 0:
            raise RuntimeError(f"{self.name} expects a positive {word}, but got {r}")
        *batch, c, h, w = x.shape
        if self.upscale:
            if c % (r * r):
                raise RuntimeError(
                    f"pixel_shuffle expects its input's 'channel' dimension to be divisible by the "
                    f"square of upscale_factor, but input.size(-3)={c} is not divisible by {r * r}")
            return (*batch, c // (r * r), h * r, w * r), torch.contiguous_format, r
        for dim, size, what in ((-2, h, "height"), (-1, w, "width")):
            if size % r:
                raise RuntimeError(
                    f"pixel_unshuffle expects {what} to be divisible by downscale_factor, but "
                    f"input.size({dim})={size} is not divisible by {r}")
        return (*batch, c * r * r, h // r, w // r), torch.contiguous_format, r

    def views(self, x, out, r):
        *sb, sc, sh, sw = x.stride()
        *tb, tc, th, tw = out.stride()
        batch = x.shape[:-3]
        if self.upscale:  # walk (*, C, H, i, W, j): out[c, h*r+i, w*r+j] = in[c*r*r+i*r+j, h, w]
            c, h, w = out.shape[-3], x.shape[-2], x.shape[-1]
            shape = (*batch, c, h, r, w, r)
            in_strides = (*sb, sc * r * r, sh, sc * r, sw, sc)
            out_strides = (*tb, tc, th * r, th, tw * r, tw)
        else:  # walk (*, C, i, j, H, W): out[c*r*r+i*r+j, h, w] = in[c, h*r+i, w*r+j]
            c, h, w = x.shape[-3], out.shape[-2], out.shape[-1]
            shape = (*batch, c, r, r, h, w)
            in_strides = (*sb, sc, sh, sw, sh * r, sw * r)
            out_strides = (*tb, tc * r * r, tc * r, tc, th, tw)
        return shape, out_strides, in_strides, [None] * len(shape)
