"""Generated samples shared by the simulation tests (made once per test session, in a temporary cache)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from coffea_mlreco.simulation import generate_sample


@pytest.fixture(scope="session")
def sim_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory for generated files; the pileup library goes to COFFEA_MLRECO_CACHE (or a temp dir)."""
    if "COFFEA_MLRECO_CACHE" not in os.environ:
        os.environ["COFFEA_MLRECO_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    return tmp_path_factory.mktemp("generated")


@pytest.fixture(scope="session")
def ttbar_pu0(sim_dir: Path) -> Path:
    return generate_sample("ttbar-semilep", 1500, 0, seed=11, output=sim_dir / "tt_pu0.root", jobs=2, progress=False)


@pytest.fixture(scope="session")
def dy_pu0(sim_dir: Path) -> Path:
    return generate_sample("dy-ll", 800, 0, seed=12, output=sim_dir / "dy_pu0.root", progress=False)


@pytest.fixture(scope="session")
def ztautau_pu0(sim_dir: Path) -> Path:
    return generate_sample("ztautau", 800, 0, seed=13, output=sim_dir / "ztt_pu0.root", progress=False)


@pytest.fixture(scope="session")
def ttbar_pu200(sim_dir: Path) -> Path:
    return generate_sample("ttbar-semilep", 24, 200, seed=14, output=sim_dir / "tt_pu200.root", progress=False)
