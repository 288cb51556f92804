"""The tt̄ processor: every method on the same events, valid TTbarReco columns, executors, real CMS data,
and the evaluate command's ttbar section."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest
from coffea import processor
from coffea.nanoevents import NanoAODSchema
from coffea_mlreco.processors.ttbar import METHODS, TTbarProcessor, default_models

from coffea_mlreco.cli import main
from coffea_mlreco.evaluation.ttbar_report import assignment_efficiencies

pytestmark = [pytest.mark.filterwarnings("ignore:Missing cross-reference index:RuntimeWarning"),
              pytest.mark.filterwarnings("ignore:Branch .* already exists but:RuntimeWarning")]


@pytest.fixture(scope="module")
def ttbar_processor() -> TTbarProcessor:
    return TTbarProcessor(options=None)


def test_shipped_models_are_found() -> None:
    assert set(default_models()) == {"pdnn", "spanet"}


def test_columns_point_at_distinct_jets(semilep_events: Any, ttbar_processor: TTbarProcessor) -> None:
    events = semilep_events[:400]
    out = ttbar_processor.process(events)
    assert set(out["events_per_method"]) == set(METHODS)
    reco = events.TTbarReco
    n_jet = np.asarray(ak.to_numpy(ak.num(events.Jet, axis=1)))
    for method in METHODS:
        index = np.stack([np.asarray(ak.to_numpy(reco[method][f])) for f in ("had_b", "had_q1", "had_q2", "lep_b")], 1)
        assigned = index[:, 0] >= 0
        assert assigned.sum() == out["events_selected"]
        assert np.all(index[assigned] < n_jet[assigned, None])
        assert all(len(set(row)) == 4 for row in index[assigned])
        assert np.all(index[~assigned] == -1)
        # the assigned jets are selected jets: pT > 25 GeV
        jet_pt = events.Jet.pt[assigned][ak.Array(index[assigned].tolist())]
        assert ak.all(jet_pt > 25.0)
    spanet = reco.spanet[np.asarray(ak.to_numpy(reco.spanet.had_b)) >= 0]
    assert ak.all((spanet.assignment_prob.t_had > 0) & (spanet.assignment_prob.t_had <= 1))
    assert ak.all(abs(spanet.marginal_prob.t_lep - spanet.assignment_prob.t_lep * spanet.detection_prob.t_lep) < 1e-6)
    assert out["histograms"]["outcome"].sum() == len(METHODS) * out["events_selected"]


def test_runner_and_efficiency_ordering(semilep_file: Path, ttbar_processor: TTbarProcessor) -> None:
    runner = processor.Runner(executor=processor.IterativeExecutor(), chunksize=500, schema=NanoAODSchema)
    out = runner({"tt": {"files": {str(semilep_file): "Events"}}}, ttbar_processor, treename="Events")
    metrics = assignment_efficiencies(out["histograms"]["outcome"])
    assert set(metrics) == set(METHODS)
    eff = {m: metrics[m]["event_efficiency"]["all"] for m in METHODS}
    # on clean (PU 0) events every method is far above chance, and the likelihood fit is not below the χ²
    assert min(eff.values()) > 0.3
    assert eff["klfitter"] >= eff["chi2"] - 0.02
    residual = out["histograms"]["nu_eta_residual"]
    assert residual[{"method": "spanet"}].sum() > 100


def test_real_cms_file_and_empty_chunk(real_nano_tt: Path, open_events: Any, ttbar_processor: TTbarProcessor) -> None:
    events = open_events(real_nano_tt)
    out = ttbar_processor.process(events)
    assert out["events_selected"] > 10 and set(out["events_per_method"]) == set(METHODS)
    assert "TTbarReco" in events.fields
    empty = ttbar_processor.process(events[:0])
    assert empty["events_selected"] == 0 and empty["histograms"]["outcome"].sum() == 0


def test_evaluate_writes_the_ttbar_section(semilep_file: Path, tmp_path: Path) -> None:
    report = tmp_path / "report"
    assert main(["evaluate", str(semilep_file), "--tasks", "ttbar", "--output", str(report), "--device", "cpu",
                 "--max-events", "600"]) == 0
    metrics = json.loads((report / "metrics.json").read_text())
    assert set(metrics["ttbar"]) == set(METHODS)
    assert {"4", "5", "6+", "all"} >= set(metrics["ttbar"]["spanet"]["event_efficiency"])
    assert all(f"ttbar/{m}" in metrics["throughput"] for m in METHODS)
    assert "Fully reconstructable" in (report / "index.html").read_text()
