"""One wrapper, three NanoEvents modes (eager, virtual, dask-awkward): the same outputs, and in dask mode
a graph that reads only the branches the wrapper's ``prepare`` uses."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import awkward as ak
import dask_awkward as dak
import numpy as np
import pytest
import torch
from candidate_wrappers import (
    FEATURES,
    GLOBALS_CLASS,
    CandidateWrapper,
    GlobalsMLP,
    NanoGlobalsWrapper,
    TruncatedWrapper,
    reference_outputs,
)
from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

from coffea_mlreco.inference import TorchModule

PFCANDS_COLUMNS = {f"PFCands_{f}" for f in FEATURES} | {"nPFCands"}


def open_events(path: Path, mode: str, partitions: int = 1) -> Any:
    """The file's 60 events; in dask mode cut into ``partitions`` equal steps (uproot's files specification)."""
    if partitions == 1:
        return NanoEventsFactory.from_root({str(path): "Events"}, schemaclass=NanoAODSchema, mode=mode).events()
    edges = np.linspace(0, 60, partitions + 1).astype(int).tolist()
    files = {str(path): {"object_path": "Events", "steps": [list(step) for step in itertools.pairwise(edges)]}}
    return NanoEventsFactory.from_root(files, schemaclass=NanoAODSchema, mode=mode).events()


@pytest.fixture(scope="module")
def eager_events(nano_file: Path) -> ak.Array:
    return open_events(nano_file, "eager")


@pytest.fixture(scope="module")
def reference(eager_events: ak.Array, mlp_reference: torch.nn.Module) -> tuple[np.ndarray, np.ndarray]:
    return reference_outputs(mlp_reference, eager_events.PFCands)


def run_in_mode(wrapper: CandidateWrapper, path: Path, mode: str, request: pytest.FixtureRequest) -> ak.Array:
    if mode in ("eager", "virtual"):
        out = wrapper(open_events(path, mode))
        assert isinstance(out, ak.Array)
        return out
    events = open_events(path, "dask", partitions=3 if mode == "dask-3-partitions" else 1)
    out = wrapper(events)
    assert isinstance(out, dak.Array)
    assert out.npartitions == (3 if mode == "dask-3-partitions" else 1)
    if mode == "dask-distributed":  # the wrapper travels in the graph to the cluster's worker processes
        return request.getfixturevalue("dask_client").compute(out).result()
    return out.compute()  # the distributed client if one is active (e.g. the session's), else threads


MODES = ["eager", "virtual", "dask", "dask-3-partitions", "dask-distributed"]


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_gives_the_reference_outputs(
    nano_file: Path,
    mlp_backend: TorchModule,
    mode: str,
    eager_events: ak.Array,
    reference: tuple[np.ndarray, np.ndarray],
    request: pytest.FixtureRequest,
) -> None:
    out = run_in_mode(CandidateWrapper(mlp_backend, device="cpu"), nano_file, mode, request)
    eager = CandidateWrapper(mlp_backend, device="cpu")(eager_events)
    assert len(out) == len(eager_events) == 60
    assert str(out.type) == "60 * {weight: var * float32, met_xy: 2 * float32}"
    if mode != "dask-3-partitions":  # one chunk of the same 60 events, same mini-batches: bitwise equal
        assert ak.array_equal(out, eager), f"{mode} differs from eager"
    weight, met = reference
    np.testing.assert_array_equal(ak.to_numpy(ak.num(out.weight)), ak.to_numpy(ak.num(eager_events.PFCands)))
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(out.weight)), weight, rtol=0, atol=1e-5)
    np.testing.assert_allclose(ak.to_numpy(out.met_xy), met, rtol=1e-5, atol=1e-5)


def test_dask_output_metadata(nano_file: Path, mlp_backend: TorchModule) -> None:
    out = CandidateWrapper(mlp_backend, device="cpu")(open_events(nano_file, "dask"))
    assert ak.fields(out) == ["weight", "met_xy"]
    assert str(out._meta.type.content) == "{weight: var * float32, met_xy: 2 * float32}"


@pytest.fixture(scope="module")
def globals1_backend(weights_dir: Path, save_state: Any) -> TorchModule:
    torch.manual_seed(2)
    path = save_state(GlobalsMLP(1), weights_dir / "globals_npvs.safetensors")
    return TorchModule(GLOBALS_CLASS, path, config={"n_globals": 1})


@pytest.mark.parametrize(
    ("wrapper_class", "extra"),
    [(CandidateWrapper, set()), (TruncatedWrapper, set()), (NanoGlobalsWrapper, {"PV_npvs"})],
)
def test_dask_graph_reads_only_the_model_inputs(
    nano_file: Path,
    mlp_backend: TorchModule,
    globals1_backend: TorchModule,
    wrapper_class: type[CandidateWrapper],
    extra: set[str],
) -> None:
    backend = globals1_backend if wrapper_class is NanoGlobalsWrapper else mlp_backend
    out = wrapper_class(backend, device="cpu")(open_events(nano_file, "dask"))
    report = dak.report_necessary_columns(out)
    assert len(report) == 1
    (columns,) = report.values()
    assert set(columns) == PFCANDS_COLUMNS | extra  # no Jet_*, GenPart_*, PFCands_dz, ...


def test_dense_input_in_dask_mode_equals_eager(
    nano_file: Path, globals1_backend: TorchModule, eager_events: ak.Array
) -> None:
    wrapper = NanoGlobalsWrapper(globals1_backend, device="cpu")
    lazy = wrapper(open_events(nano_file, "dask")).compute()
    assert ak.array_equal(lazy, wrapper(eager_events))


def test_dask_empty_selection(nano_file: Path, mlp_backend: TorchModule) -> None:
    events = open_events(nano_file, "dask")
    selected = events[ak.num(events.PFCands, axis=1) < 0]  # no event passes
    out = CandidateWrapper(mlp_backend, device="cpu")(selected).compute()
    assert len(out) == 0
    assert str(out.type) == "0 * {weight: var * float32, met_xy: 2 * float32}"
