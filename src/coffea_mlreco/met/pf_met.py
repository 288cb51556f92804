"""Missing transverse momentum from (weighted) PF candidates: PF MET, PUPPI MET, DeepMET-style MET."""

from __future__ import annotations

import awkward as ak
import numpy as np

__all__ = ["missing_transverse_momentum"]


def missing_transverse_momentum(pfcands: ak.Array, weights: ak.Array | None = None) -> tuple[ak.Array, ak.Array]:
    """MET = −Σ wᵢ pT,ᵢ over each event's candidates; returns (pt in GeV, phi in rad).

    ``weights`` (jagged, aligned with ``pfcands``) default to 1 (PF MET). Events without candidates get
    pt = 0, phi = 0. Sums are done in float64.
    """
    pt = ak.values_astype(pfcands.pt, np.float64)
    if weights is not None:
        pt = pt * ak.values_astype(weights, np.float64)
    phi = ak.values_astype(pfcands.phi, np.float64)
    px = -ak.sum(pt * np.cos(phi), axis=1)
    py = -ak.sum(pt * np.sin(phi), axis=1)
    return np.hypot(px, py), np.arctan2(py, px)
