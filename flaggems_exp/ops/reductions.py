"""Row reductions: the safe softmax, the log-softmax backward and the trace."""
import torch
import triton
import triton.language as tl

from ..families import register
from ..families.reduction import NEG_INF, ReductionOp, Rows
from ..runtime import errors, geometry, libm
from ..runtime.special import INF, NAN


def _opmath(dtype):
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


_DIMS = ((-1, "last dim"), (0, "first dim"))


@triton.jit
def _online_softmax_step(m, s, kind, x, xc, yc, valid):
    """Per lane: running max m, sum s of exp(x - m), and the row's kind so far: 0 only -inf, 1
    something else, 2 a NaN or +inf (PyTorch's softmax then makes the whole row NaN)."""
    xc = tl.where(valid, xc, NEG_INF)
    m_new = tl.maximum(m, xc)
    # a lane that has seen only -inf keeps s = 0 (exp(-inf - -inf) would be NaN)
    s = tl.where(m_new == NEG_INF, 0.0, s * libm.exp(m - m_new) + libm.exp(xc - m_new))
    # the NaN and +inf test is on the value the softmax sees (a float32 1e10 cast to float16 is
    # +inf), the -inf test on the input as given, before any dtype cast
    seen = tl.where((xc != xc) | (xc == INF), 2.0, 1.0)
    if x.dtype.is_floating():
        seen = tl.where(x == NEG_INF, 0.0, seen)
    kind = tl.maximum(kind, tl.where(valid, seen, 0.0))
    return m_new, s, kind


@triton.jit
def _online_softmax_merge(m, s, kind):
    row_max = tl.max(m, axis=1, keep_dims=True)
    s = tl.where(m == NEG_INF, 0.0, s * libm.exp(m - row_max))
    return row_max, tl.sum(s, axis=1, keep_dims=True), tl.max(kind, axis=1, keep_dims=True)


@register
class SafeSoftmax(ReductionOp):
    name = "_safe_softmax"
    step = staticmethod(_online_softmax_step)
    merge = staticmethod(_online_softmax_merge)

    @staticmethod
    @triton.jit
    def finish(xc, yc, row_max, total, kind):
        # a row of only -inf gives 0 (PyTorch's _safe_softmax), one with a NaN or +inf NaN
        return tl.where(kind > 1, NAN,
                        tl.where(kind > 0, libm.div(libm.exp(xc - row_max), total), 0.0))

    def prepare(self, out, x, dim, dtype):
        dim = errors.wrap_dim(dim, x.dim())
        result = dtype or x.dtype
        if not result.is_floating_point and x.numel():
            # PyTorch's host_softmax dispatches on the dtype only for a non-empty input
            raise errors.not_implemented("host_softmax", result)
        return Rows(x, dim, tuple(x.shape), result, _opmath(result), cast=result)

    def sample_args(self, dtype, shape, make):
        x = make()
        return [((x, dim), {}, label) for dim, label in _DIMS] + [
            ((x, -1), {"dtype": torch.float64}, "dtype=float64")]


def _cuda_log_softmax_backward_data(grad_output, output, dim, input_dtype, **kwargs):
    """PyTorch's CUDA rules (the CPU kernel has no half-to-float path): float32 grad with
    float16 input_dtype gives a float16 result (into an out= of that dtype, resized as a
    structured kernel resizes it); other dtype mismatches raise."""
    errors.wrap_dim(dim, grad_output.dim())
    out = kwargs.get("out")
    if grad_output.dtype != input_dtype:
        if (grad_output.dtype, input_dtype) != (torch.float32, torch.float16):
            raise RuntimeError(_MISMATCH)
        result = torch.ops.aten._log_softmax_backward_data(grad_output, output, dim, torch.float32)
        if out is None:
            return result.to(torch.float16)
        if out.dtype != torch.float16:
            raise errors.out_dtype_mismatch(
                out.dtype, torch.float16, errors.OutDtypeCheck.OUT_WRAPPER)
        geometry.resize_out(out, result.shape)
        return out.copy_(result)
    if out is not None and out.shape == grad_output.shape and not out.is_contiguous():
        # PyTorch's CPU kernel writes a strided out= as if it were contiguous; its CUDA kernel
        # (a structured kernel's proxy out) writes through out's strides
        dense = torch.ops.aten._log_softmax_backward_data(
            grad_output, output, dim, input_dtype, out=out.contiguous())
        return out.copy_(dense)
    return torch.ops.aten._log_softmax_backward_data(grad_output, output, dim, input_dtype,
                                                     **kwargs)


