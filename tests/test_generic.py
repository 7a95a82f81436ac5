"""One suite over every registered op, whatever its family (OpInfo style): the checks of
tests/generic_checks.py, each driven by the op's sample calls (``testing.sample_calls``)."""
import pytest
import torch

import generic_checks as checks
from flaggems_exp import REGISTRY
from flaggems_exp.families import InplaceOp

OPS = list(dict.fromkeys(REGISTRY.values()))
FUNCTIONAL = [op for op in OPS if not isinstance(op, InplaceOp)]
INPLACE = [op for op in OPS if isinstance(op, InplaceOp)]
QUICK_DTYPES = (torch.float32, torch.int64)


def ids(op):
    return op.name


def pytest_generate_tests(metafunc):
    if metafunc.function.__name__ == "test_samples":
        quick = metafunc.config.getoption("--quick")
        metafunc.parametrize("op, dtype", [
            (op, dtype) for op in OPS for dtype in checks.dtypes(op)
            if not quick or dtype in QUICK_DTYPES], ids=lambda v: str(getattr(v, "name", v)))


def test_every_op_has_samples_for_each_of_its_dtypes():
    missing = [(op.name, dtype) for op in OPS for dtype in checks.dtypes(op)
               if not checks.samples(op, dtype)]
    assert not missing


def test_samples(op, dtype):
    checks.check_samples(op, dtype)


@pytest.mark.parametrize("op", [op for op in OPS if checks.takes_edge_shapes(op)], ids=ids)
def test_zero_dim_and_empty(op):
    checks.check_edge_shapes(op)


@pytest.mark.parametrize("op", OPS, ids=ids)
def test_strided_inputs(op):
    checks.check_strided_inputs(op)


@pytest.mark.parametrize("op", FUNCTIONAL, ids=ids)
def test_out(op):
    checks.check_out(op)


@pytest.mark.parametrize("op", OPS, ids=ids)
def test_unknown_keyword(op):
    checks.check_unknown_keyword(op)


@pytest.mark.parametrize("op", INPLACE, ids=ids)
def test_inplace_strided_self(op):
    checks.check_inplace_strided_self(op)


@pytest.mark.parametrize("op", OPS, ids=ids)
def test_our_kernel_ran(op):
    checks.check_launches(op)


@pytest.mark.parametrize("op", OPS, ids=ids)
def test_routed_under_enable(op):
    checks.check_routed(op)


@pytest.mark.parametrize("op", [op for op in FUNCTIONAL if checks.differentiable(op)], ids=ids)
def test_autograd_under_enable(op):
    checks.check_autograd(op)
