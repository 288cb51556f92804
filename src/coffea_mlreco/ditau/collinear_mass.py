"""Di-tau mass in the collinear approximation (Ellis, Hinchliffe, Soldate, van der Bij, Nucl. Phys. B297 (1988) 221).

Each tau's neutrinos are taken to fly along its visible decay products, so the tau four-momentum is the
visible one scaled by 1/x (x = visible momentum fraction). The two transverse equations

    MET = p_T,vis1 (1/x1 − 1) + p_T,vis2 (1/x2 − 1)

are solved for (x1, x2) with Cramer's rule (determinant p_vis1 × p_vis2 = pT1 pT2 sin Δφ), and
m_coll = m(p_vis1/x1 + p_vis2/x2) ≈ m_vis/√(x1 x2). Momenta in GeV, angles in radians.

Failures are flagged in ``status`` (a :class:`CollinearStatus` bit set), never NaN-propagated:
``SINGULAR`` when |sin Δφ| < :data:`SINGULAR_SIN_DPHI` (legs parallel or back-to-back in φ: the solution
amplifies the MET noise without bound), ``X1_UNPHYSICAL`` / ``X2_UNPHYSICAL`` when x ∉ (0, 1] (a neutrino
momentum pointing against its visible tau). For every failed event the result falls back to "no
neutrinos": x1 = x2 = 1 and ``mass`` = m_vis, a lower bound of m_ττ, so that histograms stay finite and the
failure count comes from ``status``. Events without a pair (``NO_PAIR``) get NaN in every float field.
"""

from __future__ import annotations

from enum import IntFlag

import awkward as ak
import numba
import numpy as np

from coffea_mlreco.ditau.inputs import KernelArrays, kernel_arrays

__all__ = ["SINGULAR_SIN_DPHI", "CollinearStatus", "collinear_kernel", "collinear_mass"]

SINGULAR_SIN_DPHI = 0.01
"""|sin Δφ(leg1, leg2)| below which the 2×2 system counts as singular (Δφ within 0.6° of 0 or π)."""


class CollinearStatus(IntFlag):
    """Why the collinear solution failed (bits; 0 = success)."""

    OK = 0
    SINGULAR = 1
    X1_UNPHYSICAL = 2
    X2_UNPHYSICAL = 4
    NO_PAIR = 8


# plain ints for the numba kernel (numba does not type IntFlag members)
_SINGULAR, _X1_BAD, _X2_BAD, _NO_PAIR = (
    int(f)
    for f in (
        CollinearStatus.SINGULAR,
        CollinearStatus.X1_UNPHYSICAL,
        CollinearStatus.X2_UNPHYSICAL,
        CollinearStatus.NO_PAIR,
    )
)


@numba.njit(cache=True)
def _pair_mass(p1: np.ndarray, p2: np.ndarray, s1: float, s2: float) -> float:
    """Invariant mass of s1·p1 + s2·p2 (four-vectors px, py, pz, E)."""
    e = s1 * p1[3] + s2 * p2[3]
    px = s1 * p1[0] + s2 * p2[0]
    py = s1 * p1[1] + s2 * p2[1]
    pz = s1 * p1[2] + s2 * p2[2]
    return np.sqrt(max(e * e - px * px - py * py - pz * pz, 0.0))


@numba.njit(cache=True)
def collinear_kernel(
    valid: np.ndarray,
    leg1: np.ndarray,
    leg2: np.ndarray,
    met: np.ndarray,
    sin_min: float,
    mass: np.ndarray,
    x1: np.ndarray,
    x2: np.ndarray,
    status: np.ndarray,
) -> None:
    """Fill ``mass``, ``x1``, ``x2``, ``status`` (length n) from (n, 4) legs and the (n, ≥2) MET px, py."""
    for i in range(len(valid)):
        if not valid[i]:
            mass[i], x1[i], x2[i], status[i] = np.nan, np.nan, np.nan, _NO_PAIR
            continue
        p1x, p1y, p2x, p2y = leg1[i, 0], leg1[i, 1], leg2[i, 0], leg2[i, 1]
        det = p1x * p2y - p1y * p2x
        flag = 0
        a1 = a2 = 0.0
        if abs(det) < sin_min * np.hypot(p1x, p1y) * np.hypot(p2x, p2y):
            flag = _SINGULAR
        else:
            a1 = (met[i, 0] * p2y - met[i, 1] * p2x) / det  # 1/x1 − 1
            a2 = (p1x * met[i, 1] - p1y * met[i, 0]) / det  # 1/x2 − 1
            if not (a1 >= 0.0 and np.isfinite(a1)):  # x1 = 1/(1 + a1) ∈ (0, 1]  ⇔  a1 ≥ 0
                flag |= _X1_BAD
            if not (a2 >= 0.0 and np.isfinite(a2)):
                flag |= _X2_BAD
        if flag:
            a1 = a2 = 0.0
        x1[i], x2[i], status[i] = 1.0 / (1.0 + a1), 1.0 / (1.0 + a2), flag
        mass[i] = _pair_mass(leg1[i], leg2[i], 1.0 + a1, 1.0 + a2)


def _run(arrays: KernelArrays, sin_min: float) -> dict[str, np.ndarray]:
    n = len(arrays.valid)
    out = {"mass": np.empty(n), "x1": np.empty(n), "x2": np.empty(n), "status": np.empty(n, np.int64)}
    collinear_kernel(
        arrays.valid, arrays.leg1, arrays.leg2, arrays.met, sin_min, out["mass"], out["x1"], out["x2"], out["status"]
    )
    return out


def collinear_mass(leg1: ak.Array, leg2: ak.Array, met: ak.Array, *, sin_min: float = SINGULAR_SIN_DPHI) -> ak.Array:
    """Collinear-approximation di-tau mass per event.

    Args:
        leg1, leg2: visible tau legs, one (option) record per event with ``pt``, ``eta``, ``phi``,
            ``mass`` (GeV, rad) and ``kind`` (as from :func:`coffea_mlreco.ditau.inputs.ditau_candidates`).
        met: one record per event with ``px``, ``py`` (GeV) and ``covXX``, ``covXY``, ``covYY`` (GeV², read
            for validation only).
        sin_min: the :data:`SINGULAR_SIN_DPHI` threshold.

    Returns:
        Records ``mass`` (GeV), ``x1``, ``x2`` (visible momentum fractions), ``status``
        (:class:`CollinearStatus` bits); failed events carry the fallback of the module docstring.

    Raises:
        ValueError: a missing field or a non-finite input in an event with a pair (names the field).
    """
    return ak.zip(_run(kernel_arrays(leg1, leg2, met), sin_min))
