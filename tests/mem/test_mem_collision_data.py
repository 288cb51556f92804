"""The MEM task on collision data: generated Drell-Yan and Z′ samples without their generator branches give the
same weights and discriminants as with them, a section with the distributions of d and log₁₀ P_S/P_B per method,
the network-vs-integration MAPE and no ROC (dataset names are no truth on data); real CMS collision data
(dimuon events) goes through as well."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from coffea import processor
from coffea_mlreco.processors.mem import MEMProcessor

from coffea_mlreco.core.metrics import json_ready
from coffea_mlreco.evaluation.report import COLLISION_DATA_NOTE
from coffea_mlreco.evaluation.runner import QuietNanoAODSchema
from coffea_mlreco.evaluation.tasks import TaskOptions
from coffea_mlreco.mem.report import mem_section

pytestmark = [
    pytest.mark.filterwarnings("ignore:Missing cross-reference index:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:Branch .* already exists but:RuntimeWarning"),
]


def _run(fileset: dict[str, Path], proc: MEMProcessor) -> dict[str, Any]:
    runner = processor.Runner(executor=processor.IterativeExecutor(), chunksize=100_000, schema=QuietNanoAODSchema)
    out = runner({name: {"files": {str(path): "Events"}} for name, path in fileset.items()}, proc, treename="Events")
    return proc.postprocess(out)


@pytest.fixture(scope="module")
def mem_processor() -> MEMProcessor:
    return MEMProcessor(TaskOptions(device="cpu"), max_integrated_events=20, seed=7)


@pytest.fixture(scope="module")
def outputs(
    mem_files: dict[str, Path],
    as_collision_data: Callable[[Path, Path], Path],
    mem_processor: MEMProcessor,
    tmp_path_factory: Any,
) -> dict[str, dict[str, Any]]:
    """The processor output on the Drell-Yan and Z′ samples (datasets ``dy_ll`` and ``zprime_ll``: on
    simulation a background and a signal by name) and on their collision-data copies."""
    folder = tmp_path_factory.mktemp("mem_data")
    data = {name: as_collision_data(path, folder / f"{name}.root") for name, path in mem_files.items()}
    return {"simulation": _run(mem_files, mem_processor), "data": _run(data, mem_processor)}


def test_the_weights_read_no_truth(outputs: dict[str, dict[str, Any]]) -> None:
    sim, data = outputs["simulation"], outputs["data"]
    assert sim["events_collision_data"] == 0 and data["events_collision_data"] == 600
    assert data["events_per_method"] == sim["events_per_method"] and data["events_per_method"]["integrated"] == 40
    for name in ("llr", "d", "residual"):
        np.testing.assert_array_equal(
            data["histograms"][name].values(flow=True), sim["histograms"][name].values(flow=True), err_msg=name
        )
    assert data["mape_sum"] == sim["mape_sum"] and data["mape_n"] == sim["mape_n"]


def test_section_shows_distributions_mape_and_no_roc(outputs: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    data = outputs["data"]
    report = mem_section(data, tmp_path)
    counts = data["events_per_method"]
    assert set(report.metrics) == {"integrated", "network"}
    assert set(report.metrics["integrated"]) == {"n", "distributions"}
    assert set(report.metrics["network"]) == {"n", "mape", "mape_per_hypothesis", "n_mape", "distributions"}
    for method, entry in report.metrics.items():
        assert entry["n"] == counts[method]
        assert set(entry["distributions"]) == {"d", "llr"}
        assert all(s["n"] == counts[method] for s in entry["distributions"].values())
    assert 0 < report.metrics["network"]["mape"] < 0.05 and report.metrics["network"]["n_mape"] == 40
    json.dumps(json_ready(report.metrics), allow_nan=False)
    # physics: the events are Z′ (d → 1) and Drell-Yan (d → 0) ones: d spans the whole range, P16 near 0 and P84
    # near 1, and log₁₀ P_S/P_B, of which d = 1/(1 + 10^−llr) is a monotonic function, changes sign between them
    network = report.metrics["network"]["distributions"]
    assert network["d"]["p16"] < 0.1 and network["d"]["p84"] > 0.9
    assert network["llr"]["p16"] < 0 < network["llr"]["p84"]
    assert report.html.startswith(COLLISION_DATA_NOTE)
    assert "ROC" not in report.html and "AUC" not in report.html and "MAPE" in report.html
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["mem_d.png", "mem_llr.png", "mem_weight_residual.png"]
    # the same dataset names give ROC AUCs on simulation
    (tmp_path / "sim").mkdir()
    simulated = mem_section(outputs["simulation"], tmp_path / "sim")
    assert "auc" in simulated.metrics["network"] and "distributions" not in simulated.metrics["network"]


def test_real_collision_data(real_nano_dimuon: Path, tmp_path: Path) -> None:
    proc = MEMProcessor(TaskOptions(device="cpu"), max_integrated_events=5, seed=7)
    out = _run({"data": real_nano_dimuon}, proc)
    assert out["events_collision_data"] == 40 and out["events_selected"] > 0
    report = mem_section(out, tmp_path)
    assert report.html.startswith(COLLISION_DATA_NOTE)
    for method, entry in report.metrics.items():
        assert "auc" not in entry and entry["n"] == out["events_per_method"][method] > 0
        assert entry["distributions"]["d"]["n"] == entry["n"]
    assert "mape" in report.metrics["network"]
    json.dumps(json_ready(report.metrics), allow_nan=False)
