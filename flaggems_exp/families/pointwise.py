"""PointwiseOp: elementwise math on 1-3 broadcast operands plus runtime Scalar parameters."""
import math
import types
import typing

import torch
import triton
import triton.language as tl

from ..runtime import errors, geometry
from ..runtime.device import DEVICE, INTERPRETED
from ..runtime.dtypes import ALL, HALF, INTEGRAL, every_16_bit_value
from ..runtime.indexing import (BLOCK, block_offsets, block_size, grid_size, needs_int64,
                                strided_offsets)
from ..runtime.promotion import Promotion, promote
from ..runtime.triton_types import (TL_DTYPE, CheckedScalar, converted, encode_scalar,
                                     rounded_as, scalar_binding)
from ..runtime import launch as launching
from ..runtime.plans import bind_numbers, constant, not_replayable
from .base import Op


@triton.jit
def _decode_scalar(bits, COMPUTE: tl.constexpr):
    """Undo ``encode_scalar``: float64 bits for a floating compute dtype, else the integer."""
    value = tl.cast(bits, tl.int64)
    if COMPUTE.is_floating():
        return value.to(tl.float64, bitcast=True).to(COMPUTE)
    else:
        return value.to(COMPUTE)


@triton.jit
def _load_operand(ptr, number, offsets, mask, IS_SCALAR: tl.constexpr, STORED: tl.constexpr,
                  COMMON: tl.constexpr, COMPUTE: tl.constexpr):
    if IS_SCALAR:
        return _decode_scalar(number, COMPUTE)
    elif STORED:
        return tl.load(ptr + offsets, mask=mask)
    else:
        # TensorIterator converts every tensor operand to the common dtype before the math
        # (a float32 0-dim tensor beside float16 compares as float16), then the math widens
        return converted(tl.load(ptr + offsets, mask=mask), COMMON).to(COMPUTE)


# numbers (n0-n2: Python-number operands, s0-s2: Scalar parameters) are never specialized on
# their values, so one compiled kernel serves every value and a call plan can pass new ones
@triton.jit(do_not_specialize=["shape", "out_strides", "in0_strides", "in1_strides", "in2_strides",
                               "n0", "n1", "n2", "s0", "s1", "s2"])
def _pointwise_kernel(
    out_ptr, in0, in1, in2, numel, shape, out_strides, in0_strides, in1_strides, in2_strides,
    n0: tl.int64, n1: tl.int64, n2: tl.int64, s0: tl.int64, s1: tl.int64, s2: tl.int64,
    MATH: tl.constexpr, NIN: tl.constexpr, NSCALARS: tl.constexpr, SCALAR_OPERANDS: tl.constexpr,
    NDIM: tl.constexpr, COMMON: tl.constexpr, COMPUTE: tl.constexpr, RESULT: tl.constexpr,
    INDEX_64: tl.constexpr, BLOCK: tl.constexpr, REDUCE: tl.constexpr = None,
    STORED_OPERANDS: tl.constexpr = 0, NCONSTANTS: tl.constexpr = 0, C0: tl.constexpr = None,
    C1: tl.constexpr = None, C2: tl.constexpr = None, EVEN: tl.constexpr = False,
):
    offsets = block_offsets(BLOCK, INDEX_64)
    if EVEN:  # every program's block is whole: no lane is masked
        mask = tl.full((BLOCK,), True, tl.int1)
    else:
        mask = offsets < numel
    if NDIM == 0:
        # every operand dense with the out's strides: the flat index is the memory offset
        out_off = offsets
        off0 = offsets
        off1 = offsets
        off2 = offsets
    else:
        out_off, off0, off1, off2 = strided_offsets(
            offsets, shape, (out_strides, in0_strides, in1_strides, in2_strides), NDIM)
    x0 = _load_operand(in0, n0, off0, mask, SCALAR_OPERANDS & 1, STORED_OPERANDS & 1, COMMON,
                       COMPUTE)
    if NIN == 1:
        operands = (x0,)
    else:
        x1 = _load_operand(in1, n1, off1, mask, (SCALAR_OPERANDS >> 1) & 1,
                           (STORED_OPERANDS >> 1) & 1, COMMON, COMPUTE)
        if NIN == 2:
            operands = (x0, x1)
        else:
            operands = (x0, x1, _load_operand(in2, n2, off2, mask, (SCALAR_OPERANDS >> 2) & 1,
                                              (STORED_OPERANDS >> 2) & 1, COMMON, COMPUTE))
    scalars = (_decode_scalar(s0, COMPUTE), _decode_scalar(s1, COMPUTE), _decode_scalar(s2, COMPUTE))
    # the constant scalars come last, as constexprs: the math is compiled for their values
    result = MATH(*operands, *scalars[:NSCALARS], *(C0, C1, C2)[:NCONSTANTS])
    if REDUCE is not None:
        # fused reduction: one partial sum per program, in out_ptr's accumulation dtype, of the
        # results rounded to the op's result dtype, then to REDUCE: PyTorch reduces a tensor of
        # that dtype holding them
        accumulated: tl.constexpr = out_ptr.dtype.element_ty
        if REDUCE == RESULT and result.dtype == accumulated:
            loss = rounded_as(result, RESULT)  # a 16-bit loss summed in float32
        else:
            loss = converted(converted(result, RESULT), REDUCE).to(accumulated)
        partial = tl.sum(tl.where(mask, loss, 0), axis=0)
        tl.store(out_ptr + tl.program_id(0), partial)
    else:
        # rounded to the op's result dtype first, then cast to out's own dtype, as PyTorch
        # does (float16 exp2(16.5) is inf even into a float32 out)
        stored = converted(converted(result, RESULT), out_ptr.dtype.element_ty)
        tl.store(out_ptr + out_off, stored, mask=mask)


