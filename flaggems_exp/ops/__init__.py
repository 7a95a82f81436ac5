"""The op declarations, grouped by theme; importing a module registers its ops."""
from . import (activations, arithmetic, comparison, copies, elementary, factories,  # noqa: F401
               indexing, losses, padding, reductions, resampling)
