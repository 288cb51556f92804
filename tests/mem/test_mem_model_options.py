"""The DeepMEM input options of the shipped model: the reflections leave the network input unchanged (the MEM weight is
invariant under them), the analytic MET term equals a numerical integral of the transfer functions, the resolution
features are the MEM transfer functions' resolutions, and invalid combinations are refused."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from coffea_mlreco.mem.deepmem import DeepMEM, DeepMEMConfig
from coffea_mlreco.mem.transfer_functions import TransferFunctions

TF = TransferFunctions.from_detector()
SIGMA_U = float(TF.met.sigma(None, 1)[0])
RESOLUTIONS = {
    "muon_resolution": (TF.muon.a, TF.muon.b, TF.muon.endcap_factor, TF.muon.endcap_eta),
    "electron_resolution": (TF.electron.stochastic, TF.electron.constant, TF.electron.noise),
}
FULL = {
    "hypotheses": ("dy_sm", "zprime"),
    "flavour_input": True,
    "mirror": True,
    "eta_flip": True,
    "met_components": True,
    "met_sigma": SIGMA_U,
    **RESOLUTIONS,
}


def _events(n: int, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 15), np.float32)
    x[:, [0, 3]] = 20 + rng.exponential(60, (n, 2))
    x[:, [1, 4, 7]] = rng.uniform(-2.4, 2.4, (n, 3))
    x[:, [2, 5, 8, 13]] = rng.uniform(-math.pi, math.pi, (n, 4))
    x[:, 6] = np.where(rng.random(n) < 0.5, 30 + rng.exponential(30, n), 0.0)
    x[x[:, 6] == 0, 7:9] = 0.0
    x[:, 12] = rng.exponential(15, n)
    x[:, 14] = rng.random(n) < 0.5
    return torch.from_numpy(x)


def test_reflections_do_not_change_the_network_input() -> None:
    model = DeepMEM(**FULL)
    x = _events(200, 1)
    for columns in ((2, 5, 8, 11, 13), (1, 4, 7, 10)):  # φ → −φ, η → −η of every object
        y = x.clone()
        y[:, list(columns)] *= -1
        np.testing.assert_allclose(model.transform(y).numpy(), model.transform(x).numpy(), atol=1e-4)
    rotated = x.clone()
    rotated[:, [2, 5, 8, 13]] = torch.remainder(rotated[:, [2, 5, 8, 13]] + 1.0 + math.pi, 2 * math.pi) - math.pi
    rotated[x[:, 6] == 0, 8] = 0.0  # an absent jet keeps φ = 0
    np.testing.assert_allclose(model.transform(rotated).numpy(), model.transform(x).numpy(), atol=1e-4)
    t = model.transform(x)
    assert torch.all(t[:, 5] >= 0)  # lepton 2 at Δφ ∈ [0, π]


def _met_term_by_quadrature(x: np.ndarray, sigma_u: float = SIGMA_U) -> float:
    """−log10 ∫ dδ₁ dδ₂ N(δ₁; σ₁) N(δ₂; σ₂) N₂(MET + δ₁n̂₁ + δ₂n̂₂; σ_u) by a 2-D grid (independent of the model)."""
    is_e = x[14] > 0.5
    sig = []
    for pt, eta in ((x[0], x[1]), (x[3], x[4])):
        sig.append(pt * float(TF.relative_pt_resolution(np.array([pt]), np.array([eta]), 11 if is_e else 13)[0]))
    grid = [np.linspace(-7 * s, 7 * s, 801) for s in sig]
    d1, d2 = np.meshgrid(*grid, indexing="ij")
    n1, n2 = np.array([math.cos(x[2]), math.sin(x[2])]), np.array([math.cos(x[5]), math.sin(x[5])])
    mx = x[12] * math.cos(x[13]) + d1 * n1[0] + d2 * n2[0]
    my = x[12] * math.sin(x[13]) + d1 * n1[1] + d2 * n2[1]
    f = (
        np.exp(-0.5 * (d1 / sig[0]) ** 2 - 0.5 * (d2 / sig[1]) ** 2)
        / (2 * math.pi * sig[0] * sig[1])
        * np.exp(-0.5 * (mx**2 + my**2) / sigma_u**2)
        / (2 * math.pi * sigma_u**2)
    )
    integral = np.trapezoid(np.trapezoid(f, grid[1], axis=1), grid[0])
    return -math.log10(integral)


def test_met_term_is_the_integrated_transfer_functions() -> None:
    model = DeepMEM(**FULL)
    iso = DeepMEM(**{**FULL, "muon_resolution": None, "electron_resolution": None})
    x = _events(12, 2)
    x[0, 0], x[0, 14], x[0, 13], x[0, 12] = 400.0, 0.0, x[0, 2], 25.0  # MET along a 400 GeV muon: absorbed
    got = model.met_term(model.transform(x)).ravel().numpy()
    for k in range(len(x)):
        assert got[k] == pytest.approx(_met_term_by_quadrature(x[k].double().numpy()), abs=2e-4), k
    met = x[:, 12].double().numpy()
    np.testing.assert_allclose(
        iso.met_term(iso.transform(x)).ravel().numpy(),
        met**2 * math.log10(math.e) / (2 * SIGMA_U**2) + math.log10(2 * math.pi * SIGMA_U**2),
        rtol=1e-5,
    )
    assert got[0] < iso.met_term(iso.transform(x[:1])).item() - 1  # the muon takes up most of the MET


PER_EVENT = {**FULL, "met_sigma": None, "met_sum_et_resolution": (TF.met.sigma0, TF.met.k)}


def _with_sum_et(x: torch.Tensor, sum_et: np.ndarray) -> torch.Tensor:
    return torch.cat([x, torch.from_numpy(sum_et.astype(np.float32))[:, None]], dim=1)


def test_per_event_met_width_is_the_transfer_function_at_each_sum_et() -> None:
    """With met_sum_et_resolution the MET term integrates the transfer functions with the recoil width of each
    event's ΣE_T (PU 0 to PU 60 values); at the default ΣE_T it is the fixed-width model's term."""
    model = DeepMEM(**PER_EVENT)
    x = _events(8, 4)
    x[:, 12] = torch.tensor([5.0, 20.0, 40.0, 60.0, 80.0, 30.0, 15.0, 100.0])
    sum_et = np.array([120.0, 400.0, 900.0, 1500.0, 2800.0, 160.0, 60.0, 3500.0])
    got = model.met_term(model.transform(_with_sum_et(x, sum_et))).ravel().numpy()
    sigma = TF.met.sigma(sum_et, len(sum_et))
    for k in range(len(x)):
        expected = _met_term_by_quadrature(x[k].double().numpy(), float(sigma[k]))
        assert got[k] == pytest.approx(expected, abs=2e-4), k
    fixed = DeepMEM(**FULL)
    default = _with_sum_et(x, np.full(len(x), TF.met.sum_et_default))
    np.testing.assert_allclose(
        model.met_term(model.transform(default)).numpy(), fixed.met_term(fixed.transform(x)).numpy(), atol=1e-4
    )
    # a wider recoil resolution: an 80 GeV MET costs ~40 units of log10 P less at ΣE_T = 2800 GeV than at 160
    assert got[4] < fixed.met_term(fixed.transform(x[4:5])).item() - 20
    t = model.transform(_with_sum_et(x, sum_et))
    np.testing.assert_allclose(t[:, 15].numpy(), np.log(sigma), rtol=1e-5)  # the network sees log σ_u


def test_resolution_features_are_the_transfer_functions() -> None:
    model = DeepMEM(**FULL)
    x = _events(50, 3)
    t = model.transform(x)
    for col, (pt, eta) in ((-3, (0, 1)), (-2, (3, 4))):
        for k in range(len(x)):
            flavour = 11 if x[k, 14] > 0.5 else 13
            r = TF.relative_pt_resolution(
                x[k : k + 1, pt].double().numpy(), x[k : k + 1, eta].double().numpy(), flavour
            )
            assert t[k, col].item() == pytest.approx(math.log(float(r[0])), abs=1e-5)


def test_invalid_option_combinations() -> None:
    with pytest.raises(ValueError, match="need phi_relative"):
        DeepMEMConfig(mirror=True, phi_relative=False)
    with pytest.raises(ValueError, match="needs met_components"):
        DeepMEMConfig(met_sigma=6.5)
    with pytest.raises(ValueError, match="both"):
        DeepMEMConfig(flavour_input=True, met_components=True, met_sigma=6.5, muon_resolution=(1e-4, 0.01, 2, 1.5))
    with pytest.raises(ValueError, match="need flavour_input"):
        DeepMEMConfig(**{**RESOLUTIONS, "met_components": True, "met_sigma": 6.5})
    with pytest.raises(ValueError, match="need met_sigma or met_sum_et_resolution"):
        DeepMEMConfig(**{**RESOLUTIONS, "met_components": True, "flavour_input": True})
    with pytest.raises(ValueError, match="features \\[B, 15\\]"):
        DeepMEM(**FULL).transform(torch.zeros(3, 14))
    with pytest.raises(ValueError, match="excludes met_sigma"):
        DeepMEMConfig(**{**PER_EVENT, "met_sigma": 6.5})
    with pytest.raises(ValueError, match="needs met_components"):
        DeepMEMConfig(met_sum_et_resolution=(1.7, 0.5))
    with pytest.raises(ValueError, match="σ₀ must be positive"):
        DeepMEMConfig(**{**PER_EVENT, "met_sum_et_resolution": (0.0, 0.5)})
    with pytest.raises(ValueError, match="2 non-negative numbers"):
        DeepMEMConfig(**{**PER_EVENT, "met_sum_et_resolution": (1.7, float("nan"))})
    with pytest.raises(ValueError, match="met_sumEt"):  # the per-event model needs the ΣE_T column
        DeepMEM(**PER_EVENT).transform(torch.zeros(3, 15))
