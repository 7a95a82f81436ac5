"""Every op against PyTorch's own CUDA kernel (a GPU only).

The other tests compare with PyTorch on the CPU, and know the CUDA kernel only through the
references written for the cases where it differs (a Scalar converted into another type,
integers accumulated in int64, the order of signed zeros). Here every op's sample calls, in
every dtype it declares, and the pointwise ops' special values run through PyTorch on the GPU
and through ours: the same error (type and message), or the same result dtype and shape, and
values within the dtype's tolerance (bit for bit where the op only moves data or the result is
not floating). A difference found here is a case the CPU references miss.
"""
import pytest
import torch

import generic_checks as checks
from flaggems_exp import REGISTRY, testing
from flaggems_exp.families import InplaceOp, PointwiseOp
from flaggems_exp.runtime.device import DEVICE
from flaggems_exp.testing import assert_close, assert_same_error, run

pytestmark = pytest.mark.skipif(DEVICE != "cuda", reason="PyTorch's CUDA kernels: a GPU only")

OPS = list(dict.fromkeys(REGISTRY.values()))
POINTWISE = [op for op in OPS if isinstance(testing.twin(op), PointwiseOp)]


def ids(op):
    return op.name


def _compare(op, call, exact, signed_zeros=False):
    """``call`` through PyTorch's CUDA kernel and through ours, each on its own copy; None, or
    why the call was not made (one PyTorch's CPU kernel rejects with what CUDA makes a device
    assertion, which would end the process's CUDA context)."""
    if testing.asserted_on_device(run(testing.pytorch_op(op), call.on("cpu"))):
        return "a device assertion"
    theirs = run(testing.pytorch_op(op), call.on(DEVICE))
    ours = run(op, call.on(DEVICE))
    if isinstance(theirs, Exception):
        assert_same_error(ours, theirs)
        return None
    assert not isinstance(ours, Exception), f"raised {type(ours).__name__}: {ours}"
    assert_close(ours, theirs, exact=exact or not theirs.is_floating_point(),
                 signed_zeros=signed_zeros)
    return None


@pytest.mark.parametrize("op", OPS, ids=ids)
def test_sample_calls_match_pytorchs_cuda_kernel(op):
    made = 0
    for dtype in checks.dtypes(op):
        for call in checks.samples(op, dtype):
            made += _compare(op, call, exact=checks.moves_data(op)) is None
    assert made, f"{op.name}: no call compared"


@pytest.mark.parametrize("op", POINTWISE, ids=ids)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32], ids=str)
def test_special_values_match_pytorchs_cuda_kernel(op, dtype):
    """±0, ±inf, NaN and the op's kinks in every combination of operands, the sign of a zero a
    unary op makes included."""
    if dtype not in checks.dtypes(op):
        pytest.skip(f"{op.name} does not compute {dtype}")
    values = torch.tensor(testing.SPECIAL_VALUES + tuple(op.special_values), dtype=dtype)
    unary = testing.twin(op).nin == 1 and not isinstance(op, InplaceOp)
    for call in testing.grid_calls(op, values):
        _compare(op, call, exact=False, signed_zeros=unary)
