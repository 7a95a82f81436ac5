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
from flaggems_exp.families import CopyOp, PointwiseOp, register
from flaggems_exp.families.resample import NearestOp


class NewAbs(PointwiseOp):
    """torch.abs under a name aten does not have."""
    name = "new_op_abs"
    ref = staticmethod(torch.abs)
    dtypes = frozenset(testing.ALL_DTYPES) - {torch.bool}  # PyTorch's CPU abs refuses bool

    @staticmethod
    @triton.jit
    def math(x):
        return tl.where(x < 0, -x, x)


class UpsampleNearest2d(NearestOp):
    spatial = 2


class ExpandCopy(CopyOp):
    def view(self, x, size, implicit=False):
        return x.expand(size)

    def sample_args(self, dtype, shape, make):
        return [((make(), [2, *shape]), {}, "new dim"), ((make(shape[-1:]), [*shape]), {}, "1-d")]


NEW_OPS = [NewAbs, UpsampleNearest2d, ExpandCopy]


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
    inplace = REGISTRY.get(new_op.name + "_")
    if inplace is not None:
        checks.check_inplace_strided_self(inplace)
        checks.check_launches(inplace)


def test_the_registry_is_as_before():
    """Nothing of the throwaway ops is left for the other tests."""
    names = {cls.name for cls in NEW_OPS}
    assert not names & set(REGISTRY) and not {n + "_" for n in names} & set(REGISTRY)
