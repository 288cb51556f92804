"""MLPF test samples: tt̄ (semileptonic) at PU 20 with detector elements (200 events, and 20 for the mode
matrix and the processor runs), generated once per session."""

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
    return generate_sample(
        process, n, pileup, seed=seed, output=mlpf_dir / "tt_pu20_elements.root", progress=False, elements=True
    )


@pytest.fixture(scope="session")
def element_events(elements_file: Path) -> Any:
    """Eager NanoEvents of the element sample."""
    return open_events(elements_file)


@pytest.fixture(scope="session")
def small_elements_file(mlpf_dir: Path) -> Path:
    """20 tt̄ events at PU 20 with elements: the sample of the mode matrix and the processor runs (MLPF is slow on
    2 CPU cores)."""
    process, _, pileup, _ = SAMPLE
    return generate_sample(
        process, 20, pileup, seed=8302, output=mlpf_dir / "tt_pu20_elements_small.root", progress=False, elements=True
    )


@pytest.fixture(scope="session")
def mlpf_events(element_events: Any) -> Any:
    """The element sample with ``MLPFCands`` and ``MLPFReco`` appended by ``coffea_mlreco.mlpf.reconstruct``
    (default model choice: the shipped ``mlpf_pu60``, closest to PU 20)."""
    from coffea_mlreco.mlpf import reconstruct
    from coffea_mlreco.mlpf.wrapper import MLPF_MODELS

    if "mlpf_pu60" not in MLPF_MODELS.names():
        pytest.fail("the shipped model mlpf_pu60 is missing from mlpf/weights")
    return reconstruct(element_events, device="cpu")


@pytest.fixture(scope="session")
def mlpf_processed(element_events: Any, mlpf_events: Any) -> tuple[dict[str, Any], Any]:
    """The MLPF processor's output on the element sample, and the sample with the MLPF columns appended."""
    from coffea_mlreco.processors.mlpf import MLPFProcessor

    return MLPFProcessor().process(element_events), mlpf_events
