"""Dilepton selection of the MEM (``coffea_mlreco.mem.inputs``): opposite sign, same flavour, the leading pair,
fiducial cuts, isolation where the branch exists, jet cleaning; checked on hand-made events, against a
brute-force loop over a generated file, and on real CMS NanoAOD."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest

from coffea_mlreco.mem.inputs import DileptonSelection, dilepton_candidates, integration_inputs, network_features

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _leptons(rows: list[list[tuple[float, float, float, int, float]]]) -> ak.Array:
    """rows of (pt, eta, phi, charge, relative isolation) per event."""
    return ak.Array(
        [
            [{"pt": pt, "eta": eta, "phi": phi, "mass": 0.1, "charge": q, "iso": iso} for pt, eta, phi, q, iso in event]
            for event in rows
        ]
    )


def _events(muons: list, electrons: list, jets: list) -> ak.Array:
    mu, el = _leptons(muons), _leptons(electrons)
    mu = ak.zip({**{f: mu[f] for f in ("pt", "eta", "phi", "mass", "charge")}, "pfRelIso04_all": mu.iso})
    el = ak.zip({**{f: el[f] for f in ("pt", "eta", "phi", "mass", "charge")}, "pfRelIso03_all": el.iso})
    # jetId 6: tight and tight lepton veto, as our simulation writes it
    jet = ak.Array([[{"pt": pt, "eta": eta, "phi": phi, "jetId": 6} for pt, eta, phi in event] for event in jets])
    n = len(muons)
    met = ak.zip({"pt": np.full(n, 12.0), "phi": np.linspace(-3, 3, n)})
    return ak.zip({"Muon": mu, "Electron": el, "Jet": jet, "MET": met}, depth_limit=1)


# per event: muons, electrons, jets and the expected (selected, flavour, lep1 pt, lep2 pt)
CASES: list[tuple[list, list, list, tuple]] = [
    # μμ beats the lower-pT e (no ee pair anyway); lep1 is the higher-pT muon
    (
        [(50, 0.5, 0.0, 1, 0.0), (40, -0.3, 2.5, -1, 0.0)],
        [(30, 1.0, -1.0, 1, 0.0)],
        [
            (
                100,
                0.5,
                0.05,
            ),
            (40, -2.0, 1.0),
            (80, 1.5, -2.0),
            (25, 0.0, 1.5),
        ],
        (True, 13, 50, 40),
    ),
    # same-sign muons: the e+e- pair is taken
    (
        [(50, 0.5, 0.0, 1, 0.0), (40, -0.3, 2.5, 1, 0.0)],
        [(35, 1.0, -1.0, -1, 0.0), (20, -1.0, 1.5, 1, 0.0)],
        [],
        (True, 11, 35, 20),
    ),
    # e μ only: no same-flavour pair
    ([(50, 0.5, 0.0, -1, 0.0)], [(60, 1.0, 2.0, 1, 0.0)], [], (False, 0, None, None)),
    # three muons: the opposite-sign pair of largest pT sum (60 + 55), not the leading lepton's first partner
    ([(60, 0.2, 0.0, 1, 0.0), (20, -1.0, 2.0, -1, 0.0), (55, 0.7, -2.5, -1, 0.0)], [], [], (True, 13, 60, 55)),
    # m_ll ≈ 4 GeV, below the fiducial window
    ([(30, 0.0, 0.0, 1, 0.0), (25, 0.1, 0.1, -1, 0.0)], [], [], (False, 0, None, None)),
    # one muon not isolated
    ([(50, 0.5, 0.0, 1, 0.3), (40, -0.3, 2.5, -1, 0.0)], [], [], (False, 0, None, None)),
    # one muon outside |η| < 2.5, one ee pair with an electron below 15 GeV
    (
        [(50, 2.6, 0.0, 1, 0.0), (40, -0.3, 2.5, -1, 0.0)],
        [(40, 0.0, 0.0, 1, 0.0), (14, 0.0, 3.0, -1, 0.0)],
        [],
        (False, 0, None, None),
    ),
]


def test_selection_physics_on_hand_made_events() -> None:
    events = _events([c[0] for c in CASES], [c[1] for c in CASES], [c[2] for c in CASES])
    cand = dilepton_candidates(events)
    for i, (*_, (selected, flavour, pt1, pt2)) in enumerate(CASES):
        assert bool(cand.selected[i]) is selected, i
        assert int(cand.flavour[i]) == flavour, i
        if selected:
            assert (cand.lep1.pt[i], cand.lep2.pt[i]) == (pt1, pt2), i
            assert cand.lep1.charge[i] * cand.lep2.charge[i] == -1
            assert cand.lep1.pdgId[i] == -flavour * cand.lep1.charge[i]  # PDG: e⁻/μ⁻ are +11/+13
            assert cand.lep1.pdgId[i] == -cand.lep2.pdgId[i]
        else:
            assert cand.lep1[i] is None and math.isnan(cand.mll[i])
    # jets of event 0: the 100 GeV jet overlaps lepton 1 (ΔR = 0.05), the 25 GeV one is below 30 GeV
    assert ak.to_list(cand.jets.pt[0]) == [80.0, 40.0]
    # a looser isolation keeps event 5; muons only drops the ee event
    assert bool(dilepton_candidates(events, DileptonSelection(muon_iso_max=0.5)).selected[5])
    assert not bool(dilepton_candidates(events, DileptonSelection(flavours=(13,))).selected[1])


def test_missing_branches_are_named() -> None:
    events = _events([c[0] for c in CASES], [c[1] for c in CASES], [c[2] for c in CASES])
    no_charge = ak.zip(
        {
            "Muon": ak.without_field(events.Muon, "charge"),
            "Electron": events.Electron,
            "Jet": events.Jet,
            "MET": events.MET,
        },
        depth_limit=1,
    )
    with pytest.raises(ValueError, match="Muon_charge"):
        dilepton_candidates(no_charge)
    with pytest.raises(ValueError, match="Jet collection"):
        dilepton_candidates(ak.zip({k: events[k] for k in ("Muon", "Electron", "MET")}, depth_limit=1))
    with pytest.raises(ValueError, match="selected candidates only"):
        integration_inputs(dilepton_candidates(events))


def _brute_force(events: Any) -> list[tuple[float, float] | None]:
    """Per event the (pT1, pT2) of the OSSF pair with the largest pT sum, by a plain loop (cuts of the defaults:
    isolation, and the electron MVA / muon medium ID where the file has them)."""
    out: list[tuple[float, float] | None] = []
    ids = {
        "Electron": [f for f in ("mvaIso_WP90", "mvaFall17V2Iso_WP90") if f in events.Electron.fields][:1],
        "Muon": [f for f in ("mediumId",) if f in events.Muon.fields],
    }
    for ev in ak.to_list(events[["Electron", "Muon"]]):
        best = None
        for name, iso in (("Electron", "pfRelIso03_all"), ("Muon", "pfRelIso04_all")):
            good = [
                lep
                for lep in ev[name]
                if lep["pt"] > 15 and abs(lep["eta"]) < 2.5 and lep[iso] < 0.15 and all(lep[f] for f in ids[name])
            ]
            for a, b in itertools.combinations(good, 2):
                m2 = 2 * a["pt"] * b["pt"] * (math.cosh(a["eta"] - b["eta"]) - math.cos(a["phi"] - b["phi"]))
                if a["charge"] * b["charge"] < 0 and 50 < math.sqrt(max(m2, 0)) < 1000:
                    pair = tuple(sorted((a["pt"], b["pt"]), reverse=True))
                    if best is None or sum(pair) > sum(best):
                        best = pair
        out.append(best)
    return out


def test_generated_files_match_a_brute_force_loop(mem_events: dict[str, Any]) -> None:
    for name, events in mem_events.items():
        cand = dilepton_candidates(events)
        expected = _brute_force(events)
        selected = ak.to_numpy(cand.selected)
        assert selected.tolist() == [e is not None for e in expected], name
        assert 0.15 < selected.mean() < 0.7, name  # DY and Z′ → ee/μμ with the fiducial cuts
        got = list(zip(ak.to_list(cand.lep1.pt[selected]), ak.to_list(cand.lep2.pt[selected]), strict=True))
        np.testing.assert_allclose(got, [e for e in expected if e is not None], rtol=1e-6)
        sel = cand[selected]
        lep1, lep2, met = integration_inputs(sel)
        assert np.all(lep1["pdgId"] == -lep2["pdgId"]) and set(np.abs(lep1["pdgId"])) <= {11, 13}
        assert "sumEt" not in met and len(met["pt"]) == len(sel)
        assert "sumEt" in integration_inputs(sel, use_sum_et=True)[2]
        x = network_features(sel, flavour=True)
        assert x.shape == (len(sel), 15) and np.array_equal(x[:, 14], np.abs(lep1["pdgId"]) == 11)
        minus = np.where(lep1["pdgId"] > 0, lep1["pt"], lep2["pt"])  # PDG +11/+13: the ℓ⁻, the network's lepton 1
        np.testing.assert_allclose(x[:, 0], minus, rtol=1e-6)
        assert np.all(x[:, 6] >= x[:, 9])  # leading jet first


def test_real_nanoaod(open_nano: Any) -> None:
    path = SHARED / "nano_dy.root"
    if not path.is_file():
        pytest.skip(f"{path} is absent (only in the development checkout)")
    events = open_nano(path)
    cand = dilepton_candidates(events)
    sel = cand[cand.selected]
    assert 1 <= len(sel) < len(events)
    assert ak.all(sel.lep1.charge * sel.lep2.charge == -1) and ak.all(sel.lep1.pdgId == -sel.lep2.pdgId)
    assert ak.all((sel.mll > 50) & (sel.lep1.pt >= sel.lep2.pt))
    expected = _brute_force(events)
    assert ak.to_numpy(cand.selected).tolist() == [e is not None for e in expected]
