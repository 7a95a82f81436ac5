"""Where kernels run.

On a machine without a CUDA device the kernels run in Triton's interpreter on CPU tensors.
Triton reads ``TRITON_INTERPRET`` when ``triton.jit`` decorates a function, so this module must be
imported before any kernel is defined (``flaggems_exp/__init__.py`` imports it first).
"""
import os

import torch

# the environment variable, not a Triton knob: Triton 3.6 and 3.9 both read it when
# ``triton.jit`` decorates, and setdefault keeps a user's explicit TRITON_INTERPRET=0 (the
# compile check builds GPU kernels on a machine without one)
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
DEVICE = "cpu" if INTERPRETED else "cuda"
# the suffix PyTorch puts on kernel names in "not implemented for" messages
KERNEL_SUFFIX = "cpu" if DEVICE == "cpu" else "cuda"

if INTERPRETED:
    from . import interpreter_casts

    interpreter_casts.install()  # the interpreter's bfloat16 conversions, made exact
