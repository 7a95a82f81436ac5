"""Named dtype sets for the ``dtypes`` an op's kernel accepts."""
import torch

FLOATING = frozenset({torch.float16, torch.bfloat16, torch.float32, torch.float64})
INTEGRAL = frozenset({torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64})
REAL = FLOATING | INTEGRAL
ALL = REAL | {torch.bool}
