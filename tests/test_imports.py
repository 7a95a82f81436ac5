"""The engine never imports its test support: ``flaggems_exp.testing`` reads the ops' sample
declarations, never the other way round."""
import ast
import pathlib

import pytest

import flaggems_exp

PACKAGE = pathlib.Path(flaggems_exp.__file__).parent
ENGINE = sorted(p for part in ("families", "ops", "runtime") for p in (PACKAGE / part).rglob("*.py"))


def imported_modules(source, package):
    """The absolute names of every module ``source`` (a module of the dotted ``package``)
    imports, wherever the import stands (a deferred import inside a function included)."""
    parts = package.split(".")
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = parts[:len(parts) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            names += [module] + [f"{module}.{alias.name}" for alias in node.names]
    return names


def imports_testing(source, package):
    return any(m == "flaggems_exp.testing" or m.startswith("flaggems_exp.testing.")
               for m in imported_modules(source, package))


def test_the_engine_is_found():
    assert len(ENGINE) > 20 and PACKAGE / "families" / "base.py" in ENGINE


@pytest.mark.parametrize("path", ENGINE, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_engine_module_imports_testing(path):
    package = ".".join(("flaggems_exp", *path.relative_to(PACKAGE).parent.parts))
    assert not imports_testing(path.read_text(), package)


@pytest.mark.parametrize("source", [
    "def f():\n    from ..testing import Call\n",
    "from .. import testing\n",
    "import flaggems_exp.testing\n",
    "from flaggems_exp.testing import random_tensor\n",
])
def test_the_reader_sees_every_form_of_the_import(source):
    assert imports_testing(source, "flaggems_exp.families")
    assert not imports_testing("from ..runtime import geometry\nfrom . import base\n",
                               "flaggems_exp.families")
