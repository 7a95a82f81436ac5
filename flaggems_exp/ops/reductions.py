"""Row reductions: the safe softmax, the log-softmax backward and the trace."""
import torch
import triton
import triton.language as tl

from ..families import register
from ..families.reduction import NEG_INF, ReductionOp, Rows, elements_per_thread
from ..runtime import errors, geometry, libm
from ..runtime.indexing import vector_elements


def _opmath(dtype):
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


_DIMS = ((-1, "last dim"), (0, "first dim"))


@triton.jit
def _max_keeping_nan(a, b):
    return tl.maximum(a, b, propagate_nan=tl.PropagateNan.ALL)


@triton.jit
def _maxima_keeping_nan(a, b, a2, b2):
    return _max_keeping_nan(a, a2), _max_keeping_nan(b, b2)


@triton.jit
def _row_max(values, valid):
    """The maximum of each row's valid lanes; NaN where one of them is NaN."""
    return tl.reduce(tl.where(valid, values, NEG_INF), 1, _max_keeping_nan, keep_dims=True)


@triton.jit
def _given_neg_inf(x, valid, like):
    """-inf where the row of the input as given, before any dtype cast, is only -inf (which
    _safe_softmax makes 0: a float32 -1e10 cast to float16 is -inf, and not masked), else 0;
    in ``like``'s dtype (the compute dtype: a float64 -1e300 given for a float32 result says 0,
    not its float32 -inf)."""
    if x.dtype.is_floating():
        # exactly (the compiler shares this with the row's max where xc is x widened)
        given = x.to(tl.float64) if x.dtype == tl.float64 else x.to(tl.float32)
        given_neg_inf = tl.where(_row_max(given, valid) == NEG_INF, NEG_INF, 0.0).to(like.dtype)
    else:
        given_neg_inf = tl.zeros_like(like)
    return given_neg_inf


@triton.jit
def _softmax_stats(x, xc, yc, valid):
    """Per row: the max m, the sum s of exp(x - m), and whether the input as given is only -inf
    (``_given_neg_inf``: -inf, else 0). A NaN or +inf makes m NaN or +inf, then s NaN, and the
    whole row NaN, as in PyTorch's kernel."""
    row_max = _row_max(xc, valid)
    total = tl.sum(tl.where(valid, libm.exp(xc - row_max), 0.0), axis=1, keep_dims=True)
    return row_max, total, _given_neg_inf(x, valid, row_max)


@triton.jit
def _softmax_combine(m, s, given_neg_inf, m2, s2, given_neg_inf2):
    row_max = _max_keeping_nan(m, m2)
    # a part of only -inf adds nothing (its own s is exp(-inf - -inf), NaN)
    s = (tl.where(m == NEG_INF, 0.0, s * libm.exp(m - row_max))
         + tl.where(m2 == NEG_INF, 0.0, s2 * libm.exp(m2 - row_max)))
    return row_max, s, _max_keeping_nan(given_neg_inf, given_neg_inf2)


@triton.jit
def _softmax_combine_chunks(m, s, given_neg_inf, valid):
    """``_softmax_combine`` over each row's chunks at once: the max, and the chunks' sums
    scaled to it (a chunk of only -inf adds nothing). The float16 finish's bound holds: the
    max's chunk adds its sum, at least 1, times exp(0)."""
    maxima = (tl.where(valid, m, NEG_INF), tl.where(valid, given_neg_inf, NEG_INF))
    row_max, given_neg_inf = tl.reduce(maxima, 1, _maxima_keeping_nan, keep_dims=True)
    total = tl.sum(tl.where(valid & (m != NEG_INF), s * libm.exp(m - row_max), 0.0), axis=1,
                   keep_dims=True)
    return row_max, total, given_neg_inf


@triton.jit
def _softmax_finish(xc, yc, row_max, total, given_neg_inf):
    # a row of only -inf gives 0 (PyTorch's _safe_softmax); held in one tile, the exp is the
    # one the sum took (the compiler computes it once)
    return tl.where(given_neg_inf == NEG_INF, 0.0, libm.div(libm.exp(xc - row_max), total))


# ---- quotients by one reciprocal a row: rows held in one tile, and float16 results ----------
@triton.jit
def _bits_less_one(v):
    """float32 bits less one, unsigned: ordered as v is for v >= 0, with 0 wrapped to the
    largest, so that the smallest of them is the smallest nonzero v's."""
    return (v.to(tl.int32, bitcast=True) - 1).to(tl.uint32, bitcast=True)


