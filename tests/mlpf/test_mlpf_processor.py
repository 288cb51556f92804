"""MLPF processor built on ``mlpf.reconstruct`` + ``core.map_events``: identical histograms under
``processor.Runner`` and ``apply_to_fileset``, invalid events counted and left out, models from options."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import awkward as ak
import dask
import hist
import numpy as np
import pytest
from coffea import processor
from coffea.dataset_tools import apply_to_fileset
from coffea_mlreco.processors.mlpf import MET_METHODS, METHODS, MLPFProcessor
from column_modes import open_events

from coffea_mlreco.core.columns import to_numpy
from coffea_mlreco.core.metrics import hist_quantile
from coffea_mlreco.evaluation.runner import QuietNanoAODSchema
from coffea_mlreco.evaluation.tasks import TaskOptions
from coffea_mlreco.inference.model_cards import ModelCardError
from coffea_mlreco.mlpf.report import mlpf_section
from coffea_mlreco.mlpf.wrapper import MLPF_MODELS

HISTOGRAMS = ("efficiency", "fake", "response", "jet_response", "met")


def _assert_same_histograms(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert sorted(a) == sorted(b) == sorted(HISTOGRAMS)
    for name in HISTOGRAMS:
        assert a[name].axes == b[name].axes, name
        np.testing.assert_array_equal(a[name].values(flow=True), b[name].values(flow=True), err_msg=name)


@pytest.fixture(scope="module")
def small_eager(small_elements_file: Path) -> Any:
    return open_events(small_elements_file, "eager")


def test_runner_and_apply_to_fileset_give_identical_histograms(
    small_elements_file: Path, dask_client: Any, tmp_path: Path
) -> None:
    fileset = {"tt": {"files": {str(small_elements_file): "Events"}}}
    runner = processor.Runner(
        executor=processor.IterativeExecutor(status=False), chunksize=1000, schema=QuietNanoAODSchema
    )
    eager = runner(fileset, MLPFProcessor(), treename="Events")
    graphs = apply_to_fileset(MLPFProcessor(), fileset, schemaclass=QuietNanoAODSchema)
    assert isinstance(graphs["tt"]["histograms"]["met"], hist.dask.Hist)  # nothing computed yet
    (lazy,) = dask.compute(graphs["tt"], scheduler=dask_client.get)
    _assert_same_histograms(eager["histograms"], lazy["histograms"])
    assert eager["events"] == lazy["events"] == {"tt": 20}
    assert eager["events_invalid"] == lazy["events_invalid"] == 0
    assert eager["events_per_method"] == lazy["events_per_method"] == dict.fromkeys(METHODS, 20)
    assert eager["elements"] == lazy["elements"] > 20 * 500
    assert eager["seconds"]["mlpf"] > 0 and "seconds" not in lazy
    met = eager["histograms"]["met"]
    assert met.sum(flow=True) == 20 * len(MET_METHODS) * 4  # one entry per event, method and component
    for method in METHODS:
        assert eager["histograms"]["efficiency"][{"method": method}].sum(flow=True) > 20 * 300
    # the report section works on the graph's output (no timing there: no throughput)
    report = mlpf_section(lazy, tmp_path)
    assert report.throughput == {} and "20 events (0 left out" in report.html
    assert 0 <= report.metrics["mlpf"]["efficiency"]["charged_hadron"] <= 1
    assert set(mlpf_section(eager, tmp_path).throughput) == {"mlpf/mlpf"}


def test_invalid_events_are_counted_and_left_out(small_eager: Any) -> None:
    bad_event = 5
    energy = ak.to_packed(small_eager.PFCluster.energy)
    flat = to_numpy(ak.flatten(energy)).copy()
    flat[int(ak.sum(ak.num(energy, axis=1)[:bad_event]))] = np.inf
    broken = ak.with_field(small_eager, ak.unflatten(flat, ak.num(energy, axis=1)), where=("PFCluster", "energy"))
    out = MLPFProcessor().process(broken)
    assert "MLPFCands" not in broken.fields  # the caller's events are not changed
    n = len(small_eager)
    assert out["events"] == {"default": n} and out["events_invalid"] == 1
    assert out["events_per_method"] == dict.fromkeys(METHODS, n - 1)
    assert out["histograms"]["met"].sum(flow=True) == (n - 1) * len(MET_METHODS) * 4
    keep = np.arange(n) != bad_event
    targets = to_numpy(ak.sum(small_eager.PFTarget.cls > 0, axis=1))
    for method in METHODS:
        assert out["histograms"]["efficiency"][{"method": method}].sum(flow=True) == targets[keep].sum()
    # rule-based PF's histograms are those of the clean events without the bad one
    clean = MLPFProcessor().process(small_eager[keep])
    for name in ("efficiency", "fake", "response"):
        np.testing.assert_array_equal(
            out["histograms"][name][{"method": "pf"}].values(flow=True),
            clean["histograms"][name][{"method": "pf"}].values(flow=True),
        )
    for name in ("jet_response", "met"):
        for method in ("pf", "pf_puppi"):
            np.testing.assert_array_equal(
                out["histograms"][name][{"method": method}].values(flow=True),
                clean["histograms"][name][{"method": method}].values(flow=True),
            )


def test_models_from_options_and_from_a_directory(small_eager: Any, tmp_path: Path) -> None:
    options = TaskOptions(device="cpu", models={"mlpf": {"mlpf": "mlpf_pu200"}})
    assert MLPFProcessor(options=options).models == {"mlpf": "mlpf_pu200"}
    assert MLPFProcessor(models={"mlpf": "mlpf_pu60"}, options=options).models == {"mlpf": "mlpf_pu60"}
    with pytest.raises(ModelCardError, match="mlpf_pu7"):
        MLPFProcessor(models={"mlpf": "mlpf_pu7"})
    card = MLPF_MODELS.card("mlpf_pu60")
    shutil.copy(card["weights"], tmp_path / "model.safetensors")
    decision = dict(card["decision"])
    decision["neutral_pt_scale"] = (2 * np.asarray(decision["neutral_pt_scale"], np.float64)).tolist()
    (tmp_path / "model.json").write_text(json.dumps({**card, "weights": "model.safetensors", "decision": decision}))
    events = small_eager[:4]
    shipped = MLPFProcessor(options=TaskOptions(device="cpu")).process(events)["histograms"]["response"]
    from_dir = MLPFProcessor(options=TaskOptions(device="cpu", models={"mlpf": {"mlpf": str(tmp_path)}})).process(
        events
    )["histograms"]["response"]
    # same rule-based PF; MLPF neutral hadrons from the directory's card have twice the pT response
    np.testing.assert_array_equal(shipped[{"method": "pf"}].values(), from_dir[{"method": "pf"}].values())
    neutral = {"method": "mlpf", "cls": hist.loc(2)}
    assert from_dir[neutral].sum(flow=True) == shipped[neutral].sum(flow=True) > 100
    median = {k: hist_quantile(h[neutral], 0.5) for k, h in (("shipped", shipped), ("dir", from_dir))}
    assert median["dir"] == pytest.approx(2 * median["shipped"], abs=0.02)  # 0.01 bins


def test_empty_chunk(small_eager: Any) -> None:
    out = MLPFProcessor().process(small_eager[:0])
    assert out["events"] == {"default": 0} and out["events_invalid"] == 0 and out["elements"] == 0
    assert all(h.sum(flow=True) == 0 for h in out["histograms"].values())
