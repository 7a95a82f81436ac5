"""The op families: each owns one Triton kernel skeleton (or reuses another's through hooks);
ops are short declarations on them."""
from .base import LAUNCHES, REGISTRY, Op, register
from .inplace import InplaceOp
from .pointwise import DISPATCH, REQUIRED, Dispatch, PointwiseOp
from .comparison import ComparisonOp
from .loss import LossOp
from .gather import GatherOp
from .pad import PadOp
from .resample import ResampleOp
from .index import IndexOp
from .reduction import ReductionOp
from .creation import CreationOp
from .copy import CopyOp
from ..runtime.promotion import Promotion

__all__ = ["LAUNCHES", "REGISTRY", "Op", "register", "DISPATCH", "Dispatch", "REQUIRED",
           "Promotion", "PointwiseOp", "InplaceOp", "ComparisonOp", "LossOp", "GatherOp", "PadOp", "ResampleOp", "IndexOp",
           "ReductionOp", "CreationOp", "CopyOp"]
