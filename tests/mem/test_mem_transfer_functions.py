"""Transfer functions: they describe the simulated detector, and their configuration is validated."""

from __future__ import annotations

import numpy as np
import pytest

from coffea_mlreco.mem.transfer_functions import TransferFunctions, gaussian_pdf
from coffea_mlreco.simulation.detector import DEFAULT_DETECTOR, calorimeter_resolution, track_pt_resolution


def _width(pulls: np.ndarray) -> float:
    p16, p84 = np.percentile(pulls, [16, 84])
    return float((p84 - p16) / 2)


def test_defaults_are_the_detector_model() -> None:
    tf = TransferFunctions.from_detector()
    assert tf == TransferFunctions()
    pt, eta = np.array([5.0, 40.0, 300.0, 40.0]), np.array([0.1, 1.0, 2.0, 2.3])
    assert np.allclose(tf.relative_pt_resolution(pt, eta, 13), track_pt_resolution(pt, eta, DEFAULT_DETECTOR))
    energy = pt * np.cosh(eta)
    ecal = (
        calorimeter_resolution(
            energy, DEFAULT_DETECTOR.ecal_stochastic, DEFAULT_DETECTOR.ecal_constant, DEFAULT_DETECTOR.ecal_noise
        )
        / energy
    )
    assert np.allclose(tf.relative_pt_resolution(pt, eta, 11), ecal)
    assert tf.met.sigma(np.array([0.0, 400.0]), 2) == pytest.approx([1.7, np.hypot(1.7, 0.5 * 20.0)])
    assert tf.met.sigma(None, 3) == pytest.approx(np.full(3, np.hypot(1.7, 0.5 * np.sqrt(160.0))))


@pytest.mark.parametrize("field", ["lep1", "lep2"])
def test_lepton_pulls_have_unit_width_on_the_simulation(dy_events: dict, field: str) -> None:
    """(p_T,reco − p_T,gen)/σ(p_T,gen) of generator-matched leptons from the simulated Drell-Yan sample has
    width ≈ 1 for muons and electrons (≈ 70 and 40 leptons per field: 20 % statistical tolerance)."""
    tf = TransferFunctions()
    lep, gen = dy_events[field], dy_events["gen_pt"][field]
    for flavour in (13, 11):
        sel = (np.abs(lep["pdgId"]) == flavour) & np.isfinite(gen)
        assert sel.sum() >= 15
        sigma = gen[sel] * tf.relative_pt_resolution(gen[sel], lep["eta"][sel], flavour)
        pulls = (lep["pt"][sel] - gen[sel]) / sigma
        assert 0.75 < _width(pulls) < 1.3, flavour
        assert abs(np.median(pulls)) < 0.4, flavour


def test_gaussian_pdf_is_normalised() -> None:
    x = np.linspace(-10, 30, 40001)
    assert np.trapezoid(gaussian_pdf(x, 10.0, 2.0), x) == pytest.approx(1.0, rel=1e-9)


def test_overrides_and_validation() -> None:
    tf = TransferFunctions.from_dict({"muon": {"a": 3e-4}, "met": {"enabled": False}, "n_sigma": 4})
    assert tf.muon.a == 3e-4 and tf.muon.b == DEFAULT_DETECTOR.track_res_b
    assert not tf.met.enabled and tf.n_sigma == 4.0
    assert TransferFunctions.from_dict(None) == TransferFunctions()
    with pytest.raises(ValueError, match="unknown key"):
        TransferFunctions.from_dict({"muon": {"sigma": 0.01}})
    with pytest.raises(ValueError, match="unknown transfer-function section"):
        TransferFunctions.from_dict({"tau": {}})
    with pytest.raises(ValueError, match="a number"):
        TransferFunctions.from_dict({"electron": {"constant": "small"}})
    with pytest.raises(ValueError, match="non-negative"):
        TransferFunctions.from_dict({"electron": {"constant": -0.1}})
    with pytest.raises(ValueError, match="no transfer function"):
        tf.relative_pt_resolution(np.array([10.0]), np.array([0.0]), 15)
