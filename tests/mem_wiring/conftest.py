"""MEM wiring test samples: small Drell-Yan and Z′ files from our simulation (PU 0, seeds never used in training),
generated once per session, and their MEM weight tables.

Module-level helpers are reached through fixtures only (``tests/`` has several conftest.py files).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import pytest

from coffea_mlreco.simulation import generate_sample

SAMPLES = {"dy_ll": ("dy-ll", 300, 9301), "zprime_ll": ("zprime-ll", 300, 9302)}
"""name (the dataset name evaluate gives the file): (process, events, generator seed); PU 0."""


def _open(path: Path) -> Any:
    from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return NanoEventsFactory.from_root({str(path): "Events"}, schemaclass=NanoAODSchema, mode="eager").events()


@pytest.fixture(scope="session")
def mem_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``{"dy_ll": path, "zprime_ll": path}``: 300 events each, without PF candidates."""
    if "COFFEA_MLRECO_CACHE" not in os.environ:
        os.environ["COFFEA_MLRECO_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    folder = tmp_path_factory.mktemp("mem_wiring")
    return {name: generate_sample(process, n, 0, seed=seed, output=folder / f"{name}.root", progress=False,
                                  drop=("PFCands",))
            for name, (process, n, seed) in SAMPLES.items()}


@pytest.fixture(scope="session")
def mem_events(mem_files: dict[str, Path]) -> dict[str, Any]:
    """Eager NanoEvents of the two samples."""
    return {name: _open(path) for name, path in mem_files.items()}


@pytest.fixture(scope="session")
def open_nano() -> Any:
    """``open_nano(path)``: eager NanoEvents of a file."""
    return _open


@pytest.fixture(scope="session")
def mem_tables(mem_files: dict[str, Path]) -> dict[str, Any]:
    """MEM weight tables (``dy_sm``, ``zprime``; precision 0.3 %) of every selected event of the two samples."""
    from coffea_mlreco.mem.tables import mem_table_from_file

    return {name: mem_table_from_file(path, ("dy_sm", "zprime"), precision=0.003, seed=5, n_workers=2)
            for name, path in mem_files.items()}
