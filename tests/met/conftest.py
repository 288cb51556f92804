"""A small PU 60 tt̄ dileptonic sample for the MET-model tests (generated once per session)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from coffea_mlreco.simulation import generate_sample


@pytest.fixture(scope="session")
def dilep_pu60(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if "COFFEA_MLRECO_CACHE" not in os.environ:
        os.environ["COFFEA_MLRECO_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    return generate_sample("ttbar-dilep", 200, 60, seed=41, output=tmp_path_factory.mktemp("met") / "dilep.root",
                           progress=False)