_MISMATCH = ("expected input and grad types to match, or input to be at::Half and grad to be "
             "at::Float")


@register
class LogSoftmaxBackwardData(ReductionOp):
    name = "_log_softmax_backward_data"
    ref = staticmethod(_cuda_log_softmax_backward_data)

    @staticmethod
    @triton.jit
    def finish(grad, output, a, total, c):
        return grad - libm.exp(output) * total

    def prepare(self, out, grad, output, dim, input_dtype):
        dim = errors.wrap_dim(dim, grad.dim())
        result = grad.dtype
        if grad.dtype != input_dtype:
            if (grad.dtype, input_dtype) != (torch.float32, torch.float16):
                raise RuntimeError(_MISMATCH)
            result = torch.float16
        if not result.is_floating_point and grad.numel():
            raise errors.not_implemented("host_softmax_backward", result)
        if output.dtype != grad.dtype:
            raise RuntimeError(f"expected scalar type {errors.scalar_type_name(grad.dtype)} but "
                               f"found {errors.scalar_type_name(output.dtype)}")
        if output.shape != grad.shape:  # PyTorch reads past a smaller output here: refuse
            raise RuntimeError(f"_log_softmax_backward_data: expected output of shape "
                               f"{list(grad.shape)} (grad_output's), but got {list(output.shape)}")
        return Rows(grad, dim, tuple(grad.shape), result, _opmath(grad.dtype), y=output)

    def sample_args(self, dtype, shape, make):
        x = make()
        output = torch.log_softmax(make(shape, torch.float64), -1 if x.dim() else 0).to(dtype)
        calls = [((x, output, dim, dtype), {}, label) for dim, label in _DIMS]
        if dtype == torch.float32:
            calls.append(((x, output, -1, torch.float16), {}, "float16 input_dtype"))
        return calls


def _cuda_trace(x, **kwargs):
    """PyTorch's CUDA trace, which sums bool as int64 and float16/bfloat16 in float32 (some
    CPU builds refuse bool and the half types)."""
    if x.dtype not in (torch.float16, torch.bfloat16):
        return torch.ops.aten.trace(x.long() if x.dtype == torch.bool else x, **kwargs)
    result = torch.ops.aten.trace(x.float()).to(x.dtype)
    out = kwargs.get("out")
    if out is None:
        return result
    # trace.out is a generated out= variant: the functional result, out resized to it, then
    # out's dtype checked, then the copy
    geometry.resize_out(out, result.shape)
    if out.dtype != result.dtype:
        raise errors.out_dtype_mismatch(out.dtype, result.dtype, errors.OutDtypeCheck.OUT_WRAPPER)
    return out.copy_(result)


@register
class Trace(ReductionOp):
    ref = staticmethod(_cuda_trace)

    def prepare(self, out, x):
        if x.dim() != 2:
            raise RuntimeError(f"trace: expected a matrix, but got tensor with dim {x.dim()}")
        result = x.dtype if x.is_floating_point() else torch.int64
        return Rows(torch.diagonal(x), 0, (), result, _opmath(result))

    @staticmethod
    def bench_bytes(args, kwargs, result):
        """Only the diagonal is read."""
        x = args[0]
        return min(x.shape) * x.element_size() + result.element_size()

    def sample_args(self, dtype, shape, make):
        x = make()
        return [((x,), {}, ""), ((x.transpose(-1, -2) if x.dim() >= 2 else x,), {}, "transposed")]
