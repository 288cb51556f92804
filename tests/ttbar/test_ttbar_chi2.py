"""χ² tt̄ assignment and the resolutions it is fitted with, on generated semileptonic tt̄ events."""

from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

from coffea_mlreco.core.columns import to_numpy
from coffea_mlreco.core.constants import M_W
from coffea_mlreco.ttbar.chi2 import btag_allowed, chi2_assignment
from coffea_mlreco.ttbar.inputs import BTAG_MEDIUM_WP, semileptonic_inputs
from coffea_mlreco.ttbar.neutrino import neutrino_pz_solutions
from coffea_mlreco.ttbar.permutations import n_permutations
from coffea_mlreco.ttbar.resolutions import (
    TTbarParameters,
    fit_ttbar_parameters,
    load_ttbar_parameters,
    main,
)

REAL_TT = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "nano_tt_v12.root"
FIELDS = ("had_b", "had_q1", "had_q2", "lep_b")


def _events(path: Path):
    return NanoEventsFactory.from_root({str(path): "Events"}, schemaclass=NanoAODSchema, mode="eager").events()


def correct(result: ak.Array, targets: ak.Array) -> np.ndarray:
    """Per event: every parton's jet right (q1 ↔ q2 symmetric)."""
    q_same = (result.had_q1 == targets[:, 1]) & (result.had_q2 == targets[:, 2])
    q_swap = (result.had_q1 == targets[:, 2]) & (result.had_q2 == targets[:, 1])
    return ak.to_numpy((result.had_b == targets[:, 0]) & (result.lep_b == targets[:, 3]) & (q_same | q_swap))


def matched(inputs: ak.Array, targets: ak.Array) -> np.ndarray:
    return ak.to_numpy(inputs.selected & ak.all(targets >= 0, axis=1))


def _p4(pt, eta, phi, mass):
    pt, eta, phi, mass = (to_numpy(x, np.float64) for x in (pt, eta, phi, mass))
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    return np.stack([px, py, pz, np.sqrt(px**2 + py**2 + pz**2 + mass**2)], axis=1)


def _mass(p: np.ndarray) -> np.ndarray:
    return np.sqrt(np.maximum(p[:, 3] ** 2 - (p[:, :3] ** 2).sum(axis=1), 0.0))


def reference_chi2(inputs: ak.Array, positions: ak.Array, params: TTbarParameters) -> np.ndarray:
    """χ² of the given permutation, in numpy with the textbook W-constraint solution (independent of the
    numba kernel); both neutrino roots, the smaller χ²."""
    jets = [inputs.jets[ak.singletons(positions[:, k])][:, 0] for k in range(4)]
    b, q1, q2, bl = (_p4(j.pt, j.eta, j.phi, j.mass) for j in jets)
    lep = _p4(inputs.lepton.pt, inputs.lepton.eta, inputs.lepton.phi, inputs.lepton.mass)
    mx, my = (to_numpy(inputs.met[c], np.float64) for c in ("px", "py"))
    # E_ℓ·√(pT,ν² + pz²) = μ + pz,ℓ·pz with μ = (M_W² − m_ℓ²)/2 + pT,ℓ·pT,ν
    mu = (M_W**2 - _mass(lep) ** 2) / 2 + lep[:, 0] * mx + lep[:, 1] * my
    a = lep[:, 3] ** 2 - lep[:, 2] ** 2
    bq = -2 * mu * lep[:, 2]
    c = lep[:, 3] ** 2 * (mx**2 + my**2) - mu**2
    disc = bq**2 - 4 * a * c
    root = np.sqrt(np.maximum(disc, 0.0))
    had = ((_mass(q1 + q2) - params.m_w.peak) / params.m_w.sigma) ** 2 + (
        (_mass(b + q1 + q2) - params.m_top_had.peak) / params.m_top_had.sigma
    ) ** 2
    best = np.full(len(mx), np.inf)
    for sign in (-1, 1):
        pz = (-bq + sign * root) / (2 * a)
        nu = np.stack([mx, my, pz, np.sqrt(mx**2 + my**2 + pz**2)], axis=1)
        lep_chi2 = ((_mass(lep + nu + bl) - params.m_top_lep.peak) / params.m_top_lep.sigma) ** 2
        best = np.minimum(best, had + lep_chi2)
    return best


