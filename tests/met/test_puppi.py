"""PUPPI on generated events: CHS behaviour, truth separation of neutrals, MET, and the α kernel."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from coffea_mlreco.met.pf_met import missing_transverse_momentum
from coffea_mlreco.met.puppi import (
    _alphas,
    chi2_cdf_ndf1,
    chi2_quantile_ndf1,
    load_tune,
    puppi_weights,
    pv_class,
)


def puppi_met(cands, weights):
    pt, phi = missing_transverse_momentum(cands, weights)
    return ak.zip({"pt": pt, "phi": phi})


def met_x_resolution(met, events) -> float:
    dx = ak.to_numpy(met.pt * np.cos(met.phi) - events.GenMET.pt * np.cos(events.GenMET.phi))
    return float((np.percentile(dx, 84) - np.percentile(dx, 16)) / 2)


@pytest.mark.parametrize("tune", ["run3", "phase2"])
def test_charged_weights_follow_vertex_association(ttbar_pu60, tune: str) -> None:
    weights = puppi_weights(ttbar_pu60, tune)
    cls = pv_class(ttbar_pu60.PFCands, load_tune(tune).delta_z_cut)
    assert ak.all(weights[cls == 1] == 1.0)
    assert ak.all(weights[cls == 2] == 0.0)
    assert ak.all((weights >= 0) & (weights <= 1))
    assert ak.all(ak.num(weights) == ak.num(ttbar_pu60.PFCands))


def test_neutral_weights_separate_pileup_from_hard_scatter(ttbar_pu60) -> None:
    cands = ttbar_pu60.PFCands
    weights = puppi_weights(ttbar_pu60)
    neutral = cands.charge == 0
    pileup = neutral & (cands.genPUFraction > 0.9)
    hard = neutral & (cands.genPUFraction < 0.1)

    def pt_weighted(mask) -> float:
        return float(ak.sum(weights[mask] * cands.pt[mask]) / ak.sum(cands.pt[mask]))

    assert pt_weighted(pileup) < 0.15
    assert pt_weighted(hard) > 0.5
    assert float(ak.mean(weights[pileup] < 0.1)) > 0.9


def test_puppi_met_beats_pf_met_at_pu60(ttbar_pu60) -> None:
    met = puppi_met(ttbar_pu60.PFCands, puppi_weights(ttbar_pu60))
    assert met_x_resolution(met, ttbar_pu60) < 0.9 * met_x_resolution(ttbar_pu60.MET, ttbar_pu60)


def test_pu0_keeps_the_event(dy_pu0) -> None:
    """Without pileup every weight is 1 before the neutral pT cut: PUPPI MET ≈ PF MET."""
    weights = puppi_weights(dy_pu0)
    cands = dy_pu0.PFCands
    assert ak.all(weights[(cands.charge == 0) & (cands.pt > 2.5) & (abs(cands.eta) < 2.5)] == 1.0)
    met = puppi_met(cands, weights)
    assert abs(met_x_resolution(met, dy_pu0) - met_x_resolution(dy_pu0.MET, dy_pu0)) < 2.0


def test_pfnano_association_matches_fromPV(ttbar_pu60) -> None:
    """Files without fromPV: pvAssocQuality and dz give the same charged classes on our events."""
    cands = ttbar_pu60.PFCands
    without = ak.zip({k: cands[k] for k in ("pt", "eta", "phi", "charge", "pvAssocQuality", "dz")})
    agree = pv_class(without, 0.3) == pv_class(cands, 0.3)
    assert float(ak.mean(agree[cands.charge != 0])) > 0.97
    weights = puppi_weights(without, "run3", npv=ttbar_pu60.PV.npvsGood)
    assert ak.all(ak.num(weights) == ak.num(cands))


def test_alpha_kernel_matches_brute_force() -> None:
    rng = np.random.default_rng(3)
    n = 600
    eta, phi = rng.uniform(-4.5, 4.5, n), rng.uniform(-np.pi, np.pi, n)
    pt, cls = rng.exponential(2.0, n) + 0.1, rng.integers(0, 3, n)
    alpha_c, alpha_f = _alphas(eta, phi, pt, cls, np.ones(n, bool), np.ones(n, bool), 0.4, 0.01, False)
    deta = eta[:, None] - eta[None, :]
    dphi = (phi[:, None] - phi[None, :] + np.pi) % (2 * np.pi) - np.pi
    dr2 = deta**2 + dphi**2
    inside = (dr2 < 0.16) & (dr2 >= 1e-4)
    with np.errstate(divide="ignore"):
        contrib = np.where(inside, pt[None, :] ** 2 / np.where(inside, dr2, 1.0), 0.0)
        ref_f = np.where(contrib.sum(1) > 0, np.log(contrib.sum(1)), 0.0)
        sum_c = (contrib * (cls[None, :] == 1)).sum(1)
        ref_c = np.where(sum_c > 0, np.log(sum_c), 0.0)
    np.testing.assert_allclose(alpha_f, ref_f, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(alpha_c, ref_c, rtol=1e-10, atol=1e-12)


def test_chi2_functions_match_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    for x in (0.01, 0.5, 1.0, 3.84, 10.0):
        assert chi2_cdf_ndf1(x) == pytest.approx(stats.chi2.cdf(x, 1), rel=1e-12)
    for p in (1e-6, 0.01, 0.3, 0.5, 0.9, 0.999999):
        assert chi2_quantile_ndf1(p) == pytest.approx(stats.chi2.ppf(p, 1), rel=1e-8)
    assert chi2_cdf_ndf1(-1.0) == 0.0


def test_tunes_are_validated() -> None:
    with pytest.raises(ValueError, match="unknown PUPPI tune"):
        load_tune("run2")
    assert [r.alpha for r in load_tune("run3").regions] == ["central", "forward", "forward"]


def test_missing_association_branches_are_named() -> None:
    cands = ak.Array([[{"pt": 1.0, "eta": 0.0, "phi": 0.0, "charge": 1}]])
    with pytest.raises(KeyError, match="PFCands_fromPV"):
        puppi_weights(cands, npv=[1])
