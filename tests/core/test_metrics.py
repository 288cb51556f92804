"""Bias, resolution and MET residuals against distributions whose answer is known analytically."""

from __future__ import annotations

import json
import math

import hist
import numpy as np
import pytest

from coffea_mlreco.core.constants import MET_BINS_GEV
from coffea_mlreco.core.metrics import (
    hist_mean,
    hist_quantile,
    json_ready,
    met_method_summary,
    met_method_summary_from_hists,
    met_residuals,
    residual_bias,
    residual_median,
    resolution,
    summarize_residual_hist,
    summarize_residuals,
)

P16, P84 = 0.5 * (1 + math.erf(-1 / math.sqrt(2))), 0.5 * (1 + math.erf(1 / math.sqrt(2)))  # Φ(∓1)


def _hist1d(values: np.ndarray, bins: int, lo: float, hi: float) -> hist.Hist:
    h = hist.Hist(hist.axis.Regular(bins, lo, hi, name="residual"))
    h.fill(values)
    return h


# --- arrays --------------------------------------------------------------------------------------


def test_gaussian_bias_and_resolution_match_mu_and_sigma() -> None:
    mu, sigma, n = 3.0, 10.0, 200_000
    x = np.random.default_rng(1).normal(mu, sigma, n)
    # standard errors: mean σ/√N; median 1.25σ/√N; (P84−P16)/2 ≈ 0.96σ/√N for a Gaussian
    assert residual_bias(x) == pytest.approx(mu, abs=5 * sigma / math.sqrt(n))
    assert residual_median(x) == pytest.approx(mu, abs=5 * 1.25 * sigma / math.sqrt(n))
    assert resolution(x) == pytest.approx(sigma, abs=5 * 0.96 * sigma / math.sqrt(n))


def test_exponential_is_asymmetric_and_matches_analytic_quantiles() -> None:
    scale, n = 20.0, 200_000
    x = np.random.default_rng(2).exponential(scale, n)
    expected_resolution = scale * (math.log(1 - P16) - math.log(1 - P84)) / 2
    s = summarize_residuals(x)
    assert s.n == n
    assert s.bias == pytest.approx(scale, rel=0.01)
    assert s.median == pytest.approx(scale * math.log(2), rel=0.01)
    assert s.resolution == pytest.approx(expected_resolution, rel=0.01)
    assert s.bias > s.median  # right-skewed: mean above median


def test_uniform_resolution_is_exact_fraction_of_width() -> None:
    x = np.linspace(-5.0, 5.0, 100_001)
    assert resolution(x) == pytest.approx(10.0 * (P84 - P16) / 2, rel=1e-6)
    assert residual_bias(x) == pytest.approx(0.0, abs=1e-12)


def test_non_finite_entries_are_ignored() -> None:
    x = np.array([1.0, 2.0, np.nan, 3.0, np.inf])
    assert summarize_residuals(x).n == 3
    assert residual_bias(x) == pytest.approx(2.0)


def test_empty_array_gives_nan_and_zero_count() -> None:
    s = summarize_residuals(np.array([]))
    assert s.n == 0
    assert math.isnan(s.bias) and math.isnan(s.median) and math.isnan(s.resolution)


# --- histograms ----------------------------------------------------------------------------------


def test_hist_quantiles_by_linear_interpolation_hand_computed() -> None:
    h = hist.Hist(hist.axis.Regular(4, 0.0, 4.0))
    h[...] = [1.0, 1.0, 1.0, 1.0]
    assert hist_quantile(h, 0.5) == pytest.approx(2.0)
    assert hist_quantile(h, 0.25) == pytest.approx(1.0)
    assert hist_quantile(h, 0.1) == pytest.approx(0.4)
    assert hist_mean(h) == pytest.approx(2.0)
    assert summarize_residual_hist(h).resolution == pytest.approx(4.0 * (P84 - P16) / 2)


