"""Analytic LO matrix elements for q q̄ → ℓ⁻ℓ⁺ through s-channel mediators (massless fermions).

For quark flavour q and lepton ℓ, with θ* the angle between the ℓ⁻ and the quark in the ℓℓ rest frame
(c = cos θ*), the spin- and colour-averaged squared amplitude is

    |M̄|²(ŝ, c) = ŝ²/12 · [(|A_LL|² + |A_RR|²)(1 + c)² + (|A_LR|² + |A_RL|²)(1 − c)²]  +  ŝ²/3 · |A_S|²
               = A (1 + c²) + B c + C,

    A_ij = Σ_V g_i^q(V) g_j^ℓ(V) / D_V(ŝ),   A_S = Σ_S y_q(S) y_ℓ(S) / D_S(ŝ),

with i, j the quark and lepton chiralities, D = ŝ for the photon and ŝ − M² + i M Γ (or i ŝ Γ/M) for a
massive mediator (couplings and conventions: :mod:`coffea_mlreco.mem.hypothesis`). The factor 1/12 is the
average over 4 spin states times 3 colours of the initial state (a colour-singlet exchange: Σ|δ_ab|²/9 =
1/3). Then A = ŝ²(S + D)/12, B = ŝ²(S − D)/6 with S = |A_LL|² + |A_RR|², D = |A_LR|² + |A_RL|², and
C = ŝ²|A_S|²/3. |M̄|² is dimensionless; the partonic cross-section is

    dσ̂/dc = |M̄|² / (32 π ŝ),    σ̂ = (8/3 A + 2 C) / (32 π ŝ)    (GeV⁻²).

References: R.K. Ellis, W.J. Stirling, B.R. Webber, "QCD and collider physics" (CUP 1996), §9.2; the
helicity amplitudes of e⁺e⁻ → μ⁺μ⁻ in M.E. Peskin, D.V. Schroeder, §5.2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from coffea_mlreco.mem.hypothesis import FERMIONS, Hypothesis

__all__ = ["QUARKS", "MatrixElement", "partonic_cross_section", "squared_matrix_element"]

QUARKS: tuple[int, ...] = (1, 2, 3, 4, 5)
"""Quark flavours summed over (d u s c b); the last axis of :meth:`MatrixElement.coefficients`."""


@dataclass(frozen=True)
class _Couplings:
    masses2: np.ndarray  # (n_med,)
    mass_width: np.ndarray  # (n_med,) M Γ (fixed) — 0 for the photon
    width_over_mass: np.ndarray  # (n_med,) Γ/M (running) — 0 otherwise
    quark: np.ndarray  # (2, n_med, 5): chirality, mediator, quark flavour
    lepton: dict[int, np.ndarray]  # |pdg| → (2, n_med)


class MatrixElement:
    """|M̄|² of q q̄ → ℓ⁻ℓ⁺ for one hypothesis, vectorised over ŝ and over the five quark flavours.

    Args:
        hypothesis: the mediators and their couplings.
    """

    def __init__(self, hypothesis: Hypothesis) -> None:
        self.hypothesis = hypothesis
        self._vector = self._pack([m for m in hypothesis.mediators if m.spin == 1])
        self._scalar = self._pack([m for m in hypothesis.mediators if m.spin == 0])

    @staticmethod
    def _pack(mediators: list) -> _Couplings | None:
        if not mediators:
            return None
        qi = [FERMIONS.index(q) for q in QUARKS]
        running = np.array([m.width_scheme == "running" for m in mediators])
        mass = np.array([m.mass for m in mediators])
        width = np.array([m.width for m in mediators])
        g = np.array([[m.g_left for m in mediators], [m.g_right for m in mediators]])  # (2, n_med, n_fermion)
        return _Couplings(
            masses2=mass**2,
            mass_width=np.where(running, 0.0, mass * width),
            width_over_mass=np.where(running & (mass > 0), width / np.where(mass > 0, mass, 1.0), 0.0),
            quark=g[:, :, qi],
            lepton={lep: g[:, :, FERMIONS.index(lep)] for lep in (11, 13)},
        )

    @staticmethod
    def _propagators(c: _Couplings, s_hat: np.ndarray) -> np.ndarray:
        """1/D_V(ŝ) for every mediator: (n, n_med) complex, GeV⁻²."""
        s = s_hat[:, None]
        return 1.0 / (s - c.masses2 + 1j * (c.mass_width + s * c.width_over_mass))

    def coefficients(self, s_hat: np.ndarray, lepton: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(A, B, C) of |M̄|² = A (1 + c²) + B c + C, each of shape (n, 5) for the quarks of :data:`QUARKS`.

        Args:
            s_hat: partonic centre-of-mass energy squared (GeV²), shape (n,).
            lepton: |PDG id| of the lepton (11 or 13).
        """
        s_hat = np.asarray(s_hat, dtype=float)
        if abs(lepton) not in (11, 13):
            raise ValueError(f"lepton must be 11 or 13, not {lepton}")
        lep = abs(lepton)
        n = s_hat.size
        s2 = s_hat**2
        a = np.zeros((n, len(QUARKS)))
        b = np.zeros((n, len(QUARKS)))
        cc = np.zeros((n, len(QUARKS)))
        if self._vector is not None:
            v = self._vector
            prop = self._propagators(v, s_hat)  # (n, m)
            same = np.zeros((n, len(QUARKS)))
            opposite = np.zeros((n, len(QUARKS)))
            for i in range(2):  # quark chirality L, R
                for j in range(2):  # lepton chirality
                    coupling = v.quark[i] * v.lepton[lep][j][:, None]  # (m, 5)
                    if self.hypothesis.interference:
                        amp2 = np.abs(prop @ coupling) ** 2
                    else:
                        amp2 = (np.abs(prop) ** 2) @ (coupling**2)
                    if i == j:
                        same += amp2
                    else:
                        opposite += amp2
            a += s2[:, None] * (same + opposite) / 12.0
            b += s2[:, None] * (same - opposite) / 6.0
        if self._scalar is not None:
            sc = self._scalar
            prop = self._propagators(sc, s_hat)
            coupling = sc.quark[0] * sc.lepton[lep][0][:, None]
            amp2 = np.abs(prop @ coupling) ** 2 if self.hypothesis.interference else (np.abs(prop) ** 2) @ coupling**2
            cc += s2[:, None] * amp2 / 3.0
        return a, b, cc


