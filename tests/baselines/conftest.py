"""Generated samples for the baseline tests (once per session; pileup library in a temporary cache)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

from coffea_mlreco.simulation import generate_sample
from coffea_mlreco.ttbar.inputs import assignment_targets, semileptonic_inputs


@pytest.fixture(scope="session")
def baseline_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if "COFFEA_MLRECO_CACHE" not in os.environ:
        os.environ["COFFEA_MLRECO_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    return tmp_path_factory.mktemp("baselines")


def _events(path: Path):
    return NanoEventsFactory.from_root({str(path): "Events"}, schemaclass=NanoAODSchema, mode="eager").events()


@pytest.fixture(scope="session")
def ttbar_pu60(baseline_dir: Path):
    return _events(generate_sample("ttbar-semilep", 150, 60, seed=31, output=baseline_dir / "tt60.root",
                                   progress=False))


@pytest.fixture(scope="session")
def dy_pu0(baseline_dir: Path):
    return _events(generate_sample("dy-ll", 100, 0, seed=32, output=baseline_dir / "dy0.root", progress=False))


@pytest.fixture(scope="session")
def tt_assignment(baseline_dir: Path):
    """2000 semileptonic tt̄ events at pileup 0 (shared by the χ² and KLFitter-style fit tests): events, the
    assignment inputs and the true jet positions."""
    path = baseline_dir / "tt_assignment_pu0.root"
    if not path.exists():
        generate_sample("ttbar-semilep", 2000, 0, seed=77, output=path, jobs=2, progress=False, drop=("PFCands",))
    events = _events(path)
    inputs = semileptonic_inputs(events)
    return events, inputs, assignment_targets(events, inputs.jets), path
