"""Small semileptonic tt̄ samples without PF candidates (generated once per session) and their events."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from coffea_mlreco.simulation import generate_sample
from coffea_mlreco.ttbar.inputs import assignment_targets, semileptonic_inputs


@pytest.fixture(scope="session")
def semilep_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if "COFFEA_MLRECO_CACHE" not in os.environ:
        os.environ["COFFEA_MLRECO_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    return generate_sample(
        "ttbar-semilep",
        1500,
        0,
        seed=61,
        output=tmp_path_factory.mktemp("ttbar") / "semilep.root",
        progress=False,
        drop=("PFCands",),
    )


@pytest.fixture(scope="session")
def small_semilep_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200 semileptonic tt̄ events at pileup 0 (another seed): for the coffea-mode matrix and the processor."""
    if "COFFEA_MLRECO_CACHE" not in os.environ:
        os.environ["COFFEA_MLRECO_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    return generate_sample(
        "ttbar-semilep",
        200,
        0,
        seed=62,
        output=tmp_path_factory.mktemp("ttbar") / "small.root",
        progress=False,
        drop=("PFCands",),
    )


def _open_events(path: Path) -> Any:
    from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # cross-references to collections the file lacks
        return NanoEventsFactory.from_root({str(path): "Events"}, schemaclass=NanoAODSchema, mode="eager").events()


@pytest.fixture(scope="session")
def open_events() -> Callable[[Path], Any]:
    """Eager NanoEvents of a file (``open_events(path)``)."""
    return _open_events


@pytest.fixture(scope="session")
def semilep_events(semilep_file: Path) -> Any:
    return _open_events(semilep_file)


@pytest.fixture(scope="session")
def tt_assignment(tmp_path_factory: pytest.TempPathFactory):
    """2000 semileptonic tt̄ events at pileup 0 (shared by the χ² and KLFitter-style fit tests): events, the
    assignment inputs and the true jet positions."""
    if "COFFEA_MLRECO_CACHE" not in os.environ:
        os.environ["COFFEA_MLRECO_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    path = tmp_path_factory.mktemp("baselines") / "tt_assignment_pu0.root"
    generate_sample("ttbar-semilep", 2000, 0, seed=77, output=path, jobs=2, progress=False, drop=("PFCands",))
    events = _open_events(path)
    inputs = semileptonic_inputs(events)
    return events, inputs, assignment_targets(events, inputs.jets), path