def squared_matrix_element(
    hypothesis: Hypothesis, quark: int, lepton: int, s_hat: np.ndarray, cos_theta: np.ndarray
) -> np.ndarray:
    """Spin- and colour-averaged |M̄|² (dimensionless) of q q̄ → ℓ⁻ℓ⁺.

    Args:
        hypothesis: the hypothesis.
        quark: 1–5 (d u s c b); the antiquark comes from the other beam.
        lepton: 11 or 13.
        s_hat: ŝ = m_ℓℓ² in GeV², broadcast with ``cos_theta``.
        cos_theta: cos θ* of the ℓ⁻ with respect to the quark direction, in the ℓℓ rest frame.
    """
    s, c = np.broadcast_arrays(np.asarray(s_hat, dtype=float), np.asarray(cos_theta, dtype=float))
    a, b, cc = MatrixElement(hypothesis).coefficients(s.ravel(), lepton)
    k = QUARKS.index(quark)
    cf = c.ravel()
    return (a[:, k] * (1 + cf**2) + b[:, k] * cf + cc[:, k]).reshape(s.shape)


def partonic_cross_section(hypothesis: Hypothesis, quark: int, lepton: int, s_hat: np.ndarray) -> np.ndarray:
    """σ̂(q q̄ → ℓ⁻ℓ⁺) integrated over the full angle, in GeV⁻² (colour- and spin-averaged)."""
    s = np.atleast_1d(np.asarray(s_hat, dtype=float))
    a, _, cc = MatrixElement(hypothesis).coefficients(s, lepton)
    k = QUARKS.index(quark)
    out = (8.0 / 3.0 * a[:, k] + 2.0 * cc[:, k]) / (32.0 * math.pi * s)
    return out.reshape(np.shape(s_hat))
