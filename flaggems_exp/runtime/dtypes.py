"""Named dtype sets for the ``dtypes`` an op's kernel accepts."""
import torch

HALF = frozenset({torch.float16, torch.bfloat16})  # the 16-bit floats, computed in float32
FLOATING = HALF | {torch.float32, torch.float64}
INTEGRAL = frozenset({torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64})
REAL = FLOATING | INTEGRAL
ALL = REAL | {torch.bool}