@triton.jit
def _sum_and_min(total, smallest, total2, smallest2):
    return total + total2, tl.minimum(smallest, smallest2)


@triton.jit
def _held_row_stats(x, xc, yc, valid):
    """``_softmax_stats`` of a row held in one tile, in float32, its third value c: -inf for
    a row of only -inf as given, else the smallest nonzero exp(x - m), reduced with the sum,
    which says whether the row's quotients may take ``libm.div_by_reciprocal``."""
    row_max = _row_max(xc, valid)
    exps = tl.where(valid, libm.exp(xc - row_max), 0.0)
    total, smallest = tl.reduce((exps, _bits_less_one(exps)), 1, _sum_and_min, keep_dims=True)
    smallest = (smallest + 1).to(tl.int32, bitcast=True).to(tl.float32, bitcast=True)
    given_neg_inf = _given_neg_inf(x, valid, row_max)
    return row_max, total, tl.where(given_neg_inf == NEG_INF, NEG_INF, smallest)


_BY_RECIPROCAL_SMALLEST_EXP = tl.constexpr(2.0 ** -99)
_BY_RECIPROCAL_LARGEST_SUM = tl.constexpr(2.0 ** 24)


@triton.jit
def _softmax_quotients(exps, total, c):
    """exps / total (float32) correctly rounded, as PyTorch's epilogue divides. Where every
    row of the tile is in ``libm.div_by_reciprocal``'s range (its exps zero or at least 2**-99,
    its sum, which holds exp(0), at most 2**24), one reciprocal a row and three steps an
    element; else the division of each element (rows with tiny exps, 2**24 elements or NaN)."""
    in_range = (c == NEG_INF) | ((c >= _BY_RECIPROCAL_SMALLEST_EXP) & (total >= 1.0)
                                 & (total <= _BY_RECIPROCAL_LARGEST_SUM))
    if tl.min(in_range.to(tl.int32)) == 1:
        q = libm.div_by_reciprocal(exps, total, libm.reciprocal(total))
    else:
        q = libm.div(exps, total)
    return q


@triton.jit
def _held_row_finish(xc, yc, row_max, total, c):
    return tl.where(c == NEG_INF, 0.0, _softmax_quotients(libm.exp(xc - row_max), total, c))


@triton.jit
def _float16_finish(xc, yc, row_max, total, given_neg_inf):
    """``_softmax_finish`` of a float16 result: its quotients by ``libm.div_by_reciprocal``
    without a range test. The row's sum is in [1, 2**24]: its max's exp is 1 (read twice, the
    max's tile's sum is scaled by exp(0)), the row has fewer than 2**24 elements
    (``kernel_functions`` checks), and NaN stays NaN. Exps from 2**-100 up divide exactly; a
    smaller exp's quotient, however its float32 rounding falls, is below 2**-98 and not
    negative: float16 +0 either way (its smallest subnormal is 2**-24)."""
    exps = libm.exp(xc - row_max)
    return tl.where(given_neg_inf == NEG_INF, 0.0,
                    libm.div_by_reciprocal(exps, total, libm.reciprocal(total)))


_FLOAT16_FINISH_ROWS_BELOW = 2 ** 24


# ---- sums of exps in PyTorch's order (ReductionOp.sum_order) -------------------------------
@triton.jit
def _softmax_prior(x, xc, yc, valid):
    """The statistics of ``_softmax_stats`` whose order does not matter: the max, and whether
    the row as given is only -inf."""
    row_max = _row_max(xc, valid)
    return row_max, _given_neg_inf(x, valid, row_max)


@triton.jit
def _softmax_term(xc, yc, row_max, given_neg_inf):
    return libm.exp(xc - row_max)


_SHARED_MEMORY_A_BLOCK = 48 * 1024
"""Bytes of shared memory a CUDA block may take without opting in (``sharedMemPerBlock``, the
same on every GPU PyTorch supports): whether PyTorch's softmax kernels cache a row there."""


def _cached_in_shared_memory(row_len, dtype, warps, accumulate, aligned):
    """Whether PyTorch's softmax kernels cache a row of ``dtype`` in shared memory: whole
    16-byte vectors, fewer elements than fit in ``_SHARED_MEMORY_A_BLOCK`` beside its
    ``warps``' partial sums of ``accumulate``, read 16-byte ``aligned``."""
    cached = (_SHARED_MEMORY_A_BLOCK - warps * accumulate.itemsize) // dtype.itemsize
    return aligned and row_len % vector_elements(dtype) == 0 and row_len < cached


