"""The wrapper inside a coffea processor under `processor.Runner` with the iterative, futures (2 processes)
and dask (LocalCluster, 2 worker processes) executors: the same outputs everywhere, equal to the per-event
reference, and the model loaded exactly once in each process although every process runs several chunks.

The processor and the wrapper come from ``candidate_wrappers`` (see conftest.py for how worker processes
get them); each chunk reports its process id and how many times that process has loaded the model.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest
import torch
from candidate_wrappers import CandidateWrapper, InferenceProcessor, reference_outputs
from coffea import processor
from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

from coffea_mlreco.inference import ModelCache, TorchModule

CHUNKSIZE = 10  # 60 events → 6 chunks, for at most 2 processes: several chunks per process


def run(path: Path, executor: processor.executor.ExecutorBase, backend: TorchModule) -> dict[str, Any]:
    runner = processor.Runner(executor=executor, chunksize=CHUNKSIZE, schema=NanoAODSchema)
    wrapper = CandidateWrapper(backend, device="cpu")
    return runner({"dy": {"files": {str(path): "Events"}}}, InferenceProcessor(wrapper), treename="Events")


@pytest.fixture(scope="module")
def reference(nano_file: Path, mlp_reference: torch.nn.Module) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-candidate weights, per-event MET and candidate counts of the whole file, one event at a time."""
    events = NanoEventsFactory.from_root({str(nano_file): "Events"}, schemaclass=NanoAODSchema, mode="eager").events()
    weight, met = reference_outputs(mlp_reference, events.PFCands)
    return weight, met, ak.to_numpy(ak.num(events.PFCands))


@pytest.fixture(scope="module")
def iterative_result(nano_file: Path, mlp_backend: TorchModule) -> dict[str, Any]:
    return run(nano_file, processor.IterativeExecutor(status=False), mlp_backend)


def by_chunk(out: dict[str, Any], name: str) -> np.ndarray:
    return np.concatenate([np.atleast_1d(out[name][start]) for start in sorted(out[name])])


def check_result(
    out: dict[str, Any], reference: tuple[np.ndarray, np.ndarray, np.ndarray], in_main_process: bool
) -> None:
    weight, met, counts = reference
    assert sorted(out["met_xy"]) == list(range(0, 60, CHUNKSIZE))
    np.testing.assert_array_equal(by_chunk(out, "n_cands"), counts)
    np.testing.assert_allclose(by_chunk(out, "met_xy"), met, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(sum(out["weight_sum"].values()), weight.astype(np.float64).sum(), rtol=1e-6)
    assert out["met_x"].sum(flow=True) == 60

    pids = set(out["chunks"])
    assert sum(out["chunks"].values()) == 6
    if in_main_process:
        assert pids == {os.getpid()}
    else:
        assert os.getpid() not in pids and 1 <= len(pids) <= 2
    assert max(out["chunks"].values()) >= 3  # some process ran several chunks...
    # ...and after every chunk, every process had loaded the model exactly once
    assert out["loads"] == {(pid, 1) for pid in pids}, out["loads"]


def test_iterative(
    iterative_result: dict[str, Any],
    reference: tuple[np.ndarray, ...],
    nano_file: Path,
    mlp_backend: TorchModule,
    fresh_cache: ModelCache,
) -> None:
    check_result(
        run(nano_file, processor.IterativeExecutor(status=False), mlp_backend), reference, in_main_process=True
    )
    check_result(iterative_result, reference, in_main_process=True)  # (loaded while the cache held it)


def assert_same_physics(out: dict[str, Any], expected: dict[str, Any]) -> None:
    np.testing.assert_array_equal(out["met_x"].view(flow=True), expected["met_x"].view(flow=True))
    for name in ("met_xy", "n_cands"):
        np.testing.assert_allclose(by_chunk(out, name), by_chunk(expected, name), rtol=1e-6, atol=1e-6)
    for start, value in expected["weight_sum"].items():
        assert out["weight_sum"][start] == pytest.approx(value, rel=1e-6)


def test_futures_two_processes(
    nano_file: Path, mlp_backend: TorchModule, iterative_result: dict[str, Any], reference: tuple[np.ndarray, ...]
) -> None:
    out = run(nano_file, processor.FuturesExecutor(workers=2, status=False), mlp_backend)
    check_result(out, reference, in_main_process=False)
    assert_same_physics(out, iterative_result)


def test_dask_local_cluster(
    nano_file: Path,
    mlp_backend: TorchModule,
    iterative_result: dict[str, Any],
    reference: tuple[np.ndarray, ...],
    dask_client: Any,
) -> None:
    workers = dask_client.scheduler_info()["workers"]
    assert len(workers) == 2 and all(w["nthreads"] == 1 for w in workers.values())
    out = run(nano_file, processor.DaskExecutor(client=dask_client, status=False), mlp_backend)
    check_result(out, reference, in_main_process=False)
    assert_same_physics(out, iterative_result)
