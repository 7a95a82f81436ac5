"""Every registered op, callable by its aten name: ``experimental_ops.sigmoid(x)``.

The namespace is filled from the registry: nothing here lists ops by hand.
"""
__all__ = []


def _refresh():
    from ..families.base import REGISTRY
    from ..families.autograd_calls import served
    globals().update(REGISTRY)
    __all__[:] = sorted(REGISTRY)
    served.cache_clear()