_WARP_ROWS = (2048, 8192)
"""The rows PyTorch's CUDA softmax forward gives a warp each (``host_softmax``: at most 2048
elements and 8192 bytes as it reads them; 1024 and 4096 where it reads float16 to write
float32)."""
_REGISTER_ROWS = 9 * 1024
"""The longest rows of its register kernel (``cunn_SoftMaxForwardReg``, for at most 9 elements
on each of 1024 threads: ``potential_register_count`` < 10)."""


def _softmax_forward_order(rows, out):
    """(threads, vector) of PyTorch's CUDA softmax forward (``host_softmax``), the order
    ``ReductionOp.sum_order`` says, for rows along the last dim (the family asks for no
    others; strided ones PyTorch copies). PyTorch softmaxes x converted to the result's dtype,
    except float16 read to write float32 (``half_to_float``), and picks its kernel by the row
    as it reads it:
    - up to ``_WARP_ROWS``: a warp a row (``softmax_warp_forward``), each lane l adding the
      elements l, l + 32, ... in turn (fewer lanes for rows shorter than 32: the row's length
      rounded up to a power of two), then a butterfly across the lanes: (lanes, 1);
    - up to ``_REGISTER_ROWS``, except half_to_float: ``cunn_SoftMaxForwardReg`` on 1024
      threads (its block: the row's length up to 1024, rounded up to whole warps), thread t
      adding the elements t, t + 1024, ... in turn: (1024, 1);
    - rows it caches in shared memory (``cunn_SoftMaxForwardSmem``: whole 16-byte vectors,
      fewer elements than fit in 48 KB beside the block's 32 partial sums, and x as it reads
      it 16-byte aligned: a copy is): each thread its vectors a stretch apart: (1024, vector).
    None elsewhere: its plain kernel (``cunn_SoftMaxForward``) starts at the first 16-byte
    boundary and ends the row element by element, which the family's launch does not
    follow."""
    x = rows.x
    row_len = x.shape[rows.dim] if x.dim() else 1
    half_to_float = (x.dtype, rows.dtype) == (torch.float16, torch.float32)
    read = x.dtype if half_to_float else rows.dtype
    elements, size = (1024, 4096) if half_to_float else _WARP_ROWS
    if row_len <= elements and row_len * read.itemsize <= size:
        return min(triton.next_power_of_2(row_len), 32), 1
    if row_len <= _REGISTER_ROWS and not half_to_float:
        return 1024, 1
    copied = x.dtype != rows.dtype and not half_to_float or not x.is_contiguous()
    aligned = copied or x.data_ptr() % 16 == 0
    return (1024, vector_elements(read)) if _cached_in_shared_memory(
        row_len, read, 32, rows.compute, aligned) else None


@register
class SafeSoftmax(ReductionOp):
    name = "_safe_softmax"
    stats = staticmethod(_softmax_stats)
    combine = staticmethod(_softmax_combine)
    combine_chunks = staticmethod(_softmax_combine_chunks)
    finish = staticmethod(_softmax_finish)
    sum_order = staticmethod(_softmax_forward_order)
    sum_terms = (_softmax_prior, _softmax_term)

    def kernel_functions(self, rows, tile, one_pass):
        # float16 results divide by one reciprocal a row with no range test
        # (``_float16_finish``): 27.1 SASS an element held at 8192 against the division's 33,
        # 23.9 at 16384, 64 registers read twice as with the division; on an H100 1.0% faster
        # at 8192, 7.5% at 16384, 13.5% read twice at 65536 (NOTES "float16 results: the
        # quotients without a range test"). Other results of a row held in one tile test the
        # range (30.2 an element), at most 16 elements a thread: at 32 (rows of 16384) its two
        # branches took the registers from 64 to 81 (41% slower in bfloat16), and read twice
        # to 90 (Triton 3.6). Elsewhere, and in float64, each element divides: an ordered
        # launch (``sum_order``) too, which takes no smallest exp (testing each element's
        # exp instead took 16-bit rows of 8192 from 115.9 to 133.3 µs on an H100: NOTES
        # "Softmax sums in PyTorch's order"). A subclass declaring its own statistics or
        # output keeps them.
        declared = (self.stats, self.finish) == (_softmax_stats, _softmax_finish)
        if declared and rows.compute == torch.float32:
            row_length = rows.x.shape[rows.dim] if rows.x.dim() else 1
            if rows.dtype == torch.float16 and row_length < _FLOAT16_FINISH_ROWS_BELOW:
                return self.stats, self.combine, _float16_finish
            if one_pass and elements_per_thread(tile) <= 16:
                return _held_row_stats, self.combine, _held_row_finish
        return self.stats, self.combine, self.finish

    def prepare(self, out, x, dim, dtype):
        dim = errors.wrap_dim(dim, x.dim())
        result = dtype or x.dtype
        if not result.is_floating_point and x.numel():
            # PyTorch's host_softmax dispatches on the dtype only for a non-empty input; its
            # CUDA dispatch names no device (its CPU kernels have other names)
            raise errors.not_implemented("host_softmax", result, device_suffix=False)
        return Rows(x, dim, tuple(x.shape), result, _opmath(result), cast=result)

    def sample_args(self, dtype, shape, make):
        x = make()
        return [((x, dim), {}, label) for dim, label in _DIMS] + [
            ((x, -1), {"dtype": torch.float64}, "dtype=float64")]


