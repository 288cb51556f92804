"""Hadronic LO cross-sections σ(pp → ℓ⁺ℓ⁻) of a hypothesis, total or in a fiducial region, by quadrature.

    σ = Σ_q ∫ dx₁ dx₂ [f_q(x₁) f_q̄(x₂) dσ̂(ŝ, c) + f_q̄(x₁) f_q(x₂) dσ̂(ŝ, −c)],   ŝ = x₁ x₂ s,

at LO (no recoil: the dilepton has zero transverse momentum), with factorisation scale μ_F = m_ℓℓ. In
the variables m = √ŝ, y = ½ ln(x₁/x₂) (dx₁ dx₂ = 2m/s dm dy) and c = cos θ* of the ℓ⁻ w.r.t. beam 1,
the leptons have p_T = (m/2)√(1 − c²) and η_ℓ∓ = y ± atanh c, so the fiducial cuts p_T > p_T,min and
|η| < η_max on both leptons become |c| < c_m(m, y) = min(√(1 − 4 p_T,min²/m²), tanh(η_max − |y|)). The
c-integral is then analytic (the c-odd term cancels in the symmetric region), leaving a two-dimensional
Gauss–Legendre quadrature in (m, y) with the m-range split around every resonance (at M ± kΓ,
k = 0, ½, 1, 2, …, 128) and on a geometric grid, and the y-range split at the kink of c_m. The
quadrature error is below 1e-5 relative (doubling every node count changes σ by less than that; tested).

Units: GeV⁻² internally; :func:`hadronic_cross_section` returns pb.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from coffea_mlreco.core.constants import GEV2_TO_PB, PDG
from coffea_mlreco.mem.hypothesis import Hypothesis
from coffea_mlreco.mem.matrix_elements import QUARKS, MatrixElement
from coffea_mlreco.mem.pdf import PDF_PIDS, PartonDensity, load_pdf

__all__ = [
    "FULL_PHASE_SPACE",
    "FiducialRegion",
    "fiducial_cross_section_gev2",
    "hadronic_cross_section",
    "parton_luminosities",
]

_Q_COL = np.array([PDF_PIDS.index(q) for q in QUARKS])
_QBAR_COL = np.array([PDF_PIDS.index(-q) for q in QUARKS])


@dataclass(frozen=True)
class FiducialRegion:
    """Where the MEM weights are normalised: cuts on both leptons and on the dilepton mass.

    Attributes:
        lepton_pt_min: GeV, applied to both leptons.
        lepton_abs_eta_max: applied to both leptons (``inf`` for none).
        mll_min, mll_max: dilepton mass window, GeV.
    """

    lepton_pt_min: float = 15.0
    lepton_abs_eta_max: float = 2.5
    mll_min: float = 50.0
    mll_max: float = 1000.0

    def __post_init__(self) -> None:
        if not (self.lepton_pt_min >= 0 and self.lepton_abs_eta_max > 0 and 0 < self.mll_min < self.mll_max):
            raise ValueError(f"invalid fiducial region {self}: need pt_min ≥ 0, eta_max > 0, 0 < mll_min < mll_max")
        if not math.isfinite(self.mll_max):
            raise ValueError("mll_max must be finite")


FULL_PHASE_SPACE = FiducialRegion(0.0, math.inf, 50.0, 1000.0)
"""No lepton cuts, 50 < m_ℓℓ < 1000 GeV (change the window with ``dataclasses.replace``)."""


def parton_luminosities(
    pdf: PartonDensity, x1: np.ndarray, x2: np.ndarray, q2: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Number-density products per quark flavour (shape ``x1.shape + (5,)``, flavours d u s c b).

    Returns:
        (forward, backward): f_q(x₁) f_q̄(x₂) and f_q̄(x₁) f_q(x₂) (the quark from beam 1 or from beam 2).
    """
    xf1 = pdf.xfx_all(x1, q2)
    xf2 = pdf.xfx_all(x2, q2)
    norm = 1.0 / (np.asarray(x1) * np.asarray(x2))[..., None]
    forward = xf1[..., _Q_COL] * xf2[..., _QBAR_COL] * norm
    backward = xf1[..., _QBAR_COL] * xf2[..., _Q_COL] * norm
    return forward, backward


def _mass_breakpoints(region: FiducialRegion, resonances: tuple[tuple[float, float], ...]) -> np.ndarray:
    lo, hi = region.mll_min, region.mll_max
    points = list(np.geomspace(lo, hi, max(2, math.ceil(math.log(hi / lo) / math.log(1.1))) + 1))
    for mass, width in resonances:
        for k in (0, 0.5, 1, 2, 4, 8, 16, 32, 64, 128):
            points += [mass - k * width, mass + k * width]
    return np.unique(np.clip(points, lo, hi))


