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

The neighbours come from the η–φ grid PUPPI searches (`coffea_mlreco.met.puppi`), which visits per candidate only the
grid cells its ΔR < 0.4 disc reaches: O(N · n_R), n_R the candidates in such a disc, not O(N²).
"""

from __future__ import annotations

import awkward as ak
import numba
import numpy as np

from coffea_mlreco.core.columns import to_numpy
from coffea_mlreco.met.puppi import _RUNS, _cone_runs, _grid, pv_class  # PUPPI's neighbour grid

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
    event offsets[e]:offsets[e + 1]. The neighbours come from PUPPI's η–φ grid at the largest radius."""
    n_radii = radii.size
    cone = radii[n_radii - 1]
    r2 = radii * radii
    run_lo, run_hi, run_phi = np.empty(_RUNS, np.int64), np.empty(_RUNS, np.int64), np.empty(_RUNS)
    for e in range(offsets.size - 1):
        lo, hi = offsets[e], offsets[e + 1]
        start, g_eta, g_phi, g_pt, order, n_eta, n_phi, height, width = _grid(
            eta[lo:hi], phi[lo:hi], pt[lo:hi], np.ones(hi - lo, np.bool_), cone, True
        )
        g_class = vertex_class[lo:hi][order]
        for q in range(order.size):
            i = lo + order[q]
            eta_i = g_eta[q]
            n_runs = _cone_runs(eta_i, g_phi[q], start, n_eta, n_phi, height, width, cone, run_lo, run_hi, run_phi)
            for k in range(n_runs):
                phi_k = run_phi[k]
                for m in range(run_lo[k], run_hi[k]):
                    deta = eta_i - g_eta[m]
                    dphi = phi_k - g_phi[m]
                    dr2 = deta * deta + dphi * dphi
                    if m == q or dr2 >= r2[n_radii - 1]:
                        continue
                    for r in range(n_radii):
                        if dr2 < r2[r]:
                            out[i, 3 * r + g_class[m]] += g_pt[m]
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