@pytest.mark.parametrize("bin_width", [0.5, 2.0, 10.0])
def test_hist_agrees_with_array_within_binning_error(bin_width: float) -> None:
    mu, sigma = 1.7, 10.0
    x = np.random.default_rng(3).normal(mu, sigma, 100_000)
    h = _hist1d(x, round(200 / bin_width), -100.0, 100.0)
    exact, binned = summarize_residuals(x), summarize_residual_hist(h)
    assert binned.n == exact.n
    # documented bounds: quantiles and resolution within one bin width, mean within half a bin
    assert abs(binned.median - exact.median) < bin_width
    assert abs(binned.resolution - exact.resolution) < bin_width
    assert abs(binned.bias - exact.bias) < bin_width / 2
    # and for a smooth density much better than the bound: O(w²) corrections
    assert abs(binned.resolution - exact.resolution) < 0.01 * sigma + bin_width**2 / sigma


def test_hist_and_array_agree_for_skewed_distribution() -> None:
    x = np.random.default_rng(4).exponential(15.0, 100_000) - 15.0
    h = _hist1d(x, 400, -50.0, 150.0)
    exact, binned = summarize_residuals(x), summarize_residual_hist(h)
    assert abs(binned.median - exact.median) < 0.1
    assert abs(binned.resolution - exact.resolution) < 0.1


def test_flow_entries_count_but_have_no_position() -> None:
    h = hist.Hist(hist.axis.Regular(10, -5.0, 5.0))
    h.fill([-100.0] * 3 + [0.1] * 4 + [100.0] * 3)
    assert summarize_residual_hist(h).n == 10
    assert hist_quantile(h, 0.1) == -math.inf
    assert hist_quantile(h, 0.95) == math.inf
    assert 0.0 <= hist_quantile(h, 0.5) <= 1.0
    assert hist_mean(h) == pytest.approx(0.5)  # only the in-range bin, at its centre


def test_empty_hist_gives_nan_and_zero_count() -> None:
    s = summarize_residual_hist(hist.Hist(hist.axis.Regular(10, -5.0, 5.0)))
    assert s.n == 0 and math.isnan(s.bias) and math.isnan(s.resolution)
    assert math.isnan(hist_quantile(hist.Hist(hist.axis.Regular(3, 0, 1)), 0.5))


