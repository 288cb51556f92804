"""Phase-space parametrisation of the Drell-Yan MEM (MoMEMta's Drell-Yan example, in closed form).

The integration variables are the true transverse momenta (p_a, p_b) of the ℓ⁻ (a) and the ℓ⁺ (b); their
directions (η, φ) are taken as measured and the leptons are massless. The initial state is built from
the dilepton system as in MoMEMta's ``BuildInitialState`` block:

    x₁ = (E + p_z)/√s = (p_a e^{η_a} + p_b e^{η_b})/√s,    x₂ = (E − p_z)/√s = (p_a e^{−η_a} + p_b e^{−η_b})/√s,

which solves the longitudinal part of δ⁴(x₁P₁ + x₂P₂ − p_a − p_b) exactly, with the Jacobian
|∂(E, p_z)/∂(x₁, x₂)|⁻¹ = 2/s. The transverse part cannot be solved with fixed lepton directions when the
dilepton has a transverse momentum q_T (initial-state radiation, absent at LO); it is absorbed by the
hadronic recoil, whose transverse momentum −q_T carries a flat prior and enters only through the MET
transfer function (:mod:`coffea_mlreco.mem.integration`). The hard process is evaluated in the dilepton
rest frame with the q_T boost removed, i.e. in the Collins–Soper frame:

    ŝ = m_ℓℓ² = 2 p_a p_b (cosh Δη − cos Δφ),    μ_F = m_ℓℓ,
    cos θ* = 2 (p_z,a E_b − E_a p_z,b)/(m_ℓℓ √(m_ℓℓ² + q_T²)) = 2 p_a p_b sinh(η_a − η_b)/(m_ℓℓ √(x₁ x₂ s)),

the angle of the ℓ⁻ to the beam-1 direction (the quark direction when the quark comes from beam 1). At
q_T = 0 this is the exact LO kinematics (x₁x₂s = ŝ, cos θ* = tanh(Δη/2)).

The remaining phase-space factor of the two leptons, with their angles fixed, is

    d³p_a/((2π)³ 2E_a) d³p_b/((2π)³ 2E_b) (2π)⁴ dx₁dx₂ δ(E) δ(p_z) → (2π)⁻² (p_a p_b / 4)(2/s) dp_a dp_b

per dη dφ of each lepton (d³p/E = p_T dp_T dη dφ).

Reference: S. Brochet et al., "MoMEMta, a modular toolkit for the Matrix Element Method at the LHC",
Eur. Phys. J. C 79 (2019) 126, arXiv:1805.08555.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["DileptonKinematics", "dilepton_kinematics", "phase_space_factor"]


@dataclass(frozen=True)
class DileptonKinematics:
    """The hard-process variables of a dilepton configuration (arrays of one shape).

    Attributes:
        s_hat: m_ℓℓ² (GeV²).
        x1, x2: momentum fractions of the partons from beam 1 (+z) and beam 2 (−z).
        cos_theta: Collins–Soper cos θ* of the ℓ⁻ with respect to the +z beam.
        qt2: dilepton transverse momentum squared (GeV²).
    """

    s_hat: np.ndarray
    x1: np.ndarray
    x2: np.ndarray
    cos_theta: np.ndarray
    qt2: np.ndarray


def dilepton_kinematics(
    pt_a: np.ndarray,
    eta_a: np.ndarray | float,
    phi_a: np.ndarray | float,
    pt_b: np.ndarray,
    eta_b: np.ndarray | float,
    phi_b: np.ndarray | float,
    sqrt_s: float,
) -> DileptonKinematics:
    """x₁, x₂, ŝ and cos θ* for massless ℓ⁻ (a) and ℓ⁺ (b) of the given p_T (GeV), η and φ (rad); broadcasts."""
    d_eta = np.asarray(eta_a) - np.asarray(eta_b)
    d_phi = np.asarray(phi_a) - np.asarray(phi_b)
    s_hat = 2.0 * pt_a * pt_b * (np.cosh(d_eta) - np.cos(d_phi))
    x1 = (pt_a * np.exp(eta_a) + pt_b * np.exp(eta_b)) / sqrt_s
    x2 = (pt_a * np.exp(-np.asarray(eta_a)) + pt_b * np.exp(-np.asarray(eta_b))) / sqrt_s
    transverse_mass2 = x1 * x2 * sqrt_s**2  # = ŝ + q_T²
    cos_theta = 2.0 * pt_a * pt_b * np.sinh(d_eta) / np.sqrt(s_hat * transverse_mass2)
    qt2 = pt_a**2 + pt_b**2 + 2.0 * pt_a * pt_b * np.cos(d_phi)
    return DileptonKinematics(s_hat, x1, x2, np.clip(cos_theta, -1.0, 1.0), qt2)


def phase_space_factor(pt_a: np.ndarray, pt_b: np.ndarray, sqrt_s: float) -> np.ndarray:
    """(2π)⁻² (p_a p_b / 4)(2/s): the two-lepton phase space with fixed angles per dp_a dp_b (dimensionless)."""
    return pt_a * pt_b / (4.0 * (2.0 * math.pi) ** 2) * 2.0 / sqrt_s**2
