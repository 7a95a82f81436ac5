"""Comparisons (their in-place forms eq_, lt_, ... and aliases are derived) and logical_xor."""
import triton
import triton.language as tl

from ..families import DISPATCH, register
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
    complex_error = DISPATCH
    aliases = ("less",)

    @staticmethod
    @triton.jit
    def math(x, y):
        return x < y


@register
class Le(ComparisonOp):
    complex_error = DISPATCH
    aliases = ("less_equal",)

    @staticmethod
    @triton.jit
    def math(x, y):
        return x <= y


@register
class Gt(ComparisonOp):
    complex_error = DISPATCH
    aliases = ("greater",)

    @staticmethod
    @triton.jit
    def math(x, y):
        return x > y


@register
class Ge(ComparisonOp):
    complex_error = DISPATCH
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
