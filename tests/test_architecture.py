"""The architecture is checked, not only described: one installed namespace, and layers that import
only from the layers below them (the import-linter contracts in ``pyproject.toml``)."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import pkgutil
import tomllib
from pathlib import Path

import pytest

import metalearn

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
LAYERS: list[str] = PYPROJECT["tool"]["importlinter"]["contracts"][0]["layers"]


def test_the_layer_contracts_hold() -> None:
    importlinter_cli = pytest.importorskip("importlinter.cli", reason="import-linter is a dev dependency")
    code = importlinter_cli.lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True)
    assert code == 0, "a lower layer imports a higher one: run `lint-imports` for the chain"


def _imports_of(path: Path, package: str) -> set[str]:
    """Every metalearn module ``path`` imports (absolute and relative imports, also inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("metalearn"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            if mod.startswith("metalearn"):
                found.add(mod)
                found.update(f"{mod}.{a.name}" for a in node.names)
    return found


def _layer_of(module: str) -> int | None:
    for i, layer in enumerate(LAYERS):
        if module == layer or module.startswith(layer + "."):
            return i
    return None


def test_no_module_imports_a_higher_layer_by_parsing() -> None:
    """The same rule without import-linter's machinery (so a broken contract file cannot hide a
    violation): parse every module and compare the layer of each metalearn import with its own."""
    violations = []
    for path in sorted((ROOT / "metalearn").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        own = _layer_of(module)
        if own is None:
            continue
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        for imported in _imports_of(path, package.removesuffix(".__init__")):
            other = _layer_of(imported)
            if other is not None and other < own:  # LAYERS lists the top layer first
                violations.append(f"{module} imports {imported}")
    assert violations == []


def test_every_module_lives_in_a_layer() -> None:
    top = {m.name for m in pkgutil.iter_modules(metalearn.__path__, "metalearn.")}
    assert top <= set(LAYERS), f"modules outside every layer: {sorted(top - set(LAYERS))}"


def test_the_distribution_installs_only_the_metalearn_namespace() -> None:
    from setuptools import find_packages

    conf = PYPROJECT["tool"]["setuptools"]["packages"]["find"]
    packages = find_packages(str(ROOT), include=conf["include"], exclude=conf.get("exclude", ()))
    assert packages and {p.split(".")[0] for p in packages} == {"metalearn"}
    for name in ("api", "kb", "tasks"):  # the generic names of the old layout collide with users' modules
        assert not (ROOT / name / "__init__.py").exists()


@pytest.mark.parametrize("layer", LAYERS)
def test_each_layer_says_what_it_holds_and_may_import(layer: str) -> None:
    doc = importlib.import_module(layer).__doc__ or ""
    assert "May import" in doc, f"{layer}.__init__ docstring must say what the layer may import"


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def test_no_module_imports_another_modules_private_names() -> None:
    """A leading underscore says "this module's own": a module that imports another's ``_name`` (``from
    metalearn.benchmark.report import _f``, a name inside a multi-line import block) or reads ``module._name`` of
    a metalearn module it imported depends on what that module may change at will. Names used across modules
    are public (renamed, documented)."""
    violations = []
    for path in sorted((ROOT / "metalearn").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        tree = ast.parse(path.read_text())
        modules: set[str] = set()  # local names bound to a metalearn module
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                source = (f"{base}.{node.module}" if node.module else base) if node.level else node.module or ""
                if not source.startswith("metalearn"):
                    continue
                for a in node.names:
                    if a.name.startswith("_") and not a.name.startswith("__"):
                        violations.append(f"{module}:{node.lineno} imports {source}.{a.name}")
                    elif _is_module(f"{source}.{a.name}"):
                        modules.add(a.asname or a.name)
            elif isinstance(node, ast.Import):
                modules.update(a.asname or a.name.split(".")[0] for a in node.names if a.name.startswith("metalearn"))
        violations += [f"{module}:{node.lineno} reads {node.value.id}.{node.attr}" for node in ast.walk(tree)
                       if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                       and node.value.id in modules and node.attr.startswith("_") and not node.attr.startswith("__")]
    assert violations == []