def test_neutrino_pz_satisfies_w_mass() -> None:
    rng = np.random.default_rng(3)
    n = 2000
    pt, eta, phi = rng.uniform(25, 200, n), rng.uniform(-2.4, 2.4, n), rng.uniform(-np.pi, np.pi, n)
    lep = _p4(pt, eta, phi, np.full(n, 0.105658))
    met_x, met_y = rng.normal(0, 60, n), rng.normal(0, 60, n)
    pz1, pz2, real = neutrino_pz_solutions(lep, met_x, met_y)
    assert 0.3 < real.mean() < 1.0
    for pz in (pz1, pz2):
        nu = np.stack([met_x, met_y, pz, np.sqrt(met_x**2 + met_y**2 + pz**2)], axis=1)
        m = _mass(lep + nu)
        np.testing.assert_allclose(m[real], M_W, rtol=1e-6)
        # complex roots: the real part, where the transverse mass exceeds M_W and m(ℓν) cannot reach it
        assert np.all(m[~real] > M_W)
    np.testing.assert_array_equal(pz1[~real], pz2[~real])
    assert np.all(np.abs(pz1[real]) <= np.abs(pz2[real]))  # the smaller |p_z| first


@pytest.mark.parametrize(
    ("tags", "n_tagged", "n_untagged", "allowed"),
    [
        ((1, 0, 0, 1), 2, 2, True),
        ((1, 1, 0, 1), 3, 1, True),
        ((1, 1, 0, 1), 3, 3, False),
        ((0, 0, 0, 1), 2, 3, False),
        ((1, 0, 0, 0), 1, 4, True),
        ((0, 1, 0, 0), 1, 4, False),
        ((0, 0, 0, 0), 0, 6, True),
        ((1, 0, 0, 0), 0, 6, False),
    ],
)
def test_btag_rule(tags: tuple[int, ...], n_tagged: int, n_untagged: int, allowed: bool) -> None:
    assert btag_allowed(*(bool(t) for t in tags), n_tagged, n_untagged) is allowed


def test_true_permutation_has_small_chi2(tt_assignment) -> None:
    _, inputs, targets, _ = tt_assignment
    params = load_ttbar_parameters()
    full = matched(inputs, targets)
    in_reach = full & ak.to_numpy(ak.max(targets, axis=1) < 6)
    chi2_true = reference_chi2(inputs[in_reach], targets[in_reach], params)
    assert np.median(chi2_true) < 3.0  # three masses, three degrees of freedom
    # wrong assignments sit far above: the median over random permutations is much larger
    swapped = ak.concatenate([targets[in_reach][:, 3:4], targets[in_reach][:, 1:3], targets[in_reach][:, 0:1]], axis=1)
    assert np.median(reference_chi2(inputs[in_reach], swapped, params)) > 2 * np.median(chi2_true)


def test_chi2_picks_the_right_jets(tt_assignment) -> None:
    _, inputs, targets, _ = tt_assignment
    full = matched(inputs, targets)
    assert full.sum() > 150
    with_btag = correct(chi2_assignment(inputs), targets)[full].mean()
    without = correct(chi2_assignment(inputs, btag=False), targets)[full].mean()
    n_jets = np.minimum(ak.to_numpy(inputs.n_jets)[full], 6)
    random_choice = np.mean([1 / n_permutations(n) for n in n_jets])
    assert without > 5 * random_choice
    assert with_btag > 0.5
    assert with_btag > without + 0.1  # the b-tag rule is worth it


def test_chi2_agrees_with_reference(tt_assignment) -> None:
    _, inputs, _, _ = tt_assignment
    params = load_ttbar_parameters()
    result = chi2_assignment(inputs, parameters=params)
    sel = ak.to_numpy(inputs.selected)
    positions = ak.concatenate([result[f][sel][:, np.newaxis] for f in FIELDS], axis=1)
    np.testing.assert_allclose(ak.to_numpy(result.chi2)[sel], reference_chi2(inputs[sel], positions, params), rtol=1e-6)


