"""Fixtures of the inference-runtime tests: model weights, a synthetic awkward chunk, a generated NanoAOD file.

Worker processes (futures/dask executors, dask-awkward graphs on the cluster) must rebuild the wrappers
and the processor defined in ``candidate_wrappers.py``. Two things make that independent of how pytest
was started: this directory is put on ``sys.path`` here, at collection time, before any worker process
exists (spawned dask and loky workers receive the parent's ``sys.path``), and the module is registered
with cloudpickle to be pickled *by value*, so the processor that coffea's Runner cloudpickles carries its
classes' code with it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import awkward as ak
import cloudpickle
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from coffea_mlreco.inference import MODEL_CACHE, TorchModule
from coffea_mlreco.nn.candidate_mlp import CandidateMLP

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import candidate_wrappers  # noqa: E402  (importable only once HERE is on sys.path)

cloudpickle.register_pickle_by_value(candidate_wrappers)


def _save_state(model: torch.nn.Module, path: Path) -> Path:
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


@pytest.fixture(scope="session")
def weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("weights")


@pytest.fixture(scope="session")
def mlp_weights(weights_dir: Path) -> Path:
    """safetensors weights of a randomly initialised ``CandidateMLP()`` (6 → 64 → 64 → 1), seed 0."""
    torch.manual_seed(0)
    return _save_state(CandidateMLP(), weights_dir / "candidate_mlp.safetensors")


@pytest.fixture(scope="session")
def mlp_backend(mlp_weights: Path) -> TorchModule:
    return TorchModule(candidate_wrappers.MLP_CLASS, mlp_weights)


@pytest.fixture(scope="session")
def mlp_reference(mlp_weights: Path) -> torch.nn.Module:
    """The same model, loaded without the package's backends (the independent reference)."""
    return candidate_wrappers.load_reference(CandidateMLP, mlp_weights)


@pytest.fixture(scope="session")
def save_state() -> object:
    """``save_state(model, path)``: write a module's weights as safetensors."""
    return _save_state


@pytest.fixture(scope="session")
def synthetic_events() -> ak.Array:
    """40 events of ``PFCands`` records (100–3000 candidates; events 3, 17 and 30 have none, event 5 has one)
    and an event-level ``Globals`` record {npvs, rho}; values in realistic ranges (GeV, rad)."""
    rng = np.random.default_rng(42)
    n = 40
    counts = rng.integers(100, 3001, n)
    counts[[3, 17, 30]] = 0
    counts[5] = 1
    total = int(counts.sum())
    pdg = rng.choice([211, -211, 22, 130, 11, -13], total).astype(np.int32)
    flat = {
        "pt": (rng.exponential(2.0, total) + 0.3).astype(np.float32),
        "eta": rng.uniform(-4.7, 4.7, total).astype(np.float32),
        "phi": rng.uniform(-np.pi, np.pi, total).astype(np.float32),
        "mass": np.where(np.abs(pdg) == 211, 0.1396, 0.0).astype(np.float32),
        "charge": np.where(np.isin(pdg, [22, 130]), 0, np.sign(pdg)).astype(np.int32),
        "pdgId": pdg,
        "dz": rng.normal(0, 0.1, total).astype(np.float32),  # not read by the wrappers
    }
    pfcands = ak.zip({k: ak.unflatten(v, counts) for k, v in flat.items()})
    event_globals = ak.zip(
        {"npvs": rng.poisson(30, n).astype(np.int32), "rho": rng.uniform(5, 40, n).astype(np.float32)}
    )
    return ak.zip({"PFCands": pfcands, "Globals": event_globals}, depth_limit=1)


@pytest.fixture(scope="session")
def nano_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 Drell-Yan events at PU 0 from the package's simulation (NanoAOD branch names, with PFCands)."""
    from coffea_mlreco.simulation import generate_sample

    return generate_sample("dy-ll", 60, 0, seed=5, output=tmp_path_factory.mktemp("nano") / "x.root", progress=False)


@pytest.fixture
def fresh_cache() -> Iterator[object]:
    """The process-wide model cache, emptied before and after the test (so that loads can be counted)."""
    MODEL_CACHE.clear()
    yield MODEL_CACHE
    MODEL_CACHE.clear()
