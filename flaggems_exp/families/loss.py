"""LossOp: a pointwise loss fused with its reduction, on the pointwise skeleton.

``reduction`` (0 none, 1 mean, 2 sum) picks the epilogue of ``_pointwise_kernel``: none stores
the elementwise loss like any pointwise op; mean and sum make each program store the sum of its
block, each loss rounded to the dtype of the tensor PyTorch would reduce, in that dtype's
accumulation dtype (float32 for float16/bfloat16/float32, float64 for float64, int64 for
integers), and ``_sum_partials_kernel`` adds those partials in a fixed order (the
same bits on every run) and divides by the element count for mean. One pass over the inputs,
no intermediate tensor of the inputs' size; mean of nothing is NaN, sum of nothing is 0.

Compiled, a reducing program takes ``_PARTIAL_BLOCK`` elements (its loads all in flight at
once), so a 64M-element loss leaves 8192 partials, which the second kernel's one program
reads in one tile: a program per 1024 elements left 65536 partials, read 256 at a time one
after the other by that program.
"""
import math

import torch
import triton
import triton.language as tl

from ..runtime import errors, geometry
from ..runtime.device import INTERPRETED
from ..runtime.indexing import BLOCK
from ..runtime.launch import launch
from ..runtime.plans import not_replayable
from ..runtime.triton_types import CheckedScalar, converted, encode_scalar
from . import pointwise
from .pointwise import PointwiseOp

NONE, MEAN, SUM = 0, 1, 2

# elements per reducing program, and partials per tile of their sum, at most (the interpreter
# runs one program at a time: fewer, larger ones run faster there)
_PARTIAL_BLOCK = BLOCK if INTERPRETED else 8192
_TOTAL_BLOCK = 1024 if INTERPRETED else 8192


@triton.jit
def _sum_partials_kernel(partials_ptr, out_ptr, count, divisor: tl.int64, MEAN: tl.constexpr,
                         BLOCK: tl.constexpr):
    acc = tl.zeros((BLOCK,), dtype=partials_ptr.dtype.element_ty)
    for start in range(0, count, BLOCK):  # a fixed order: deterministic
        offsets = start + tl.arange(0, BLOCK)
        acc += tl.load(partials_ptr + offsets, mask=offsets < count, other=0)
    total = tl.sum(acc, axis=0)
    if MEAN:
        total = total / tl.cast(divisor, tl.int64).to(total.dtype)
    tl.store(out_ptr, converted(total, out_ptr.dtype.element_ty))


def _accumulation_dtype(compute):
    if compute.is_floating_point:
        return torch.float64 if compute == torch.float64 else torch.float32
    return torch.int64


class LossOp(PointwiseOp):
    """A loss: ``math(input, target[, third], *scalars)`` is the elementwise loss, in the
    compute dtype; ``scalars`` must hold ``reduction``, which the math does not receive.

    ``strict_reduction``: reductions outside {0, 1, 2} raise (PyTorch would return garbage or
    assert); otherwise they mean none, as in PyTorch.
    """

    family = "LossOp"
    launches_per_call = 2  # reduced (mean, sum): the partial sums, then their total
    strict_reduction = False

    def prepare(self, operands, params):
        return operands, tuple(v for k, v in params.items() if k != "reduction")

    def check(self, operands, params, result_dtype, out):
        reduction = params["reduction"]
        if self.strict_reduction and reduction not in (NONE, MEAN, SUM):
            raise RuntimeError(f"{self.name}: reduction must be 0 (none), 1 (mean) or 2 (sum), "
                               f"but got {reduction}")

    def call_out(self, args, kwargs, out, inplace):
        operands, params = self.operands_and_params(args, kwargs)
        if params["reduction"] not in (MEAN, SUM):
            return self.run(operands, params, out, inplace)
        bound = operands
        operands, kernel_scalars, compute, result, shape = self.validate(operands, params, out)
        self.check_dtype(result)  # the elementwise loss fails first, as in PyTorch
        common = self.common_dtype(bound, result)
        scalars_as = compute if self.scalar_check is None else CheckedScalar(
            compute, result if self.scalar_check == "result" else compute)
        if scalars_as is not compute:
            # PyTorch converts them before its mean's dtype check
            for value in pointwise.split_constants(kernel_scalars)[0]:
                encode_scalar(value, scalars_as)
        # the dtype of the elementwise loss PyTorch reduces: out='s, which holds it first
        loss_dtype = result if out is None else out.dtype
        if not result.is_floating_point:
            if params["reduction"] == MEAN:
                raise RuntimeError("mean(): could not infer output dtype. Input dtype must be "
                                   "either a floating point or complex dtype. Got: "
                                   f"{errors.scalar_type_name(result)}")
            result = torch.int64  # PyTorch's sum of integers
        tensors = [t for t in operands if isinstance(t, torch.Tensor)]
        if out is None:
            out = torch.empty((), dtype=result, device=tensors[0].device)
        else:
            # PyTorch's out= of a reduced loss first holds the elementwise loss: checked and
            # resized (resize_output's warning included) as for reduction none, then resized
            # to a scalar silently
            self.check_out(out, tensors, shape, result, inplace)
            if out.shape != ():
                not_replayable()  # out was resized: a replay would not warn
                geometry.resize_out(out, (), warn=False)
        numel = math.prod(shape)
        block = min(_PARTIAL_BLOCK, triton.next_power_of_2(max(numel, 1)))
        count = triton.cdiv(numel, block)
        partials = torch.empty(max(count, 1), dtype=_accumulation_dtype(loss_dtype),
                               device=out.device)
        if numel:
            self.launch(partials, shape, geometry.contiguous_strides(shape), operands,
                        kernel_scalars, compute, reduce=loss_dtype, common=common,
                        scalars_as=scalars_as, block=block)
        elif scalars_as is not compute:
            not_replayable()  # no launch would check the Scalars in a replay
        total_block = min(_TOTAL_BLOCK, triton.next_power_of_2(max(count, 1)))
        launch(self.name, _sum_partials_kernel, (1,), partials, out, count, numel,
               MEAN=params["reduction"] == MEAN, BLOCK=total_block,
               num_warps=min(16, max(4, total_block // 512)))
        return out

    def launch(self, target, shape, out_strides, operands, kernel_scalars, compute, reduce=None,
               sources=None, common=None, result=None, scalars_as=None, block=None):
        # TensorIterator computes the loss in the common dtype and rounds it to that dtype, then
        # converts it into the tensor it writes, which may have another dtype (huber_loss
        # writes self's, and a 0-dim self does not decide the common dtype)
        pointwise.launch(self.name, self.math, target, shape, out_strides, operands,
                         kernel_scalars, compute, reduce, sources, common, common, scalars_as,
                         stored=self.stored_operands(operands), block=block,
                         whole_block=self.whole_block(), warps=self.warps)
