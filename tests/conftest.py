"""Test configuration: a marker per registered op (``pytest -m sigmoid``), ``--quick``, and
each failure named as it happens."""
import pytest

import flaggems_exp

_CONFIG = None  # this run's pytest config, for the failure lines (set in pytest_configure)


def _marker(name):
    """The marker of an op: its name, without leading underscores (pytest refuses them), so
    ``pytest -m safe_softmax`` selects ``_safe_softmax``."""
    return name.lstrip("_")


def pytest_addoption(parser):
    parser.addoption("--quick", action="store_true",
                     help="float32 and one integer dtype only, instead of every dtype")


def pytest_configure(config):
    global _CONFIG
    _CONFIG = config
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


def pytest_runtest_logreport(report):
    """A failing test named the moment it fails, where progress is printed (the controller
    under xdist): a run stopped by a time limit before pytest's summary still says which
    tests failed."""
    if not report.failed or _CONFIG is None or hasattr(_CONFIG, "workerinput"):
        return
    terminal = _CONFIG.pluginmanager.get_plugin("terminalreporter")
    if terminal is not None:
        terminal.write_line(f"\nFAILED ({report.when}) {report.nodeid}")
