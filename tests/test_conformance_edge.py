"""Edge cases of the losses, the safe softmax, prelu and the factories, each against PyTorch:
special values in softmax rows, PyTorch's integer arithmetic in the losses, bool operands,
operands passed by keyword, the dtype an out= decides, and factories asked for another device."""
import itertools

import pytest
import torch

import flaggems_exp
from flaggems_exp import REGISTRY, testing
from flaggems_exp.testing import Call, check_call

NAN, INF = float("nan"), float("inf")


# ---- _safe_softmax: a NaN or +inf anywhere in a row makes the whole row NaN ----------------
@pytest.mark.parametrize("length", [3, 70_000], ids=["one pass", "two passes"])
@pytest.mark.parametrize("dim", [1, 0])
def test_safe_softmax_nan_or_inf_poisons_its_row(length, dim):
    gen = torch.Generator().manual_seed(length)
    x = torch.randn(6, length, generator=gen)
    x[0, length // 2] = NAN                      # NaN among finite values
    x[1, -1] = INF                               # +inf among finite values
    x[2] = -INF                                  # only -inf: zeros
    x[3, :] = -INF
    x[3, 0] = NAN                                # NaN among -inf: NaN, not zeros
    x[4, 1] = 1e10                               # +inf once cast to float16
    x = x if dim == 1 else x.t()
    op = REGISTRY["_safe_softmax"]
    for dtype in (None, torch.float16, torch.float64):
        ours = check_call(op, Call((x, dim, dtype)))
        expected = torch.ops.aten._safe_softmax(x, dim, dtype)
        assert torch.equal(ours.isnan().cpu(), expected.isnan())
