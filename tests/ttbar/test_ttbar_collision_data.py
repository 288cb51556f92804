"""The tt̄ task on collision data: a generated semileptonic sample without its generator branches gives the same
reconstructed hadronic top and W masses as with them (the masses read no truth), physical ones, identical under
``processor.Runner`` and ``apply_to_fileset``, and a section with distributions and no efficiency; real CMS
collision data (dimuon events, none selected) gives a section that says so."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pytest
from coffea import processor
from coffea.dataset_tools import apply_to_fileset
from coffea_mlreco.processors.ttbar import METHODS, TTbarProcessor

from coffea_mlreco.core.metrics import json_ready
from coffea_mlreco.evaluation.report import COLLISION_DATA_NOTE
from coffea_mlreco.evaluation.runner import QuietNanoAODSchema
from coffea_mlreco.evaluation.tasks import TaskOptions
from coffea_mlreco.ttbar.report import ttbar_section

pytestmark = [
    pytest.mark.filterwarnings("ignore:Missing cross-reference index:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:Branch .* already exists but:RuntimeWarning"),
]


@pytest.fixture(scope="module")
def ttbar_processor() -> TTbarProcessor:
    return TTbarProcessor(options=TaskOptions(device="cpu"))


def _run(path: Path, proc: TTbarProcessor) -> dict[str, Any]:
    runner = processor.Runner(executor=processor.IterativeExecutor(), chunksize=100_000, schema=QuietNanoAODSchema)
    return runner({"tt": {"files": {str(path): "Events"}}}, proc, treename="Events")


@pytest.fixture(scope="module")
def tt_data(small_semilep_file: Path, as_collision_data: Callable[[Path, Path], Path], tmp_path_factory: Any) -> Path:
    """The 200-event semileptonic tt̄ sample without its simulation-only branches."""
    return as_collision_data(small_semilep_file, tmp_path_factory.mktemp("tt_data") / "tt_data.root")


@pytest.fixture(scope="module")
def outputs(small_semilep_file: Path, tt_data: Path, ttbar_processor: TTbarProcessor) -> dict[str, dict[str, Any]]:
    """The processor output on the simulated file and on its collision-data copy."""
    return {"simulation": _run(small_semilep_file, ttbar_processor), "data": _run(tt_data, ttbar_processor)}


def test_the_masses_read_no_truth(outputs: dict[str, dict[str, Any]]) -> None:
    sim, data = outputs["simulation"], outputs["data"]
    assert sim["events_collision_data"] == 0 and data["events_collision_data"] == 200
    n = data["events_selected"]
    assert n == sim["events_selected"] > 20 and data["events_per_method"] == dict.fromkeys(METHODS, n)
    mass = data["histograms"]["mass"]
    np.testing.assert_array_equal(mass.values(flow=True), sim["histograms"]["mass"].values(flow=True))
    for method in METHODS:  # every selected event has its three hadronic jets assigned
        for quantity in ("t_had", "w_had"):
            assert mass[{"method": method, "quantity": quantity}].sum(flow=True) == n
    # without truth no top is reconstructable: every outcome flag is 0, the truth histograms are empty
    outcome = data["histograms"]["outcome"]
    assert outcome[{"thad_reco": 0, "thad_ok": 0, "tlep_reco": 0, "tlep_ok": 0}].sum() == len(METHODS) * n
    for name in ("assignment_prob", "detection_prob", "nu_eta_residual"):
        assert data["histograms"][name].sum(flow=True) == 0


def test_section_shows_distributions_and_no_efficiency(outputs: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    report = ttbar_section(outputs["data"], tmp_path)
    n = outputs["data"]["events_selected"]
    assert list(report.metrics) == ["spanet", "pdnn", "klfitter", "chi2"]
    for entry in report.metrics.values():
        assert set(entry) == {"n", "distributions"} and entry["n"] == n
        assert set(entry["distributions"]) == {"m_thad", "m_whad"}
        assert all(s["n"] == n for s in entry["distributions"].values())
    json.dumps(json_ready(report.metrics), allow_nan=False)
    # physics: the assigned jets give a hadronic W near 80 GeV and a top near 170 GeV (this seeded sample, 58
    # events: medians 76–79 and 158–166 GeV; each window reaches ≥ 3 standard errors of a median beyond them)
    for method in ("spanet", "klfitter"):
        masses = report.metrics[method]["distributions"]
        assert 60 < masses["m_whad"]["median"] < 100, method
        assert 130 < masses["m_thad"]["median"] < 210, method
        assert masses["m_whad"]["p16"] < masses["m_whad"]["median"] < masses["m_whad"]["p84"]
        assert masses["m_thad"]["median"] > masses["m_whad"]["median"] + 40
    assert report.html.startswith(COLLISION_DATA_NOTE)
    assert "Event fraction" not in report.html and "Reference, not ours" not in report.html
    assert "Hadronic top mass" in report.html and "Hadronic W mass" in report.html
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["ttbar_mass_t_had.png", "ttbar_mass_w_had.png"]
    assert set(report.throughput) == {f"ttbar/{m}" for m in METHODS}
    assert "ttbar/spanet/mass_t_had" in report.root_histograms
    assert not any("efficiency" in name for name in report.root_histograms)


def test_simulation_section_keeps_its_metrics_and_adds_the_masses(
    outputs: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    report = ttbar_section(outputs["simulation"], tmp_path)
    assert COLLISION_DATA_NOTE not in report.html and "Hadronic W mass" in report.html
    assert all("distributions" not in entry and "event_efficiency" in entry for entry in report.metrics.values())


def test_apply_to_fileset_on_collision_data(
    tt_data: Path, outputs: dict[str, dict[str, Any]], ttbar_processor: TTbarProcessor, dask_client: Any
) -> None:
    graphs = apply_to_fileset(
        ttbar_processor, {"tt": {"files": {str(tt_data): "Events"}}}, schemaclass=QuietNanoAODSchema
    )
    (lazy,) = dask.compute(graphs["tt"], scheduler=dask_client.get)
    eager = outputs["data"]
    assert lazy["events_collision_data"] == 200 and lazy["events_selected"] == eager["events_selected"]
    for name, h in eager["histograms"].items():
        np.testing.assert_array_equal(h.values(flow=True), lazy["histograms"][name].values(flow=True), err_msg=name)


def test_real_collision_data_without_selected_events(
    real_nano_dimuon: Path, ttbar_processor: TTbarProcessor, tmp_path: Path
) -> None:
    out = _run(real_nano_dimuon, ttbar_processor)
    assert out["events_collision_data"] == 40 and out["events_selected"] == 0  # dimuon events: no single lepton
    report = ttbar_section(out, tmp_path)
    assert report.metrics == {m: {"n": 0} for m in ("spanet", "pdnn", "klfitter", "chi2")}
    assert report.html.startswith(COLLISION_DATA_NOTE) and "No event passed the selection" in report.html
    assert not list(tmp_path.glob("*.png"))
