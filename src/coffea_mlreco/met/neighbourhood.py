"""What surrounds each PF candidate: the neutral, charged-PV and charged-pileup p_T within ΔR < R.

A per-candidate network (DeepMET) sees a neutral candidate's own p_T, η and PUPPI weight, but not what lies around
it. A hard-scatter neutral sits in a jet, among charged candidates from the primary vertex and other neutrals; a
pileup neutral mostly does not. PUPPI condenses the charged-PV part into one number, α, compared with the pileup's
median; a MET model with ``neighbourhood=True`` reads instead, per candidate (`NEIGHBOURHOOD_FEATURES`):

| # | name | meaning |
|---|---|---|
| 0–2 | neutral_r02, pv_r02, pileup_r02 | log(1 + Σ p_T / GeV) of the neutral, charged-PV and charged-pileup |
| | | candidates within ΔR < 0.2 |
| 3–5 | neutral_r04, pv_r04, pileup_r04 | the same within ΔR < 0.4 |
| 6 | log_npv | log(max(N_PV, 1)), N_PV the event's good vertices (``PV_npvsGood``) |

ΔR is the η–φ distance; the candidate itself is not its own neighbour. Charged candidates are from the PV or
pileup by the PUPPI tune's vertex association (:func:`coffea_mlreco.met.puppi.pv_class`).

The search sorts each event's candidates in η and pairs each with the following ones up to Δη < 0.4, so its cost
is O(N · n_R) with n_R the candidates in an η strip of 0.4, not O(N²).
"""

from __future__ import annotations

import math

import awkward as ak
import numba
import numpy as np

from coffea_mlreco.core.columns import to_numpy
from coffea_mlreco.met.puppi import pv_class

__all__ = ["NEIGHBOURHOOD_FEATURES", "NEIGHBOURHOOD_RADII", "neighbourhood_features", "neighbourhood_pt"]

NEIGHBOURHOOD_RADII = (0.2, 0.4)
"""The cone radii (ΔR) of the neighbourhood sums, smallest first."""
_VERTEX_CLASSES = ("neutral", "pv", "pileup")  # the order of pv_class: 0 neutral, 1 charged PV, 2 charged pileup
NEIGHBOURHOOD_FEATURES = (
    *(f"{cls}_r{round(10 * r):02d}" for r in NEIGHBOURHOOD_RADII for cls in _VERTEX_CLASSES),
    "log_npv",
)


@numba.njit(cache=True)
def _neighbourhood_pt(offsets, eta, phi, pt, vertex_class, radii, out):  # type: ignore[no-untyped-def]
    """out[i, k·3 + c] += p_T of every candidate j ≠ i of class c with ΔR_ij < radii[k] (radii ascending), per
    event offsets[e]:offsets[e + 1]; each pair is visited once, in η order, and adds to both candidates."""
    n_radii = radii.size
    r_max = radii[n_radii - 1]
    for e in range(offsets.size - 1):
        lo = offsets[e]
        order = np.argsort(eta[lo : offsets[e + 1]]) + lo
        for a in range(order.size):
            i = order[a]
            for b in range(a + 1, order.size):
                j = order[b]
                deta = eta[j] - eta[i]
                if deta >= r_max:
                    break
                dphi = abs(phi[j] - phi[i])
                if dphi > math.pi:
                    dphi = 2 * math.pi - dphi
                dr2 = deta * deta + dphi * dphi
                for k in range(n_radii):
                    if dr2 < radii[k] * radii[k]:
                        out[i, 3 * k + vertex_class[j]] += pt[j]
                        out[j, 3 * k + vertex_class[i]] += pt[i]
    return out


def neighbourhood_pt(
    counts: np.ndarray, eta: np.ndarray, phi: np.ndarray, pt: np.ndarray, vertex_class: np.ndarray
) -> np.ndarray:
    """[T, 3·len(NEIGHBOURHOOD_RADII)] Σ p_T (GeV) of the neutral, charged-PV and charged-pileup neighbours of each
    of T flat candidates (``counts`` per event; ``vertex_class`` 0 neutral, 1 charged PV, 2 charged pileup)."""
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    out = np.zeros((offsets[-1], 3 * len(NEIGHBOURHOOD_RADII)))
    return _neighbourhood_pt(
        offsets,
        np.asarray(eta, np.float64),
        np.asarray(phi, np.float64),
        np.asarray(pt, np.float64),
        np.asarray(vertex_class, np.int64),
        np.asarray(NEIGHBOURHOOD_RADII, np.float64),
        out,
    )


def neighbourhood_features(cands: ak.Array, npv: ak.Array, delta_z_cut: float) -> ak.Array:
    """``N * var * {NEIGHBOURHOOD_FEATURES}`` float32 record of PF candidates (``pt``, ``eta``, ``phi``, ``charge``
    and the vertex association `pv_class` reads, with its ``delta_z_cut`` in cm); ``npv`` good vertices per event."""
    counts = to_numpy(ak.num(cands, axis=1), np.int64)
    sums = neighbourhood_pt(
        counts,
        to_numpy(ak.flatten(cands.eta)),
        to_numpy(ak.flatten(cands.phi)),
        to_numpy(ak.flatten(cands.pt)),
        to_numpy(ak.flatten(pv_class(cands, delta_z_cut))),
    )
    columns = {name: np.log1p(sums[:, k]).astype(np.float32) for k, name in enumerate(NEIGHBOURHOOD_FEATURES[:-1])}
    columns["log_npv"] = np.repeat(np.log(np.maximum(to_numpy(npv, np.float64), 1.0)), counts).astype(np.float32)
    return ak.unflatten(ak.zip(columns), counts)
