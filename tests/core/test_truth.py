"""Tests of coffea_mlreco.core.truth on real CMS NanoAOD (DY, semileptonic tt̄) and on synthetic records."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

from coffea_mlreco.core import truth
from coffea_mlreco.core.columns import to_numpy
from coffea_mlreco.core.constants import M_ELECTRON, M_MUON, M_TAU, M_TOP, M_W, PARTON_JET_DR, W_W
from coffea_mlreco.core.truth import TauDecay, TTbarChannel

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
LAST, FIRST, HARD, PROMPT = 1 << 13, 1 << 12, 1 << 8, 1


def _open(name: str, mode: str = "eager") -> ak.Array:
    path = DATA / name
    if not path.exists():
        pytest.skip(f"test sample {path} not available (only in the shared development checkout)")
    with warnings.catch_warnings():  # the real files lack some cross-referenced collections
        warnings.filterwarnings("ignore", message="Missing cross-reference", category=RuntimeWarning)
        warnings.filterwarnings("ignore", message="Branch .* already exists", category=RuntimeWarning)
        return NanoEventsFactory.from_root({str(path): "Events"}, schemaclass=NanoAODSchema, mode=mode).events()


@pytest.fixture(scope="module")
def dy() -> ak.Array:
    return _open("nano_dy.root")


@pytest.fixture(scope="module")
def tt() -> ak.Array:
    return _open("nano_tt_v12.root")


def _np(array: ak.Array) -> np.ndarray:
    return to_numpy(ak.fill_none(array, np.nan), np.float64)


# ---------------------------------------------------------------- angles and MET
def test_delta_phi_wraps_into_half_open_interval() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.uniform(-10, 10, 1000), rng.uniform(-10, 10, 1000)
    d = truth.delta_phi(a, b)
    assert np.all((d >= -np.pi) & (d < np.pi))
    np.testing.assert_allclose(np.cos(d), np.cos(a - b), atol=1e-9)
    np.testing.assert_allclose(np.sin(d), np.sin(a - b), atol=1e-9)
    assert truth.delta_phi(np.pi, 0.0) == pytest.approx(-np.pi)
    assert truth.delta_r(0.0, 3.0, 0.3, -3.0) == pytest.approx(math.hypot(0.3, 2 * np.pi - 6.0))


@pytest.mark.parametrize("sample", ["dy", "tt"])
def test_gen_met_agrees_with_neutrino_sum(sample: str, request: pytest.FixtureRequest) -> None:
    events = request.getfixturevalue(sample)
    met, nu = truth.gen_met(events), truth.neutrino_met(events)
    np.testing.assert_allclose(_np(met.pt), _np(events.GenMET.pt))
    np.testing.assert_allclose(_np(np.hypot(met.px, met.py)), _np(met.pt), rtol=1e-5)
    np.testing.assert_allclose(_np(np.hypot(nu.px, nu.py)), _np(nu.pt), rtol=1e-9)
    # these files keep all neutrinos, so GenMET (all invisibles) is their vector sum up to float16-ish storage
    residual = _np(np.hypot(met.px - nu.px, met.py - nu.py))
    assert np.mean(residual < 1.0) >= 0.95
    if sample == "tt":  # semileptonic tt̄: the W neutrino gives real MET
        assert np.median(_np(met.pt)) > 20.0


# ---------------------------------------------------------------- tt̄ on real NanoAOD
def test_exactly_one_last_copy_top_and_antitop_near_top_mass(tt: ak.Array) -> None:
    tops = truth.last_copy(tt.GenPart, 6)
    assert np.all(_np(ak.num(tops)) == 2)
    assert np.all(_np(ak.sum(tops.pdgId, axis=1)) == 0)  # one t, one t̄
    only_t = truth.last_copy(tt.GenPart, 6, charge_conjugate=False)
    assert np.all(_np(ak.num(only_t)) == 1) and np.all(_np(ak.flatten(only_t.pdgId)) == 6)
    mass = _np(ak.flatten(tops.mass))
    p16, p50, p84 = np.percentile(mass, [16, 50, 84])
    assert abs(p50 - M_TOP) < 1.0  # generator mass 172.5 GeV
    assert 0.5 < (p84 - p16) / 2 < 3.0  # Breit-Wigner core, Γ_t = 1.4 GeV


def test_sample_is_semileptonic_with_lepton_universality(tt: ak.Array) -> None:
    # Checked first: every event has one leptonic W, i.e. this is a semileptonic sample, not inclusive tt̄
    # (an inclusive sample would give 44 % ± 3.5 %, and 200/200 would be impossible).
    partons = truth.ttbar_partons(tt)
    assert np.all(_np(partons.channel) == TTbarChannel.SEMILEP)
    flavour = np.abs(_np(partons.lepton.pdgId))
    sigma = math.sqrt(len(flavour) * (1 / 3) * (2 / 3))
    for lepton in (11, 13, 15):
        assert abs(np.sum(flavour == lepton) - len(flavour) / 3) < 3 * sigma
    assert np.all(np.abs(_np(partons.neutrino.pdgId)) == flavour + 1)
    assert np.all(_np(partons.lepton.pdgId * partons.neutrino.pdgId) < 0)


def test_w_and_top_masses_from_daughters(tt: ak.Array) -> None:
    p = truth.ttbar_partons(tt)
    for w, d1, d2 in ((p.had_w, p.had_q1, p.had_q2), (p.lep_w, p.lepton, p.neutrino)):
        m_daughters, m_w = _np((d1 + d2).mass), _np(w.mass)
        assert np.all(np.abs(m_daughters - m_w) < 1.0)  # the last-copy W decays to exactly these two
        p16, p50, p84 = np.percentile(m_daughters, [16, 50, 84])
        assert abs(p50 - M_W) < 1.0 and (p84 - p16) / 2 < 2 * W_W
    had = p.had_b + p.had_q1 + p.had_q2
    assert np.median(np.abs(_np(had.mass - p.had_top.mass))) < 1.0
    assert np.all(_np(p.had_q1.pdgId) % 2 == 0) and np.all(np.abs(_np(p.had_q2.pdgId)) % 2 == 1)
    assert np.all(np.abs(_np(p.had_b.pdgId)) == 5) and np.all(_np(p.had_b.pdgId * p.lep_b.pdgId) == -25)


def test_parton_ancestry_follows_copy_chains(tt: ak.Array) -> None:
    """Checked against coffea's own distinctParent (first ancestor with another pdgId)."""
    p = truth.ttbar_partons(tt)
    for b, top in ((p.had_b, p.had_top), (p.lep_b, p.lep_top)):
        assert np.all(_np(b.distinctParent.pdgId) == 6 * np.sign(_np(b.pdgId)))
        assert np.all(_np(top.pdgId) == _np(b.distinctParent.pdgId))
    for d in (p.had_q1, p.had_q2, p.lepton, p.neutrino):
        assert np.all(np.abs(_np(d.distinctParent.pdgId)) == 24)
        assert np.all(_np(d.hasFlags("isFirstCopy", "fromHardProcess")))
    for w, top in ((p.had_w, p.had_top), (p.lep_w, p.lep_top)):
        assert np.all(_np(w.hasFlags("isLastCopy")))
        assert np.all(_np(w.distinctParent.pdgId) == _np(top.pdgId))
        assert np.all(_np(w.pdgId) == 4 * _np(top.pdgId))  # t -> W+, t̄ -> W-


