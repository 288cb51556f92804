"""Every package under src/ is listed in pyproject.toml, so that `pip install .` ships it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_installed() -> None:
    if sys.version_info < (3, 11):
        pytest.skip("tomllib needs Python 3.11")
    import tomllib

    pyproject = ROOT / "pyproject.toml"
    if not pyproject.exists():
        pytest.skip("not a source checkout")
    listed = set(tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["packages"])
    src = ROOT / "src"
    found = {".".join(p.parent.relative_to(src).parts) for p in src.rglob("__init__.py")}
    assert found <= listed, f"packages missing from pyproject.toml: {sorted(found - listed)}"


def test_readme_names_and_paths_exist() -> None:
    """Every ``coffea_mlreco.…`` name README.md shows imports, and every ``src/…``, ``processors/…`` path it names
    exists (README's tour and its "where things live" table follow the code when modules move)."""
    import importlib
    import re

    readme = ROOT / "README.md"
    if not readme.exists():
        pytest.skip("not a source checkout")
    text = readme.read_text()
    names = set(re.findall(r"`(?:from )?(coffea_mlreco(?:\.\w+)+)", text))
    assert "coffea_mlreco.met.reconstruct" in names  # the pattern finds the README's names
    for name in sorted(names):
        module, _, attribute = name.rpartition(".")
        try:
            importlib.import_module(name)
        except ModuleNotFoundError:
            assert hasattr(importlib.import_module(module), attribute), f"README names {name}, which does not exist"
    paths = set(re.findall(r"`((?:src/coffea_mlreco|processors|benchmarks|examples)/[\w/.*-]*)`", text))
    assert paths
    # a model is named without its suffixes (weights/deepmem: deepmem.json and deepmem.safetensors)
    missing = [p for p in sorted(paths) if not list(ROOT.glob(p.rstrip("/"))) + list(ROOT.glob(p + ".*"))]
    assert not missing, f"README names paths that do not exist: {missing}"


def test_test_module_names_are_unique() -> None:
    """The test folders have no ``__init__.py``, so pytest imports each test module by its file name: two modules
    of the same name in different folders stop the whole collection."""
    names = [path.name for path in (ROOT / "tests").rglob("test_*.py")]
    assert sorted({n for n in names if names.count(n) > 1}) == []
