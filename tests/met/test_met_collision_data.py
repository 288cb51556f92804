"""The MET task on collision data and with CMS's own MET columns: distributions without truth, the same events
giving the same distributions whether or not the generator branches are there, the event-by-event difference to
CMS's MET, and CMS's columns of real NanoAOD as references."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import uproot
from coffea_mlreco.processors.met import REFERENCES, METProcessor
from column_modes import open_events

from coffea_mlreco import met
from coffea_mlreco.core.columns import to_numpy
from coffea_mlreco.met.report import met_section
from coffea_mlreco.simulation import generate_sample
from coffea_mlreco.simulation.nanoaod_writer import NanoAODWriter, branch_layout, read_chunk

pytestmark = [
    pytest.mark.filterwarnings("ignore:Missing cross-reference index:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:Branch .* already exists but:RuntimeWarning"),
]


@pytest.fixture(scope="module")
def dy_pu60(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 Drell-Yan → ℓℓ events at PU 60: no neutrinos, so every MET is fake MET from resolution and pileup."""
    if "COFFEA_MLRECO_CACHE" not in os.environ:
        os.environ["COFFEA_MLRECO_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    output = tmp_path_factory.mktemp("met_data") / "dy60.root"
    return Path(generate_sample("dy-ll", 300, 60, seed=47, output=output, progress=False))


def _events(path: Path) -> Any:
    return open_events(path, "eager")


@pytest.fixture(scope="module")
def dy_outputs(dy_pu60: Path, as_collision_data: Callable[[Path, Path], Path]) -> dict[str, dict[str, Any]]:
    """The MET processor's output on the simulated file and on its copy without generator branches."""
    data = as_collision_data(dy_pu60, dy_pu60.with_name("dy60_data.root"))
    return {"simulation": METProcessor().process(_events(dy_pu60)), "data": METProcessor().process(_events(data))}


def test_collision_data_gives_the_simulations_distributions(dy_outputs: dict[str, dict[str, Any]]) -> None:
    """The same events with and without generator branches: the same MET distributions, also for the networks
    (without Pileup_nTrueInt, the good vertices, 51 on average here, choose the PU 60 models)."""
    simulation, data = dy_outputs["simulation"], dy_outputs["data"]
    assert data["events_collision_data"] == 300 and data["events_truth"] == 0
    assert simulation["events_collision_data"] == 0 and simulation["events_truth"] == 300
    for name in ("met_pt", "met_phi"):
        np.testing.assert_array_equal(
            data["histograms"][name].view(flow=True), simulation["histograms"][name].view(flow=True), err_msg=name
        )
    assert all(data["histograms"][name].sum(flow=True) == 0 for name in ("upar", "uperp", "response"))
    assert {m: data["events_per_method"][m] for m in met.METHODS} == dict.fromkeys(met.METHODS, 300)


def test_collision_data_section_has_distributions_and_no_truth(
    dy_outputs: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    report = met_section(dy_outputs["data"], tmp_path)
    assert set(report.metrics) == set(met.METHODS)
    for summary in report.metrics.values():
        assert summary["n"] == 300 and "bias_upar" not in summary
        assert set(summary["distributions"]) == {"met_pt", "met_phi"}  # no covariance: no significance
    assert set(report.more_metrics["met_references"]) == {"file_met"}
    assert "Collision data" in report.html and "Bias u∥" not in report.html
    assert (tmp_path / "met_pt.png").is_file()
    # no neutrinos: all MET is fake; PUPPI removes pileup, the networks more (medians ±1.5 GeV on 300 events)
    median = {m: s["distributions"]["met_pt"]["median"] for m, s in report.metrics.items()}
    assert median["pf"] > median["puppi"] + 5.0
    assert median["puppi"] > max(median["deepmet"], median["perceiver"]) + 5.0


def _with_cms_columns(source: Path, destination: Path) -> tuple[Path, np.ndarray]:
    """A copy of ``source`` carrying CMS-like ``RawPuppiMET`` equal to our PUPPI MET and ``RawMET`` equal to 90 %
    of our PF MET (same direction), as PFNano would carry CMS's; returns it and our PF MET (GeV)."""
    ours = met.reconstruct(_events(source), methods=("pf", "puppi"))
    with uproot.open(source) as handle:
        tree = handle["Events"]
        chunk = read_chunk(tree, branch_layout(tree), 0, tree.num_entries)
    pf_pt = to_numpy(ours.PFMETReco.pt, np.float64)
    chunk["RawMET_pt"] = 0.9 * pf_pt
    chunk["RawMET_phi"] = to_numpy(ours.PFMETReco.phi, np.float64)
    chunk["RawPuppiMET_pt"] = to_numpy(ours.PuppiMETReco.pt, np.float64)
    chunk["RawPuppiMET_phi"] = to_numpy(ours.PuppiMETReco.phi, np.float64)
    with NanoAODWriter(destination) as writer:
        writer.write(chunk)
    return destination, pf_pt


def test_difference_to_cms_event_by_event(dy_pu60: Path, tmp_path: Path) -> None:
    path, pf_pt = _with_cms_columns(dy_pu60, tmp_path / "with_cms.root")
    out = METProcessor(methods=("pf", "puppi")).process(_events(path))
    report = met_section(out, tmp_path)
    assert {"cms_raw_pf", "cms_raw_puppi"} <= set(report.more_metrics["met_references"])
    puppi, pf = report.metrics["puppi"]["vs_cms"], report.metrics["pf"]["vs_cms"]
    assert puppi["reference"] == "cms_raw_puppi" and pf["reference"] == "cms_raw_pf"
    # stored as float32: equal to 0.01 GeV; the histograms have 0.5 GeV bins, so the summaries sit in the central bin
    assert abs(puppi["dpt_median"]) <= 0.25 and puppi["dvec_median"] <= 0.5
    # ours − 0.9 × ours = 0.1 × ours, along the same direction
    assert pf["dpt_median"] == pytest.approx(0.1 * float(np.median(pf_pt)), abs=0.5)
    assert pf["dvec_median"] == pytest.approx(pf["dpt_median"], abs=0.5)
    assert "event by event" in report.html


def test_cms_deepmet_resolution_tune_beats_cms_pf_met(real_nano_tt: Path, tmp_path: Path) -> None:
    """NanoAODv12 tt̄ (200 events): CMS's own columns against GenMET; the DeepMET resolution tune is the
    sharpest, as CMS published (u⊥ width 21.9 against 31.3 GeV for the type-1 PF MET in this file)."""
    report = met_section(METProcessor().process(_events(real_nano_tt)), tmp_path)
    assert report.metrics == {}  # no PF candidates: none of ours
    references = report.more_metrics["met_references"]
    assert set(references) == set(REFERENCES)  # NanoAODv12 carries every CMS MET column
    widths = {key: r["resolution_uperp"] for key, r in references.items()}
    assert widths["cms_deepmet_resolution"] < 0.8 * widths["file_met"]
    assert min(widths, key=widths.__getitem__) == "cms_deepmet_resolution"
    assert "CMS DeepMET, resolution tune" in report.html


def test_nanoaod_v15_met_references_and_significance(real_nano_tt_v15: Path, tmp_path: Path) -> None:
    """v15 renames MET to PFMET and RawMET to RawPFMET, and stores PUPPI MET's significance."""
    out = METProcessor().process(_events(real_nano_tt_v15))
    significance = out["histograms"]["met_significance"]
    assert significance[{"method": "file_met"}].sum(flow=True) == 200
    assert significance[{"method": "cms_puppi"}].sum(flow=True) == 200
    report = met_section(out, tmp_path)
    assert {"file_met", "cms_raw_pf", "cms_puppi"} <= set(report.more_metrics["met_references"])
