"""VEGAS-integrated MEM weights: precision, seed stability, reproducibility, hypothesis ordering, inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from coffea_mlreco.mem import IntegrationSettings, TransferFunctions, mem_log_weights
from coffea_mlreco.mem.cross_section import FiducialRegion, fiducial_cross_section_gev2, parton_luminosities
from coffea_mlreco.mem.hypothesis import load_hypothesis
from coffea_mlreco.mem.matrix_elements import MatrixElement
from coffea_mlreco.mem.pdf import load_pdf
from coffea_mlreco.mem.phase_space import dilepton_kinematics, phase_space_factor
from coffea_mlreco.mem.transfer_functions import gaussian_pdf

Events = dict[str, dict[str, np.ndarray]]


def _take(events: Events, index: np.ndarray) -> Events:
    return {k: {f: v[index] for f, v in d.items()} for k, d in events.items()}


def _mass(events: Events) -> np.ndarray:
    a, b = events["lep1"], events["lep2"]
    return np.sqrt(2 * a["pt"] * b["pt"] * (np.cosh(a["eta"] - b["eta"]) - np.cos(a["phi"] - b["phi"])))


def _weights(events: Events, hypothesis: str, **kwargs: object) -> object:
    return mem_log_weights(events["lep1"], events["lep2"], events["met"], hypothesis, **kwargs)


def _synthetic(mass: float, n: int, flavour: int = 13, seed: int = 3) -> Events:
    """Back-to-back ℓ⁻ℓ⁺ pairs of invariant mass ``mass`` (GeV) at random rapidity and angle, MET 10 GeV."""
    rng = np.random.default_rng(seed)
    y, d = rng.uniform(-0.8, 0.8, n), rng.uniform(-0.9, 0.9, n)  # pair rapidity, half the η difference
    pt = mass / (2 * np.cosh(d))
    phi = rng.uniform(-np.pi, np.pi, n)
    lep = {"pt": pt, "mass": np.zeros(n)}
    return {
        "lep1": {**lep, "eta": y + d, "phi": phi, "pdgId": np.full(n, flavour)},
        "lep2": {
            **lep,
            "eta": y - d,
            "phi": np.where(phi > 0, phi - np.pi, phi + np.pi),
            "pdgId": np.full(n, -flavour),
        },
        "met": {"pt": np.full(n, 10.0), "phi": rng.uniform(-np.pi, np.pi, n)},
    }


@pytest.fixture(scope="module")
def peak_events(dy_events: Events) -> Events:
    """20 simulated events with |m_ℓℓ − 91| < 6 GeV (μμ and ee)."""
    index = np.flatnonzero(np.abs(_mass(dy_events) - 91.2) < 6.0)[:20]
    assert index.size == 20
    return _take(dy_events, index)


def test_requested_precision_is_reached(peak_events: Events) -> None:
    result = _weights(peak_events, "dy_sm", precision=0.01, seed=1)
    assert np.all(result.converged)
    assert np.all(result.rel_precision < 0.01)
    assert np.allclose(result.log10_weight_err, result.rel_precision / math.log(10))
    assert np.all(np.isfinite(result.log10_weight)) and np.all(result.chi2_dof >= 0)
    assert np.all(result.n_evals > 0)
    assert np.all(result.sigma_fid_pb > 100)  # σ_fid(dy_sm) ≈ 760 pb


def test_seed_stability_pulls(peak_events: Events) -> None:
    """Two seeds agree within the quoted uncertainties: pulls of unit width (20 events)."""
    a = _weights(peak_events, "dy_sm", seed=1)
    b = _weights(peak_events, "dy_sm", seed=2)
    assert not np.array_equal(a.log10_weight, b.log10_weight)
    pulls = (a.log10_weight - b.log10_weight) / np.hypot(a.log10_weight_err, b.log10_weight_err)
    assert np.max(np.abs(pulls)) < 4.5
    assert 0.4 < np.std(pulls) < 1.8


def test_reproducible_and_independent_of_workers_and_order(peak_events: Events) -> None:
    events = _take(peak_events, np.arange(6))
    one = _weights(events, "zprime", seed=5)
    again = _weights(events, "zprime", seed=5)
    two = _weights(events, "zprime", seed=5, n_workers=2)
    assert np.array_equal(one.log10_weight, again.log10_weight)
    assert np.array_equal(one.log10_weight, two.log10_weight)
    swapped = mem_log_weights(events["lep2"], events["lep1"], events["met"], "zprime", seed=5)
    assert np.array_equal(one.log10_weight, swapped.log10_weight)  # the ℓ⁻ is found from pdgId


def test_sm_beats_zprime_at_the_z_peak_and_loses_at_the_zprime_mass(peak_events: Events) -> None:
    sm = _weights(peak_events, "dy_sm")
    zp = _weights(peak_events, "zprime")
    assert np.all(sm.log10_weight > zp.log10_weight + 1.0)
    heavy = _synthetic(200.0, 8)
    for alternative in ("zprime", "scalar"):
        assert np.all(_weights(heavy, alternative).log10_weight > _weights(heavy, "dy_sm").log10_weight + 1.0)


@pytest.mark.parametrize(
    ("flavour", "pts", "etas", "hypothesis"),
    [
        (11, (38.0, 47.0), (1.1, -0.4), "dy_sm"),  # ECAL resolution ≈ 1 %
        (13, (420.0, 380.0), (1.8, 0.3), "zprime_sm"),  # tracker, σ/p_T ≈ 13 % and 6 %: non-Gaussian in p_T
    ],
)
def test_weight_equals_direct_quadrature(
    flavour: int, pts: tuple[float, float], etas: tuple[float, float], hypothesis: str
) -> None:
    """The VEGAS weight (curvature proposal, Jacobians, both beam orientations, MET term) equals a direct
    Gauss–Legendre integration of the formula of :mod:`integration` over the true p_T's (in κ = 1/p_T,
    ±7 σ), built here from the physics modules, for an off-axis pair (so the c-odd term matters)."""
    hyp, tf, region = load_hypothesis(hypothesis), TransferFunctions(), FiducialRegion()
    n = 8  # the same event 8 times: 8 independent random streams, combined below
    one = np.ones(n)
    ev = {
        "lep1": {"pt": pts[0] * one, "eta": etas[0] * one, "phi": 0.3 * one, "mass": 0 * one, "pdgId": flavour * one},
        "lep2": {
            "pt": pts[1] * one,
            "eta": etas[1] * one,
            "phi": (0.3 - 2.9) * one,
            "mass": 0 * one,
            "pdgId": -flavour * one,
        },
        "met": {"pt": 12.0 * one, "phi": 2.0 * one, "sumEt": 200.0 * one},
    }
    result = _weights(ev, hypothesis)
    inverse_variance = 1.0 / result.log10_weight_err**2
    combined = np.sum(result.log10_weight * inverse_variance) / np.sum(inverse_variance)
    combined_err = 1.0 / math.sqrt(np.sum(inverse_variance))
    sqrt_s = 13600.0
    nodes, w = np.polynomial.legendre.leggauss(300)
    grids = []
    for lep in ("lep1", "lep2"):
        pt_m, eta = float(ev[lep]["pt"][0]), float(ev[lep]["eta"][0])
        r = tf.relative_pt_resolution(np.array([pt_m]), np.array([eta]), flavour)[0]
        lo, hi = (1 - 7 * r) / pt_m, (1 + 7 * r) / pt_m  # curvature range
        kappa = 0.5 * (hi - lo) * nodes + 0.5 * (hi + lo)
        grids.append((1 / kappa, 0.5 * (hi - lo) * w / kappa**2))  # p_T nodes and dp_T weights
    (pa, wa), (pb, wb) = grids
    pa, pb = (g.ravel() for g in np.meshgrid(pa, pb, indexing="ij"))
    weight = np.outer(wa, wb).ravel()
    a_, b_ = ev["lep1"], ev["lep2"]
    kin = dilepton_kinematics(pa, a_["eta"][0], a_["phi"][0], pb, b_["eta"][0], b_["phi"][0], sqrt_s)
    fwd, bwd = parton_luminosities(load_pdf(hyp.pdf), kin.x1, kin.x2, kin.s_hat)
    a, b, c = MatrixElement(hyp).coefficients(kin.s_hat, flavour)
    cos = kin.cos_theta[:, None]
    hard = (fwd * (a * (1 + cos**2) + b * cos + c) + bwd * (a * (1 + cos**2) - b * cos + c)).sum(axis=1)
    tfs = 1.0
    for lep, p in (("lep1", pa), ("lep2", pb)):
        sigma_true = p * tf.relative_pt_resolution(p, np.full_like(p, ev[lep]["eta"][0]), flavour)
        tfs = tfs * gaussian_pdf(ev[lep]["pt"][0], p, sigma_true)
    met = ev["met"]
    r = [
        met["pt"][0] * trig(met["phi"][0])
        + (a_["pt"][0] - pa) * trig(a_["phi"][0])
        + (b_["pt"][0] - pb) * trig(b_["phi"][0])
        for trig in (np.cos, np.sin)
    ]
    s_u = math.hypot(1.7, 0.5 * math.sqrt(200.0))
    w_met = np.exp(-0.5 * (r[0] ** 2 + r[1] ** 2) / s_u**2) / (2 * math.pi * s_u**2)
    integrand = hard / (2 * kin.x1 * kin.x2 * sqrt_s**2) * phase_space_factor(pa, pb, sqrt_s) * tfs * w_met
    expected = np.sum(integrand * weight) / fiducial_cross_section_gev2(hyp, region, flavour, sqrt_s)
    assert np.all(result.converged)
    assert combined == pytest.approx(math.log10(expected), abs=3 * combined_err + 2e-5)


def test_met_term_can_be_switched_off(peak_events: Events) -> None:
    events = _take(peak_events, np.arange(3))
    with_met = _weights(events, "dy_sm")
    without = _weights(events, "dy_sm", transfer=TransferFunctions.from_dict({"met": {"enabled": False}}))
    # without the MET density (GeV⁻², ≲ 1/(2πσ²) ≈ 4e-3) the weights are larger
    assert np.all(without.log10_weight > with_met.log10_weight + 2.0)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda e: e["lep1"].__setitem__(
                "pt", np.where(np.arange(len(e["lep1"]["pt"])) == 1, np.nan, e["lep1"]["pt"])
            ),
            r"lep1.pt is not finite in events 1",
        ),
        (lambda e: e["lep2"].__setitem__("pdgId", -e["lep2"]["pdgId"]), "not an opposite-sign"),
        (
            lambda e: e["lep2"].__setitem__("pdgId", -np.sign(e["lep1"]["pdgId"]) * (24 - np.abs(e["lep1"]["pdgId"]))),
            "not an opposite-sign",
        ),  # e⁻μ⁺ / μ⁻e⁺
        (lambda e: e["lep1"].__setitem__("pt", -e["lep1"]["pt"]), "must be positive"),
        (lambda e: e["met"].__setitem__("phi", e["met"]["phi"][:-1]), "one entry per event"),
        (lambda e: e["lep1"].pop("eta"), "no field 'eta'"),
        (lambda e: e["met"].__setitem__("sumEt", np.full_like(e["met"]["pt"], np.inf)), "met.sumEt is not finite"),
    ],
)
def test_invalid_events_are_errors(peak_events: Events, edit: object, message: str) -> None:
    events = {k: dict(d) for k, d in _take(peak_events, np.arange(3)).items()}
    edit(events)  # type: ignore[operator]
    with pytest.raises(ValueError, match=message):
        _weights(events, "dy_sm")


def test_kinematically_impossible_event_has_zero_weight() -> None:
    """An electron pair (0.5 % resolution) of 15 TeV, heavier than √s even 5σ down, needs x₁x₂ > 1: the
    weight is exactly 0, log10 = −inf, never NaN."""
    ev = _synthetic(15000.0, 1, flavour=11)
    result = _weights(ev, "dy_sm", settings=IntegrationSettings(max_evals=2000))
    assert result.log10_weight[0] == -np.inf and not np.isnan(result.log10_weight_err[0])