def test_eager_and_virtual_agree(tt: ak.Array) -> None:
    virtual = _open("nano_tt_v12.root", mode="virtual")
    assert ak.to_list(truth.ttbar_indices(virtual.GenPart)) == ak.to_list(truth.ttbar_indices(tt.GenPart))
    empty = truth.ttbar_partons(tt[:0])
    assert len(empty) == 0 and len(truth.tau_decays(tt[:0])) == 0 and len(truth.neutrino_met(tt[:0])) == 0


# ---------------------------------------------------------------- tt̄ on synthetic decay trees
def _genpart(events: list[list[tuple[int, int, int]]]) -> ak.Array:
    return ak.Array(
        [
            [
                {"pdgId": p, "genPartIdxMother": m, "statusFlags": f, "pt": 10.0 * (i + 1)}
                for i, (p, m, f) in enumerate(ev)
            ]
            for ev in events
        ]
    )


def _synthetic() -> list[list[tuple[int, int, int]]]:
    dilep = [
        (21, -1, HARD),
        (21, -1, HARD),
        (6, 0, HARD | FIRST),
        (-6, 0, HARD | FIRST),
        (6, 2, HARD | LAST),
        (-6, 3, HARD | LAST),
        (24, 4, HARD | FIRST),
        (5, 4, HARD | FIRST),
        (-24, 5, HARD | FIRST),
        (-5, 5, HARD | FIRST),
        (24, 6, HARD | LAST),
        (-24, 8, HARD | LAST),  # W -> W (recoil)
        (-11, 10, HARD | FIRST),
        (12, 10, HARD | FIRST),
        (13, 11, HARD | FIRST),
        (-14, 11, HARD | FIRST),
        (5, 7, LAST),
        (21, 7, 0),
        (-11, 12, LAST),
    ]  # later copies must not count as daughters
    # pruned: tops with a single kept copy, W- only as its last copy, tbar side listed W after bbar
    allhad = [
        (21, -1, HARD),
        (6, 0, HARD | FIRST | LAST),
        (-6, 0, HARD | FIRST | LAST),
        (24, 1, HARD | FIRST | LAST),
        (5, 1, HARD | FIRST),
        (-24, 2, HARD | LAST),
        (-5, 2, HARD | FIRST),
        (2, 3, HARD | FIRST),
        (-1, 3, HARD | FIRST),
        (3, 5, HARD | FIRST),
        (-4, 5, HARD | FIRST),
        (21, 7, 0),
    ]
    semilep = [*allhad[:9], (15, 5, HARD | FIRST | PROMPT), (-16, 5, HARD | FIRST | PROMPT), (21, 7, 0)]
    no_antitop = [(21, -1, HARD), (6, 0, HARD | FIRST | LAST)]
    return [dilep, allhad, semilep, no_antitop, []]


