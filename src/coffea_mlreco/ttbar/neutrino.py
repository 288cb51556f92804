"""Neutrino longitudinal momentum from the W-mass constraint, m(ℓ ν) = m_W, with ν_T = MET.

For a massless neutrino and a lepton of mass m_ℓ, (p_ℓ + p_ν)² = m_W² is a quadratic in p_z,ν:

    a = E_ℓ² − p_z,ℓ²,   μ = (m_W² − m_ℓ²)/2 + p_T,ℓ · p_T,ν,
    p_z,ν = [μ p_z,ℓ ± E_ℓ sqrt(μ² − a p_T,ν²)] / a.

When the discriminant is negative (MET mismeasured, or an off-shell W) the real part μ p_z,ℓ / a is used for
both roots, the common choice in tt̄ analyses. Units GeV.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

from coffea_mlreco.core.constants import M_W

__all__ = ["NeutrinoSolutions", "neutrino_pz_roots", "neutrino_pz_solutions"]


@numba.njit(cache=True)
def neutrino_pz_roots(
    lep_px: float, lep_py: float, lep_pz: float, lep_e: float, nu_px: float, nu_py: float, m_w: float = M_W
) -> tuple[float, float, bool]:
    """Both W-constraint solutions (smaller |p_z| first) and whether they are real (discriminant ≥ 0)."""
    m_lep2 = max(lep_e * lep_e - lep_px * lep_px - lep_py * lep_py - lep_pz * lep_pz, 0.0)
    mu = 0.5 * (m_w * m_w - m_lep2) + lep_px * nu_px + lep_py * nu_py
    a = lep_e * lep_e - lep_pz * lep_pz
    if a <= 0.0:
        return 0.0, 0.0, False
    disc = mu * mu - a * (nu_px * nu_px + nu_py * nu_py)
    centre = mu * lep_pz / a
    if disc < 0.0:
        return centre, centre, False
    half = lep_e * np.sqrt(disc) / a
    first, second = centre - half, centre + half
    if abs(first) <= abs(second):
        return first, second, True
    return second, first, True


class NeutrinoSolutions(NamedTuple):
    """The two W-constraint p_z,ν per event (GeV): ``first`` the smaller |p_z|; ``real`` False where the discriminant
    is negative (both are then the real part)."""

    first: np.ndarray
    second: np.ndarray
    real: np.ndarray


@numba.njit(cache=True)
def _pz_kernel(lep, nu_px, nu_py, m_w, first, second, real):  # type: ignore[no-untyped-def]
    for i in range(nu_px.size):
        first[i], second[i], real[i] = neutrino_pz_roots(
            lep[i, 0], lep[i, 1], lep[i, 2], lep[i, 3], nu_px[i], nu_py[i], m_w
        )


def neutrino_pz_solutions(
    lepton_p4: np.ndarray, met_px: np.ndarray, met_py: np.ndarray, m_w: float = M_W
) -> NeutrinoSolutions:
    """Both W-constraint p_z,ν solutions per event for leptons [N, 4] = (px, py, pz, E) and MET (px, py), in GeV."""
    lep = np.ascontiguousarray(lepton_p4, dtype=np.float64).reshape(-1, 4)
    n = lep.shape[0]
    out = NeutrinoSolutions(np.empty(n), np.empty(n), np.empty(n, np.bool_))
    _pz_kernel(
        lep, np.ascontiguousarray(met_px, np.float64), np.ascontiguousarray(met_py, np.float64), float(m_w), *out
    )
    return out
