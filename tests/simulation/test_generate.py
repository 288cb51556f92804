"""Physics of the fast simulation, checked on generated events (issue #2's "Done when" list)."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

from coffea_mlreco.core.constants import M_TOP, M_W, M_Z
from coffea_mlreco.core.truth import (
    match_partons_to_jets,
    neutrino_met,
    reconstructable,
    stack_partons,
    tau_decays,
    ttbar_partons,
)
from coffea_mlreco.simulation import generate_sample
from coffea_mlreco.simulation.detector import DEFAULT_DETECTOR


def events(path: Path, mode: str = "eager"):
    return NanoEventsFactory.from_root({str(path): "Events"}, schemaclass=NanoAODSchema, mode=mode).events()


def peak(values: np.ndarray, lo: float, hi: float) -> float:
    """Most probable value: maximum of a Gaussian kernel density estimate within [lo, hi]."""
    from scipy.stats import gaussian_kde

    x = values[(values > lo) & (values < hi)]
    grid = np.linspace(lo, hi, 1000)
    return float(grid[np.argmax(gaussian_kde(x)(grid))])


def matched_ttbar_masses(ev) -> dict[str, np.ndarray]:
    """W and hadronic-top masses from jets truth-matched (unique ΔR < 0.4) to the partons, and from their GenJets."""
    partons = stack_partons(ttbar_partons(ev))
    index = match_partons_to_jets(partons.eta, partons.phi, ev.Jet.eta, ev.Jet.phi)
    ok = ak.fill_none(reconstructable(index), False) & ~ak.fill_none(ak.is_none(partons, axis=1)[:, 0], True)
    jets, index = ev.Jet[ok], index[ok]
    b, q1, q2 = (ak.firsts(jets[index[:, k : k + 1]]) for k in range(3))
    out = {
        "w": (q1 + q2).mass,
        "top": (q1 + q2 + b).mass,
        "w_gen": (q1.matched_gen + q2.matched_gen).mass,
        "top_gen": (q1.matched_gen + q2.matched_gen + b.matched_gen).mass,
    }
    complete = np.logical_and.reduce([ak.to_numpy(~ak.is_none(v)) for v in out.values()])
    return {k: ak.to_numpy(ak.fill_none(v[complete], np.nan)) for k, v in out.items()}


def test_hadronic_w_and_top_peaks(ttbar_pu0: Path) -> None:
    masses = matched_ttbar_masses(events(ttbar_pu0))
    assert masses["w"].size > 500
    # jets are calibrated to the generator-jet scale: event by event, the reco masses scatter around the
    # particle-level (GenJet) masses ...
    for name in ("w", "top"):
        ratio = masses[name] / masses[f"{name}_gen"]
        assert abs(np.nanmedian(ratio) - 1.0) < 0.02, name
    # ... whose peaks sit at or somewhat below the pole masses (out-of-cone radiation, neutrinos in b decays)
    w, top = peak(masses["w"], 50, 110), peak(masses["top"], 120, 220)
    assert abs(w - M_W) < 6.0, w
    assert abs(peak(masses["w_gen"], 50, 110) - M_W) < 4.0
    assert M_TOP - 14.0 < top < M_TOP + 3.0, top


def test_z_peak_in_drell_yan(dy_pu0: Path) -> None:
    ev = events(dy_pu0)
    leptons = ak.concatenate([ev.Electron, ev.Muon], axis=1)
    pairs = leptons[ak.num(leptons) == 2]
    pairs = pairs[(pairs.charge[:, 0] != pairs.charge[:, 1]) & (pairs.pdgId[:, 0] == -pairs.pdgId[:, 1])]
    mass = ak.to_numpy((pairs[:, 0] + pairs[:, 1]).mass)
    assert mass.size > 250
    assert abs(peak(mass, 70, 110) - M_Z) < 1.5
    # leptons are isolated and truth-linked to prompt generator leptons
    assert ak.mean(leptons.genPartIdx >= 0) > 0.95


def test_genmet_is_the_neutrino_sum(ttbar_pu0: Path) -> None:
    ev = events(ttbar_pu0)
    nu = neutrino_met(ev)
    np.testing.assert_allclose(ak.to_numpy(nu.px), ak.to_numpy(ev.GenMET.pt * np.cos(ev.GenMET.phi)), atol=0.05)
    np.testing.assert_allclose(ak.to_numpy(nu.py), ak.to_numpy(ev.GenMET.pt * np.sin(ev.GenMET.phi)), atol=0.05)
    assert np.median(ak.to_numpy(ev.GenMET.pt)) > 30  # one W → ℓν per event


@pytest.mark.parametrize("sample", ["ttbar_pu0", "dy_pu0"])
def test_pf_met_reproduces_genmet_at_pu0(sample: str, request: pytest.FixtureRequest) -> None:
    ev = events(request.getfixturevalue(sample))
    px = -ak.sum(ev.PFCands.pt * np.cos(ev.PFCands.phi), axis=1)
    py = -ak.sum(ev.PFCands.pt * np.sin(ev.PFCands.phi), axis=1)
    np.testing.assert_allclose(ak.to_numpy(np.hypot(px, py)), ak.to_numpy(ev.MET.pt), rtol=1e-3, atol=0.02)
    gx, gy = ev.GenMET.pt * np.cos(ev.GenMET.phi), ev.GenMET.pt * np.sin(ev.GenMET.phi)
    dx, dy = ak.to_numpy(px - gx), ak.to_numpy(py - gy)
    # no bias, and a resolution consistent with the calorimeter model: σ(MET_x) ~ 0.6·√ΣET GeV
    assert abs(np.median(dx)) < 1.5 and abs(np.median(dy)) < 1.5
    expected = 0.6 * np.sqrt(np.median(ak.to_numpy(ev.MET.sumEt)))
    resolution = (np.percentile(dx, 84) - np.percentile(dx, 16)) / 2
    assert 0.4 * expected < resolution < 2.0 * expected, (resolution, expected)


def test_pf_multiplicity_and_vertex_association_at_pu200(ttbar_pu200: Path) -> None:
    ev = events(ttbar_pu200)
    n = ak.to_numpy(ak.num(ev.PFCands))
    assert 7000 < n.mean() < 14000, n.mean()
    assert 170 < ak.mean(ev.Pileup.nPU) < 230
    pf = ev.PFCands[ev.PFCands.charge != 0]
    from_hs = pf.genPUFraction == 0
    # tracks of the hard scatter are compatible with the PV (soft forward ones often closer to a pileup
    # vertex: fromPV 1), hard ones are associated with it; pileup tracks mostly are not
    assert ak.mean(pf.fromPV[from_hs] >= 1) > 0.95
    assert ak.mean(pf.fromPV[from_hs & (pf.pt > 2)] >= 2) > 0.9
    assert ak.mean(pf.fromPV[~from_hs] == 0) > 0.85
    assert ak.all(ak.num(ev.PFCands[ev.PFCands.charge == 0]) > 1000)


def test_pu0_tracks_are_all_from_the_primary_vertex(dy_pu0: Path) -> None:
    ev = events(dy_pu0)
    pf = ev.PFCands[ev.PFCands.charge != 0]
    assert ak.all(pf.fromPV >= 2)
    assert ak.all(ev.Pileup.nPU == 0) and ak.all(ev.PV.npvs == 1)


def test_b_tagging_working_point(ttbar_pu0: Path) -> None:
    ev = events(ttbar_pu0)
    jets = ev.Jet[abs(ev.Jet.eta) < 2.4]
    wp = DEFAULT_DETECTOR.btag_medium_wp
    eff_b = ak.mean(jets.btagDeepFlavB[jets.hadronFlavour == 5] > wp)
    mistag = ak.mean(jets.btagDeepFlavB[jets.hadronFlavour == 0] > wp)
    assert 0.74 < eff_b < 0.86 and mistag < 0.03
    assert 1.6 < ak.mean(ak.sum(ev.GenJet.hadronFlavour == 5, axis=1)) <= 2.6  # two b jets per tt̄ event


def test_hadronic_tau_fraction_and_decay_modes(ztautau_pu0: Path) -> None:
    ev = events(ztautau_pu0)
    decays = ak.flatten(tau_decays(ev))
    hadronic = ak.to_numpy(decays.decay == 0)
    assert abs(hadronic.mean() - 0.648) < 4 * np.sqrt(0.648 * 0.352 / hadronic.size)
    modes = ak.to_numpy(ak.flatten(ev.GenVisTau.status))
    assert modes.size == hadronic.sum()
    one_prong = np.isin(modes, (0, 1, 2)).mean()
    assert 0.70 < one_prong < 0.82  # PDG: 1-prong ≈ 72 % of hadronic tau decays (+ K modes)
    vis = ev.GenVisTau
    assert ak.all(vis.mass < 1.8) and ak.all(abs(vis.charge) == 1)


@pytest.mark.parametrize("mode", ["eager", "virtual", "dask"])
def test_files_open_in_every_nanoevents_mode(dy_pu0: Path, mode: str) -> None:
    ev = events(dy_pu0, mode)
    met = ev.MET.pt
    if mode == "dask":
        met = met.compute()
    assert len(met) == 800


def test_same_seed_gives_identical_files(sim_dir: Path) -> None:
    a = generate_sample("ttbar-semilep", 30, 5, seed=3, output=sim_dir / "a.root", chunk_size=10, progress=False)
    b = generate_sample(
        "ttbar-semilep", 30, 5, seed=3, output=sim_dir / "b.root", chunk_size=10, jobs=2, progress=False
    )
    c = generate_sample("ttbar-semilep", 30, 5, seed=4, output=sim_dir / "c.root", chunk_size=10, progress=False)
    ta, tb, tc = (uproot.open(p)["Events"] for p in (a, b, c))
    keys = ta.keys()
    assert keys == tb.keys()
    for key in keys:
        assert ak.array_equal(ta[key].array(), tb[key].array()), key
    assert not ak.array_equal(ta["PFCands_pt"].array(), tc["PFCands_pt"].array())


def test_same_seed_and_chunks_give_the_same_hard_scatter_at_any_pileup(sim_dir: Path) -> None:
    # what benchmarks/ditau_pileup_cost.py pairs events by: the hard scatter and its vertex are drawn before the
    # pileup overlay, so only the pileup and the detector's smearing differ
    pu0, pu5 = (
        generate_sample("ztautau", 20, pu, seed=5, output=sim_dir / f"pair_pu{pu}.root", chunk_size=10, progress=False)
        for pu in (0, 5)
    )
    t0, t5 = (uproot.open(p)["Events"] for p in (pu0, pu5))
    for key in ("luminosityBlock", "event", "GenVtx_z", "GenMET_pt", "GenMET_phi", "GenPart_pt", "GenPart_pdgId"):
        assert ak.array_equal(t0[key].array(), t5[key].array()), key
    n0, n5 = t0["nPFCands"].array(library="np"), t5["nPFCands"].array(library="np")
    assert np.all(n5 > n0)  # the pileup's candidates are added
    assert t5["Pileup_nPU"].array(library="np").sum() > 0 and not np.any(t0["Pileup_nPU"].array(library="np"))


def test_bad_arguments_are_clear_errors(sim_dir: Path) -> None:
    with pytest.raises(ValueError, match="unknown process 'ttbar'"):
        generate_sample("ttbar", 10, 0, 1, sim_dir / "x.root", progress=False)
    with pytest.raises(ValueError, match="positive"):
        generate_sample("dy-ll", 0, 0, 1, sim_dir / "x.root", progress=False)