def test_output_conventions(tt_assignment) -> None:
    _, inputs, _, _ = tt_assignment
    result = chi2_assignment(inputs, max_jets=5)
    assert ak.fields(result) == [*FIELDS, "chi2", "nu_pz"]
    sel = ak.to_numpy(inputs.selected)
    idx = np.stack([ak.to_numpy(result[f]) for f in FIELDS], axis=1)
    assert idx.dtype == np.int64
    assert np.all(idx[~sel] == -1) and np.all(np.isnan(ak.to_numpy(result.chi2)[~sel]))
    assert np.all((idx[sel] >= 0) & (idx[sel] < 5))
    assert np.all(np.sort(idx[sel], axis=1)[:, 1:] != np.sort(idx[sel], axis=1)[:, :-1])  # distinct jets
    assert np.all(ak.to_numpy(result.chi2)[sel] >= 0) and np.all(np.isfinite(ak.to_numpy(result.nu_pz)[sel]))
    # the b-tag rule holds for the chosen permutation
    tagged = inputs.jets.btag[sel] > BTAG_MEDIUM_WP
    n_tags = ak.to_numpy(ak.sum(tagged[:, :5], axis=1))
    b_tags = sum(ak.to_numpy(tagged[ak.singletons(result[f][sel])][:, 0]).astype(int) for f in ("had_b", "lep_b"))
    np.testing.assert_array_equal(b_tags, np.minimum(n_tags, 2))


def test_empty_chunk_and_bad_values(tt_assignment) -> None:
    _, inputs, _, _ = tt_assignment
    empty = chi2_assignment(inputs[:0])
    assert len(empty) == 0 and ak.fields(empty) == [*FIELDS, "chi2", "nu_pz"]
    first = int(np.flatnonzero(ak.to_numpy(inputs.selected))[0])
    pt = ak.to_numpy(ak.flatten(inputs.jets.pt)).astype(np.float64)
    pt[int(ak.sum(inputs.n_jets[:first]))] = np.nan
    jets = ak.with_field(inputs.jets, ak.unflatten(pt, ak.num(inputs.jets)), "pt")
    with pytest.raises(ValueError, match=r"jets\.pt"):
        chi2_assignment(ak.with_field(inputs, jets, "jets"))
    with pytest.raises(ValueError, match="max_jets"):
        chi2_assignment(inputs, max_jets=3)


def test_fitted_parameters_are_physical(tt_assignment, tmp_path: Path) -> None:
    events, _, _, path = tt_assignment
    params = fit_ttbar_parameters(events, {"input": str(path)})
    assert 70 < params.m_w.peak < 85 and 5 < params.m_w.sigma < 15
    assert 150 < params.m_top_had.peak < 180 and 155 < params.m_top_lep.peak < 185
    assert 0.65 < params.btag_eff_b < 0.9 and params.btag_eff_light < 0.15 and params.btag_eff_other < 0.2
    assert 5 < params.bw_width_w < 20 and 5 < params.bw_width_top < 25
    core = params.light_jet[0].parameters(np.array([100.0]))
    assert -0.2 < core[0, 0] < 0.05 and 0.05 < core[1, 0] < 0.3  # jets ~7 % low, ~12 % resolution
    # JSON round trip and strict validation
    raw = params.to_json()
    assert TTbarParameters.from_json(json.loads(json.dumps(raw))) == params
    raw["btag"]["eff_typo"] = 0.5
    with pytest.raises(ValueError, match="eff_typo"):
        TTbarParameters.from_json(raw)


def test_command_line_records_provenance(tt_assignment, tmp_path: Path) -> None:
    *_, path = tt_assignment
    out = tmp_path / "res.json"
    assert main(["--input", str(path), "--output", str(out)]) == 0
    meta = json.loads(out.read_text())["meta"]
    assert meta["seed"] == "77" and meta["input"] == str(path) and "--output" in meta["command"]
    assert load_ttbar_parameters(out).meta == meta


def test_shipped_parameters_record_their_origin() -> None:
    params = load_ttbar_parameters()
    assert params.meta["seed"] is not None and params.meta["input"].endswith(".root")
    assert "ttbar_resolutions" in params.meta["command"]


@pytest.mark.filterwarnings("ignore:Missing cross-reference target:RuntimeWarning")  # the file, not us
def test_real_cms_file() -> None:
    if not REAL_TT.is_file():
        pytest.skip(f"real NanoAOD test file {REAL_TT} is absent (only present in the development checkout)")
    inputs = semileptonic_inputs(_events(REAL_TT))
    result = chi2_assignment(inputs)
    sel = ak.to_numpy(inputs.selected)
    assert sel.sum() > 10
    assert np.all(ak.to_numpy(result.had_b)[sel] >= 0) and np.all(np.isfinite(ak.to_numpy(result.chi2)[sel]))
