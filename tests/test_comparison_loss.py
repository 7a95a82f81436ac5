"""Comparison and loss behaviour the generic registry tests cannot express: exact integer
comparisons, Scalar conversion, NaN, fused reductions on large half-precision inputs, broadcast
targets, invalid reductions and determinism. (Every ComparisonOp and LossOp also runs through
every generic property of tests/test_ops.py.)"""
import pytest
import torch

import flaggems_exp
import ptx_census
from flaggems_exp import LAUNCHES, REGISTRY, experimental_ops as ops, testing
from flaggems_exp.families import loss as loss_family
from flaggems_exp.testing import Call, check_call

DEV = flaggems_exp.device
COMPARISONS = ["eq_", "ne_", "lt_", "le_", "gt_", "ge_"]
LOSSES = [op for op in dict.fromkeys(REGISTRY.values()) if op.family == "LossOp"]


@pytest.mark.parametrize("name", COMPARISONS + ["logical_xor_"])
@pytest.mark.parametrize("base", [2**24, 2**53, 2**62])
def test_int64_compares_exactly(name, base):
    """int64 values a float32 or float64 would merge compare exactly (in the promoted dtype)."""
    x = torch.tensor([base - 1, base, base + 1, -base - 1, 0], dtype=torch.int64)
    others = (torch.full_like(x, base), torch.tensor(base))
    for other in others + ((base,) if name != "logical_xor_" else ()):  # xor takes tensors only
        check_call(REGISTRY[name], Call((x.clone(), other)))


@pytest.mark.parametrize("name", COMPARISONS)
@pytest.mark.parametrize("dtype", [torch.uint8, torch.int8, torch.float16, torch.bfloat16])
def test_scalar_is_converted_to_the_comparison_dtype(name, dtype):
    """uint8 ge_(-1) compares with 255; float16 eq_(1.0000001) compares 1.0 == 1.0."""
    x = torch.tensor([0, 1, 2, 127, 255 if dtype == torch.uint8 else -1]).to(dtype)
    for scalar in (-1, 1.0000001, 2.5, 300, True):
        check_call(REGISTRY[name], Call((x.clone(), scalar)))


@pytest.mark.parametrize("name", COMPARISONS + ["logical_xor_"])
def test_nan_compares_false_except_ne(name):
    nan = float("nan")
    x = torch.tensor([nan, 1.0, nan, 0.0])
    y = torch.tensor([nan, nan, 1.0, 0.0])
    result = check_call(REGISTRY[name], Call((x.clone(), y)))
    assert result is not None


@pytest.mark.parametrize("name", COMPARISONS)
def test_comparison_of_a_bigger_other_does_not_grow_self(name):
    check_call(REGISTRY[name], Call((torch.randn(3), torch.randn(2, 3))))


@pytest.mark.parametrize("op", LOSSES, ids=lambda op: op.name)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("reduction", [1, 2])
def test_fused_reduction_of_a_million_half_precision_elements(op, dtype, reduction):
    """One fused pass with float32 accumulation: as close to the float64 reference as the
    result dtype's rounding allows."""
    gen = torch.Generator().manual_seed(5)
    shapes = testing.operand_shapes(op, (1000, 1000))
    args = [testing.random_tensor(s, dtype, (-2, 2), gen) for s in shapes]
    args[-1] = args[-1].sign() if op.name != "huber_loss" and op.name != "smooth_l1_loss" else args[-1]
    check_call(op, Call(tuple(args), {"reduction": reduction}))


@pytest.mark.parametrize("op", LOSSES, ids=lambda op: op.name)
@pytest.mark.parametrize("reduction", [0, 1, 2])
def test_broadcast_target_and_noncontiguous_inputs(op, reduction):
    gen = torch.Generator().manual_seed(6)
    x = testing.random_tensor((8, 6), torch.float32, (-2, 2), gen).t()  # (6, 8), transposed
    target = testing.random_tensor((8,), torch.float32, (-1, 1), gen).sign()  # broadcast rows
    args = (x, x.flip(0), target) if op.nin == 3 else (x, target)
    check_call(op, Call(args, {"reduction": reduction}))


