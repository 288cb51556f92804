"""The di-tau processor through coffea's Runner, its report section and ``coffea-mlreco evaluate --tasks ditau``."""

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
from coffea_mlreco.processors.ditau import DiTauProcessor

from coffea_mlreco.evaluation.ditau_report import dataset_kind, ditau_section, mass_auc

# real NanoAOD (and our files without PFCands) cross-reference collections the file does not store
pytestmark = pytest.mark.filterwarnings("ignore:Missing cross-reference index:RuntimeWarning")

RECO_FIELDS = {"mass_vis", "mass_collinear", "mass_fastmtt", "collinear_status", "fastmtt_status",
               "tau1_fastmtt", "tau2_fastmtt", "channel", "mass_ml", "tau1_ml", "tau2_ml"}
METHODS = {"collinear", "fastmtt", "transformer"}  # the transformer's weights ship with the package


def run(fileset: dict[str, Path], chunksize: int = 1000) -> dict[str, Any]:
    runner = processor.Runner(executor=processor.IterativeExecutor(), schema=NanoAODSchema, chunksize=chunksize)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return runner({name: {"files": {str(path): "Events"}} for name, path in fileset.items()},
                      processor_instance=DiTauProcessor(), treename="Events")


@pytest.fixture(scope="module")
def output(ditau_files: dict[str, Path]) -> dict[str, Any]:
    return run(ditau_files)


@pytest.fixture(scope="module")
def report(output: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Any:
    return ditau_section(output, tmp_path_factory.mktemp("ditau_report"))


def test_output_keys(output: dict[str, Any], ditau_events: dict[str, Any]) -> None:
    assert output["events"] == {name: len(events) for name, events in ditau_events.items()}
    assert set(output["histograms"]) == {"ratio", "mass", "failed"}
    assert set(output["seconds"]) == set(output["events_per_method"]) == METHODS
    assert 0 < output["events_per_method"]["fastmtt"] == output["events_selected"]
    assert {str(d) for d in output["histograms"]["mass"].axes["dataset"]} == {"htautau", "ztautau"}


def test_ditau_reco_columns(ditau_events: dict[str, Any]) -> None:
    events = ditau_events["htautau"][:300]
    result = DiTauProcessor().process(events)
    reco = events.DiTauReco
    assert RECO_FIELDS <= set(ak.fields(reco))
    assert set(ak.fields(reco.tau1_fastmtt)) == {"pt", "eta", "phi", "mass"}
    channel = ak.to_numpy(reco.channel)
    selected = channel >= 0
    assert result["events_selected"] == selected.sum() > 0
    for field in ("mass_vis", "mass_collinear", "mass_fastmtt", "mass_ml"):
        mass = ak.to_numpy(reco[field])
        assert np.isnan(mass[~selected]).all() and (mass[selected] > 0).all()
    fastmtt, vis = ak.to_numpy(reco.mass_fastmtt), ak.to_numpy(reco.mass_vis)
    assert (fastmtt[selected] >= vis[selected] - 1e-6).all()  # neutrinos only add mass
    assert np.median(ak.to_numpy(reco.mass_ml)[selected] / vis[selected]) > 1.0
    assert (ak.to_numpy(reco.collinear_status)[~selected] == 8).all()
    # FastMTT's taus rebuild its mass
    t1, t2 = reco.tau1_fastmtt[selected], reco.tau2_fastmtt[selected]
    p4 = np.zeros((int(selected.sum()), 4))
    for tau in (t1, t2):
        pt, eta, phi, m = (ak.to_numpy(tau[f]) for f in ("pt", "eta", "phi", "mass"))
        p4 += np.stack([pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), np.sqrt((pt * np.cosh(eta)) ** 2 + m**2)],
                       axis=1)
    rebuilt = np.sqrt(np.maximum(p4[:, 3] ** 2 - (p4[:, :3] ** 2).sum(axis=1), 0))
    np.testing.assert_allclose(rebuilt, fastmtt[selected], rtol=1e-6)


def test_report_metrics(report: Any) -> None:
    metrics = report.metrics
    assert set(metrics) == METHODS
    for values in metrics.values():
        assert {"bias", "resolution", "n", "channels", "auc_h_vs_z", "n_selected"} <= set(values)
        assert 0 < values["n"] <= values["n_selected"]
        assert {"tautau", "mutau", "etau"} <= set(values["channels"])
        assert sum(c["n"] for c in values["channels"].values()) == values["n"]
    assert metrics["fastmtt"]["resolution"] < metrics["collinear"]["resolution"]
    assert abs(metrics["fastmtt"]["bias"]) < 0.1
    assert metrics["fastmtt"]["auc_h_vs_z"] > 0.7
    assert set(report.throughput) == {f"ditau/{m}" for m in METHODS}
    assert all(v > 0 for v in report.throughput.values())
    assert "ditau/fastmtt/ratio_tautau" in report.root_histograms
    assert "ditau/fastmtt/mass_htautau" in report.root_histograms
    assert report.html.count("<img") == 3  # ratio + one mass plot per dataset


def test_auc_against_ranks(output: dict[str, Any], auc: Any) -> None:
    h = output["histograms"]["mass"]
    higgs, z = (h[{"method": "fastmtt", "dataset": d}] for d in ("htautau", "ztautau"))
    assert mass_auc(higgs, higgs) == pytest.approx(0.5)
    centres = h.axes["mass"].centers  # the same number from the bin centres, by ranks
    sig = np.repeat(centres, higgs.values().astype(int))
    bkg = np.repeat(centres, z.values().astype(int))
    assert mass_auc(higgs, z) == pytest.approx(auc(sig, bkg), abs=1e-3)


@pytest.mark.parametrize(("name", "kind"), [("htautau", "h"), ("ztautau", "z"), ("v1_dy-ll_PU60", "z"),
                                            ("GluGluHToTauTau_M125", "h"), ("DYJetsToLL_M-50", "z"),
                                            ("ttbar-semilep", None), ("hz", None)])
def test_dataset_kind(name: str, kind: str | None) -> None:
    assert dataset_kind(name) == kind


def test_empty_chunk(ditau_events: dict[str, Any], tmp_path: Path) -> None:
    events = ditau_events["ztautau"][:0]
    out = DiTauProcessor().process(events)
    assert out["events_selected"] == 0 and len(events.DiTauReco) == 0
    report = ditau_section(out, tmp_path)
    assert report.metrics == {} and report.throughput == {}


def test_real_nanoaod(real_nano_dy: Path, tmp_path: Path) -> None:
    out = run({"dy": real_nano_dy})
    assert out["events"] == {"dy": 40}
    report = ditau_section(out, tmp_path)
    for values in report.metrics.values():
        assert "auc_h_vs_z" not in values  # one dataset only
        assert values["n_selected"] == out["events_selected"]


def test_evaluate_ditau(ditau_files: dict[str, Path], tmp_path: Path) -> None:
    from coffea_mlreco.cli import main

    out = tmp_path / "report"
    files = [str(ditau_files[name]) for name in ("htautau", "ztautau")]
    assert main(["evaluate", *files, "--tasks", "ditau", "--output", str(out), "--chunksize", "2000"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["ditau"]) == METHODS
    assert not math.isnan(metrics["ditau"]["transformer"]["auc_h_vs_z"])
    assert set(metrics["throughput"]) == {f"ditau/{m}" for m in METHODS}
    assert "met" not in metrics
