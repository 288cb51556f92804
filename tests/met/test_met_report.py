"""MET report: response from exact sums, and agreement of our PUPPI weights with a file's own ones.

The PUPPI-agreement file is the synthetic NanoAOD file plus ``PV_npvsGood`` (so PUPPI runs) and a
``PFCands_puppiWeight`` branch constructed from our own weights with a known perturbation: every fifth
charged candidate gets the opposite weight (|Δw| = 1), every neutral is moved by 0.05 towards 0.5.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import awkward as ak
import hist
import numpy as np
import pytest
import uproot
from coffea import processor
from coffea.nanoevents import NanoAODSchema, NanoEventsFactory
from coffea_mlreco.processors.met import METProcessor

from coffea_mlreco import met
from coffea_mlreco.core.constants import MET_BINS_GEV
from coffea_mlreco.core.metrics import hist_pearson
from coffea_mlreco.met.puppi import puppi_weights
from coffea_mlreco.met.report import met_section

NEUTRAL_SHIFT = 0.05
FLIP_EVERY = 5


def run(path: Path, chunksize: int = 60) -> dict[str, Any]:
    """The MET processor (no machine-learned models, so only PF, PUPPI and the file's MET) over ``path``."""
    runner = processor.Runner(
        executor=processor.IterativeExecutor(status=False, retries=0), chunksize=chunksize, schema=NanoAODSchema
    )
    supported = met.supported_methods(
        NanoEventsFactory.from_root({str(path): "Events"}, schemaclass=NanoAODSchema, mode="virtual").events()
    )
    methods = [m for m in ("pf", "puppi") if m in supported]
    return runner({"sample": {"files": {str(path): "Events"}}}, METProcessor(methods=methods), treename="Events")


def _collections(arrays: ak.Array) -> dict[str, Any]:
    """uproot's flat branches regrouped into collections (``nX`` + ``X_*`` → record ``X``) and scalars."""
    fields = arrays.fields
    names = {f[1:] for f in fields if f.startswith("n") and any(g.startswith(f"{f[1:]}_") for g in fields)}
    out: dict[str, Any] = {
        name: ak.zip({g[len(name) + 1 :]: arrays[g] for g in fields if g.startswith(f"{name}_")}) for name in names
    }
    members = {f"n{name}" for name in names} | {g for g in fields for name in names if g.startswith(f"{name}_")}
    out.update({f: ak.to_numpy(arrays[f]) for f in fields if f not in members})
    return out


def write_puppi_nano(path: Path, write_nano: Callable[..., Path], with_file_weights: bool) -> dict[str, np.ndarray]:
    """Write the file described in the module docstring; return the flat per-candidate truth arrays."""
    base = write_nano(path.with_name(f"base_{path.name}"), n_events=200, seed=5)
    branches = _collections(uproot.open(base)["Events"].arrays())
    branches["PV_npvsGood"] = branches["PV_npvs"].astype(np.int32)
    for coordinate in "xyz":  # coffea's PV collection needs a position
        branches[f"PV_{coordinate}"] = np.zeros(len(branches["PV_npvs"]), dtype=np.float32)
    pf = branches["PFCands"]
    ours = ak.flatten(puppi_weights(pf, "run3", npv=branches["PV_npvsGood"])).to_numpy().astype(np.float64)
    charged = ak.flatten(pf.charge).to_numpy() != 0
    flip = np.zeros_like(charged)
    flip[np.flatnonzero(charged)[::FLIP_EVERY]] = True
    theirs = np.where(flip, 1.0 - ours, ours)
    theirs = np.where(charged, theirs, np.where(ours < 0.5, ours + NEUTRAL_SHIFT, ours - NEUTRAL_SHIFT))
    theirs = theirs.astype(np.float32)
    if with_file_weights:
        fields = {f: pf[f] for f in pf.fields}
        branches["PFCands"] = ak.zip({**fields, "puppiWeight": ak.unflatten(theirs, ak.num(pf))})
    with uproot.recreate(path) as f:
        f.mktree("Events", branches)
    return {
        "ours": ours,
        "theirs": theirs.astype(np.float64),
        "charged": charged,
        "flip": flip,
        "pt": ak.flatten(pf.pt).to_numpy().astype(np.float64),
    }


@pytest.fixture(scope="module")
def puppi_file(tmp_path_factory: pytest.TempPathFactory, write_nano: Callable[..., Path]) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("puppi_weight") / "with_puppi_weight.root"
    return path, write_puppi_nano(path, write_nano, with_file_weights=True)


def _reference(truth: dict[str, np.ndarray], charged: bool) -> dict[str, float]:
    """Agreement numbers computed per candidate with numpy (the independent reference)."""
    sel = truth["charged"] == charged
    ours, theirs, pt = truth["ours"][sel], truth["theirs"][sel], truth["pt"][sel]
    diff = np.abs(ours - theirs)
    return {
        "n": int(sel.sum()),
        "mean_abs_diff": float(diff.mean()),
        "fraction_within_0p1": float(np.mean(diff < 0.1)),
        "pt_fraction_within_0p1": float(pt[diff < 0.1].sum() / pt.sum()),
        "pearson": float(np.corrcoef(ours, theirs)[0, 1]),
    }


def test_puppi_weight_agreement_with_known_perturbation(puppi_file: tuple[Path, dict], tmp_path: Path) -> None:
    path, truth = puppi_file
    out = run(path)
    n_cands = truth["ours"].size
    assert out["events_per_method"]["puppi"] == 200
    assert out["histograms"]["puppi_weight"].sum(flow=True) == n_cands
    assert out["histograms"]["puppi_weight"].sum() == n_cands  # weights of exactly 1 are not overflow
    # our per-candidate weights in the processor are the ones the file was built from
    charged_h = out["histograms"]["puppi_weight"][{"charge": "charged"}]
    assert charged_h.sum() == truth["charged"].sum()

    report = met_section(out, tmp_path)
    agreement = report.metrics["puppi"]["weight_agreement"]
    assert set(agreement) == {"charged", "neutral"}
    for cls, is_charged in (("charged", True), ("neutral", False)):
        got, ref = agreement[cls], _reference(truth, is_charged)
        assert got["n"] == ref["n"]
        assert got["mean_abs_diff"] == pytest.approx(ref["mean_abs_diff"], abs=1e-3)  # 0.001 bins
        assert got["fraction_within_0p1"] == pytest.approx(ref["fraction_within_0p1"], abs=1e-12)
        assert got["pt_fraction_within_0p1"] == pytest.approx(ref["pt_fraction_within_0p1"], rel=1e-5)
        assert got["pearson"] == pytest.approx(ref["pearson"], abs=5e-3)  # 50 bins
    # the numbers the construction fixes: charged |Δw| is 0 or 1, neutral |Δw| = 0.05
    flipped = truth["flip"].sum() / truth["charged"].sum()
    assert 0.15 < flipped < 0.25
    assert agreement["charged"]["fraction_within_0p1"] == pytest.approx(1.0 - flipped, abs=1e-12)
    assert agreement["charged"]["mean_abs_diff"] == pytest.approx(flipped, abs=1e-3)
    assert agreement["neutral"]["fraction_within_0p1"] == 1.0
    assert agreement["neutral"]["mean_abs_diff"] == pytest.approx(NEUTRAL_SHIFT, abs=1e-3)
    assert agreement["neutral"]["pearson"] > 0.95

    assert "PFCands_puppiWeight" in report.html and "Pearson r" in report.html
    assert "Neutral (charge = 0)" in report.html and "Charged (charge ≠ 0)" in report.html
    assert f"<td>{agreement['neutral']['n']}</td>" in report.html
    assert '<img src="met_puppi_weight_agreement.png"' in report.html
    assert (tmp_path / "met_puppi_weight_agreement.png").read_bytes()[:4] == b"\x89PNG"
    assert report.root_histograms["met/puppi_weight_charged"].ndim == 2


def test_no_file_weights_no_agreement_section(tmp_path: Path, write_nano: Callable[..., Path]) -> None:
    path = tmp_path / "without_puppi_weight.root"
    write_puppi_nano(path, write_nano, with_file_weights=False)
    out = run(path, chunksize=1000)
    assert out["events_per_method"]["puppi"] == 200  # PUPPI ran, but there is nothing to compare with
    assert out["histograms"]["puppi_weight"].sum(flow=True) == 0
    report = met_section(out, tmp_path)
    assert "weight_agreement" not in report.metrics["puppi"]
    assert "puppiWeight" not in report.html and "Pearson" not in report.html
    assert not any(key.startswith("met/puppi_weight") for key in report.root_histograms)


def test_response_from_exact_sums(synthetic_nano: Path, tmp_path: Path) -> None:
    out = run(synthetic_nano, chunksize=100)
    report = met_section(out, tmp_path)
    with uproot.open(synthetic_nano) as f:
        events = f["Events"].arrays(["GenMET_pt", "GenMET_phi", "PFCands_pt", "PFCands_phi"])
    gen_pt = events["GenMET_pt"].to_numpy().astype(np.float64)
    gen_phi = events["GenMET_phi"].to_numpy().astype(np.float64)
    pt, phi = events["PFCands_pt"], events["PFCands_phi"]
    px = -ak.to_numpy(ak.sum(pt * np.cos(phi), axis=1))
    py = -ak.to_numpy(ak.sum(pt * np.sin(phi), axis=1))
    reco_par = px * np.cos(gen_phi) + py * np.sin(gen_phi)  # p_miss,reco · ê_gen

    pf = report.metrics["pf"]
    assert pf["response"] == pytest.approx(reco_par.sum() / gen_pt.sum(), rel=1e-4)
    upar = np.array(reco_par - gen_pt)
    assert pf["response"] == pytest.approx(1.0 + upar.mean() / gen_pt.mean(), rel=1e-4)
    edges = [*MET_BINS_GEV[:-1], np.inf]
    for i, entry in enumerate(pf["bins"]):
        sel = (gen_pt >= edges[i]) & (gen_pt < edges[i + 1])
        assert entry["response"] == pytest.approx(reco_par[sel].sum() / gen_pt[sel].sum(), rel=1e-4)
        # the synthetic PF MET is gen MET plus zero-mean Gaussian smearing: unbiased projection
        assert entry["response"] == pytest.approx(1.0, abs=0.15)
    assert pf["response"] == pytest.approx(1.0, abs=0.05)
    # the file's MET is 1.03 × PF MET plus zero-mean smearing
    sums = report.histograms["met/response"]
    assert sums[{"method": "file_met", "genmet": sum, "quantity": "reco_par"}] == pytest.approx(
        1.03 * reco_par.sum(), rel=0.02
    )
    assert "met_response_vs_genmet.png" in report.html and "<th>Response</th>" in report.html
    assert (tmp_path / "met_response_vs_genmet.png").read_bytes()[:4] == b"\x89PNG"


def test_hist_pearson_equals_numpy_on_bin_centres() -> None:
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, 5000)
    y = np.clip(0.7 * x + rng.normal(0, 0.2, x.size), 0, 0.999)
    h = hist.Hist(hist.axis.Regular(50, 0, 1), hist.axis.Regular(40, 0, 1)).fill(x, y)
    cx = (np.floor(x * 50) + 0.5) / 50
    cy = (np.floor(y * 40) + 0.5) / 40
    assert hist_pearson(h) == pytest.approx(np.corrcoef(cx, cy)[0, 1], rel=1e-9)
    assert hist_pearson(h) == pytest.approx(np.corrcoef(x, y)[0, 1], abs=2e-3)
    assert np.isnan(hist_pearson(hist.Hist(hist.axis.Regular(5, 0, 1), hist.axis.Regular(5, 0, 1))))


def test_weighted_sums_do_not_depend_on_merge_order(puppi_file: tuple[Path, dict]) -> None:
    """The response and p_T-weighted sums merge exactly (as the integer counts do) in any order."""
    path, _ = puppi_file
    proc = METProcessor(methods=("pf", "puppi"))
    chunks = [
        proc.process(
            NanoEventsFactory.from_root(
                {str(path): "Events"},
                schemaclass=NanoAODSchema,
                mode="eager",
                entry_start=start,
                entry_stop=start + 70,
                metadata={"filename": str(path)},
            ).events()
        )
        for start in (0, 70, 140)
    ]
    forward = processor.accumulate(copy.deepcopy(chunks))
    backward = processor.accumulate(copy.deepcopy(chunks[::-1]))
    assert forward["histograms"]["response"].sum(flow=True) != 0
    assert forward["histograms"]["puppi_weight_absdiff_pt"].sum(flow=True) != 0
    for name, h in forward["histograms"].items():
        np.testing.assert_array_equal(h.view(flow=True), backward["histograms"][name].view(flow=True), err_msg=name)
