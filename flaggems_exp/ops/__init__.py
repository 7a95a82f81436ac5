"""The op declarations, grouped by theme; importing a module registers its ops."""
from . import activations, arithmetic, elementary  # noqa: F401
