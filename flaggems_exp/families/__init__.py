"""The op families: each owns one Triton kernel skeleton; ops are short declarations on them."""
from .base import LAUNCHES, REGISTRY, Op, register
from .inplace import InplaceOp
from .pointwise import REQUIRED, PointwiseOp
from ..runtime.promotion import Promotion

__all__ = ["LAUNCHES", "REGISTRY", "Op", "register", "InplaceOp", "PointwiseOp", "Promotion", "REQUIRED"]
