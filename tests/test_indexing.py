"""Launch geometry (``runtime/indexing.py``): when a launch computes its offsets in int64."""
import pytest
import torch

from flaggems_exp import REGISTRY, testing
from flaggems_exp.runtime import indexing, launch
from flaggems_exp.runtime.plans import PlanCache


@pytest.mark.parametrize("name", ["sigmoid", "tril"])
def test_last_block_masked_lanes_count(name, monkeypatch):
    """A launch forms every index below its grid size times its block (a flat launch's, or
    IndexOp's tile of rows by columns), masked lanes included: where those pass int32 (numel a
    little below 2**31), it computes in int64, since a wrapped index compares below numel and
    its lane would write far out of bounds."""
    monkeypatch.setattr(indexing, "INT32_LIMIT", 50)  # above 40 elements, below a 64-wide block
    op = REGISTRY[name]
    monkeypatch.setattr(op, "plans", PlanCache())  # an earlier call's plan replays its launch
    widths = []
    run_kernel = launch.run_kernel

    def recorded(kernel, grid, args, options):
        block = options["BLOCK"] if "BLOCK" in options else options["BLOCK_R"] * options["BLOCK_C"]
        widths.append((options["INDEX_64"], grid[0] * block))
        return run_kernel(kernel, grid, args, options)

    monkeypatch.setattr(launch, "run_kernel", recorded)
    x = testing.random_tensor((5, 8), torch.float32, generator=torch.Generator().manual_seed(3))
    testing.check_call(op, testing.Call((x,), {}))
    assert widths == [(True, 64)]
