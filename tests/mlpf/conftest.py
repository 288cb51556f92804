"""MLPF test sample: tt̄ (semileptonic) at PU 20 with detector elements, generated once per session."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import pytest

from coffea_mlreco.simulation import generate_sample

SAMPLE = ("ttbar-semilep", 200, 20, 8301)  # process, events, pileup, seed


def open_events(path: Path) -> Any:
    from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # cross-references to collections the file lacks
        return NanoEventsFactory.from_root({str(path): "Events"}, schemaclass=NanoAODSchema, mode="eager").events()


@pytest.fixture(scope="session")
def mlpf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if "COFFEA_MLRECO_CACHE" not in os.environ:
        os.environ["COFFEA_MLRECO_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    return tmp_path_factory.mktemp("mlpf")


@pytest.fixture(scope="session")
def elements_file(mlpf_dir: Path) -> Path:
    process, n, pileup, seed = SAMPLE
    return generate_sample(process, n, pileup, seed=seed, output=mlpf_dir / "tt_pu20_elements.root", progress=False,
                           elements=True)


@pytest.fixture(scope="session")
def element_events(elements_file: Path) -> Any:
    """Eager NanoEvents of the element sample."""
    return open_events(elements_file)


@pytest.fixture(scope="session")
def mlpf_processed(element_events: Any) -> tuple[dict[str, Any], Any]:
    """The MLPF processor's output on the sample (shipped model ``mlpf_pu60``) and the events with the
    ``MLPFCands`` column it appends (a shallow copy: the shared ``element_events`` stay as read)."""
    from coffea_mlreco.processors.mlpf import MLPFProcessor

    from coffea_mlreco.mlpf.wrapper import shipped_mlpf_models

    if "mlpf_pu60" not in shipped_mlpf_models():
        pytest.fail("the shipped model mlpf_pu60 is missing from mlpf/weights")
    events = element_events[:]
    return MLPFProcessor().process(events), events
