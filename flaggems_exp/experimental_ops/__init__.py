"""Every registered op, callable by its aten name: ``experimental_ops.sigmoid(x)``.

The namespace is the registry: nothing here lists ops by hand. A name is looked up in the
registry on its first access and kept as a module attribute, as later accesses are on the
user's hot path (a plain attribute takes 40 ns, a module ``__getattr__`` 3 µs). Ops are
never unregistered; code that removes one from the registry (a test) removes its kept name too.
"""
from ..families.base import REGISTRY as _registry


def __getattr__(name):
    try:
        op = _registry[name]
    except KeyError:
        if name == "__all__":  # what ``from flaggems_exp.experimental_ops import *`` binds
            return sorted(_registry)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    globals()[name] = op
    return op


def __dir__():
    return sorted({*globals(), *_registry})