def test_ttbar_indices_on_synthetic_trees() -> None:
    idx = ak.to_list(truth.ttbar_indices(_genpart(_synthetic())))
    assert idx[0] == {
        "top": 4,
        "antitop": 5,
        "b": 7,
        "bbar": 9,
        "w_plus": 10,
        "w_minus": 11,
        "w_plus_d1": 12,
        "w_plus_d2": 13,
        "w_minus_d1": 14,
        "w_minus_d2": 15,
        "channel": TTbarChannel.DILEP,
    }
    assert idx[1] == {
        "top": 1,
        "antitop": 2,
        "b": 4,
        "bbar": 6,
        "w_plus": 3,
        "w_minus": 5,
        "w_plus_d1": 7,
        "w_plus_d2": 8,
        "w_minus_d1": 10,
        "w_minus_d2": 9,
        "channel": TTbarChannel.ALLHAD,
    }
    assert idx[2]["channel"] == TTbarChannel.SEMILEP
    assert idx[3]["top"] == 1 and idx[3]["antitop"] == -1 and idx[3]["channel"] == TTbarChannel.UNKNOWN
    assert all(v == -1 for v in idx[4].values())


def test_ttbar_partons_roles_and_missing_partons() -> None:
    gp = _genpart(_synthetic())
    partons = truth.ttbar_partons(ak.zip({"GenPart": gp}, depth_limit=1))
    pt = {f: ak.to_list(partons[f].pt) for f in (*truth.SEMILEP_PARTONS, "lepton", "neutrino")}
    # event 2: W+ hadronic (u d̄ at 7, 8), W- -> τ ν̄ (9, 10); pt = 10 (index + 1)
    assert {f: v[2] for f, v in pt.items()} == {
        "had_b": 50.0,
        "had_q1": 80.0,
        "had_q2": 90.0,
        "lep_b": 70.0,
        "lepton": 100.0,
        "neutrino": 110.0,
    }
    assert all(v[k] is None for v in pt.values() for k in (0, 1, 3, 4))
    assert ak.to_list(partons.channel) == [2, 0, 1, -1, -1]
    stacked = truth.stack_partons(partons)
    assert ak.to_list(ak.num(stacked)) == [4] * 5
    assert ak.to_list(stacked.pt[2]) == [50.0, 80.0, 90.0, 70.0] and ak.to_list(stacked.pt[0]) == [None] * 4


