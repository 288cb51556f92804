"""The ttbar report section: efficiencies against hand-counted events, HTML, plots, histograms, JSON."""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path
from typing import Any

import hist
import numpy as np
import pytest
import uproot

from coffea_mlreco.core.metrics import json_ready
from coffea_mlreco.evaluation.report import write_histograms
from coffea_mlreco.ttbar.report import (
    Efficiency,
    assignment_efficiencies,
    assignment_table,
    ttbar_section,
)

METHODS = ["chi2", "klfitter", "pdnn", "spanet"]

# (njets, thad_reco, thad_ok, tlep_reco, tlep_ok), hand-labelled
SPANET_EVENTS = [
    (4, 1, 1, 1, 1),  # e1 fully reconstructable, correct
    (4, 1, 1, 1, 0),  # e2 fully reconstructable, t_lep wrong
    (4, 1, 1, 0, 0),  # e3 only t_had reconstructable, correct
    (4, 0, 0, 0, 0),  # e4 nothing reconstructable: fraction only
    (5, 0, 0, 1, 0),  # e5 only t_lep, wrong
    (5, 1, 0, 1, 1),  # e6 fully reconstructable, t_had wrong
    (6, 1, 1, 1, 1),  # e7 (≥ 6 jets) fully reconstructable, correct
    (6, 0, 0, 1, 1),  # e8 only t_lep, correct
    (6, 0, 0, 0, 0),  # e9 nothing reconstructable
]
CHI2_EVENTS = [(4, 1, 1, 1, 1), (4, 1, 1, 1, 1), (6, 0, 0, 0, 0)]


def outcome_hist(events: dict[str, list[tuple[int, ...]]]) -> hist.Hist:
    h = hist.Hist(
        hist.axis.StrCategory(METHODS, name="method"),
        hist.axis.IntCategory([4, 5, 6], name="njets"),
        hist.axis.IntCategory([0, 1], name="thad_reco"),
        hist.axis.IntCategory([0, 1], name="thad_ok"),
        hist.axis.IntCategory([0, 1], name="tlep_reco"),
        hist.axis.IntCategory([0, 1], name="tlep_ok"),
        storage=hist.storage.Double(),
    )
    for method, rows in events.items():
        a = np.array(rows)
        h.fill(method=method, njets=a[:, 0], thad_reco=a[:, 1], thad_ok=a[:, 2], tlep_reco=a[:, 3], tlep_ok=a[:, 4])
    return h


def optional_hists(rng: np.random.Generator) -> dict[str, hist.Hist]:
    prob = hist.axis.Regular(50, 0, 1, name="prob", label="probability")
    tops = hist.axis.StrCategory(["t_had", "t_lep"], name="top")
    assignment = hist.Hist(tops, hist.axis.IntCategory([0, 1], name="correct"), prob)
    detection = hist.Hist(tops, hist.axis.IntCategory([0, 1], name="reconstructable"), prob)
    for top in ("t_had", "t_lep"):
        assignment.fill(top=top, correct=1, prob=rng.beta(5, 1, 200))
        assignment.fill(top=top, correct=0, prob=rng.beta(1, 3, 100))
        detection.fill(top=top, reconstructable=1, prob=rng.beta(4, 1, 200))
        detection.fill(top=top, reconstructable=0, prob=rng.beta(1, 4, 100))
    nu = hist.Hist(
        hist.axis.StrCategory(["spanet", "klfitter", "w_constraint"], name="method"),
        hist.axis.Regular(120, -6, 6, name="residual"),
    )
    nu.fill(method="spanet", residual=rng.normal(0.3, 0.5, 5000))
    nu.fill(method="w_constraint", residual=rng.normal(0.0, 1.0, 5000))
    return {"assignment_prob": assignment, "detection_prob": detection, "nu_eta_residual": nu}


def processor_output(with_optional: bool = True) -> dict[str, Any]:
    hists = {"outcome": outcome_hist({"spanet": SPANET_EVENTS, "chi2": CHI2_EVENTS})}
    if with_optional:
        hists |= optional_hists(np.random.default_rng(1))
    return {
        "histograms": hists,
        "events": {"ttbar": 20},
        "events_selected": 9,
        "events_per_method": {"spanet": 9, "chi2": 3},
        "seconds": {"spanet": 0.003, "chi2": 0.5},
    }