REQUIRED = object()  # a ``scalars`` default marking a parameter without one


class Dispatch(typing.NamedTuple):
    """A ``complex_error``: PyTorch's dtype dispatch ``dispatch_name`` (default the op's) has no
    complex case, so it raises its NotImplementedError after its checks of out=."""

    dispatch_name: typing.Optional[str] = None


DISPATCH = Dispatch()

class PointwiseOp(Op):
    """Elementwise math on 1-3 broadcast operands (tensors or Python numbers) and Scalar params.

    Declare on a subclass:
      math       ``@staticmethod @triton.jit def math(x, [y, [z,]] *scalars)``: receives every
                 operand and scalar already in the compute dtype (opmath: float32 for
                 float16/bfloat16) and returns the result in it; it never casts.
      nin        number of operands (1-3); the first ``nin`` positional arguments.
      scalars    ``{name: default}`` of the Scalar parameters, in schema order; the math receives
                 them after the operands, converted to the compute dtype as PyTorch converts a
                 Scalar (float64 exactly for float64 math, truncated for integer math).
      promotion  a ``Promotion`` kind (result and compute dtype from all operands).
      dtypes     result dtypes the kernel supports; others raise PyTorch's NotImplementedError
                 naming ``dispatch_name`` (the name PyTorch's AT_DISPATCH prints; default
                 the op name).
    Optional hooks: ``prepare(operands, params)`` -> (operands, kernel scalars) to reshape or
    split operands and derive the kernel's scalars (those last that are ``tl.constexpr``, fixed
    by the call's signature, reach the math as constexprs: ``split_constants``);
    ``check(operands, params, result_dtype, out)`` for op-specific errors, raised before
    anything is written; ``stored_operands(operands)`` -> the positions of the tensor
    operands the math receives as stored, in their own dtype, where PyTorch computes with them
    in that dtype (a loss's target; a clamp's 16-bit self, whose NaN PyTorch returns as
    loaded). Class attributes beside: ``warps`` (a long math over fewer elements a thread),
    ``flushes_subnormals``, ``looks_up_16_bit`` (the 16-bit dtypes whose results come from a
    table the kernel made) and ``lookup_from`` (the fewest elements a call needs before it
    looks up), ``scalar_check``, ``integer_compute``, below.

    The skeleton guarantees: broadcasting as PyTorch, any strides (no copies), a flat path for
    dense same-layout operands, int64 indexing only where needed, one rounding into the output.
    """

    family = "PointwiseOp"
    math = None
    nin = 1
    scalars = {}
    promotion = Promotion.DEFAULT
    dtypes = ALL
    dispatch_name = None
    # how PyTorch's kernel converts the Scalar parameters: None without a check (a plain C++
    # cast), "result" checked as Scalar::to<scalar_t>(), "compute" as Scalar::to<opmath_t>()
    scalar_check = None
    # the dtype PyTorch's CUDA kernel computes integer results in where it is not their own
    # (addcmul's acc_type<scalar_t, true>: int64); the Scalar parameters are checked into it
    integer_compute = None
    # where PyTorch itself rejects complex: (exception type, message) of the op's own check,
    # which comes before every other, or a Dispatch; None where PyTorch computes in complex
    # and we do not
    complex_error = None
    # an ``errors.OutDtypeCheck``: out= must have exactly the result dtype, and which of
    # PyTorch's checks says so; None lets out cast
    out_dtype_check = None
    # out= as PyTorch's generated wrapper of an op without an out= kernel does it: the result
    # computed apart, out resized contiguous and the result copied in (so out may share memory
    # with an input; it must not overlap itself)
    out_is_copied = False
    # the operands' sample shapes: per operand, the slice of the result's sample shape it takes
    # (None: every operand has the whole shape)
    sample_operand_dims = None
    # dtypes whose calls (every tensor operand and the result of that dtype) compile with
    # libdevice's flush-to-zero branches taken, which are faster: only where no input of that
    # dtype meets a subnormal float32 on the way, proven compiled on every input of the dtype
    # (tests/test_conformance_pointwise.py::test_flushing_subnormals_changes_no_result)
    flushes_subnormals = frozenset()
    # elements a program of a whole block takes (a power of two; None: ``indexing.BLOCK``),
    # compiled (the interpreter runs ``indexing.BLOCK``), and the warps it runs on: 4 warps on
    # 1024 give each thread 8 elements, in 16-byte vectors of 16-bit dtypes. An op whose math
    # is long (its loops and series unrolled over a thread's elements) gives a thread fewer,
    # which hold fewer registers, so that more warps fit an SM; one that branches for the
    # whole block (``tl.max`` of a condition) takes a smaller block, whose fewer warps wait
    # for each other at the reduction's barriers
    block = None
    warps = 4
    # the 16-bit dtypes (of ``HALF``) in which this unary op's math costs more than a gather:
    # its results there, where the result has the input's dtype and layout, are looked up in
    # a table of all 65536, which this very op's kernel computes once per dtype and device
    # (``lookup_table``): the same bits by construction, NaN payloads included
    looks_up_16_bit = frozenset()
    # per looked-up dtype, the fewest elements a call needs before its table pays (none: every
    # call looks up); a smaller call computes, the same bits. A table's lines are read cold
    # where the L2 was flushed: a normal draw of float16 values touches nearly all 4096 of its
    # 128 KB's 32-byte lines, a bfloat16 draw a few hundred, so at 1M elements a float16
    # lookup took 7.8-8.4 µs where the cheaper maths computed in about eager's 6.9-7.5 (H100)
    lookup_from = types.MappingProxyType({})

    def __init__(self):
        super().__init__()
        # which operands accept a Python number, and their names, read from aten's schemas
        schemas = [getattr(getattr(torch.ops.aten, n), o)._schema for n, o in self.aten_overloads()]
        positional = [[a for a in s.arguments if not a.kwarg_only] for s in schemas]
        # an op with no aten schema takes tensors only and accepts out=
        self.operand_names = ([a.name for a in positional[0][:self.nin]] if schemas
                              else ["self", "other", "third"][:self.nin])
        self.has_out = not schemas or any(any(a.name == "out" for a in s.arguments)
                                          for s in schemas)
        self.number_operands = frozenset(
            i for args in positional for i, a in enumerate(args[:self.nin])
            if not str(a.type).startswith("Tensor"))
        if any(torch._C._should_allow_numbers_as_tensors(n) for n in self.names):
            # PyTorch binds a Python number to any tensor operand of these ops (``torch.mul(2,
            # x)``) as a wrapped number, and the dispatcher hands a wrapped number to a Python
            # kernel as that number (a sparse ``mul`` calls ``mul(2, values)``)
            self.number_operands = frozenset(range(self.nin))

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # an op whose own hooks read no number's value takes its numbers per call in a plan
        cls.runtime_numbers = all(
            getattr(cls, hook) is getattr(PointwiseOp, hook)
            for hook in ("call_out", "operands_and_params", "run", "validate", "promote",
                         "prepare", "check", "layout_operands"))

    # ---- calling convention -------------------------------------------------------------
    def number_sources(self, args, kwargs):
        """Where each operand and Scalar parameter of a call comes from: ("args", position) or
        ("kwargs", name); None for a parameter left at its default."""
        names = list(self.scalars)
        return ([("args", i) if i < len(args) else ("kwargs", name)
                 for i, name in enumerate(self.operand_names)],
                [("args", self.nin + j) if self.nin + j < len(args)
                 else ("kwargs", name) if name in kwargs else None
                 for j, name in enumerate(names)])

    def operands_and_params(self, args, kwargs):
        """Split a call into operands (positional or by their schema names) and a
        {name: value} of Scalar parameters."""
        names = list(self.scalars)
        if len(args) > self.nin + len(names):
            raise TypeError(f"{self.name}() takes at most {self.nin + len(names)} arguments")
        operands = list(args[:self.nin])
        if len(operands) < self.nin:
            kwargs = dict(kwargs)
            for name in self.operand_names[len(operands):]:
                if name not in kwargs:
                    raise TypeError(f"{self.name}() missing required argument '{name}'")
                operands.append(kwargs.pop(name))
        params = dict(self.scalars)
        params.update(zip(names, args[self.nin:]))
        for key, value in kwargs.items():
            if key not in params:
                raise TypeError(f"{self.name}() got an unexpected keyword argument '{key}'")
            params[key] = value
        missing = [k for k, v in params.items() if v is REQUIRED]
        if missing:
            raise TypeError(f"{self.name}() missing required argument '{missing[0]}'")
        for i, operand in enumerate(operands):
            if not isinstance(operand, torch.Tensor) and i not in self.number_operands:
                raise TypeError(
                    f"{self.name}(): argument '{self.operand_names[i]}' (position {i + 1}) must be "
                    f"Tensor, not {type(operand).__name__}")
        for value in (*operands, *params.values()):
            scalar_binding(value)  # an int beyond 64 bits: the binding's OverflowError
        if not any(isinstance(operand, torch.Tensor) for operand in operands):
            # numbers alone (``torch.mul(2, 3)``): PyTorch's result is a CPU tensor
            raise errors.NotCovered(f"flaggems_exp.{self.name}: no tensor operand")
        return operands, params

    def prepare(self, operands, params):
        return operands, tuple(params.values())

    def check(self, operands, params, result_dtype, out):
        pass

    def promote(self, operands, params):
        compute, result = promote(operands, self.promotion)
        if self.integer_compute is not None and compute in INTEGRAL:
            compute = self.integer_compute
        return compute, result

    def stored_operands(self, operands):
        return ()

    # ---- the run: validate everything, then allocate and launch -------------------------
    def call_out(self, args, kwargs, out, inplace):
        sources = self.number_sources(args, kwargs) if self.runtime_numbers else None
        return self.run(*self.operands_and_params(args, kwargs), out, inplace, sources)

    def run(self, operands, params, out, inplace, sources=None):
        """The call, bound: validate, allocate or check ``out``, launch."""
        prepared, kernel_scalars, compute, result, shape = self.validate(operands, params, out)
        tensors = [t for t in prepared if isinstance(t, torch.Tensor)]
        layout = self.layout_operands(prepared, params)
        if out is None:
            out = geometry.new_result(layout, shape, result, tensors[0].device)
        else:
            if self.out_dtype_check_of(tensors) is errors.OutDtypeCheck.OUT_WRAPPER:
                # PyTorch's generated out= wrapper computes first, then checks out
                self.check_dtype(result)
            self.check_out(out, prepared, shape, result, inplace, layout)
        self.check_kernel(prepared, result)
        scalars_as = compute if self.scalar_check is None else CheckedScalar(
            compute, result if self.scalar_check == "result" else compute)
        if out.numel():
            from .copy import computed_apart  # copy.py builds on this module
            computed_apart(
                self, out, tensors if self.out_is_copied and not inplace else (),
                lambda: geometry.new_result(layout, shape, result, out.device),
                lambda target: self.launch(
                    target, shape, target.stride(), prepared, kernel_scalars, compute,
                    sources=sources, common=self.common_dtype(operands, result), result=result,
                    scalars_as=scalars_as))
        elif scalars_as is not compute:
            # PyTorch converts its Scalars even for an empty result; no launch would check
            # them in a replay, so such a call is never planned
            not_replayable()
            for value in split_constants(kernel_scalars)[0]:
                encode_scalar(value, scalars_as)
        return out

    def common_dtype(self, operands, result_dtype):
        """The dtype every tensor operand is converted to before the math (TensorIterator's
        common dtype): the result dtype, for every kind of promotion but ALWAYS_BOOL."""
        return result_dtype

    def check_kernel(self, operands, result_dtype):
        """The errors PyTorch's kernel raises, after its checks of out=: its dtype dispatch (and
        an op's own conversion of a Scalar operand)."""
        self.check_dtype(result_dtype)

    def check_dtype(self, result_dtype):
        """PyTorch's dispatch error for a dtype the kernel has no case for (after its other
        checks, as PyTorch's dtype dispatch comes last)."""
        if result_dtype not in self.dtypes:
            raise errors.not_implemented(self.dispatch_name or self.name, result_dtype)

    def validate(self, operands, params, out):
        """Every check that does not concern ``out``, in PyTorch's order; returns the prepared
        operands, the kernel's scalars, the compute and result dtypes and the result shape."""
        tensors = [t for t in operands if isinstance(t, torch.Tensor)]
        compute, result = self.promote(operands, params)
        complex_out = out is not None and out.is_complex()
        complex_error = None
        if compute.is_complex or complex_out or any(t.is_complex() for t in tensors):
            complex_error = self.complex_error_of(operands)
            if complex_error is not None and not isinstance(complex_error, Dispatch):
                raise complex_error[0](complex_error[1])
        self.check(operands, params, result, out)
        prepared, kernel_scalars = self.prepare(operands, params)
        used = [t for t in prepared if isinstance(t, torch.Tensor)]  # rrelu's eval: no noise
        if compute.is_complex or complex_out or any(t.is_complex() for t in used):
            self.reject_complex(operands, used, result, out, complex_error)
        operands = [_cpu_scalar_to_number(t) for t in prepared]
        shape = geometry.broadcast_shape([t.shape for t in operands if isinstance(t, torch.Tensor)])
        return operands, kernel_scalars, compute, result, shape

    def layout_operands(self, operands, params):
        """The operands in the order in which they decide the layout of a new result
        (``geometry.iteration_strides``): PyTorch's TensorIterator sees the op's inputs in
        schema order, a composite's last TensorIterator op in its own order."""
        return operands

    def complex_error_of(self, operands):
        """``complex_error`` for a call with these operands (an op whose overloads differ
        decides by them)."""
        return self.complex_error

    def reject_complex(self, operands, used, result, out, complex_error):
        """PyTorch's error for a call in complex dtypes, after the op's own checks, in its
        order: out= (or self) is checked first (a complex result is not written into a real
        tensor; an out= wrapper that computes first checks it after), then the kernel's dtype
        dispatch fails, or ours where PyTorch would compute. ``used``: the prepared tensors."""
        dtype = self.common_dtype(operands, result)
        dispatch = isinstance(complex_error, Dispatch) and dtype.is_complex
        wrapper_checks_out = self.out_dtype_check_of(used) is errors.OutDtypeCheck.OUT_WRAPPER
        if out is not None and not (dispatch and wrapper_checks_out):
            shape = geometry.broadcast_shape([t.shape for t in used])
            self.check_out(out, used, shape, result, inplace=out is operands[0])
        if dispatch:
            raise errors.not_implemented(complex_error.dispatch_name or self.dispatch_name or self.name, dtype)
        raise errors.complex_unsupported(self.name)

    def check_out(self, out, operands, shape, result, inplace, layout=None):
        """PyTorch's rules for writing into ``out`` (in place: self), checked in its order; a
        resized out takes the layout a new result would have (TensorIterator's, over
        ``layout``, by default the operands)."""
        tensors = [t for t in operands if isinstance(t, torch.Tensor)]
        if not inplace and not self.has_out:
            raise TypeError(f"{self.name}() got an unexpected keyword argument 'out'")
        # TensorIterator refuses an out= that overlaps itself before resizing it; a generated
        # out= wrapper resizes out first (resize_output), then copies the result in
        if (geometry.keeps_internal_overlap(out, shape) if self.out_is_copied and not inplace
                else geometry.has_internal_overlap(out)):
            raise errors.internal_overlap()
        if inplace or not self.out_is_copied:
            for t in tensors:
                geometry.check_no_partial_overlap(out, t)
        if inplace and tuple(out.shape) != shape:
            raise errors.broadcast_mismatch(out.shape, shape)
        exact = self.out_dtype_check_of(tensors)
        if not inplace and exact and out.dtype != result:
            raise errors.out_dtype_mismatch(out.dtype, result, exact)
        if not torch.can_cast(result, out.dtype):
            raise errors.cast_error(result, out.dtype)
        if tuple(out.shape) != shape:  # the first write, after every check
            strides = None if self.out_is_copied and not inplace else (
                geometry.iteration_strides(operands if layout is None else layout, shape))
            geometry.resize_out(out, shape, strides)

    def out_dtype_check_of(self, tensors):
        """``out_dtype_check`` for a call with these tensor operands (an op whose overloads
        differ decides by them)."""
        return self.out_dtype_check

    def launch(self, target, shape, out_strides, operands, kernel_scalars, compute, reduce=None,
               sources=None, common=None, result=None, scalars_as=None):
        dtype = target.dtype
        flush = dtype in self.flushes_subnormals and all(
            t.dtype == dtype for t in operands if isinstance(t, torch.Tensor))
        # a table holds the results of one math: a call's scalars must be fixed by its
        # signature (constexprs, each value a table of its own), never numbers it passes
        if (self.looks_up(dtype, math.prod(shape)) and reduce is None
                and all(isinstance(v, tl.constexpr) for v in kernel_scalars)
                and _one_dense_16_bit_operand(target, shape, out_strides, operands)
                and (result or dtype) == dtype):
            table = self.lookup_table(operands[0], compute, common, flush, kernel_scalars)
            if table is not None:
                return launch_lookup(self.name, target, operands[0], table)
        launch(self.name, self.math, target, shape, out_strides, operands, kernel_scalars,
               compute, reduce, sources, common, result, scalars_as,
               stored=self.stored_operands(operands), flush_subnormals=flush,
               whole_block=self.whole_block(), warps=self.warps)

    def looks_up(self, dtype, numel):
        """Whether a dense call of ``numel`` elements in ``dtype`` takes its results from the
        table (``looks_up_16_bit``, ``lookup_from``)."""
        return dtype in self.looks_up_16_bit and numel >= self.lookup_from.get(dtype, 0)

    def whole_block(self):
        """Elements a program of this op's launches takes where the call has that many."""
        return BLOCK if self.block is None or INTERPRETED else self.block

    def lookup_table(self, x, compute, common, flush, constants=()):
        """This op's result for each of the 65536 values of ``x``'s 16-bit dtype, on ``x``'s
        device, the value of bits b - 32768 (read as int16) at index b, under the kernel
        scalars ``constants`` (constexprs only): made by its own kernel on the first call and
        kept for good (128 KB a dtype, device and constants), apart from the
        call's plan and launch count. None while a CUDA graph is being captured and there is no
        table yet: a capture records launches without running them, so the table would hold
        nothing until the graph's first replay (the call then takes the kernel).

        The table is made once on the current stream and read later from any stream, so its
        making is waited for, once: the only synchronization of the op, at its first call in
        a 16-bit dtype on a device."""
        key = (x.dtype, x.device, compute, common, flush, tuple(c.value for c in constants))
        tables = self.__dict__.setdefault("_lookup_tables", {})  # this op's own, never shared
        table = tables.get(key)
        if table is None:
            if x.is_cuda and torch.cuda.is_current_stream_capturing():
                return None
            outer = getattr(launching._state, "recorder", None)
            launching._state.recorder = None  # not part of the call being planned
            try:
                every = every_16_bit_value(x.dtype, x.device)
                table = torch.empty_like(every)
                launch(f"{self.name} (table)", self.math, table, table.shape, table.stride(),
                       [every], tuple(constants), compute, common=common,
                       stored=self.stored_operands([every]),
                       flush_subnormals=flush, whole_block=self.whole_block(),
                       warps=self.warps)
            finally:
                launching._state.recorder = outer
            if table.is_cuda:
                torch.cuda.current_stream(table.device).synchronize()
            tables[key] = table
        return constant(table)


