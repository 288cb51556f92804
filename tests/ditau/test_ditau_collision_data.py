"""The di-tau task on collision data: a generated H→ττ sample without its generator branches gives the same
reconstructed masses as with them, physical ones (the collinear and FastMTT-style masses above the visible
mass, near the Higgs mass), and a section with the m_ττ distributions and no resolution or AUC; real CMS
collision data (dimuon events) goes through as well."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from coffea import processor
from coffea_mlreco.processors.ditau import DiTauProcessor

from coffea_mlreco.core.metrics import json_ready
from coffea_mlreco.ditau.report import ditau_section
from coffea_mlreco.evaluation.report import COLLISION_DATA_NOTE, distribution_summary
from coffea_mlreco.evaluation.runner import QuietNanoAODSchema
from coffea_mlreco.evaluation.tasks import TaskOptions

pytestmark = [
    pytest.mark.filterwarnings("ignore:Missing cross-reference index:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:Branch .* already exists but:RuntimeWarning"),
]

TRUTH_KEYS = {"bias", "median", "resolution", "channels", "auc_h_vs_z"}


def _run(fileset: dict[str, Path], proc: DiTauProcessor) -> dict[str, Any]:
    runner = processor.Runner(executor=processor.IterativeExecutor(), chunksize=100_000, schema=QuietNanoAODSchema)
    return runner({name: {"files": {str(path): "Events"}} for name, path in fileset.items()}, proc, treename="Events")


@pytest.fixture(scope="module")
def ditau_processor() -> DiTauProcessor:
    return DiTauProcessor(options=TaskOptions(device="cpu"))


@pytest.fixture(scope="module")
def outputs(
    ditau_small: Path,
    as_collision_data: Callable[[Path, Path], Path],
    ditau_processor: DiTauProcessor,
    tmp_path_factory: Any,
) -> dict[str, dict[str, Any]]:
    """The processor output on the 300-event H→ττ sample and on its collision-data copy; the datasets are named
    as an H and a Z sample, which on simulation gives an AUC."""
    data = as_collision_data(ditau_small, tmp_path_factory.mktemp("ditau_data") / "htautau_data.root")
    return {
        "simulation": _run({"htautau": ditau_small, "ztautau": ditau_small}, ditau_processor),
        "data": _run({"htautau": data, "ztautau": data}, ditau_processor),
    }


def test_the_masses_read_no_truth(outputs: dict[str, dict[str, Any]]) -> None:
    sim, data = outputs["simulation"], outputs["data"]
    assert sim["events_collision_data"] == 0 and data["events_collision_data"] == 600
    assert data["events_selected"] == sim["events_selected"] > 50
    for name in ("mass", "failed"):
        np.testing.assert_array_equal(
            data["histograms"][name].values(flow=True), sim["histograms"][name].values(flow=True)
        )
    assert data["histograms"]["ratio"].sum(flow=True) == 0 < sim["histograms"]["ratio"].sum(flow=True)


def test_section_shows_distributions_and_no_truth_metric(outputs: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    data = outputs["data"]
    report = ditau_section(data, tmp_path)
    assert set(report.metrics) == set(data["events_per_method"]) >= {"collinear", "fastmtt"}
    for method, entry in report.metrics.items():
        assert not TRUTH_KEYS & set(entry), method
        assert entry["n_selected"] == data["events_selected"] and entry["n_invalid"] == 0
        assert entry["n"] == entry["distributions"]["mass"]["n"] > 0.9 * entry["n_selected"]
        assert 0 <= entry.get("failure_fraction", 0) < 0.5  # the transformer has no status
    json.dumps(json_ready(report.metrics), allow_nan=False)
    # physics: H→ττ (m_H = 125 GeV): the collinear and FastMTT-style medians lie near m_H (this seeded sample, 45
    # events: 121 and 123 GeV, P16–P84 80–193 and 101–138 GeV; each window reaches ≥ 3 standard errors of a median)
    medians = {m: e["distributions"]["mass"]["median"] for m, e in report.metrics.items()}
    assert 90 < medians["collinear"] < 170 and 105 < medians["fastmtt"] < 145, medians
    (tmp_path / "sim").mkdir()
    simulated = ditau_section(outputs["simulation"], tmp_path / "sim")
    assert report.html.startswith(COLLISION_DATA_NOTE) and "Visible mass" in report.html  # m_vis: table row only
    assert "Resolution" not in report.html and "AUC" not in report.html
    assert "auc_h_vs_z" in simulated.metrics["fastmtt"]  # the same dataset names give an AUC on simulation
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["ditau_mass.png"]
    assert set(report.throughput) == {f"ditau/{m}" for m in report.metrics}


def test_visible_mass_is_the_lower_bound(outputs: dict[str, dict[str, Any]]) -> None:
    mass = outputs["data"]["histograms"]["mass"][{"dataset": sum}]
    median = {m: distribution_summary(mass[{"method": m}])["median"] for m in ("m_vis", "collinear", "fastmtt")}
    assert 50 < median["m_vis"] < median["collinear"] - 20 and median["m_vis"] < median["fastmtt"] - 20, median


def test_real_collision_data(real_nano_dimuon: Path, ditau_processor: DiTauProcessor, tmp_path: Path) -> None:
    out = _run({"data": real_nano_dimuon}, ditau_processor)
    assert out["events_collision_data"] == 40
    report = ditau_section(out, tmp_path)
    assert report.html.startswith(COLLISION_DATA_NOTE)
    n = out["events_selected"]
    assert set(report.metrics) == {"collinear", "fastmtt"}  # CMS NanoAOD has no TauProd: no transformer
    for entry in report.metrics.values():
        assert not TRUTH_KEYS & set(entry) and entry["n_selected"] == n
        assert ("distributions" in entry) == (entry["n"] > 0)
    json.dumps(json_ready(report.metrics), allow_nan=False)