def test_efficiency_binomial_error() -> None:
    assert Efficiency(2, 3).value == pytest.approx(2 / 3)
    assert Efficiency(2, 3).error == pytest.approx(math.sqrt(2 / 3 * 1 / 3 / 3))
    assert math.isnan(Efficiency(0, 0).value) and math.isnan(Efficiency(0, 0).error)


def test_efficiencies_match_hand_count() -> None:
    metrics = assignment_efficiencies(outcome_hist({"spanet": SPANET_EVENTS}))
    assert list(metrics) == ["spanet"]  # methods without entries are absent
    spanet = metrics["spanet"]
    # all events: events with ≥ 1 reconstructable top (e4, e9 excluded); correct e1 e3 | - | e7 e8
    assert spanet["event_efficiency"] == pytest.approx({"4": 2 / 3, "5": 0.0, "6+": 1.0, "all": 4 / 7})
    # fully reconstructable: e1 e2 | e6 | e7
    assert spanet["event_efficiency_reconstructable"] == pytest.approx({"4": 1 / 2, "5": 0.0, "6+": 1.0, "all": 2 / 4})
    # t_had reconstructable in e1 e2 e3 e6 e7, correct except e6; t_lep in e1 e2 e5 e6 e7 e8, correct e1 e6 e7 e8
    assert spanet["thad_efficiency"] == pytest.approx(4 / 5)
    assert spanet["tlep_efficiency"] == pytest.approx(4 / 6)
    assert spanet["n"] == 9


def test_table_rows_and_fully_reconstructable_top_efficiencies() -> None:
    rows = assignment_table(outcome_hist({"spanet": SPANET_EVENTS}), "spanet")
    assert list(rows) == ["4", "5", "6+", "all"]
    assert [rows[k].n for k in rows] == [4, 2, 3, 9]
    assert [rows[k].n_full for k in rows] == [2, 1, 1, 4]
    assert rows["4"].thad == Efficiency(3, 3) and rows["4"].tlep == Efficiency(1, 2)
    assert rows["5"].thad == Efficiency(0, 1) and rows["5"].tlep == Efficiency(1, 2)
    assert rows["all"].thad_full == Efficiency(3, 4) and rows["all"].tlep_full == Efficiency(3, 4)


def test_empty_rows_are_omitted() -> None:
    chi2 = assignment_efficiencies(outcome_hist({"chi2": CHI2_EVENTS}))["chi2"]
    # no 5-jet events; the ≥ 6-jet event has no reconstructable top
    assert chi2["event_efficiency"] == {"4": 1.0, "all": 1.0}
    assert chi2["event_efficiency_reconstructable"] == {"4": 1.0, "all": 1.0}
    assert chi2["n"] == 3
    nothing = assignment_efficiencies(outcome_hist({"pdnn": [(5, 0, 0, 0, 0)]}))["pdnn"]
    assert nothing == {"event_efficiency": {}, "event_efficiency_reconstructable": {}, "n": 1}


def test_section_with_all_histograms(tmp_path: Path) -> None:
    report = ttbar_section(processor_output(), tmp_path)
    assert set(report.metrics) == {"spanet", "chi2"}  # klfitter and pdnn did not run
    assert report.metrics["spanet"]["event_efficiency"]["all"] == pytest.approx(4 / 7)
    json.dumps(json_ready(report.metrics), allow_nan=False)
    assert report.throughput == pytest.approx({"ttbar/spanet": 3000.0, "ttbar/chi2": 6.0})
    # one table per method that ran, with the ≥ 6 row and binomial errors (e.g. 2/3 ± 27.2 %)
    assert report.html.count("<caption>SPANet") == 1 and report.html.count("<caption>χ² mass fit") == 1
    assert "KLFitter-style" not in report.html.split("Reference")[0]
    assert "≥ 6" in report.html and "66.7 ± 27.2" in report.html
    assert "76 %" in report.html and "Reference, not ours" in report.html
    images = sorted(p.name for p in tmp_path.glob("*.png"))
    assert images == [
        "ttbar_assignment_prob.png",
        "ttbar_detection_prob.png",
        "ttbar_efficiency_vs_njets.png",
        "ttbar_nu_eta_residual.png",
    ]
    assert all(f'src="{name}"' in report.html for name in images)
    assert "Neutrino η residual" in report.html and "W-mass constraint" in report.html
    assert set(report.histograms) == {
        "ttbar/outcome",
        "ttbar/assignment_prob",
        "ttbar/detection_prob",
        "ttbar/nu_eta_residual",
    }
    root_path, pkl_path = write_histograms(tmp_path, report.root_histograms, report.histograms)
    with uproot.open(root_path) as f:
        codes = f["ttbar/spanet/outcome_vs_njets"].values()
        assert codes.shape == (3, 16) and codes.sum() == 9
        assert codes[0, 15] == 1 and codes[2, 0] == 1  # e1 (code 8+4+2+1), e9 (code 0)
        np.testing.assert_allclose(f["ttbar/spanet/efficiency_event"].values(), [2 / 3, 0.0, 1.0])
        assert "ttbar/klfitter/nu_eta_residual" not in report.root_histograms  # empty
        assert f["ttbar/w_constraint/nu_eta_residual"].values().sum() > 0
        assert f["ttbar/spanet/assignment_prob_t_had_wrong"].values().sum() == 100
    with pkl_path.open("rb") as stream:
        assert pickle.load(stream)["ttbar/outcome"].sum() == 12


