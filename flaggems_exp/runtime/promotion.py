"""Type promotion by PyTorch's named kinds, computed in one place.

``torch._prims_common.elementwise_dtypes`` is the reference implementation; it is private and
slow (hundreds of microseconds per call), so it is wrapped here once and its answer cached by
the only things it depends on: each argument's dtype and whether it is a 0-dim tensor, or the
Python type of a number.
"""
import enum
import functools

import torch
from torch._prims_common import ELEMENTWISE_TYPE_PROMOTION_KIND as _KIND
from torch._prims_common import elementwise_dtypes as _elementwise_dtypes


class Promotion(enum.Enum):
    """PyTorch's elementwise promotion kinds, by their PyTorch names."""

    DEFAULT = _KIND.DEFAULT
    INT_TO_FLOAT = _KIND.INT_TO_FLOAT
    ALWAYS_BOOL = _KIND.ALWAYS_BOOL
    COMPLEX_TO_FLOAT = _KIND.COMPLEX_TO_FLOAT
    BOOL_TO_LONG = _KIND.BOOL_TO_LONG
    NO_OPMATH = _KIND.NO_OPMATH


def _signature(arg):
    if isinstance(arg, torch.Tensor):
        return (arg.dtype, arg.dim() == 0)
    return type(arg)


_REPRESENTATIVE = {bool: True, int: 1, float: 1.0, complex: 1j}


@functools.lru_cache(maxsize=4096)
def _cached(kind, signature, default_dtype):  # integers and numbers promote to the default
    args = [torch.empty(() if s[1] else (1,), dtype=s[0]) if isinstance(s, tuple)
            else _REPRESENTATIVE[s] for s in signature]
    return _elementwise_dtypes(*args, type_promotion_kind=kind.value)


def promote(args, kind):
    """(compute dtype, result dtype) of ``args`` (tensors and Python numbers) under ``kind``.

    The compute dtype is PyTorch's opmath: float32 for float16/bfloat16 results.
    """
    return _cached(kind, tuple(_signature(a) for a in args if a is not None),
                   torch.get_default_dtype())