# ---------------------------------------------------------------- taus
def test_tau_visible_plus_invisible_is_the_tau(dy: ak.Array) -> None:
    taus = truth.tau_decays(dy)
    flat = ak.flatten(taus)
    assert len(flat) > 20 and np.all(np.abs(_np(flat.tau.pdgId)) == 15)
    total = flat.visible + flat.invisible
    for a, b in ((total.pt, flat.tau.pt), (total.eta, flat.tau.eta), (total.mass, M_TAU + 0 * flat.tau.pt)):
        np.testing.assert_allclose(_np(a), _np(b), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(_np(truth.delta_phi(total.phi, flat.tau.phi)), 0.0, atol=1e-6)
    assert np.all(_np(flat.invisible.t) > 0) and np.all(_np(flat.visible.t) > 0)
    # a tau's neutrinos carry energy but cannot exceed it
    assert np.all(_np(flat.visible.t) < _np(flat.visible.t + flat.invisible.t))


def test_tau_decay_classes(dy: ak.Array, tt: ak.Array) -> None:
    dy_taus, tt_taus = ak.flatten(truth.tau_decays(dy)), ak.flatten(truth.tau_decays(tt))
    decay = np.concatenate([_np(dy_taus.decay), _np(tt_taus.decay)])
    assert np.all(decay >= 0)
    leptonic = np.mean(decay > 0)  # PDG: B(τ -> e/μ ν ν) = 35.2 %
    assert abs(leptonic - 0.352) < 3 * math.sqrt(0.352 * 0.648 / len(decay))
    for taus in (dy_taus, tt_taus):
        vis_mass = _np(taus.visible.mass)
        np.testing.assert_allclose(vis_mass[_np(taus.decay) == TauDecay.ELECTRON], M_ELECTRON, atol=1e-4)
        np.testing.assert_allclose(vis_mass[_np(taus.decay) == TauDecay.MUON], M_MUON, atol=1e-4)
        assert np.all(vis_mass[_np(taus.decay) == TauDecay.HADRONIC] < M_TAU + 0.1)
    # in semileptonic tt̄ the prompt taus are exactly the W -> τ leptons
    n_w_tau = int(np.sum(np.abs(_np(truth.ttbar_partons(tt).lepton.pdgId)) == 15))
    assert len(tt_taus) == n_w_tau and not np.any(_np(tt_taus.vis_from_genvistau))


def test_genvistau_assignment_matches_daughters(dy: ak.Array) -> None:
    with_vis, daughters = ak.flatten(truth.tau_decays(dy)), ak.flatten(truth.tau_decays(dy, use_genvistau=False))
    used = _np(with_vis.vis_from_genvistau).astype(bool)
    assert used.sum() == ak.sum(ak.num(dy.GenVisTau))  # every GenVisTau assigned, each to one tau
    assert np.all(_np(with_vis.decay)[used] == TauDecay.HADRONIC)
    a, b = with_vis.visible[used], daughters.visible[used]
    np.testing.assert_allclose(_np(a.pt), _np(b.pt), rtol=0.02)
    assert np.all(_np(a.delta_r(b)) < 0.02)
    assert np.all(_np(a.pt) < _np(with_vis.tau.pt[used]) * 1.01)


# ---------------------------------------------------------------- parton-jet matching
def _reference_match(p_eta, p_phi, j_eta, j_phi, max_dr):  # type: ignore[no-untyped-def]
    pairs = sorted(
        (float(truth.delta_r(pe, pp, je, jp)), i, j)
        for i, (pe, pp) in enumerate(zip(p_eta, p_phi, strict=True))
        if pe is not None
        for j, (je, jp) in enumerate(zip(j_eta, j_phi, strict=True))
    )
    out, taken = [-1] * len(p_eta), set()
    for dr, i, j in pairs:
        if dr < max_dr and out[i] < 0 and j not in taken:
            out[i] = j
            taken.add(j)
    return out


def test_matching_agrees_with_brute_force_reference() -> None:
    rng = np.random.default_rng(7)
    p_eta, p_phi, j_eta, j_phi = [], [], [], []
    for _ in range(400):
        nj, n_p = int(rng.integers(0, 8)), int(rng.integers(0, 6))
        je, jp = rng.uniform(-2.5, 2.5, nj), rng.uniform(-np.pi, np.pi, nj)
        pe, pp = rng.uniform(-2.5, 2.5, n_p), rng.uniform(-np.pi, np.pi, n_p)
        for k in range(min(nj, n_p)):  # put most partons near some jet, across the ±π seam too
            j = int(rng.integers(0, nj))
            pe[k], pp[k] = je[j] + rng.normal(0, 0.2), truth.delta_phi(jp[j] + rng.normal(0, 0.2), 0.0)
        missing = rng.random(n_p) < 0.15
        p_eta.append([None if m else float(x) for m, x in zip(missing, pe, strict=True)])
        p_phi.append([None if m else float(x) for m, x in zip(missing, pp, strict=True)])
        j_eta.append(je.tolist())
        j_phi.append(jp.tolist())
    got = ak.to_list(truth.match_partons_to_jets(ak.Array(p_eta), ak.Array(p_phi), ak.Array(j_eta), ak.Array(j_phi)))
    want = [_reference_match(*args, PARTON_JET_DR) for args in zip(p_eta, p_phi, j_eta, j_phi, strict=True)]
    assert got == want
    assert sum(i >= 0 for ev in got for i in ev) > 300  # the test exercises matching, not only misses
    assert any(len(ev) == 0 for ev in j_eta) and any(None in ev for ev in p_eta)


def test_matching_rejects_mismatched_event_counts() -> None:
    with pytest.raises(ValueError, match="events"):
        truth.match_partons_to_jets(ak.Array([[0.0]]), ak.Array([[0.0]]), ak.Array([[], []]), ak.Array([[], []]))


def test_matching_on_ttbar_jets(tt: ak.Array) -> None:
    partons = truth.stack_partons(truth.ttbar_partons(tt))
    jets = tt.Jet
    idx = truth.match_partons_to_jets(partons.eta, partons.phi, jets.eta, jets.phi)
    assert ak.to_list(ak.num(idx)) == [4] * len(tt)
    matched = idx >= 0
    dr = truth.delta_r(
        partons.eta, partons.phi, jets.eta[ak.where(matched, idx, 0)], jets.phi[ak.where(matched, idx, 0)]
    )
    assert np.all(_np(ak.flatten(dr[matched])) < PARTON_JET_DR)
    ok = _np(truth.reconstructable(idx)).astype(bool)
    assert np.array_equal(ok, _np(ak.all(matched, axis=1)).astype(bool))  # matching never reuses a jet
    assert 0.3 < ok.mean() < 0.95


def test_reconstructable_requires_all_distinct_matches() -> None:
    idx = ak.Array([[0, 1, 2, 3], [0, -1, 2, 3], [0, 1, 1, 3], [], [-1, -1]])
    assert ak.to_list(truth.reconstructable(idx)) == [True, False, False, True, False]
