"""The MEM processor (histograms and exact MAPE sums filled from ``mem.reconstruct``'s ``MEMReco``) on generated
files and on real CMS NanoAOD: identical under ``processor.Runner`` and ``apply_to_fileset``, invalid events counted
and left out, a model directory through ``TaskOptions``, its report section, and ``coffea-mlreco evaluate --tasks
mem`` end to end."""

from __future__ import annotations

import json
import math
import shutil
import warnings
from pathlib import Path
from typing import Any

import awkward as ak
import dask
import numpy as np
import pytest
from coffea import processor
from coffea.dataset_tools import apply_to_fileset
from coffea.nanoevents import NanoAODSchema
from coffea.processor import accumulate
from coffea_mlreco.processors.mem import MAPE_QUANTUM, MEMProcessor, discriminant

from coffea_mlreco import mem
from coffea_mlreco.cli import main
from coffea_mlreco.core.metrics import histogram_roc
from coffea_mlreco.evaluation.tasks import TaskOptions
from coffea_mlreco.mem.datasets import dataset_kind
from coffea_mlreco.mem.report import mem_section
from coffea_mlreco.mem.wrappers import DEFAULT_MEM_MODEL, MEM_MODELS

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
HYPS = ("dy_sm", "zprime")


def _with_dataset(events: Any, name: str) -> Any:
    """The events with ``metadata["dataset"] = name`` (a new array: the session fixture's metadata is kept)."""
    return ak.with_parameter(events, "metadata", {**(events.metadata or {}), "dataset": name})


def test_processor_fills_from_the_columns(mem_events: dict[str, Any]) -> None:
    events = mem_events["zprime_ll"]
    fields = list(events.fields)
    proc = MEMProcessor(TaskOptions(device="cpu"), max_integrated_events=20, seed=7)
    out = proc.process(_with_dataset(events, "zprime_ll"))
    assert events.fields == fields  # the caller's events are not changed
    reco = mem.reconstruct(events, device="cpu", max_integrated_events=20, seed=7).MEMReco
    selected, done = ak.to_numpy(reco.selected), ak.to_numpy(reco.integrated)
    assert done.sum() == 20
    assert out["events_per_method"] == {"network": int(selected.sum()), "integrated": 20}
    assert out["events_selected"] == selected.sum() and out["events_invalid"] == 0
    assert out["events"] == {"zprime_ll": len(events)} and set(out["seconds"]) == {"integrated", "network"}
    for h in HYPS:  # exact MAPE sums = the columns' |P̂/P − 1| on the integrated events
        rel = np.abs(
            10 ** (ak.to_numpy(reco[f"logw_{h}_network"])[done] - ak.to_numpy(reco[f"logw_{h}_integrated"])[done]) - 1
        )
        assert out["mape_n"][h] == 20 and out["mape_sum"][h] == pytest.approx(rel.sum(), abs=20 * MAPE_QUANTUM)
        assert out["histograms"]["residual"][{"hypothesis": h}].sum(flow=True) == 20
    llr = out["histograms"]["llr"]
    assert llr[{"method": "network", "dataset": "zprime_ll", "integrated": sum}].sum(flow=True) == selected.sum()
    assert llr[{"method": "network", "dataset": "zprime_ll", "integrated": 1}].sum(flow=True) == 20
    assert llr[{"method": "integrated", "dataset": "zprime_ll", "integrated": 0}].sum(flow=True) == 0
    d = out["histograms"]["d"][{"method": "integrated", "dataset": "zprime_ll"}]
    d_values = ak.to_numpy(reco.d_integrated)[done]
    assert d.sum(flow=True) == 20 and np.sum(d.values()[-5:]) == np.sum(d_values >= 0.9)  # Z′ events: d near 1
    np.testing.assert_allclose(
        d_values, discriminant(ak.to_numpy(reco.logw_zprime_integrated), ak.to_numpy(reco.logw_dy_sm_integrated))[done]
    )
    # the network alone: no integration, every selected event in the integrated = 0 bin
    out_net = MEMProcessor(TaskOptions(device="cpu"), methods=("network",)).process(_with_dataset(events, "z"))
    assert out_net["events_per_method"] == {"network": int(selected.sum())} and out_net["mape_n"] == {}
    assert out_net["histograms"]["llr"][{"method": "network", "dataset": "z", "integrated": 0}].sum() == selected.sum()


