"""Nearest upsampling and pixel (un)shuffle: declarations on the ResampleOp kinds."""
import torch

from ..families import register
from ..families.resample import NearestOp, ShuffleOp, nearest_exact

# the dispatch slot PyTorch's CUDA build runs: for pixel (un)shuffle that is the device-generic
# kernel (reshape, permute, contiguous clone), which also runs on CPU tensors; PyTorch's CPU
# kernel differs (keeps channels_last, rejects channels_last_3d, returns an empty
# pixel_unshuffle input unchanged in shape)
_DEVICE_GENERIC = torch._C.DispatchKeySet(torch._C.DispatchKey.CUDA)


def _device_generic(packet):
    """The op of aten ``packet`` as PyTorch's CUDA build runs it; with ``out=``, its ``.out``
    overload (the generated wrapper: the functional kernel, then out='s dtype check, resize and
    copy)."""
    def ref(*args, out=None, **kwargs):
        if out is None:
            return packet.default.redispatch(_DEVICE_GENERIC, *args, **kwargs)
        return packet.out.redispatch(_DEVICE_GENERIC, *args, out=out, **kwargs)
    ref.__name__ = ref.__qualname__ = f"{packet.__name__}_device_generic"
    return ref


@register
class UpsampleNearest1d(NearestOp):
    spatial = 1


@register
class UpsampleNearestExact1d(NearestOp):
    name = "_upsample_nearest_exact1d"
    spatial = 1
    index_map = staticmethod(nearest_exact)


@register
class UpsampleNearest3d(NearestOp):
    spatial = 3


@register
class PixelShuffle(ShuffleOp):
    upscale = True
    ref = staticmethod(_device_generic(torch.ops.aten.pixel_shuffle))
    # factors 1-3, with none, one and two leading batch dims; odd, non-square sizes
    sample_cases = (((2, 12, 3, 5), 2), ((2, 2, 18, 2, 3), 3), ((8, 3, 5), 2), ((2, 3, 4, 5), 1))


@register
class PixelUnshuffle(ShuffleOp):
    upscale = False
    ref = staticmethod(_device_generic(torch.ops.aten.pixel_unshuffle))
    sample_cases = (((2, 3, 6, 10), 2), ((2, 2, 2, 9, 6), 3), ((2, 6, 10), 2), ((2, 3, 4, 5), 1))
