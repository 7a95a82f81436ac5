"""Every op against PyTorch's own CUDA kernel (a GPU only).

The other tests compare with PyTorch on the CPU, and know the CUDA kernel only through the
references written for the cases where it differs (a Scalar converted into another type,
integers accumulated in int64, the order of signed zeros). Here every op's sample calls, in
every dtype it declares, and the pointwise ops' special values run through PyTorch on the GPU
and through ours: the same error (type and message), or the same result dtype and shape, and
values within the dtype's tolerance (bit for bit where the op only moves data or the result is
not floating). A difference found here is a case the CPU references miss.
"""
import math

import pytest
import torch

import flaggems_exp
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


@pytest.mark.parametrize("name", ["i0", "special_i0e", "special_i1"])
def test_float32_bessel_functions_match_pytorch_on_warps_of_either_side(name):
    """Compiled, float32 i0, i0e and i1 choose Cephes' series per warp (one series where the
    warp's lanes agree, one recurrence of both where they do not): bit for bit PyTorch's CUDA
    kernel on warps of one side, of the other, of lanes alternating between them, and of
    random mixtures with 8, its neighbours, zeros, infinities, NaN and subnormals."""
    g = torch.Generator(device=DEVICE).manual_seed(5)
    n = 1 << 16
    small = torch.rand(n, generator=g, device=DEVICE) * 16 - 8
    big = torch.sign(small) * (8 + torch.rand(n, generator=g, device=DEVICE) * 90)
    alternating = torch.where(torch.arange(n, device=DEVICE) % 2 == 0, small, big)
    edges = torch.tensor([8.0, -8.0, 8.000001, 7.999999, 0.0, -0.0, math.inf, -math.inf,
                          math.nan, 1e-40, -1e-40, 88.0, 89.0, 1e30], device=DEVICE)
    mixture = torch.randn(n, generator=g, device=DEVICE) * 8
    mixture[torch.randint(0, n, (512,), generator=g, device=DEVICE)] = edges.repeat(37)[:512]
    ours, theirs = getattr(flaggems_exp.experimental_ops, name), testing.pytorch_op(REGISTRY[name])
    for x in (small, big, alternating, mixture, -mixture):
        assert_close(ours(x), theirs(x), exact=True, signed_zeros=True)


def test_log1p_float32_matches_pytorch_on_every_value():
    """float32 log1p, written in the steps of CUDA's ``log1pf`` without its branch, against
    PyTorch's CUDA kernel on all 2**32 bit patterns: the same bits (any NaN for a NaN)."""
    chunk = 1 << 28
    for start in range(-(1 << 31), 1 << 31, chunk):
        x = torch.arange(start, start + chunk, dtype=torch.int64, device=DEVICE)
        x = x.to(torch.int32).view(torch.float32)
        ours, theirs = flaggems_exp.experimental_ops.log1p(x), torch.log1p(x)
        same = ((ours.view(torch.int32) == theirs.view(torch.int32))
                | (ours.isnan() & theirs.isnan()))
        assert bool(same.all()), x[~same][:8].tolist()