def test_section_without_optional_histograms(tmp_path: Path) -> None:
    output = processor_output(with_optional=False)
    report = ttbar_section(output, tmp_path)
    assert [p.name for p in tmp_path.glob("*.png")] == ["ttbar_efficiency_vs_njets.png"]
    assert set(report.metrics) == {"spanet", "chi2"}
    # present but empty optional histograms behave like absent ones
    output["histograms"] |= {k: h.reset() for k, h in optional_hists(np.random.default_rng(2)).items()}
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    again = ttbar_section(output, empty_dir)
    assert [p.name for p in empty_dir.glob("*.png")] == ["ttbar_efficiency_vs_njets.png"]
    assert again.metrics == report.metrics


def test_section_with_sparse_inputs(tmp_path: Path) -> None:
    """A method without any reconstructable top and SPANet probabilities for one top only: no warnings."""
    output = processor_output(with_optional=False)
    output["histograms"]["outcome"] = outcome_hist({"pdnn": [(5, 0, 0, 0, 0)]})
    output["events_per_method"] = {"pdnn": 1}
    assignment = optional_hists(np.random.default_rng(3))["assignment_prob"].reset()
    assignment.fill(top="t_had", correct=1, prob=[0.9, 0.8])
    output["histograms"]["assignment_prob"] = assignment
    report = ttbar_section(output, tmp_path)
    assert report.metrics == {"pdnn": {"event_efficiency": {}, "event_efficiency_reconstructable": {}, "n": 1}}
    assert report.throughput == {}  # no seconds for pdnn
    assert "Permutation DNN" in report.html and "—" in report.html
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [
        "ttbar_assignment_prob.png",
        "ttbar_efficiency_vs_njets.png",
    ]
    assert set(report.root_histograms) >= {"ttbar/spanet/assignment_prob_t_had_correct", "ttbar/pdnn/efficiency_event"}


def test_section_with_no_method_run(tmp_path: Path) -> None:
    output = {
        "histograms": {"outcome": outcome_hist({})},
        "events": {"data": 10},
        "events_selected": 0,
        "events_per_method": {},
        "seconds": {},
    }
    report = ttbar_section(output, tmp_path)
    assert report.metrics == {} and report.throughput == {} and report.root_histograms == {}
    assert "No events" in report.html
    assert not list(tmp_path.glob("*.png"))


def test_section_of_a_dask_run_with_invalid_events(tmp_path: Path) -> None:
    """A dask-awkward run has no timings (no throughput table); the invalid-event count is shown."""
    output = processor_output(with_optional=False)
    del output["seconds"]
    output["events_invalid"] = 3
    report = ttbar_section(output, tmp_path)
    assert report.throughput == {} and "Events / s" not in report.html
    assert report.metrics["spanet"]["event_efficiency"]["all"] == pytest.approx(4 / 7)
    assert "9 events selected" in report.html and "3 events with NaN/inf inputs left out" in report.html
    output["events_invalid"] = np.int64(1)  # dask.compute gives numpy integers
    assert "1 event with NaN/inf inputs left out" in ttbar_section(output, tmp_path).html
