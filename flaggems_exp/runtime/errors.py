"""PyTorch's exception texts, in one place, so every family raises them identically."""
import enum

import torch

from .device import KERNEL_SUFFIX

_SCALAR_TYPE = {
    torch.bool: "Bool", torch.uint8: "Byte", torch.int8: "Char", torch.int16: "Short",
    torch.int32: "Int", torch.int64: "Long", torch.float16: "Half", torch.bfloat16: "BFloat16",
    torch.float32: "Float", torch.float64: "Double", torch.complex64: "ComplexFloat",
    torch.complex128: "ComplexDouble", torch.complex32: "ComplexHalf",
}


def scalar_type_name(dtype):
    """PyTorch's ScalarType name of a dtype, as its messages print it (Float, Long, Half...)."""
    return _SCALAR_TYPE[dtype]


def not_implemented(kernel, dtype, device_suffix=True):
    """The dispatch error for an unsupported dtype; ``kernel`` is PyTorch's kernel stem, to
    which its device kernels add the device ("abs_cuda"); a dispatch in a meta function, the
    same on every device, names it bare (``device_suffix=False``)."""
    name = f"{kernel}_{KERNEL_SUFFIX}" if device_suffix else kernel
    return NotImplementedError(f'"{name}" not implemented for \'{scalar_type_name(dtype)}\'')


class NotCovered(NotImplementedError):
    """An input that PyTorch's op takes and our kernels do not cover (a complex or other dtype
    without a kernel, a sparse or other non-strided layout, a device the kernels do not run on).
    A direct call raises it; under ``enable()`` the call is PyTorch's own kernel's instead
    (``dispatch.py``). Raised before anything is written."""


def complex_unsupported(op_name):
    return NotCovered(f"flaggems_exp.{op_name}: complex dtypes are not supported")


def dtype_not_covered(op_name, dtype):
    """``NotCovered`` for a dtype the kernels do not handle (complex: the usual message)."""
    if dtype.is_complex:
        return complex_unsupported(op_name)
    return NotCovered(f"flaggems_exp.{op_name}: dtype {dtype} is not supported")


def cast_error(result_dtype, out_dtype):
    return RuntimeError(
        f"result type {scalar_type_name(result_dtype)} can't be cast to the desired output type "
        f"{scalar_type_name(out_dtype)}")


def broadcast_mismatch(out_shape, shape):
    return RuntimeError(
        f"output with shape {list(out_shape)} doesn't match the broadcast shape {list(shape)}")


def internal_overlap():
    return RuntimeError(
        "unsupported operation: more than one element of the written-to tensor refers to a single "
        "memory location. Please clone() the tensor before performing the operation.")


def inference_tensor_update():
    """PyTorch's error for a write into an inference tensor outside inference mode, raised by
    its version-counter bump after the kernel has written (the tensor holds the result)."""
    return RuntimeError(
        "Inplace update to inference tensor outside InferenceMode is not allowed.You can make a "
        "clone to get a normal tensor before doing inplace update.See "
        "https://github.com/pytorch/rfcs/pull/17 for more details.")


def partial_overlap():
    return RuntimeError(
        "unsupported operation: some elements of the input tensor and the written-to tensor refer to "
        "a single memory location. Please clone() the tensor before performing the operation.")


def bool_negation():
    return RuntimeError(
        "Negation, the `-` operator, on a bool tensor is not supported. If you are trying to invert a "
        "mask, use the `~` or `logical_not()` operator instead.")


def bool_subtraction():
    return RuntimeError(
        "Subtraction, the `-` operator, with two bool tensors is not supported. Use the `^` or "
        "`logical_xor()` operator instead.")


def bool_operand_subtraction():
    return RuntimeError(
        "Subtraction, the `-` operator, with a bool tensor is not supported. If you are trying to "
        "invert a mask, use the `~` or `logical_not()` operator instead.")


def dim_out_of_range(dim, ndim):
    lo, hi = (-ndim, ndim - 1) if ndim > 0 else (-1, 0)
    return IndexError(
        f"Dimension out of range (expected to be in range of [{lo}, {hi}], but got {dim})")


def wrap_dim(dim, ndim):
    """A dim in [-ndim, ndim) made non-negative; 0-dim tensors accept -1 and 0 as PyTorch does."""
    bound = max(ndim, 1)
    if not -bound <= dim < bound:
        raise dim_out_of_range(dim, ndim)
    return dim % bound


_CPP_TYPE = {torch.bool: "bool", torch.uint8: "unsigned char", torch.int8: "signed char",
             torch.int16: "short int", torch.int32: "int", torch.int64: "long int",
             torch.float16: "c10::Half", torch.bfloat16: "c10::BFloat16", torch.float32: "float",
             torch.float64: "double", torch.complex32: "c10::complex<c10::Half>",
             torch.complex64: "c10::complex<float>", torch.complex128: "c10::complex<double>"}


def cpp_type_name(dtype):
    """The C++ type PyTorch prints for a dtype in some messages ("long int", "float")."""
    return _CPP_TYPE[dtype]


_CHECKED_TYPE = {torch.bool: "bool", torch.uint8: "uint8_t", torch.int8: "int8_t",
                 torch.int16: "int16_t", torch.int32: "int", torch.int64: "int64_t",
                 torch.float16: "c10::Half", torch.bfloat16: "c10::BFloat16",
                 torch.float32: "float", torch.float64: "double"}


def scalar_overflow(dtype):
    """A Scalar out of ``dtype``'s range (c10's checked conversion, ``Scalar::to<T>()``)."""
    return RuntimeError(f"value cannot be converted to type {_CHECKED_TYPE[dtype]} without "
                        "overflow")


class OutDtypeCheck(enum.Enum):
    """Which of PyTorch's checks rejects an ``out=`` of another dtype than the result's, and so
    which message it raises."""
    TENSOR_ITERATOR = "TensorIterator's: Found dtype X but expected Y"
    OUT_WRAPPER = "a generated out= wrapper's: Expected out tensor to have dtype x, but got y"
    DATA_POINTER = "a kernel's typed pointer into out: expected scalar type X but found Y"


def out_dtype_mismatch(out_dtype, result_dtype, check):
    if check is OutDtypeCheck.TENSOR_ITERATOR:
        return RuntimeError(f"Found dtype {scalar_type_name(out_dtype)} but expected "
                            f"{scalar_type_name(result_dtype)}")
    if check is OutDtypeCheck.DATA_POINTER:
        return RuntimeError(f"expected scalar type {scalar_type_name(result_dtype)} but found "
                            f"{scalar_type_name(out_dtype)}")
    return RuntimeError(f"Expected out tensor to have dtype {cpp_type_name(result_dtype)}, but "
                        f"got {cpp_type_name(out_dtype)} instead")
