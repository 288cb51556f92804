"""A small PU 60 tt̄ dileptonic sample for the MET-model tests (generated once per session)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

from coffea_mlreco.simulation import generate_sample


@pytest.fixture(scope="session")
def dilep_pu60(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if "COFFEA_MLRECO_CACHE" not in os.environ:
        os.environ["COFFEA_MLRECO_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    return generate_sample(
        "ttbar-dilep", 200, 60, seed=41, output=tmp_path_factory.mktemp("met") / "dilep.root", progress=False
    )


@pytest.fixture(scope="session")
def baseline_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if "COFFEA_MLRECO_CACHE" not in os.environ:
        os.environ["COFFEA_MLRECO_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    return tmp_path_factory.mktemp("baselines")


def _events(path: Path):
    return NanoEventsFactory.from_root({str(path): "Events"}, schemaclass=NanoAODSchema, mode="eager").events()


@pytest.fixture(scope="session")
def ttbar_pu60(baseline_dir: Path):
    """150 semileptonic tt̄ events at PU 60 (the PUPPI tests)."""
    return _events(
        generate_sample("ttbar-semilep", 150, 60, seed=31, output=baseline_dir / "tt60.root", progress=False)
    )


@pytest.fixture(scope="session")
def dy_pu0(baseline_dir: Path):
    """100 Drell-Yan events without pileup (the PUPPI tests)."""
    return _events(generate_sample("dy-ll", 100, 0, seed=32, output=baseline_dir / "dy0.root", progress=False))
