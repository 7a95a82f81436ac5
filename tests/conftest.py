"""Test configuration: a marker per registered op (``pytest -m sigmoid``) and ``--quick``."""
import pytest

import flaggems_exp


def _marker(name):
    """The marker of an op: its name, without leading underscores (pytest refuses them), so
    ``pytest -m safe_softmax`` selects ``_safe_softmax``."""
    return name.lstrip("_")


def pytest_addoption(parser):
    parser.addoption("--quick", action="store_true",
                     help="float32 and one integer dtype only, instead of every dtype")


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU (skipped elsewhere, with the reason)")
    config.addinivalue_line("markers", "lookup_thresholds: keeps the ops' declared "
                            "lookup_from (tests/test_lookup_tables.py clears it elsewhere)")
    for name in flaggems_exp.list_ops():
        config.addinivalue_line("markers", f"{_marker(name)}: tests of the op {name}")


def pytest_collection_modifyitems(config, items):
    for item in items:
        op = getattr(item, "callspec", None) and item.callspec.params.get("op")
        if hasattr(op, "names"):  # an empty parametrization holds pytest's NOTSET instead
            for name in op.names:
                item.add_marker(getattr(pytest.mark, _marker(name)))
