"""CreationOp: fills and factories — a new tensor (or ``out``, or self in place) whose elements
all get one value, written by ``copy.write`` (PyTorch's fill_: the pointwise skeleton with the
value as its scalar operand); factories that PyTorch leaves uninitialised launch nothing."""
import torch

from ..runtime import errors, geometry
from ..runtime.triton_types import TL_DTYPE
from .base import Op, check_keywords
from .copy import write

_FACTORY_OPTIONS = ("dtype", "layout", "device", "pin_memory")


def check_sizes(shape):
    """PyTorch's allocation error for a negative size, raised before any allocation."""
    bad = [n for n in shape if n < 0]
    if bad:
        raise RuntimeError(
            f"Trying to create tensor with negative dimension {bad[0]}: {list(shape)}")


class CreationOp(Op):
    """A new tensor of a computed shape, every element of which gets one value.

    Declare on a subclass:
      value        the fill, converted to the result dtype as PyTorch converts a Scalar (default
                   0); None leaves the tensor uninitialised: nothing is launched.
      geometry(*args) -> (shape, strides, like): validate the op's own arguments (PyTorch's
                   errors, raised before anything is allocated or written) and return the
                   result's shape, its strides (None: contiguous; "like": laid out as ``clone()``
                   lays out ``like``) and the tensor argument whose dtype and device the result
                   takes unless dtype=/device= say otherwise (None for factories: the default
                   dtype, PyTorch's default device).
    Optional hooks: ``fill_value(dtype, *args)`` (the value for a result of ``dtype``, checked:
    scalar_tensor's is an argument); ``fill(out, value)``, the writes (``copy.write`` of the
    value; eye writes its zeros and its diagonal). Class flags: ``out_dtype_must_match`` (out= must have the result's dtype, as in
    PyTorch's generated out= wrappers; factories' out= write in out's dtype) and
    ``any_dtype`` (zeros and uninitialised tensors of every dtype, complex included: a zero is
    zero bits whatever the dtype).

    The family takes the factory keywords dtype/layout/device/pin_memory (strided layout only),
    ``out=`` (resized to the result shape), and in place (``zero_``) writes through self's
    strides: a fill is idempotent, so PyTorch allows self to overlap itself.
    """

    family = "CreationOp"
    moves_any_tensor = True  # ``any_dtype`` decides, and ``write`` refuses another device
    reference_in_float64 = False  # data movement: PyTorch's own result is the reference
    value = 0
    out_dtype_must_match = False
    any_dtype = False
    # out= as PyTorch's generated out= wrappers do it: the result made, out resized (with
    # resize_output's warning) and the result copy_'d in, so an out that overlaps itself is
    # rejected; False where the op's own out= kernel resizes silently and fills out (eye)
    out_is_copied = True

    def fill_value(self, dtype, *args, **kwargs):
        return self.value

    def fill(self, out, value):
        write(self, out, value)

    def call_out(self, args, kwargs, out, inplace):
        check_keywords(self, kwargs)
        options = {k: v for k, v in kwargs.items() if k in _FACTORY_OPTIONS}
        kwargs = {k: v for k, v in kwargs.items() if k not in _FACTORY_OPTIONS}  # the call's own
        if options and out is not None:  # the out= overloads take no factory keywords
            raise TypeError(f"{self.name}() got an unexpected keyword argument '{[*options][0]}'")
        shape, strides, like = self.geometry(*args, **kwargs)
        if out is not None:
            dtype = out.dtype if not self.out_dtype_must_match else like.dtype
        elif options.get("dtype") is not None:
            dtype = options["dtype"]
        else:
            dtype = like.dtype if like is not None else torch.get_default_dtype()
        if dtype not in TL_DTYPE and not self.any_dtype:
            raise errors.dtype_not_covered(self.name, dtype)
        value = self.fill_value(dtype, *args, **kwargs)
        check_sizes(shape)
        if inplace:
            pass  # out is self
        elif out is None:
            out = self.new(shape, strides, like, dtype, options)
        else:
            if self.out_is_copied:
                geometry.wrapper_out(out, dtype, shape)
            else:
                if out.dtype != dtype:
                    raise errors.out_dtype_mismatch(
                        out.dtype, dtype, errors.OutDtypeCheck.OUT_WRAPPER)
                if out.shape != tuple(shape):
                    out.resize_(shape)  # the op's own out= kernel: a silent resize
        if value is not None:
            self.fill(out, value)
        return out

    def new(self, shape, strides, like, dtype, options):
        device = options.get("device")
        if device is None and like is not None:
            device = like.device
        if strides == "like":
            return torch.empty_like(like, dtype=dtype, device=device)
        if strides is None:
            return torch.empty(shape, dtype=dtype, device=device,
                               pin_memory=bool(options.get("pin_memory")))
        return torch.empty_strided(shape, strides, dtype=dtype, device=device,
                                   pin_memory=bool(options.get("pin_memory")))
