"""bfloat16 conversions in Triton's interpreter, made as compiled kernels and PyTorch make them.

numpy has no bfloat16, so the interpreter keeps a bfloat16 value as its 16 bits in a uint16 array
and converts in ``InterpreterBuilder.cast_impl`` (every ``.to()``, and the conversion a
``tl.store`` makes into a bfloat16 pointer). There (triton 3.6 and 3.9):

- float32 <-> bfloat16 go through a bit-level routine that truncates instead of rounding to
  nearest even (so a float32 beyond the largest bfloat16 saturates instead of becoming inf), and
  reads a bfloat16 subnormal as 0 or garbage;
- every other pair goes through numpy's ``astype``: float64 or an integer "to bfloat16" becomes
  the value converted to a uint16 *integer*, stored as bits (3.0 -> 0x0003, about 4.6e-40).

``install`` replaces the conversions that involve bfloat16 (``cast_impl`` and the explicit
``create_fp_to_fp``) with exact ones; every other conversion keeps the interpreter's own code.
A bfloat16 is the top half of a float32, so reading one is a shift, and writing one is
float32 rounding to nearest even at bit 16 (a carry out of the mantissa gives the next binade,
or inf past the largest finite value; subnormals round the same way; NaN stays a quiet NaN).
float64 and integers reach bfloat16 through float32, as c10's ``BFloat16(float)`` conversion,
the only one PyTorch has, takes them (two roundings, like PyTorch). bfloat16 to anything goes
through float32 already in Triton's own ``cast`` (exact).

Applied only when the interpreter runs the kernels: compiled kernels convert on the GPU.

``install`` also makes a scalar usable as a Python int under numpy 2.4 in Triton 3.6's
interpreter (a runtime loop bound, ``range(0, count, BLOCK)``): see ``_squeezed_index``.
"""
import numpy as np
import triton.language as tl
from triton._C.libtriton import ir
from triton.runtime import interpreter

_BF16_ROUNDING_BIAS = np.uint32(0x7FFF)
_QUIET_BIT = np.uint16(0x0040)


def bfloat16_bits(values):
    """``values`` (a numpy array of any real dtype) as bfloat16 bits (uint16), rounded as
    PyTorch rounds: through float32, then to nearest even."""
    single = np.asarray(values).astype(np.float32)
    bits = single.view(np.uint32)
    rounded = ((bits + _BF16_ROUNDING_BIAS + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    return np.where(np.isnan(single), (bits >> 16).astype(np.uint16) | _QUIET_BIT, rounded)


def bfloat16_values(bits):
    """bfloat16 ``bits`` (uint16) as float32 values: exact, subnormals, infinities and NaN
    included."""
    return (np.asarray(bits).astype(np.uint32) << 16).view(np.float32)


def _convert(src, dst_type):
    """A TensorHandle converted into ``dst_type`` where one side is bfloat16, else None."""
    src_type, dst_scalar = src.dtype.scalar, dst_type.scalar
    if dst_scalar == tl.bfloat16 and not src_type.is_fp8():
        return interpreter.TensorHandle(bfloat16_bits(src.data), dst_scalar)
    if src_type == tl.bfloat16 and not dst_scalar.is_fp8():
        single = bfloat16_values(src.data)
        return interpreter.TensorHandle(
            single.astype(interpreter._get_np_dtype(dst_scalar)), dst_scalar)
    return None


def install():
    """Route the interpreter's bfloat16 conversions through ``_convert`` (idempotent)."""
    builder = interpreter.InterpreterBuilder
    if getattr(builder, "_bfloat16_exact", False):
        return
    cast_impl, fp_to_fp = builder.cast_impl, builder.create_fp_to_fp

    def exact_cast_impl(self, src, dst_type):
        converted = _convert(src, dst_type)
        return cast_impl(self, src, dst_type) if converted is None else converted

    def exact_fp_to_fp(self, src, dst_type, rounding_mode):
        # an explicit rounding other than to nearest even (rtz) keeps the interpreter's routine
        converted = (_convert(src, dst_type)
                     if rounding_mode in (None, ir.ROUNDING_MODE.RTNE) else None)
        return fp_to_fp(self, src, dst_type, rounding_mode) if converted is None else converted

    builder.cast_impl, builder.create_fp_to_fp = exact_cast_impl, exact_fp_to_fp
    builder._bfloat16_exact = True
    _squeezed_index()


def _squeezed_index():
    """Triton 3.6's interpreter turns a scalar into a Python int with ``int()`` of its
    one-element array, which numpy 2.4 refuses for an array of one dimension (3.9 squeezes it
    first): squeeze there too. Its patches of ``tl.tensor`` are made per launch, so the
    function that makes them is wrapped."""
    patch_tensor = interpreter._patch_lang_tensor
    if getattr(patch_tensor, "_squeezed", False):
        return

    def patch_with_squeezed_index(tensor, scope):
        patch_tensor(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.squeeze()))

    patch_with_squeezed_index._squeezed = True
    interpreter._patch_lang_tensor = patch_with_squeezed_index
