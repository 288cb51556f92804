"""Per-candidate inputs of the MET models, built from NanoAOD `PFCands` (shared by inference and training).

Feature order (`CANDIDATE_FEATURES`), one row per PF candidate:

| # | name | meaning |
|---|---|---|
| 0, 1 | px, py | transverse momentum components (GeV); the models' weighted sums use them raw |
| 2 | eta | pseudorapidity |
| 3 | log_pt | log(pT / GeV) |
| 4 | puppi | our PUPPI weight (`puppiWeightReco`, Run-3 tune) in [0, 1] |
| 5 | dz | longitudinal impact parameter w.r.t. the PV (cm), clipped to ±1 (0 for neutrals) |
| 6 | charge_class | 0 negative, 1 neutral, 2 positive (categorical) |
| 7 | type_class | 0 charged hadron, 1 electron, 2 muon, 3 photon, 4 neutral hadron, 5 HF hadronic, 6 HF EM |
| 8 | pv_class | `fromPV` 0–3, or from `pvAssocQuality` (≥ 6 → 3, 5 → 2, 4 → 1, else 0); neutrals 3 |

With ``neighbourhood=True`` (models trained with ``train met --neighbourhood``) the rows go on with the seven
`coffea_mlreco.met.neighbourhood.NEIGHBOURHOOD_FEATURES` (the neutral, charged-PV and charged-pileup p_T around the
candidate, and log N_PV): `CANDIDATE_FEATURES` + `NEIGHBOURHOOD_FEATURES`.

Event-level input (`event_features`): PUPPI MET (px, py) in GeV, the reference of the seed's target
v* = (p_miss,GEN − p_miss,PUPPI)/|p_miss,PUPPI|.
"""

from __future__ import annotations

import awkward as ak
import numpy as np

from coffea_mlreco.met.neighbourhood import NEIGHBOURHOOD_FEATURES, neighbourhood_features
from coffea_mlreco.met.pf_met import missing_transverse_momentum
from coffea_mlreco.met.puppi import load_tune, puppi_weights

__all__ = [
    "CANDIDATE_FEATURES",
    "N_CHARGE",
    "N_PV",
    "N_TYPE",
    "candidate_features",
    "event_features",
    "feature_names",
    "met_inputs",
    "type_class",
]

CANDIDATE_FEATURES = ("px", "py", "eta", "log_pt", "puppi", "dz", "charge_class", "type_class", "pv_class")
N_CHARGE, N_TYPE, N_PV = 3, 7, 4
_TYPE_OF_PDG = {211: 0, 11: 1, 13: 2, 22: 3, 130: 4, 1: 5, 2: 6}


def type_class(pdg_id: ak.Array) -> ak.Array:
    """Particle-flow type of each candidate (see the table in the module docstring)."""
    counts = ak.num(pdg_id, axis=1)
    flat = np.abs(ak.to_numpy(ak.flatten(pdg_id)))
    out = np.zeros(flat.size, np.int64)
    for code, cls in _TYPE_OF_PDG.items():
        out[flat == code] = cls
    return ak.unflatten(out, counts)


def _pv_class(cands: ak.Array) -> ak.Array:
    fields = set(ak.fields(cands))
    if "fromPV" in fields:
        value = cands.fromPV
    elif "pvAssocQuality" in fields:
        q = cands.pvAssocQuality
        value = ak.where(q >= 6, 3, ak.where(q == 5, 2, ak.where(q == 4, 1, 0)))
    else:
        raise KeyError("MET models need PFCands_fromPV or PFCands_pvAssocQuality")
    return ak.where(cands.charge == 0, 3, value)


def feature_names(neighbourhood: bool = False) -> tuple[str, ...]:
    """The candidate feature order of a model with or without the neighbourhood inputs."""
    return CANDIDATE_FEATURES + (NEIGHBOURHOOD_FEATURES if neighbourhood else ())


def candidate_features(cands: ak.Array, puppi: ak.Array, neighbourhood: ak.Array | None = None) -> ak.Array:
    """``N * var * {CANDIDATE_FEATURES}`` float32 record (categorical classes as small integers), followed by the
    fields of ``neighbourhood`` (`neighbourhood_features`) when given."""
    pt = cands.pt
    dz = cands.dz if "dz" in ak.fields(cands) else ak.zeros_like(pt)
    extra = {name: neighbourhood[name] for name in NEIGHBOURHOOD_FEATURES} if neighbourhood is not None else {}
    return ak.zip(
        {
            "px": pt * np.cos(cands.phi),
            "py": pt * np.sin(cands.phi),
            "eta": cands.eta,
            "log_pt": np.log(np.maximum(pt, 1e-3)),
            "puppi": puppi,
            "dz": ak.where(cands.charge == 0, 0.0, np.minimum(np.maximum(dz, -1.0), 1.0)),
            "charge_class": np.sign(cands.charge) + 1,
            "type_class": type_class(cands.pdgId),
            "pv_class": _pv_class(cands),
            **extra,
        }
    )


def event_features(cands: ak.Array, puppi: ak.Array) -> ak.Array:
    """``N * {puppi_px, puppi_py}``: PUPPI MET components (GeV)."""
    pt, phi = missing_transverse_momentum(cands, puppi)
    return ak.zip({"puppi_px": pt * np.cos(phi), "puppi_py": pt * np.sin(phi)})


def met_inputs(events: ak.Array, tune: str = "run3", neighbourhood: bool = False) -> tuple[ak.Array, ak.Array]:
    """(candidate features, event features) of NanoEvents, computing PUPPI weights unless present; with
    ``neighbourhood`` the candidate features include `NEIGHBOURHOOD_FEATURES` (the tune's vertex association)."""
    cands = events.PFCands
    if "puppiWeightReco" in ak.fields(cands):
        weights = cands.puppiWeightReco
    else:
        weights = puppi_weights(cands, tune, npv=events.PV.npvsGood)
    around = neighbourhood_features(cands, events.PV.npvsGood, load_tune(tune).delta_z_cut) if neighbourhood else None
    return candidate_features(cands, weights, around), event_features(cands, weights)
