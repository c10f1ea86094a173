"""The package's layers: each sub-package imports only from packages below it (no cycles, no upward imports),
and the Keras-free packages stay Keras-free at import time."""

import ast

import pytest

from conftest import ROOT, run_python

# Bottom to top; a package may import its own modules and those of lower layers only.
LAYERS = {
    "core": 0,
    "data": 1,
    "models": 2, "reports": 2,
    "artifacts": 3,
    "training": 4, "inference": 4,
    "evaluation": 5,
    "top": 6,  # api, cli, demo and the package's own entry points
}


def _package(module):
    """The layer name of a dotted module path inside frcunet ("frcunet.data.prepare" -> "data")."""
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in LAYERS:
        return parts[1]
    return "top"


def _imports(path):
    """Every frcunet module `path` imports, at module level or inside functions."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("frcunet"):
            if node.module == "frcunet":  # the version string is the package's own, not a module above
                yield from (f"frcunet.{alias.name}" for alias in node.names if alias.name != "__version__")
            else:
                yield node.module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name.startswith("frcunet"))


def _modules():
    for path in sorted((ROOT / "frcunet").rglob("*.py")):
        yield path, ".".join(path.relative_to(ROOT).with_suffix("").parts)


def test_every_module_lives_in_a_layer():
    loose = [module for _, module in _modules() if _package(module) == "top"
             and module.split(".")[1] not in {"__init__", "__main__", "_startup", "api", "cli", "demo"}]
    assert not loose, f"modules outside the layered packages: {loose}"


def test_no_package_imports_from_a_package_above_or_beside_it():
    wrong = []
    for path, module in _modules():
        own = _package(module)
        for imported in _imports(path):
            other = _package(imported)
            if other != own and LAYERS[other] >= LAYERS[own]:
                wrong.append(f"{module} ({own}) imports {imported} ({other})")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("package", ["frcunet.core.names", "frcunet.training.recipes", "frcunet.artifacts.runs",
                                     "frcunet.artifacts.pretrained", "frcunet.inference.prediction",
                                     "frcunet.data.prepare", "frcunet.cli"])
def test_keras_free_modules_import_without_keras(package):
    done = run_python(f"import sys, {package}; print('keras' in sys.modules)", cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"