def test_invalid_events_are_counted_and_left_out(mem_events: dict[str, Any]) -> None:
    events = mem_events["dy_ll"][:100]
    proc = MEMProcessor(TaskOptions(device="cpu"), max_integrated_events=None)
    clean = proc.process(_with_dataset(events, "dy_ll"))
    reco = mem.reconstruct(events, methods=("network",), device="cpu").MEMReco
    bad_event = int(np.flatnonzero(ak.to_numpy(reco.selected))[2])
    met_pt = ak.to_numpy(events.MET.pt).copy()
    met_pt[bad_event] = np.inf
    bad = proc.process(_with_dataset(ak.with_field(events, met_pt, where=("MET", "pt")), "dy_ll"))
    assert clean["events_invalid"] == 0 and bad["events_invalid"] == 1
    assert bad["events_selected"] == clean["events_selected"] - 1
    assert {m: n + 1 for m, n in bad["events_per_method"].items()} == clean["events_per_method"]
    for name in ("llr", "d"):
        assert bad["histograms"][name].sum(flow=True) == clean["histograms"][name].sum(flow=True) - 2  # 2 methods
    for h in HYPS:
        assert bad["mape_n"][h] == clean["mape_n"][h] - 1


def test_real_nanoaod(real_nano_dy: Path, open_nano: Any) -> None:
    events = open_nano(real_nano_dy)
    out = MEMProcessor(TaskOptions(device="cpu"), max_integrated_events=None).process(events)
    selected = ak.to_numpy(mem.reconstruct(events, methods=("network",), device="cpu").MEMReco.selected)
    assert 1 <= selected.sum() == out["events_per_method"]["integrated"] == out["events_per_method"]["network"]
    llr = out["histograms"]["llr"]
    for method in ("integrated", "network"):
        part = llr[{"method": method, "dataset": "default", "integrated": sum}]
        assert part.sum(flow=True) == selected.sum()
        centres = part.axes[0].centers
        assert np.all(centres[part.values() > 0] < 0)  # Drell-Yan at the Z peak: log10 P_Z′/P_DY < 0


def _fileset(files: dict[str, Path]) -> dict[str, Any]:
    return {name: {"files": {str(path): "Events"}} for name, path in files.items()}


def _run(files: dict[str, Path], proc: MEMProcessor, chunksize: int = 200) -> dict[str, Any]:
    runner = processor.Runner(executor=processor.IterativeExecutor(), schema=NanoAODSchema, chunksize=chunksize)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return runner(_fileset(files), processor_instance=proc, treename="Events")


def test_runner_and_apply_to_fileset_give_identical_histograms(
    mem_files: dict[str, Path], dask_client: Any, tmp_path: Path
) -> None:
    proc = MEMProcessor(TaskOptions(device="cpu"), max_integrated_events=None)
    eager = _run(mem_files, proc, chunksize=120)  # 3 chunks per file; the dask graph has one partition per file
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        graphs = apply_to_fileset(proc, _fileset(mem_files), schemaclass=NanoAODSchema)
    (computed,) = dask.compute(graphs, scheduler=dask_client.get)
    lazy = proc.postprocess(accumulate(computed.values()))
    assert "seconds" not in lazy and set(eager["seconds"]) == {"integrated", "network"}
    for name, h in eager["histograms"].items():
        other = lazy["histograms"][name]
        assert other.axes == h.axes, name
        np.testing.assert_array_equal(other.values(flow=True), h.values(flow=True), err_msg=name)
    for key in ("mape_sum", "mape_n", "events", "events_selected", "events_invalid", "events_per_method"):
        assert lazy[key] == eager[key], key  # the MAPE sums too: their terms are rounded, so sums are exact
    assert eager["events_per_method"]["integrated"] == eager["events_selected"] > 100
    report = mem_section(lazy, tmp_path)  # no timings in dask mode: no throughput rows
    assert report.throughput == {} and report.metrics == mem_section(eager, tmp_path).metrics
    assert report.metrics["integrated"]["auc"] > 0.95 and report.metrics["network"]["mape"] < 0.02


