"""Comparisons (their in-place forms eq_, lt_, ... and aliases are derived) and logical_xor."""
import triton
import triton.language as tl

from ..families import register
from ..families.comparison import ComparisonOp


@register
class Eq(ComparisonOp):
    @staticmethod
    @triton.jit
    def math(x, y):
        return x == y


@register
class Ne(ComparisonOp):
    aliases = ("not_equal",)

    @staticmethod
    @triton.jit
    def math(x, y):
        return x != y


@register
class Lt(ComparisonOp):
    aliases = ("less",)

    @staticmethod
    @triton.jit
    def math(x, y):
        return x < y


@register
class Le(ComparisonOp):
    aliases = ("less_equal",)

    @staticmethod
    @triton.jit
    def math(x, y):
        return x <= y


@register
class Gt(ComparisonOp):
    aliases = ("greater",)

    @staticmethod
    @triton.jit
    def math(x, y):
        return x > y


@register
class Ge(ComparisonOp):
    aliases = ("greater_equal",)

    @staticmethod
    @triton.jit
    def math(x, y):
        return x >= y


@register
class LogicalXor(ComparisonOp):
    @staticmethod
    @triton.jit
    def math(x, y):
        return (x != 0) ^ (y != 0)  # NaN is nonzero, hence true