@pytest.mark.parametrize("op", LOSSES, ids=lambda op: op.name)
def test_reduction_is_deterministic(op):
    gen = torch.Generator().manual_seed(7)
    args = [testing.random_tensor(s, torch.float32, (-2, 2), gen).to(DEV)
            for s in testing.operand_shapes(op, (300, 333))]
    first = op(*args, reduction=2)
    for _ in range(3):
        again = op(*args, reduction=2)
        assert torch.equal(first.view(torch.int32), again.view(torch.int32))


@pytest.mark.parametrize("op", LOSSES, ids=lambda op: op.name)
def test_mean_of_empty_is_nan_and_sum_is_zero(op):
    args = tuple(torch.empty(s) for s in testing.operand_shapes(op, (0, 3)))
    for reduction in (1, 2):
        check_call(op, Call(args, {"reduction": reduction}))


@pytest.mark.parametrize("name", ["soft_margin_loss", "smooth_l1_loss"])
def test_invalid_reduction_raises(name):
    """PyTorch returns garbage (soft_margin) or asserts (smooth_l1): ours raises a RuntimeError."""
    x = torch.randn(4, device=DEV)
    with pytest.raises(RuntimeError, match="reduction must be 0"):
        getattr(ops, name)(x, x, reduction=3)


def test_soft_margin_overflows_like_pytorch_in_half_precision():
    """exp(-target * x) is +inf past float16's range in PyTorch's step-by-step evaluation."""
    x = torch.tensor([-11.0, -11.08, -11.1, -12.0, 3.0, -88.0, -89.0], dtype=torch.float16)
    check_call(REGISTRY["soft_margin_loss"], Call((x, torch.ones(7)), {"reduction": 0}))
    x32 = torch.tensor([-88.0, -88.8, -89.0, 3.0])
    check_call(REGISTRY["soft_margin_loss"], Call((x32, torch.ones(4)), {"reduction": 0}))


@pytest.mark.parametrize("args, kwargs", [
    ((torch.randn(3), torch.randn(3)), {"delta": 0.0}),
    ((torch.randn(3), torch.randn(3)), {"delta": -1.0}),
    ((torch.randn(3), torch.randn(3)), {"delta": float("nan")}),
    ((torch.ones(3, dtype=torch.bool), torch.ones(3)), {"delta": float("nan")}),
])
def test_huber_rejects_non_positive_delta(args, kwargs):
    """PyTorch checks delta > 0 (which NaN fails) before its dtype dispatch."""
    check_call(REGISTRY["huber_loss"], Call(args, kwargs))


@pytest.mark.parametrize("beta", [-0.5, float("nan")])
def test_smooth_l1_rejects_negative_beta(beta):
    """PyTorch checks beta >= 0 (which NaN fails) before its dtype dispatch."""
    for x in (torch.randn(3), torch.ones(3, dtype=torch.bool)):
        check_call(REGISTRY["smooth_l1_loss"], Call((x, torch.randn(3)), {"beta": beta}))


