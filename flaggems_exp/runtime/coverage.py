"""What the kernels cover, checked first on every full path (``Op.call``).

The kernels read and write dense memory through strides, on the device they run on, in the
dtypes Triton computes in. A tensor outside that (sparse or another layout, quantized, nested,
a negative-bit view; on another device such as "meta", or of a dtype without a Triton type such
as uint16 or float8, where the family computes values), or a factory asked for another device
or layout, raises ``NotCovered`` before anything is read or written: a direct call reports it,
and under ``enable()`` PyTorch's own kernel takes the call (``dispatch.py``). So do tensors on
more than one device in one call (cuda:0 and cuda:1, or a CUDA tensor and a CPU one that is no
scalar): a kernel reads every operand on the device it runs on, and PyTorch's answer differs by
op (TensorIterator's "found at least two devices", the generated wrappers' "(when checking
argument in method ...)", or a cross-device copy that slice_scatter accepts), so its own kernel
gives it. Copies and fills
move any dtype and hand transfers to ATen's copy_ themselves (``Op.moves_any_tensor``); complex
dtypes are each family's business: it raises PyTorch's own error where PyTorch rejects complex
and ``NotCovered`` where PyTorch would compute.
"""
import torch

from .device import DEVICE
from .errors import NotCovered
from .triton_types import TL_DTYPE


def _uncovered(t, moves_any_tensor):
    """Why the kernels do not cover tensor ``t`` (None: they do)."""
    if t.layout != torch.strided:
        return f"{str(t.layout).removeprefix('torch.')} tensors are not supported"
    if t.is_quantized or t.is_nested or t.is_neg():
        kind = "quantized" if t.is_quantized else "nested" if t.is_nested else "negative-bit"
        return f"{kind} tensors are not supported"
    if moves_any_tensor:
        return None
    # CPU tensors are the families' business: a 0-dim one beside GPU tensors is a scalar to
    # PyTorch, and tests/compile_check.py runs the full paths on CPU tensors
    if t.device.type not in (DEVICE, "cpu"):
        return f"the kernels run on {DEVICE} tensors, not on {t.device.type} ones"
    if t.dtype not in TL_DTYPE and not t.dtype.is_complex:
        return f"dtype {t.dtype} is not supported"
    return None


def check(op, args, kwargs, out):
    """``NotCovered`` for a call of ``op`` its kernels do not cover. ``op.moves_any_tensor``:
    the family (copies, fills) decides itself which dtypes and devices it moves."""
    devices = []
    for value in (*args, *kwargs.values(), out):
        if isinstance(value, torch.Tensor):
            reason = _uncovered(value, op.moves_any_tensor)
            if reason is not None:
                raise NotCovered(f"flaggems_exp.{op.name}: {reason}")
            # a 0-dim CPU tensor beside GPU tensors is a scalar to PyTorch (and the families)
            if value.device not in devices and (value.dim() or value.device.type != "cpu"):
                devices.append(value.device)
    if len(devices) > 1 and not op.moves_any_tensor:
        raise NotCovered(f"flaggems_exp.{op.name}: tensors on {devices[0]} and {devices[1]} in "
                         "one call; the kernels read every operand on the device they run on")
    device = kwargs.get("device")
    if device is not None and torch.device(device).type != DEVICE:
        raise NotCovered(f"flaggems_exp.{op.name}: the kernels run on {DEVICE} tensors, "
                         f"not on {torch.device(device).type} ones")
    layout = kwargs.get("layout")
    if layout not in (None, torch.strided):
        raise NotCovered(f"flaggems_exp.{op.name}: layout {layout} is not supported")