def _gauss_legendre(edges: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of n-point Gauss–Legendre on every interval between consecutive ``edges``."""
    t, w = np.polynomial.legendre.leggauss(n)
    a, b = edges[:-1, None], edges[1:, None]
    return (0.5 * (b - a) * t + 0.5 * (a + b)).ravel(), (0.5 * (b - a) * w).ravel()


def _cross_section_gev2(
    hypothesis: Hypothesis,
    region: FiducialRegion,
    lepton: int,
    sqrt_s: float,
    pdf: PartonDensity,
    n_mass: int = 12,
    n_y: int = 24,
) -> float:
    s = sqrt_s**2
    m, wm = _gauss_legendre(_mass_breakpoints(region, hypothesis.resonances), n_mass)
    c_pt = np.sqrt(np.clip(1.0 - 4.0 * region.lepton_pt_min**2 / m**2, 0.0, 1.0))  # (nm,)
    y_kin = np.log(sqrt_s / m)
    eta = region.lepton_abs_eta_max
    y_max = np.minimum(y_kin, eta)
    kink = np.clip(eta - np.arctanh(np.minimum(c_pt, 1 - 1e-16)), 0.0, y_max) if math.isfinite(eta) else y_max
    t, w = np.polynomial.legendre.leggauss(n_y)
    # y nodes on [0, kink] and [kink, y_max] for every mass node: (nm, 2 n_y)
    halves = [(np.zeros_like(kink), kink), (kink, y_max)]
    y = np.concatenate([0.5 * (b - a)[:, None] * t + 0.5 * (a + b)[:, None] for a, b in halves], axis=1)
    wy = np.concatenate([0.5 * (b - a)[:, None] * w[None, :] for a, b in halves], axis=1)
    c_eta = np.tanh(eta - y) if math.isfinite(eta) else np.ones_like(y)
    cm = np.clip(np.minimum(c_pt[:, None], c_eta), 0.0, 1.0)
    root_tau = (m / sqrt_s)[:, None]
    x1, x2 = root_tau * np.exp(y), root_tau * np.exp(-y)
    q2 = np.broadcast_to((m**2)[:, None], y.shape)
    forward, backward = parton_luminosities(pdf, x1, x2, q2)
    a, _, c = MatrixElement(hypothesis).coefficients(m**2, lepton)  # (nm, 5)
    ang_a = (cm + cm**3 / 3.0)[..., None]
    ang_c = cm[..., None]
    integrand = ((forward + backward) * (a[:, None, :] * ang_a + c[:, None, :] * ang_c)).sum(axis=-1)  # (nm, ny)
    inner = 4.0 * (integrand * wy).sum(axis=1)
    return float(np.sum(wm * (2.0 * m / s) * inner / (32.0 * math.pi * m**2)))


@functools.lru_cache(maxsize=64)
def fiducial_cross_section_gev2(
    hypothesis: Hypothesis, region: FiducialRegion, lepton: int = PDG["mu"], sqrt_s: float = 13600.0
) -> float:
    """σ(pp → ℓ⁺ℓ⁻) of ``hypothesis`` in ``region`` (GeV⁻²), with the hypothesis's PDF; cached per process."""
    return _cross_section_gev2(hypothesis, region, abs(lepton), sqrt_s, load_pdf(hypothesis.pdf))


def hadronic_cross_section(
    hypothesis: Hypothesis,
    region: FiducialRegion = FULL_PHASE_SPACE,
    *,
    lepton: int = PDG["mu"],
    sqrt_s: float = 13600.0,
    pdf: PartonDensity | None = None,
    n_mass: int = 12,
    n_y: int = 24,
) -> float:
    """LO σ(pp → γ*/Z/… → ℓ⁺ℓ⁻) in pb, in ``region`` (default: no lepton cuts, 50 < m_ℓℓ < 1000 GeV).

    Args:
        hypothesis: matrix element (mediators, couplings) and default PDF set.
        region: lepton cuts and m_ℓℓ window.
        lepton: 11 or 13.
        sqrt_s: proton-proton centre-of-mass energy, GeV.
        pdf: a PDF other than the hypothesis's (anything with ``xfx_all``).
        n_mass, n_y: Gauss–Legendre nodes per m segment and per y segment.
    """
    density = pdf if pdf is not None else load_pdf(hypothesis.pdf)
    return GEV2_TO_PB * _cross_section_gev2(hypothesis, region, abs(lepton), sqrt_s, density, n_mass, n_y)
