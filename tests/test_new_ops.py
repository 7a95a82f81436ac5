"""A new op of each family gets the generic suite's checks for free: throwaway ops, defined here
under names no registered op has, registered for one test and unregistered after it (the
registry, ``experimental_ops`` and ``list_ops()`` are as before; ``enable()`` reads the
registry when called, and no test here enables)."""
import pytest
import torch
import triton
import triton.language as tl

import generic_checks as checks
import flaggems_exp
from flaggems_exp import REGISTRY, experimental_ops, testing
from flaggems_exp.families import (ComparisonOp, CopyOp, CreationOp, LossOp, PadOp, PointwiseOp,
                                   Promotion, register)
from flaggems_exp.families.index import nowhere
from flaggems_exp.families.resample import NearestOp
from flaggems_exp.ops.indexing import Tril
from flaggems_exp.ops.padding import reflect_index
from flaggems_exp.ops.reductions import SafeSoftmax
from flaggems_exp.runtime import errors, libm, special
from flaggems_exp.runtime.dtypes import FLOATING


class NewAbs(PointwiseOp):
    """torch.abs under a name aten does not have."""
    name = "new_op_abs"
    ref = staticmethod(torch.abs)
    dtypes = frozenset(testing.ALL_DTYPES) - {torch.bool}  # PyTorch's CPU abs refuses bool

    @staticmethod
    @triton.jit
    def math(x):
        return tl.where(x < 0, -x, x)


class Expm1(PointwiseOp):
    """Pointwise: an aten op we do not serve, on a shared math function."""
    promotion = Promotion.INT_TO_FLOAT
    dtypes = FLOATING
    math = staticmethod(special.expm1)


class LogicalAnd(ComparisonOp):
    """Comparison: operands compared in their promoted dtype, a bool result (in place: 1/0)."""
    @staticmethod
    @triton.jit
    def math(x, y):
        return (x != 0) & (y != 0)


class MseLoss(LossOp):
    """Loss: the elementwise loss; the family fuses the none/mean/sum reduction."""
    nin = 2
    scalars = {"reduction": 1}
    param_samples = ({"reduction": 0}, {"reduction": 2})
    dtypes = FLOATING

    @staticmethod
    @triton.jit
    def math(x, target):
        return (x - target) * (x - target)


class Triu(Tril):
    """Index: tril's plan and checks (its messages name the op), the upper triangle kept."""

    @staticmethod
    @triton.jit
    def select(outer, row, col, ncols, aux, rank, diagonal, s1, s2):
        return col - row >= diagonal, nowhere(col), col


class Softmax(SafeSoftmax):
    """Reduction: _safe_softmax's row max and sum, but a row of only -inf is NaN, not 0.
    Sampled with half_to_float False only (PyTorch's CPU kernel refuses True)."""

    name = "_softmax"

    @staticmethod
    @triton.jit
    def finish(xc, yc, row_max, total, kind):
        return libm.div(libm.exp(xc - row_max), total)

    def prepare(self, out, x, dim, half_to_float):
        return super().prepare(out, x, dim, None)

    def sample_args(self, dtype, shape, make):
        return [((make(), dim, False), {}, str(dim)) for dim in (-1, 0)]


class OnesLike(CreationOp):
    """Creation: a fill laid out as clone() lays out self; dtype=/device= taken by the family."""

    value = 1

    def geometry(self, x):  # memory_format= left out: a TypeError, not a wrong layout
        return x.shape, "like", x

    def sample_args(self, dtype, shape, make):
        x = make()
        transposed = x.transpose(0, -1) if x.dim() else x
        return [((x,), {}, ""), ((transposed,), {}, "transposed self"),
                ((x,), {"dtype": torch.float64}, "dtype=float64")]


class ReflectionPad2d(PadOp):
    """Pad: the padded dims and an index map."""
    dims = 2
    reflective = True
    index_map = staticmethod(reflect_index)
    out_dtype_check = errors.OutDtypeCheck.DATA_POINTER  # its kernel is not structured


class UpsampleNearest2d(NearestOp):
    spatial = 2


class ExpandCopy(CopyOp):
    def view(self, x, size, implicit=False):
        return x.expand(size)

    def sample_args(self, dtype, shape, make):
        return [((make(), [2, *shape]), {}, "new dim"), ((make(shape[-1:]), [*shape]), {}, "1-d")]


NEW_OPS = [NewAbs, Expm1, LogicalAnd, MseLoss, Triu, Softmax, OnesLike, ReflectionPad2d,
           UpsampleNearest2d, ExpandCopy]


@pytest.fixture(params=NEW_OPS, ids=lambda cls: cls.__name__)
def new_op(request):
    before = (dict(REGISTRY), list(experimental_ops.__all__), flaggems_exp.list_ops())
    register(request.param)
    op = REGISTRY[request.param.name]
    try:
        yield op
    finally:
        for name in [n for n in REGISTRY if n not in before[0]]:
            del REGISTRY[name]
            vars(experimental_ops).pop(name, None)  # the op kept there on first access
        assert (dict(REGISTRY), list(experimental_ops.__all__), flaggems_exp.list_ops()) == before


def test_new_op_gets_the_generic_checks(new_op):
    assert new_op.name in flaggems_exp.list_ops()
    assert getattr(experimental_ops, new_op.name) is new_op
    for dtype in checks.dtypes(new_op):
        checks.check_samples(new_op, dtype)
    if checks.takes_edge_shapes(new_op):
        checks.check_edge_shapes(new_op)
    checks.check_strided_inputs(new_op)
    if new_op.aten_overloads():  # out= errors are compared with an aten op of the same name
        checks.check_out(new_op)
    checks.check_launches(new_op)
    if new_op.aten_overloads():  # PyTorch's own op of that name is routed to ours
        checks.check_routed(new_op)
        if checks.differentiable(new_op):
            checks.check_autograd(new_op)
    if hasattr(torch.ops.aten, new_op.name + "_"):  # the in-place form is derived, and checked
        inplace = REGISTRY[new_op.name + "_"]
        for dtype in checks.dtypes(inplace):
            checks.check_samples(inplace, dtype)
        checks.check_strided_inputs(inplace)
        checks.check_inplace_strided_self(inplace)
        checks.check_launches(inplace)
        checks.check_routed(inplace)


def test_the_registry_is_as_before():
    """Nothing of the throwaway ops is left for the other tests."""
    names = {cls.name for cls in NEW_OPS}
    assert not names & set(REGISTRY) and not {n + "_" for n in names} & set(REGISTRY)
