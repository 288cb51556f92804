"""The MEM processor (``MEMReco`` columns, histograms, exact MAPE sums) on generated files and on real CMS NanoAOD,
its report section, and ``coffea-mlreco evaluate --tasks mem`` end to end."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest
from coffea import processor
from coffea.nanoevents import NanoAODSchema
from coffea_mlreco.processors.mem import MEMProcessor, discriminant

from coffea_mlreco.cli import main
from coffea_mlreco.evaluation.mem_report import dataset_kind, histogram_roc, mem_section
from coffea_mlreco.evaluation.tasks import TaskOptions
from coffea_mlreco.mem import mem_log_weights
from coffea_mlreco.mem.inputs import dilepton_candidates, integration_inputs

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
HYPS = ("dy_sm", "zprime")


def test_columns_on_generated_events(mem_events: dict[str, Any]) -> None:
    proc = MEMProcessor(TaskOptions(device="cpu"), max_integrated_events=20, seed=7)
    events = mem_events["zprime_ll"]
    events.metadata["dataset"] = "zprime_ll"
    out = proc.process(events)
    reco = events.MEMReco
    selected = ak.to_numpy(reco.selected)
    fields = set(ak.fields(reco))
    for h in HYPS:
        assert {f"logw_{h}_integrated", f"logw_{h}_integrated_err", f"logw_{h}_network"} <= fields
    net = ak.to_numpy(reco.logw_zprime_network)
    integ = ak.to_numpy(reco.logw_zprime_integrated)
    assert np.all(np.isfinite(net) == selected)  # the network on every selected event
    done = np.isfinite(integ)
    assert done.sum() == 20 and np.all(selected[done]) and np.flatnonzero(done).tolist() == np.flatnonzero(
        selected)[:20].tolist()  # the first 20 selected events of the chunk
    # integrated columns are mem_log_weights' (seed + entrystart; entrystart absent → 0)
    cand = dilepton_candidates(events)
    lep1, lep2, met = integration_inputs(cand[cand.selected][:20])
    direct = mem_log_weights(lep1, lep2, met, "zprime", precision=0.01, seed=7)
    np.testing.assert_allclose(integ[done], direct.log10_weight, rtol=0, atol=1e-12)
    d_net = ak.to_numpy(reco.d_network)
    np.testing.assert_allclose(d_net[selected], discriminant(net, ak.to_numpy(reco.logw_dy_sm_network))[selected])
    assert np.all((d_net[selected] >= 0) & (d_net[selected] <= 1)) and np.all(np.isnan(d_net[~selected]))
    # exact MAPE sums = the columns' |P̂/P − 1|
    for h in HYPS:
        rel = np.abs(10 ** (ak.to_numpy(reco[f"logw_{h}_network"])[done]
                            - ak.to_numpy(reco[f"logw_{h}_integrated"])[done]) - 1)
        assert out["mape_n"][h] == 20 and out["mape_sum"][h] == pytest.approx(rel.sum(), rel=1e-9)
        assert out["histograms"]["residual"][{"hypothesis": h}].sum(flow=True) == 20
    assert out["events_per_method"] == {"network": int(selected.sum()), "integrated": 20}
    llr = out["histograms"]["llr"]
    assert llr[{"method": "network", "dataset": "zprime_ll", "integrated": sum}].sum(flow=True) == selected.sum()
    assert llr[{"method": "network", "dataset": "zprime_ll", "integrated": 1}].sum(flow=True) == 20
    # skipping the integration leaves NaN-free network columns and no integrated ones
    proc_net = MEMProcessor(TaskOptions(device="cpu"), integrate=False)
    out_net = proc_net.process(events)
    assert "integrated" not in out_net["events_per_method"] and "logw_zprime_integrated" not in ak.fields(
        events.MEMReco)


def test_real_nanoaod(open_nano: Any) -> None:
    path = SHARED / "nano_dy.root"
    if not path.is_file():
        pytest.skip(f"{path} is absent (only in the development checkout)")
    events = open_nano(path)
    out = MEMProcessor(TaskOptions(device="cpu"), max_integrated_events=None).process(events)
    reco = events.MEMReco
    selected = ak.to_numpy(reco.selected)
    assert 1 <= selected.sum() == out["events_per_method"]["integrated"] == out["events_per_method"]["network"]
    for method in ("integrated", "network"):
        d = ak.to_numpy(reco[f"d_{method}"])
        assert np.all(np.isfinite(d[selected])) and np.all(np.isnan(d[~selected]))
    # Drell-Yan events at the Z peak: the SM hypothesis wins
    assert np.all(ak.to_numpy(reco.d_integrated)[selected] < 0.5)


def _run(files: dict[str, Path]) -> dict[str, Any]:
    runner = processor.Runner(executor=processor.IterativeExecutor(), schema=NanoAODSchema, chunksize=200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return runner({name: {"files": {str(path): "Events"}} for name, path in files.items()},
                      processor_instance=MEMProcessor(TaskOptions(device="cpu"), max_integrated_events=15),
                      treename="Events")


def test_report_section(mem_files: dict[str, Path], tmp_path: Path) -> None:
    output = _run(mem_files)
    assert output["hypotheses"] == {"signal": "zprime", "background": "dy_sm", "integrated": list(HYPS),
                                    "network": list(HYPS)}
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