def _cuda_log_softmax_backward_data(grad_output, output, dim, input_dtype, **kwargs):
    """PyTorch's CUDA rules (the CPU kernel has no half-to-float path): float32 grad with
    float16 input_dtype gives a float16 result (into an out= of that dtype, resized as a
    structured kernel resizes it); other dtype mismatches raise. Either kernel writes an out=
    as if it were contiguous, from its first element (the meta function's output is raw
    strided: no proxy), whatever its strides: the CPU kernel stands for the CUDA one there."""
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
        geometry.as_contiguous(out).copy_(result)
        return out
    return torch.ops.aten._log_softmax_backward_data(grad_output, output, dim, input_dtype,
                                                     **kwargs)


def _softmax_backward_order(rows, out):
    """The threads among which PyTorch's CUDA softmax backward sums each row (along the last
    dim: the family asks for no others; strided ones PyTorch copies), each its 16-byte vectors,
    in the order ``ReductionOp.sum_order`` says: where it caches the row in shared memory
    (``dispatch_host_softmax_backward``: the row of whole 16-byte vectors, fewer elements than
    fit beside the block's reduction, and the result, output and grad, or their contiguous
    copies, 16-byte aligned). Its threads (``SoftMax_getBlockSize``): as many as hold half the
    row in vectors (it halves them where it reads vectors, as for every dtype here), at most
    1024 halved, rounded up to a power of two, at least a warp. A row of up to 1024 elements and
    4096 bytes of the result is a warp's (``softmax_warp_backward``), lane l adding the elements
    l, l + 32, ... in turn (fewer lanes for rows shorter than 32: the row's length rounded up to
    a power of two): (lanes, 1). None elsewhere: its other block kernel adds its threads' sums
    one after another."""
    x = rows.x
    row_len = x.shape[rows.dim] if x.dim() else 1
    if row_len <= 1024 and row_len * rows.dtype.itemsize <= 4096:
        return min(triton.next_power_of_2(row_len), 32), 1
    vector = vector_elements(x.dtype)
    threads = max(32, triton.next_power_of_2(min(row_len // vector, 1024) // 2))
    aligned = all(t.data_ptr() % 16 == 0 for t in (out, x, rows.y)
                  if t is not None and t.is_contiguous())
    return (threads, vector) if _cached_in_shared_memory(
        row_len, x.dtype, threads // 32, rows.compute, aligned) else None


_MISMATCH = ("expected input and grad types to match, or input to be at::Half and grad to be "
             "at::Float")


@register
class LogSoftmaxBackwardData(ReductionOp):
    name = "_log_softmax_backward_data"
    ref = staticmethod(_cuda_log_softmax_backward_data)
    # see _cuda_log_softmax_backward_data. An out= whose elements share memory (expanded) is
    # refused as other out= forms refuse it: PyTorch's kernels write it as if contiguous,
    # past its memory (its CPU kernel corrupts the heap), which is no behaviour to copy
    out_written_as_contiguous = True
    sum_order = staticmethod(_softmax_backward_order)

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
            raise errors.not_implemented("host_softmax_backward", result, device_suffix=False)
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
    out_resized_first = True  # trace.out is generated: see _cuda_trace

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
