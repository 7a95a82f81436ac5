"""flaggems_exp: PyTorch ATen operators written in Triton.

    import flaggems_exp
    y = flaggems_exp.experimental_ops.sigmoid(x)      # call an op directly
    flaggems_exp.enable()                              # route torch's ops to ours
    with flaggems_exp.use_gems(): ...                  # only inside the block
"""
from .runtime.device import DEVICE as device  # noqa: I001  (sets up the interpreter first)
from . import experimental_ops
from .families import REGISTRY, LAUNCHES
from . import ops  # noqa: F401  (registers every op)
from .dispatch import DELEGATED, disable, enable, is_enabled, routed, use_gems

__version__ = "0.1.0"


def list_ops():
    """Every registered op name (aliases and in-place forms included), sorted."""
    return sorted(REGISTRY)


__all__ = ["device", "enable", "disable", "is_enabled", "routed", "use_gems", "experimental_ops",
           "list_ops", "REGISTRY", "LAUNCHES", "DELEGATED"]