def test_hist_functions_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="1-D"):
        summarize_residual_hist(hist.Hist(hist.axis.Regular(2, 0, 1), hist.axis.Regular(2, 0, 1)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        hist_quantile(hist.Hist(hist.axis.Regular(2, 0, 1)), 1.5)


# --- MET residuals -------------------------------------------------------------------------------


def test_met_residuals_known_vectors() -> None:
    gen_pt = np.array([50.0, 50.0, 50.0, 0.0])
    gen_phi = np.array([0.3, 0.3, 1.0, 2.0])
    reco_pt = np.array([50.0, 55.0, 50.0, 10.0])
    reco_phi = np.array([0.3, 0.3, 1.0 + math.pi / 2, 2.0])
    r = met_residuals(reco_pt, reco_phi, gen_pt, gen_phi)
    # identical vectors; 10 % scale up; rotated by +90°; zero gen MET (direction from gen_phi)
    np.testing.assert_allclose(r.upar, [0.0, 5.0, -50.0, 10.0], atol=1e-12)
    np.testing.assert_allclose(r.uperp, [0.0, 0.0, 50.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(r.dpx[1], 5.0 * math.cos(0.3))
    np.testing.assert_allclose(r.dpy[1], 5.0 * math.sin(0.3))
    np.testing.assert_allclose(np.hypot(r.dpx, r.dpy), np.hypot(r.upar, r.uperp))


def test_met_residuals_of_gaussian_smearing() -> None:
    rng = np.random.default_rng(5)
    n, sigma = 100_000, 15.0
    gen_pt, gen_phi = rng.exponential(50.0, n), rng.uniform(-math.pi, math.pi, n)
    px = gen_pt * np.cos(gen_phi) + rng.normal(0, sigma, n)
    py = gen_pt * np.sin(gen_phi) + rng.normal(0, sigma, n)
    r = met_residuals(np.hypot(px, py), np.arctan2(py, px), gen_pt, gen_phi)
    for component in r:  # isotropic Gaussian smearing: every projection is N(0, σ)
        assert residual_bias(component) == pytest.approx(0.0, abs=0.3)
        assert resolution(component) == pytest.approx(sigma, rel=0.02)


# --- the metrics.json summary ---------------------------------------------------------------------


def _met_sample(n: int = 50_000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(6)
    gen = rng.exponential(60.0, n)
    return rng.normal(2.0, 10.0, n), rng.normal(0.0, 12.0, n), gen


def test_met_method_summary_layout_and_values() -> None:
    upar, uperp, gen = _met_sample()
    s = met_method_summary(upar, uperp, gen)
    assert set(s) == {"bias_upar", "resolution_upar", "bias_uperp", "resolution_uperp", "n", "bins"}
    assert s["n"] == len(gen)
    assert s["bias_upar"] == pytest.approx(2.0, abs=0.3)
    assert s["resolution_uperp"] == pytest.approx(12.0, rel=0.03)
    assert [(b["lo"], b["hi"]) for b in s["bins"]] == [
        (0.0, 45.0),
        (45.0, 70.0),
        (70.0, 100.0),
        (100.0, 150.0),
        (150.0, None),
    ]
    assert sum(b["n"] for b in s["bins"]) == len(gen)
    for b in s["bins"]:
        assert set(b) == {"lo", "hi", "n", "bias_upar", "resolution_upar", "resolution_uperp"}
        assert b["resolution_upar"] == pytest.approx(10.0, rel=0.1)
    json.dumps(json_ready(s), allow_nan=False)


def test_met_summary_from_hists_matches_arrays() -> None:
    upar, uperp, gen = _met_sample()
    axes = (
        hist.axis.StrCategory(["pf", "file_met"], name="method"),
        hist.axis.Variable(MET_BINS_GEV[:-1], name="genmet", underflow=False, overflow=True),
        hist.axis.Regular(1200, -300.0, 300.0, name="residual"),
    )
    h_upar, h_uperp = hist.Hist(*axes), hist.Hist(*axes)
    h_upar.fill(method="pf", genmet=gen, residual=upar)
    h_uperp.fill(method="pf", genmet=gen, residual=uperp)
    from_hist = met_method_summary_from_hists(h_upar, h_uperp, "pf")
    from_array = met_method_summary(upar, uperp, gen)
    assert from_hist["n"] == from_array["n"]
    for key in ("bias_upar", "resolution_upar", "bias_uperp", "resolution_uperp"):
        assert from_hist[key] == pytest.approx(from_array[key], abs=0.25)  # half of the 0.5 GeV bin
    for bh, ba in zip(from_hist["bins"], from_array["bins"], strict=True):
        assert (bh["lo"], bh["hi"], bh["n"]) == (ba["lo"], ba["hi"], ba["n"])
        assert bh["resolution_upar"] == pytest.approx(ba["resolution_upar"], abs=0.5)
    empty = met_method_summary_from_hists(h_upar, h_uperp, "file_met")
    assert empty["n"] == 0 and math.isnan(empty["bias_upar"])


def test_empty_met_summary_is_valid_json_with_nulls() -> None:
    s = met_method_summary([], [], [])
    assert s["n"] == 0 and all(b["n"] == 0 for b in s["bins"])
    assert math.isnan(s["resolution_upar"])
    text = json.dumps(json_ready(s), allow_nan=False)
    assert json.loads(text)["bias_upar"] is None
    assert json.loads(text)["bins"][-1]["hi"] is None


def test_met_summary_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="same length"):
        met_method_summary([1.0], [1.0, 2.0], [1.0])