def test_a_model_directory_through_the_task_options(mem_events: dict[str, Any], tmp_path: Path) -> None:
    weights = Path(MEM_MODELS.card(DEFAULT_MEM_MODEL)["weights"])
    folder = tmp_path / "retrained"
    folder.mkdir()
    shutil.copy(weights.with_suffix(".json"), folder / "deepmem_retrained.json")
    shutil.copy(weights, folder / weights.name)
    options = TaskOptions(device="cpu", models={"mem": {"network": str(folder)}})
    proc = MEMProcessor(options, methods=("network",))
    assert Path(proc.model.backend.weights).parent == folder
    events = _with_dataset(mem_events["dy_ll"], "dy_ll")
    ours = proc.process(events)
    shipped = MEMProcessor(TaskOptions(device="cpu"), methods=("network",)).process(events)
    np.testing.assert_array_equal(
        ours["histograms"]["llr"].values(flow=True), shipped["histograms"]["llr"].values(flow=True)
    )
    with pytest.raises(ValueError, match="no shipped MEM model"):
        MEMProcessor(TaskOptions(device="cpu", models={"mem": {"network": "no_such_model"}}))


def test_report_section(mem_files: dict[str, Path], tmp_path: Path) -> None:
    output = _run(mem_files, MEMProcessor(TaskOptions(device="cpu"), max_integrated_events=15))
    assert output["hypotheses"] == {
        "signal": "zprime",
        "background": "dy_sm",
        "integrated": list(HYPS),
        "network": list(HYPS),
    }
    assert output["events_per_method"]["integrated"] == 15 * 4  # two chunks per file
    report = mem_section(output, tmp_path)
    m = report.metrics
    assert set(m) == {"integrated", "network"}
    assert {"auc", "n"} <= set(m["integrated"]) and {"mape", "auc", "n"} <= set(m["network"])
    assert m["integrated"]["n"] == 60 and m["network"]["n"] == output["events_selected"]
    assert set(m["network"]["mape_per_hypothesis"]) == set(HYPS) and 0 <= m["network"]["mape"] < 0.05
    assert 0.9 < m["integrated"]["auc"] <= 1
    assert abs(m["network"]["auc_integrated_events"] - m["integrated"]["auc"]) < 0.02
    assert set(report.throughput) == {"mem/integrated", "mem/network"}
    for name in ("mem_weight_residual.png", "mem_roc.png", "mem_discriminant_dy_ll.png"):
        assert (tmp_path / name).exists(), name
    assert "MAPE" in report.html and "mem/network/residual_zprime" in report.root_histograms
    assert "0 event(s) with NaN/inf inputs" in report.html


def test_dataset_kinds_and_roc() -> None:
    assert dataset_kind("zprime_ll") == "signal" and dataset_kind("ZPrime-200") == "signal"
    assert dataset_kind("zp_7221") == "signal"
    for name in ("dy_ll", "DYJetsToLL_M-50", "drell-yan", "dy_7121"):
        assert dataset_kind(name) == "background", name
    assert dataset_kind("ttbar") is None and dataset_kind("zprime_vs_dy") is None
    import hist

    axis = hist.axis.Regular(10, 0, 1)
    s, b = hist.Hist(axis), hist.Hist(axis)
    s.fill(np.full(5, 0.95))
    b.fill(np.full(5, 0.05))
    eff_b, eff_s, auc = histogram_roc(s, b)
    assert auc == 1.0 and eff_s[-1] == eff_b[-1] == 1.0
    assert math.isnan(histogram_roc(s, hist.Hist(axis))[2])


def test_evaluate_end_to_end(mem_files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "report"
    files = [str(mem_files["dy_ll"]), str(mem_files["zprime_ll"])]
    assert main(["evaluate", *files, "--tasks", "mem", "--output", str(out), "--device", "cpu"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    mem = metrics["mem"]
    assert set(mem) == {"integrated", "network"}
    assert {"auc", "n"} <= set(mem["integrated"]) and {"mape", "auc", "n"} <= set(mem["network"])
    assert 0 <= mem["network"]["mape"] < 0.05 and mem["integrated"]["n"] == mem["network"]["n"]
    assert {"mem/integrated", "mem/network"} <= set(metrics["throughput"])
    assert "Matrix Element Method" in (out / "index.html").read_text()
