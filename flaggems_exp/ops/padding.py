"""Replication and reflection padding: an index map each on the PadOp skeleton."""
import triton
import triton.language as tl

from ..families import register
from ..families.pad import PadOp


@triton.jit
def clamp_index(k, scale, size):
    return tl.minimum(tl.maximum(k, 0), size - 1)


@triton.jit
def reflect_index(k, scale, size):
    # mirrored about the edge element, which is not repeated: -1 reads 1, size reads size - 2
    return tl.where(k < 0, -k, tl.where(k >= size, 2 * (size - 1) - k, k))


class ReplicationPad(PadOp):
    index_map = staticmethod(clamp_index)


@register
class ReplicationPad1d(ReplicationPad):
    dims = 1


@register
class ReplicationPad2d(ReplicationPad):
    dims = 2


@register
class ReplicationPad3d(ReplicationPad):
    dims = 3


@register
class ReflectionPad1d(PadOp):
    dims = 1
    reflective = True
    index_map = staticmethod(reflect_index)
