"""Edge cases of the losses, the safe softmax, prelu and the factories, each against PyTorch:
special values in softmax rows, PyTorch's integer arithmetic in the losses, bool operands,
operands passed by keyword, the dtype an out= decides, and factories asked for another device."""
import itertools
import warnings

import pytest
import torch
import triton
import triton.language as tl

import flaggems_exp
from flaggems_exp import REGISTRY, testing
from flaggems_exp.families import reduction
from flaggems_exp.ops.reductions import _softmax_quotients
from flaggems_exp.runtime import libm
from flaggems_exp.runtime.device import INTERPRETED
from flaggems_exp.runtime.launch import launch
from flaggems_exp.testing import Call, check_call

NAN, INF = float("nan"), float("inf")


# ---- _safe_softmax: a NaN or +inf anywhere in a row makes the whole row NaN ----------------
def _rows_read_twice(monkeypatch, op, interpreted_length, interpreted_tile):
    """A row length longer than a tile: compiled 70,000; in the interpreter, whose tile is
    65,536 elements and slow to walk, ``interpreted_length`` in tiles shrunk to
    ``interpreted_tile``."""
    if flaggems_exp.device != "cpu":
        return 70_000
    monkeypatch.setattr(reduction, "_ROW_TILE", interpreted_tile)
    monkeypatch.setattr(reduction, "_TILE", interpreted_tile)
    op.plans.clear()  # a plan recorded with the usual tile would replay its launch
    return interpreted_length