def _cpu_scalar_to_number(operand):
    """A 0-dim CPU tensor beside GPU tensors is a scalar to PyTorch: hand it over as a number."""
    if (isinstance(operand, torch.Tensor) and operand.dim() == 0 and DEVICE != "cpu"
            and operand.device.type == "cpu"):
        not_replayable()  # its value becomes a kernel number: this call is never planned
        return operand.item()
    return operand


def split_constants(kernel_scalars):
    """(the kernel scalars passed as numbers, the constants): a ``tl.constexpr`` among a call's
    kernel scalars is fixed by its signature (a dtype's step, say), never a value the caller
    passes; the math receives it as a constexpr, so the kernel is compiled for its value and
    the branches it rules out are gone. Constants come after every number."""
    first = next((i for i, v in enumerate(kernel_scalars) if isinstance(v, tl.constexpr)),
                 len(kernel_scalars))
    assert all(isinstance(v, tl.constexpr) for v in kernel_scalars[first:]), "constants come last"
    return list(kernel_scalars[:first]), [v.value for v in kernel_scalars[first:]]


def launch(name, math_fn, target, shape, out_strides, operands, kernel_scalars, compute,
           reduce=None, sources=None, common=None, result=None, scalars_as=None, stored=(),
           block=None, flush_subnormals=False, whole_block=BLOCK, warps=4):
    """Launch ``_pointwise_kernel`` with ``math_fn`` over ``shape``, counted for ``name``
    (also the launch of families that reuse the skeleton: copies, fills, losses).

    Results are stored into ``target`` through
    ``out_strides``, or, with ``reduce`` (the dtype of the tensor PyTorch would reduce), summed
    into one partial per program in ``target`` (which then needs ``cdiv(numel, block)``
    elements of the accumulation dtype). ``block``: elements per program, given (a power of
    two: a warp per 1024 elements, 4 to 16); by default ``whole_block``, or the call's elements
    rounded up to a power of two where fewer, on ``warps`` where the block is whole, else 4.
    ``sources``:
    where in the call each number operand and kernel scalar came from (``Op.number_sources``),
    for a call plan to take them from the next call. Tensor operands are converted to
    ``common`` (default ``compute``) before the math, except those at the positions ``stored``,
    which the math receives as stored; its result is rounded to ``result`` (default
    ``target``'s dtype) before the store converts it to ``target``'s dtype. The kernel scalars
    are encoded for ``scalars_as`` (default ``compute``; a ``CheckedScalar`` checks each value,
    at this call and at every replay of its plan). ``flush_subnormals``: compiled with
    libdevice's flush-to-zero branches (see ``PointwiseOp.flushes_subnormals``).
    ``whole_block``, ``warps``: an op's declarations (``PointwiseOp.block``, ``warps``)."""
    numel = math.prod(shape)
    tensors = [t for t in operands if isinstance(t, torch.Tensor)]
    if _one_dense_layout(shape, out_strides, tensors):
        ndim, cshape, strides = 0, (numel,), [(1,)] * 4  # dense, one layout: flat offsets
    else:
        all_strides = [tuple(out_strides)] + [
            geometry.expanded_strides(t, shape) if isinstance(t, torch.Tensor)
            else (0,) * len(shape) for t in operands]
        cshape, strides = geometry.collapse(shape, all_strides)
        ndim = len(cshape)
    options = launching.flushing_subnormals() if flush_subnormals else {}
    if block is None:
        block = block_size(numel, whole_block)
        grid = triton.cdiv(numel, block)
        if warps != 4 and block == whole_block:
            options["num_warps"] = warps
    else:
        grid = triton.cdiv(numel, block)
        options["num_warps"] = min(16, max(4, block // 1024))
    if reduce is not None and numel % block == 0:
        options["EVEN"] = True  # no masked lane to leave out of a partial sum
    index_64 = needs_int64([(cshape, st) for st in strides], grid * block - 1)
    strides += [(0,) * len(cshape)] * (4 - len(strides))
    pointers, numbers, scalar_mask = [], [], 0
    for i, operand in enumerate(operands):
        if isinstance(operand, torch.Tensor):
            pointers.append(operand)
            numbers.append(0)
        else:
            pointers.append(target)  # never read: the kernel takes the number instead
            numbers.append(encode_scalar(operand, compute))
            scalar_mask |= 1 << i
    pointers += [target] * (3 - len(pointers))
    numbers += [0] * (3 - len(numbers))
    scalars_as = scalars_as or compute
    kernel_scalars, constants = split_constants(kernel_scalars)
    if constants:
        options.update(NCONSTANTS=len(constants), **{f"C{k}": v for k, v in enumerate(constants)})
    encoded = [encode_scalar(v, scalars_as) for v in kernel_scalars]
    launching.launch(
        name, _pointwise_kernel, (grid,),
        target, *pointers, numel, cshape, *strides, *numbers, *(encoded + [0] * (3 - len(encoded))),
        MATH=math_fn, NIN=len(operands), NSCALARS=len(encoded), SCALAR_OPERANDS=scalar_mask,
        NDIM=ndim, COMMON=TL_DTYPE[common or compute], COMPUTE=TL_DTYPE[compute],
        RESULT=TL_DTYPE[result or target.dtype], INDEX_64=index_64, BLOCK=block,
        REDUCE=None if reduce is None else TL_DTYPE[reduce],
        STORED_OPERANDS=sum(1 << i for i in stored), **options)
    if sources is not None:
        operand_sources, scalar_sources = sources
        bind_numbers({**{_ARGUMENT[f"n{i}"]: (source, compute)
                         for i, source in enumerate(operand_sources) if scalar_mask >> i & 1},
                      **{_ARGUMENT[f"s{j}"]: (source, scalars_as)
                         for j, source in enumerate(scalar_sources) if source is not None}})


_ARGUMENT = {name: i for i, name in enumerate(_pointwise_kernel.arg_names)}


def _one_dense_layout(shape, out_strides, tensors):
    """Whether the output (``shape``, ``out_strides``) and every tensor of ``tensors`` are laid
    out alike and densely: one flat walk covers them all."""
    return geometry.strides_are_dense(shape, out_strides) and all(
        tuple(t.shape) == tuple(shape) and t.stride() == tuple(out_strides) for t in tensors)


def _one_dense_16_bit_operand(target, shape, out_strides, operands):
    """Whether the call is one 16-bit float tensor operand of ``target``'s dtype, laid out as
    the output and densely."""
    if len(operands) != 1 or not isinstance(operands[0], torch.Tensor):
        return False
    x = operands[0]
    return (x.dtype == target.dtype and x.dtype in HALF
            and _one_dense_layout(shape, out_strides, [x]))


@triton.jit
def _lookup_kernel(out_ptr, x_ptr, table_ptr, numel, INDEX_64: tl.constexpr,
                   BLOCK: tl.constexpr):
    """out = table[the bits of x], both dense in one layout (a flat walk)."""
    offsets = block_offsets(BLOCK, INDEX_64)
    mask = offsets < numel
    # x streams through once; the table's lines stay cached for the gathers of every program
    x = tl.load(x_ptr + offsets, mask=mask, eviction_policy="evict_first")
    index = x.to(tl.int16, bitcast=True).to(tl.int32) + 32768
    tl.store(out_ptr + offsets, tl.load(table_ptr + index, mask=mask, eviction_policy="evict_last"),
             mask=mask)


def launch_lookup(name, target, x, table):
    """``target`` = ``table`` looked up at the bits of ``x`` (see ``PointwiseOp.looks_up_16_bit``),
    counted as ``name``'s launch."""
    numel = x.numel()
    block, grid = block_size(numel), grid_size(numel)
    launching.launch(name, _lookup_kernel, (grid,), target, x, table, numel,
                     INDEX_64=needs_int64([((numel,), (1,))], grid * block - 1), BLOCK=block)