@pytest.mark.parametrize("name", ["huber_loss", "smooth_l1_loss"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_huber_and_smooth_l1_round_each_step_as_pytorchs_cuda_kernel(name, dtype):
    """The difference is rounded to the half dtype before its square, and the parameter is
    held in it, which computing everything in float32 misses; beside a 0-dim float64 self,
    huber_loss computes in float64, the dtype it writes. Our bits are PyTorch's CUDA kernel's:
    its own result on the GPU, the op's reference here (its steps replayed in PyTorch's float
    ops), which the GPU run thereby checks too."""
    gen = torch.Generator().manual_seed(11)
    x, target = (testing.random_tensor((1 << 14,), dtype, (-6, 6), gen) for _ in range(2))
    zero_dim = torch.tensor(0.7, dtype=torch.float64)  # does not decide the common dtype
    for parameter in (1.3, 0.7, 3.1):
        for a, b in ((x, target), (zero_dim, target)):
            ours = getattr(ops, name)(a.to(DEV), b.to(DEV), 0, parameter)
            testing.assert_identical(ours.cpu(), REGISTRY[name].ref(a, b, 0, parameter))
            if DEV == "cuda":
                cuda = getattr(torch.ops.aten, name)(a.to(DEV), b.to(DEV), 0, parameter)
                testing.assert_identical(ours, cuda)


def test_hinge_on_integers_sums_to_int64_and_rejects_mean():
    x = torch.tensor([1, 2, -3, 4])
    t = torch.tensor([1, -1, 0, -1])
    for reduction in (0, 1, 2):
        check_call(REGISTRY["hinge_embedding_loss"], Call((x, t), {"margin": 1.5, "reduction": reduction}))


@pytest.mark.parametrize("op", LOSSES, ids=lambda op: op.name)
def test_losses_under_enable_route_and_keep_gradients(op):
    gen = torch.Generator().manual_seed(8)
    base = [testing.random_tensor(s, torch.float64, (-2, 2), gen) for s in testing.operand_shapes(op, (4, 5))]

    def run():
        leaves = [b.to(DEV, copy=True) for b in base]
        for leaf in leaves[:-1]:  # not the target: some losses are not differentiable in it
            leaf.requires_grad_()
        out = getattr(torch.ops.aten, op.name)(*leaves)
        out.backward()
        return out.detach(), [leaf.grad for leaf in leaves[:-1]]

    expected_out, expected_grads = run()
    before = LAUNCHES[op.name]
    with flaggems_exp.use_gems():
        out, grads = run()
    assert LAUNCHES[op.name] > before or op.name in ("hinge_embedding_loss", "margin_ranking_loss")
    torch.testing.assert_close(out, expected_out)
    for g, e in zip(grads, expected_grads):
        torch.testing.assert_close(g, e)


@pytest.mark.parametrize("reduction", [1, 2])
def test_reduced_loss_sums_its_partials_tile_by_tile(monkeypatch, reduction):
    """More partials than one tile of their sum (programs of 64 elements, tiles of 16 partials
    here): the fused reduction still gives PyTorch's mean and sum."""
    monkeypatch.setattr(loss_family, "_PARTIAL_BLOCK", 64)
    monkeypatch.setattr(loss_family, "_TOTAL_BLOCK", 16)
    gen = torch.Generator().manual_seed(8)
    for op in LOSSES:
        op.plans.clear()  # a plan recorded with the usual blocks would replay its launches
        shapes = testing.operand_shapes(op, (50, 101))
        args = [testing.random_tensor(s, torch.float32, (-2, 2), gen) for s in shapes]
        args[-1] = args[-1].sign() if op.name not in ("huber_loss", "smooth_l1_loss") else args[-1]
        launches = LAUNCHES[op.name]
        check_call(op, Call(tuple(args), {"reduction": reduction}))
        assert LAUNCHES[op.name] == launches + 2
        op.plans.clear()


def test_bfloat16_loss_steps_convert_in_pairs():
    """Compiled for the H200 (sm_90), a bfloat16 loss's steps (hinge's margin - self, soft
    margin's product and exponential, each element's loss before the sum) round to bfloat16 and
    are read on in float32 through packed conversions, two elements each, as the stores convert:
    none one element at a time (F2F, a quarter-rate instruction, which left bfloat16 hinge loss
    behind float16's and torch.compile's at L), but huber's delta, once a program."""
    cases = [f"{name}_bfloat16_mean" for name in
             ("hinge_embedding_loss", "soft_margin_loss", "huber_loss")]
    for launch in ptx_census.compiled_launches(*cases):
        if launch["kernel"] == "_pointwise_kernel":
            assert launch["bfloat16_conversions"] <= (launch["case"].startswith("huber")), launch
            assert launch["bfloat16_pair_conversions"] > 0, launch


def test_reduced_loss_compiles_to_few_large_programs():
    """Compiled for the H200 (sm_90), the mean of a 64M-element float16 loss: 8192 programs of
    8192 elements each (16-byte loads only, all in flight at once), then one program that reads
    their 8192 partials in one tile (no loop of dependent loads)."""
    launches = ptx_census.compiled_launches("huber_loss_mean", "margin_ranking_loss_mean",
                                            "margin_ranking_loss_float32_none")
    (unreduced,) = [launch for launch in launches
                    if launch["case"] == "margin_ranking_loss_float32_none"]
    # PyTorch rounds the product before adding the margin (two kernels): no fused multiply-add
    assert unreduced["fma"] == 0, unreduced
    for case in ("huber_loss_mean", "margin_ranking_loss_mean"):
        partial, total = [launch for launch in launches if launch["case"] == case]
        assert partial["grid"] == [8192], partial
        assert partial["loads"] == partial["vector_loads"] > 0, partial
        assert total["grid"] == [1] and total["constexprs"]["BLOCK"] >= 8192, total
        assert total["loads"] == total["vector_loads"] > 0, total