@pytest.mark.parametrize("passes", [1, 2], ids=["one pass", "two passes"])
@pytest.mark.parametrize("dim", [1, 0])
def test_safe_softmax_nan_or_inf_poisons_its_row(monkeypatch, passes, dim):
    """Rows of one tile, and rows longer than a tile (compiled: 70,000 elements; in the
    interpreter, whose tile is 65,536 elements and slow to walk, 50 elements in tiles of 16)."""
    op = REGISTRY["_safe_softmax"]
    length = 3 if passes == 1 else _rows_read_twice(monkeypatch, op, 50, 16)
    gen = torch.Generator().manual_seed(length)
    x = torch.randn(6, length, generator=gen)
    x[0, length // 2] = NAN                      # NaN among finite values
    x[1, -1] = INF                               # +inf among finite values
    x[2] = -INF                                  # only -inf: zeros
    x[3, :] = -INF
    x[3, 0] = NAN                                # NaN among -inf: NaN, not zeros
    x[4, 1] = 1e10                               # +inf once cast to float16
    x = x if dim == 1 else x.t()
    for dtype in (None, torch.float16, torch.float64):
        ours = check_call(op, Call((x, dim, dtype)))
        expected = torch.ops.aten._safe_softmax(x, dim, dtype)
        assert torch.equal(ours.isnan().cpu(), expected.isnan())
    op.plans.clear()


# ---- _safe_softmax's quotients: one reciprocal a row, the division's bits -------------------
def _fma_rounds_once():
    """Whether the kernels' fma rounds once here: compiled it does; Triton 3.6's interpreter
    multiplies and adds in numpy, rounding twice."""
    return not INTERPRETED or tuple(int(v) for v in triton.__version__.split(".")[:2]) >= (3, 9)


exact_fma = pytest.mark.skipif(not _fma_rounds_once(),
                               reason="this interpreter's fma rounds the product first")


@triton.jit
def _quotients_kernel(out_ptr, x_ptr, total_ptr, c_ptr, BY_RECIPROCAL: tl.constexpr,
                      ROWS: tl.constexpr, COLS: tl.constexpr):
    """One program's rows divided by their totals, as _safe_softmax divides its exps (c each
    row's smallest nonzero exp), or by ``libm.div_by_reciprocal`` alone."""
    rows = tl.arange(0, ROWS)[:, None]
    cols = tl.arange(0, COLS)[None, :]
    x = tl.load(x_ptr + rows * COLS + cols)
    total = tl.load(total_ptr + rows)
    if BY_RECIPROCAL:
        q = libm.div_by_reciprocal(x, total, libm.reciprocal(total))
    else:
        q = _softmax_quotients(x, total, tl.load(c_ptr + rows))
    tl.store(out_ptr + rows * COLS + cols, q)


def _quotients(x, total, by_reciprocal):
    x = x.to(flaggems_exp.device)
    smallest = torch.where(x > 0, x, torch.inf).amin(1)
    out = torch.empty_like(x)
    launch("test", _quotients_kernel, (1,), out, x, total.to(x.device), smallest,
           BY_RECIPROCAL=by_reciprocal, ROWS=x.shape[0], COLS=x.shape[1])
    return out.cpu()


@triton.jit
def _exp_kernel(out_ptr, x_ptr, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    inside = offsets < n
    tl.store(out_ptr + offsets, libm.exp(tl.load(x_ptr + offsets, mask=inside)), mask=inside)


def _kernels_exp(x):
    """exp as the kernels compute it (libdevice's compiled, numpy's interpreted)."""
    x = x.to(flaggems_exp.device)
    out = torch.empty_like(x)
    launch("test", _exp_kernel, (triton.cdiv(x.numel(), 1024),), out, x, x.numel(), BLOCK=1024)
    return out.cpu()


def _dividends(gen, n):
    """float32 exps a row may hold: 0, 1, 2**-99, and values spread over [2**-99, 1]."""
    spread = torch.exp2(-99 * torch.rand(n - 3, generator=gen, dtype=torch.float64)).float()
    return torch.cat([torch.tensor([0.0, 1.0, 2.0 ** -99]), spread])


@exact_fma
def test_division_by_a_rows_reciprocal_is_the_division():
    """``libm.div_by_reciprocal`` in its range (dividends 0 or at least 2**-99, divisors in
    [1, 2**24]) gives the correctly rounded quotient, as ``x / total`` does in PyTorch."""
    gen = torch.Generator().manual_seed(0)
    totals = torch.cat([torch.tensor([1.0, 2.0 ** 24, 3.0, 1000.3, 2.0 ** 23 + 1]),
                        1 + (2.0 ** 24 - 1) * torch.rand(11, generator=gen)]).float()
    x = torch.stack([_dividends(gen, 256) for _ in totals])
    ours = _quotients(x, totals, by_reciprocal=True)
    assert torch.equal(ours, x / totals[:, None])


@exact_fma
def test_division_by_a_rows_reciprocal_rounds_to_float16_as_the_division():
    """Below 2**-99 the reciprocal's steps may round a float32 quotient wrong (9.100309e-38 /
    1000.3 among these), never its float16: there every quotient is +0, as the division's is.
    float16 softmax results take the steps with no range test."""
    gen = torch.Generator().manual_seed(2)
    totals = torch.cat([torch.tensor([1.0, 2.0 ** 24, 6.0, 1000.3]),
                        1 + 16383 * torch.rand(4, generator=gen)]).float()
    tiny = torch.exp2(-99 - 50 * torch.rand(totals.numel(), 128, generator=gen,
                                            dtype=torch.float64)).float()
    tiny[3, 0] = 9.100309e-38
    x = torch.cat([torch.stack([_dividends(gen, 128) for _ in totals]), tiny], dim=1)
    ours = _quotients(x, totals, by_reciprocal=True)
    divided = x / totals[:, None]
    assert not torch.equal(ours, divided)
    assert torch.equal(ours.half(), divided.half())


@exact_fma
def test_softmax_quotients_divide_a_tile_out_of_range_element_by_element():
    """A tile with a row whose exps go below 2**-99 divides each element: there the
    reciprocal's steps round a subnormal quotient twice (9.100309e-38 / 1000.3 comes out one
    ulp off that way), which the division does not."""
    tiny, total = torch.tensor(9.100309e-38), torch.tensor(1000.3)
    by_reciprocal = _quotients(tiny.reshape(1, 1).expand(1, 16).contiguous(), total.reshape(1),
                               by_reciprocal=True)
    assert not torch.equal(by_reciprocal[0, 0], tiny / total)  # the case the range test is for
    gen = torch.Generator().manual_seed(1)
    x = torch.stack([_dividends(gen, 64) for _ in range(4)])
    x[1, 5] = tiny
    totals = torch.tensor([3.0, 1000.3, 12345.678, 6.0])
    assert torch.equal(_quotients(x, totals, by_reciprocal=False), x / totals[:, None])


@exact_fma
@pytest.mark.parametrize("dtype", [None, torch.float16], ids=["float32", "float16"])
@pytest.mark.parametrize("passes", [1, 2], ids=["one pass", "two passes"])
def test_safe_softmax_divides_tiny_exps_exactly(monkeypatch, passes, dtype):
    """float32 rows summing to exactly 6 (six elements at the max, the others' exps below
    float32's resolution there): each result is the kernel's exp divided by 6, bit for bit, and
    float16 results that quotient rounded to float16. In a row of exps from 2**-144 to 2**-127
    (x from -100 to -88) the reciprocal's steps would round 7% of them wrong in float32; a row
    from 2**-98 to 2**-57 (x from -68 to -40) takes them. float32 rows read in two passes
    divide each element, float16 ones take the steps: there the six are alone in the last
    tile, and the first tiles' exps become tiny only against the row's max."""
    op = REGISTRY["_safe_softmax"]
    length = 4000 if passes == 1 else _rows_read_twice(monkeypatch, op, 300, 64)
    gen = torch.Generator().manual_seed(passes)
    tiny = -100 + 12 * torch.rand(length, generator=gen)
    normal = -68 + 28 * torch.rand(length, generator=gen)
    x = torch.stack([tiny, normal])
    if passes == 2:  # the last tile: the six alone
        x[:, (length - 1) // reduction._ROW_TILE * reduction._ROW_TILE:] = -torch.inf
    x[:, -6:] = 0.0
    ours = op(x.to(flaggems_exp.device), 1, dtype).cpu()
    expected = _kernels_exp(x if dtype is None else x.to(dtype).float()) / 6
    assert torch.equal(ours, expected.to(ours.dtype))
    op.plans.clear()


# ---- losses on integers: PyTorch's integer arithmetic, wrap-around included ------------------
INTEGERS = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def _extremes(dtype, n, gen):
    """``n`` integers of ``dtype`` that overflow its arithmetic: its limits, 0, +-1, small ones."""
    info = torch.iinfo(dtype)
    values = torch.tensor([info.max, info.min, info.max - 1, 0, 1, 2, 7, 100, -1, -3])
    values = values[(values >= info.min) & (values <= info.max)]
    return values[torch.randint(0, len(values), (n,), generator=gen)].to(dtype)


@pytest.mark.parametrize("dtype", INTEGERS)
@pytest.mark.parametrize("reduction", [0, 1, 2])
def test_margin_ranking_loss_wraps_as_integers(dtype, reduction):
    """uint8 ``1 - 2`` is 255 and ``-1`` is 255; int32 products wrap at 2**32."""
    gen = torch.Generator().manual_seed(1)
    args = tuple(_extremes(dtype, 40, gen) for _ in range(3))
    for margin in (0.5, -2.0):
        call = Call(args, {"margin": margin, "reduction": reduction})
        ours = check_call(REGISTRY["margin_ranking_loss"], call)
        testing.assert_close(ours, testing.run(torch.ops.aten.margin_ranking_loss, call))


def test_margin_ranking_loss_steps_take_their_own_dtypes():
    """Each step is promoted on its own: input1 - input2, then -target * that (a 0-dim operand
    weighing less), then + margin; integer steps wrap, float ones do not."""
    gen = torch.Generator().manual_seed(2)
    dtypes = (torch.uint8, torch.int8, torch.int32, torch.int64, torch.float16, torch.float32)
    op = REGISTRY["margin_ranking_loss"]
    for dts in itertools.product(dtypes, repeat=3):
        args = [_extremes(dt, 12, gen) if not dt.is_floating_point
                else torch.randn(12, generator=gen).mul(50).to(dt) for dt in dts]
        for zero_dim in (None, 0, 2):
            call_args = list(args)
            if zero_dim is not None:
                call_args[zero_dim] = call_args[zero_dim][3]
            check_call(op, Call(tuple(call_args), {"margin": 0.25, "reduction": 0}))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("reduction", [0, 1, 2])
def test_margin_ranking_loss_rounds_after_each_float_step(dtype, reduction):
    """PyTorch rounds ``input1 - input2``, the product and the sum with margin to the dtype one
    by one, then reduces the rounded losses: the very bits of its result. The losses here are 0
    or above 1 and few, so float32 sums them exactly in any order; the margin is exact in the
    dtype (PyTorch's CPU kernel rounds it to the dtype first, its CUDA kernel, which ours
    follows, takes it in float32: the two agree on such a margin)."""
    op = REGISTRY["margin_ranking_loss"]
    for seed in range(16):
        gen = torch.Generator().manual_seed(seed)
        input1 = (torch.rand(6, generator=gen) * 254 + 2) * torch.randn(6, generator=gen).sign()
        input2 = torch.rand(6, generator=gen) - 0.5  # bits below input1's last one
        target = torch.randn(6, generator=gen).sign()
        call = Call(tuple(t.to(dtype) for t in (input1, input2, target)),
                    {"margin": 0.25, "reduction": reduction})
        ours = check_call(op, call)
        testing.assert_close(ours, testing.run(torch.ops.aten.margin_ranking_loss, call),
                             exact=True)


def test_margin_ranking_loss_converts_operands_into_each_step():
    """Each float step converts its operands into its own dtype first (a float64 0-dim operand
    beside float16 ones becomes float16) and rounds its result to it: exactly PyTorch's bits."""
    gen = torch.Generator().manual_seed(8)
    dtypes = (torch.int32, torch.float16, torch.bfloat16, torch.float32, torch.float64)
    op = REGISTRY["margin_ranking_loss"]
    for dts in itertools.product(dtypes, repeat=3):
        args = [torch.randint(-100, 100, (12,), generator=gen).to(dt) if not dt.is_floating_point
                else torch.randn(12, generator=gen).mul(100).to(dt) for dt in dts]
        for zero_dim in (None, 0, 1, 2):
            call_args = list(args)
            if zero_dim is not None:
                call_args[zero_dim] = call_args[zero_dim][3]
            call = Call(tuple(call_args), {"margin": -0.75, "reduction": 0})
            testing.assert_close(op(*testing.on_device(call).args, **call.kwargs),
                                 testing.run(torch.ops.aten.margin_ranking_loss, call), exact=True)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("reduction", [0, 1, 2])
def test_hinge_embedding_loss_rounds_after_each_float_step(dtype, reduction):
    """PyTorch's ``(margin - self).clamp_min_(0)`` is rounded to self's dtype before the sum of
    the two ``where``s: a margin with bits below self's last one shows it. The losses are
    multiples of 0.25 and few, so float32 sums them exactly in any order."""
    op = REGISTRY["hinge_embedding_loss"]
    for seed in range(16):
        gen = torch.Generator().manual_seed(seed)
        x = (torch.rand(6, generator=gen) * 1792 + 256) * torch.randn(6, generator=gen).sign()
        target = torch.tensor([1.0, -1.0, 0.5])[torch.randint(0, 3, (6,), generator=gen)]
        call = Call((x.to(dtype), target.to(dtype)), {"margin": 0.25, "reduction": reduction})
        ours = check_call(op, call)
        testing.assert_close(ours, testing.run(torch.ops.aten.hinge_embedding_loss, call),
                             exact=True)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("target_dtype", [None, torch.float32, torch.float64, torch.int64])
def test_soft_margin_loss_rounds_after_each_step(dtype, target_dtype):
    """PyTorch multiplies the negated self by the target in their common dtype (a 0-dim target
    weighs less) into a tensor of self's dtype, then takes exp and log1p of it in place: each
    step rounded to self's dtype, exp +inf past its largest value. (The 0-dim target holds a
    value of self's dtype: PyTorch's CPU mul reads a 0-dim second operand in float32, its CUDA
    kernel converts it to the common dtype first, as ours does.)"""
    gen = torch.Generator().manual_seed(9)
    x = (torch.randn(32, generator=gen) * 6).to(dtype)
    target = torch.randn(32, generator=gen).mul(2).to(target_dtype or dtype)
    op = REGISTRY["soft_margin_loss"]
    for t in (target, target[5].to(dtype).to(target.dtype)):
        call = Call((x, t), {"reduction": 0})
        ours = check_call(op, call)
        testing.assert_close(ours, testing.run(torch.ops.aten.soft_margin_loss, call), exact=True)


@pytest.mark.parametrize("bools", [(0,), (1,), (0, 1), (0, 2), (1, 2), (2,), (0, 1, 2)])
def test_margin_ranking_loss_bool_operands_raise_as_pytorch(bools):
    """The subtraction is checked first (one bool or two), then the target's negation."""
    gen = torch.Generator().manual_seed(3)
    args = tuple(torch.randint(0, 2, (4,), generator=gen).bool() if i in bools
                 else torch.randn(4, generator=gen) for i in range(3))
    assert check_call(REGISTRY["margin_ranking_loss"], Call(args)) is None


@pytest.mark.parametrize("self_dtype", INTEGERS + (torch.float16, torch.float32))
@pytest.mark.parametrize("target_dtype", (torch.bool, torch.uint8, torch.int8, torch.int16,
                                          torch.bfloat16, torch.float64))
def test_hinge_embedding_loss_compares_the_target_in_its_own_dtype(self_dtype, target_dtype):
    """``target != 1`` and ``target != -1`` are PyTorch's comparisons in the target's dtype:
    uint8 255 is -1 there, int16 257 is not 1, float 1.5 is neither, a bool compares as 0/1."""
    gen = torch.Generator().manual_seed(4)
    x = (_extremes(self_dtype, 16, gen) if not self_dtype.is_floating_point
         else torch.randn(16, generator=gen).to(self_dtype))
    candidates = {torch.bool: [0, 1], torch.uint8: [1, 255, 0, 2], torch.int8: [1, -1, 0, 127],
                  torch.int16: [1, -1, 257, -255, 0], torch.bfloat16: [1, -1, 1.5, -0.5],
                  torch.float64: [1, -1, 1.0000001, -1.5]}[target_dtype]
    target = torch.tensor(candidates)[torch.randint(0, len(candidates), (16,), generator=gen)]
    target = target.to(target_dtype)
    for reduction in (0, 1, 2):
        check_call(REGISTRY["hinge_embedding_loss"], Call((x, target, 3.0, reduction)))


# ---- accepted by PyTorch: bool targets, out= deciding the dtype, operands by keyword ---------
@pytest.mark.parametrize("reduction", [0, 1, 2])
def test_soft_margin_loss_bool_target_and_bool_self(reduction):
    """PyTorch negates self (a bool self raises) and multiplies by the target (a bool target is
    0 or 1); an integer self fails on the float result, whatever the target."""
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(6, generator=gen)
    flags = torch.randint(0, 2, (6,), generator=gen).bool()
    op = REGISTRY["soft_margin_loss"]
    kwargs = {"reduction": reduction}
    assert check_call(op, Call((x, flags), kwargs)) is not None
    assert check_call(op, Call((x.half(), flags), kwargs)) is not None
    for target in (flags, x, flags.long()):
        assert check_call(op, Call((flags, target), kwargs)) is None
        assert check_call(op, Call((flags.to(torch.uint8), target), kwargs)) is None


@pytest.mark.parametrize("reduction", [0, 1])
def test_soft_margin_loss_checks_in_its_steps_order(reduction):
    """PyTorch's neg_out(out, self) checks out='s dtype first, then the in-place mul_ by the
    target broadcasts (TensorIterator's message), then the product must fit self's dtype."""
    gen = torch.Generator().manual_seed(14)
    x, x0 = torch.randn(4, generator=gen), torch.tensor(0.5, dtype=torch.float64)
    op = REGISTRY["soft_margin_loss"]
    for args in ((x, torch.randn(3, generator=gen)), (x0, x.half()), (x.long(), x[:3]),
                 (x, x.expand(2, 4)), (x.long(), x)):
        for out_dtype in (None, torch.float64, torch.float32, torch.int64):
            kwargs = {"reduction": reduction}
            if out_dtype is not None:
                kwargs["out"] = torch.empty(0, dtype=out_dtype)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                check_call(op, Call(args, kwargs))


@pytest.mark.parametrize("reduction", [0, 1, 2])
def test_huber_loss_writes_in_the_out_dtype(reduction):
    """With out=, PyTorch writes the loss in out's dtype (int16 self and float64 target into a
    float64 out); without it in self's dtype, which must hold the common dtype."""
    gen = torch.Generator().manual_seed(6)
    x = _extremes(torch.int16, 5, gen)
    target = torch.randn(5, generator=gen, dtype=torch.float64)
    op = REGISTRY["huber_loss"]
    shape = (5,) if reduction == 0 else ()
    for out_dtype in (torch.float64, torch.float32, torch.int16):
        out = torch.empty(shape, dtype=out_dtype)
        for args in ((x, target, reduction, 0.5), (x.double(), target.float(), reduction, 0.5)):
            call = Call(args, {"out": out})
            if reduction == 0 or not out_dtype.is_floating_point:
                check_call(op, call)
                continue
            # a sum of losses rounded to out's dtype, accumulated in it: its order differs
            # between devices (and between PyTorch's CPU and CUDA kernels), so the values agree
            # at out's precision, not at the float64 computation's
            native, _ = testing.reference(op, call)
            ours = testing.run(op, testing.on_device(call))
            testing.assert_close(ours, native)
    assert check_call(op, Call((x, target, reduction))) is None  # Double into Short


@pytest.mark.parametrize("reduction", [0, 1, 2])
def test_huber_loss_computes_in_the_dtype_it_writes(reduction):
    """PyTorch's CUDA kernel computes the loss in the dtype of the tensor it writes, its loss
    tensor of self's dtype or out=, which mean and sum reduce: a 0-dim float64 self beside a
    float16 target computes in float64 (its CPU kernel in the common float16); float16 self
    and float32 target in float16. The op's reference stands for the CUDA kernel on the CPU;
    on the GPU its own result is compared too."""
    gen = torch.Generator().manual_seed(10)
    x = torch.randn(8, generator=gen, dtype=torch.float64) * 3
    target = torch.randn(8, generator=gen) * 3
    op = REGISTRY["huber_loss"]
    shape = (8,) if reduction == 0 else ()
    for args in ((x[0], target.half()), (x.half(), target), (target.half(), x[1])):
        for out_dtype in (None, torch.float64, torch.float32):
            for delta in (1.0, 0.5):
                def call(fn, device):
                    kwargs = {"reduction": reduction, "delta": delta}
                    if out_dtype is not None:
                        kwargs["out"] = torch.empty(shape, dtype=out_dtype, device=device)
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")  # PyTorch resizes its loss tensor
                        return fn(*(a.to(device) for a in args), **kwargs)
                # a mean or sum: its order of additions differs between devices
                ours = call(op, flaggems_exp.device)
                testing.assert_close(ours, call(op.ref, "cpu"), exact=reduction == 0)
                if flaggems_exp.device == "cuda":
                    testing.assert_close(ours, call(torch.ops.aten.huber_loss, "cuda"),
                                         exact=reduction == 0)


def test_huber_loss_names_the_dtype_it_writes_when_it_has_no_kernel_for_it():
    """int16 self and an int32 target: PyTorch's CUDA kernel dispatches on the dtype it writes,
    self's Short (its CPU kernel on the common Int)."""
    x = torch.arange(4, dtype=torch.int16)
    for other in (torch.int32, torch.int8, torch.uint8):
        assert check_call(REGISTRY["huber_loss"], Call((x, x.to(other), 0))) is None


@pytest.mark.parametrize("shape", [(), (5,), (2, 3), (2, 3, 4)])
def test_operands_by_keyword(shape):
    """prelu(x, weight=w) with a 0-d weight (OpInfo's call), losses with target=, and a Python
    number operand by keyword, whose plan takes the number of each call."""
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(shape, generator=gen)
    for weight in (torch.tensor(0.25), torch.tensor([-0.5])):
        check_call(REGISTRY["prelu"], Call((x,), {"weight": weight}))
        check_call(REGISTRY["prelu"], Call((), {"self": x, "weight": weight}))
    check_call(REGISTRY["huber_loss"], Call((x,), {"target": x.flip(0), "delta": 0.5}))
    for other in (2, 3, -1.5):
        check_call(REGISTRY["mul"], Call((x,), {"other": other}))


# ---- factories asked for another device ------------------------------------------------------
def test_new_ones_for_another_device_is_pytorchs_under_enable():
    """A factory call for a device the kernels do not run on reaches our kernel under enable()
    (the dispatcher goes by self's device): PyTorch's own kernel makes it, counted in DELEGATED
    with no launch. On the CPU the other device is "meta"; on a GPU it is also "cpu"."""
    other = "meta" if flaggems_exp.device == "cpu" else "cpu"
    x = torch.randn(3, device=flaggems_exp.device)
    expected = torch.ops.aten.new_ones(x, [2, 3], device=other)
    delegated, launched = flaggems_exp.DELEGATED["new_ones"], flaggems_exp.LAUNCHES["new_ones"]
    with flaggems_exp.use_gems(include=["new_ones"]):
        ours = x.new_ones((2, 3), device=other)
        mine = x.new_ones((2, 3), device=flaggems_exp.device)
    assert ours.device == expected.device
    assert (ours.shape, ours.dtype) == (expected.shape, expected.dtype)
    if other != "meta":
        assert torch.equal(ours, expected)
    testing.assert_close(mine, torch.ones(2, 3), exact=True)
    assert flaggems_exp.DELEGATED["new_ones"] == delegated + 1
    assert flaggems_exp.LAUNCHES["new_ones"] == launched + 1  # ours, for the kernels' device


def test_new_ones_for_another_device_called_directly_raises():
    other = "meta" if flaggems_exp.device == "cpu" else "cpu"
    x = torch.randn(3, device=flaggems_exp.device)
    with pytest.raises(RuntimeError, match=f"flaggems_exp.new_ones: .* not on {other} "):
        flaggems_exp.experimental_ops.new_ones(x, [2, 3], device=other)


def test_soft_margin_loss_checks_the_broadcast_before_the_dtype():
    """A target bigger than an integer self: PyTorch's in-place product fails on the shape."""
    x = torch.tensor(3, dtype=torch.uint8)
    for target in (torch.ones(3, dtype=torch.int8), torch.ones(3)):
        assert check_call(REGISTRY["soft_margin_loss"], Call((x, target, 0))) is None


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int8, torch.float32], ids=str)
@pytest.mark.parametrize("reduction", [0, 1, 2])
def test_hinge_margin_is_converted_into_self_dtype(dtype, reduction):
    """PyTorch fills a tensor of self's dtype with margin: out of that dtype's range it raises
    (before mean's dtype error), on the first call of a signature and on its replays alike."""
    op = REGISTRY["hinge_embedding_loss"]
    x = torch.tensor([3, 100, 0], dtype=dtype)
    target = torch.tensor([1, -1, -1], dtype=torch.int8)
    op.plans.clear()
    for margin in (1.5, -1.0, 300.0, 1e300, 2.0):
        check_call(op, Call((x, target, margin, reduction)))
