"""``MLPFCands``: PF-candidate-like columns from MLPF outputs on an event's elements.

One candidate per element whose class (the arg-max over the classes its type allows) is not "none":
tracks may give none, charged_hadron, electron or muon; clusters none, neutral_hadron or photon (the truth
targets never ask otherwise: `coffea_mlreco.simulation.element_targets`). Momenta are decoded with
`coffea_mlreco.mlpf.model.decode_candidates`. Fields are those of ``PFCands`` that PUPPI and the MET models
read — ``pt``, ``eta``, ``phi``, ``mass`` (GeV, rad), ``charge``, ``pdgId``, ``fromPV``, ``pvAssocQuality``,
``dz``, ``dzErr`` (cm; the track's for charged candidates, neutral ones get fromPV = 3, pvAssocQuality = 0,
dz = 0 like ``PFCands``) — plus ``trackIdx`` / ``clusterIdx`` (the source element within the event, −1 for
the other type) and ``cls`` (index into `PARTICLE_CLASSES`). Candidates keep the element order.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ALLOWED_CLASSES", "allowed_class_logits", "candidate_columns"]

ALLOWED_CLASSES = {1: (0, 1, 4, 5), 2: (0, 2, 3)}
"""Classes an element type may produce: track (1) → none, charged hadron, electron, muon; cluster (2) → none,
neutral hadron, photon."""


def allowed_class_logits(class_logits: np.ndarray, element_type: np.ndarray) -> np.ndarray:
    """``class_logits`` [M, 6] with the classes an element's type cannot produce set to −inf."""
    out = np.array(class_logits, np.float32, copy=True)
    for kind, allowed in ALLOWED_CLASSES.items():
        banned = np.setdiff1d(np.arange(out.shape[-1]), allowed)
        rows = element_type == kind
        out[np.ix_(rows, banned)] = -np.inf
    return out


def candidate_columns(
    table: np.ndarray,
    counts: np.ndarray,
    class_logits: np.ndarray,
    momentum: np.ndarray,
    charge_logit: np.ndarray,
    track_from_pv: np.ndarray,
    track_quality: np.ndarray,
    track_dz_err: np.ndarray,
    logit_offsets: np.ndarray | None = None,
    neutral_pt_scale: np.ndarray | None = None,
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Flat MLPFCands columns and per-event counts, plus each element's predicted class [M].

    table [M, 13] (`coffea_mlreco.mlpf.inputs.element_table`), counts [N]; model outputs flat per element
    (class_logits [M, 6], momentum [M, 5], charge_logit [M]); track_* the tracks' fromPV, pvAssocQuality and
    dzErr in element order of the tracks (flat, tracks only). ``logit_offsets`` [6] are added to the class
    logits before the arg-max (the working point; a shipped model's card names its own); ``neutral_pt_scale``
    [2, 6] multiplies the pT of cluster candidates by class, row 0 for |η| < 3 and row 1 for HF (the response
    correction of `coffea_mlreco.mlpf.training.neutral_pt_scale`).
    """
    from coffea_mlreco.mlpf.model import decode_candidates

    kind = table[:, 0].astype(np.int64)
    if logit_offsets is not None:
        class_logits = class_logits + np.asarray(logit_offsets, np.float32)
    logits = allowed_class_logits(class_logits, kind)
    decoded = decode_candidates(
        {"class_logits": logits[None], "momentum": momentum[None], "charge_logit": charge_logit[None]}, table[None]
    )
    cls = decoded["cls"].astype(np.int64)
    event = np.repeat(np.arange(counts.size), counts)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    local = np.arange(kind.size) - start[event]
    is_track = kind == 1
    n_tracks_before = np.cumsum(is_track) - is_track  # track rank (flat, tracks only) of each track row
    track_rank = np.where(is_track, n_tracks_before, 0)
    per_event_tracks = np.bincount(event[is_track], minlength=counts.size)
    keep = cls != 0
    charged = np.isin(cls, (1, 4, 5)) & is_track
    neutral_pt = decoded["pt"]
    if neutral_pt_scale is not None:
        neutral_pt = neutral_pt * np.asarray(neutral_pt_scale, np.float32)[(np.abs(table[:, 2]) >= 3).astype(int), cls]
    columns = {
        "pt": np.where(charged, table[:, 1], neutral_pt).astype(np.float32),
        "eta": np.where(charged, table[:, 2], decoded["eta"]).astype(np.float32),
        "phi": np.where(charged, table[:, 3], decoded["phi"]).astype(np.float32),
        "mass": decoded["mass"],
        "charge": decoded["charge"].astype(np.int32),
        "pdgId": decoded["pdgId"].astype(np.int32),
        "fromPV": np.where(charged, track_from_pv[track_rank] if track_from_pv.size else 0, 3).astype(np.int32),
        "pvAssocQuality": np.where(charged, track_quality[track_rank] if track_quality.size else 0, 0).astype(np.int32),
        "dz": np.where(charged, table[:, 10], 0.0).astype(np.float32),
        "dzErr": np.where(charged, track_dz_err[track_rank] if track_dz_err.size else 0.0, 0.0).astype(np.float32),
        "trackIdx": np.where(is_track, local, -1).astype(np.int32),
        "clusterIdx": np.where(is_track, -1, local - per_event_tracks[event]).astype(np.int32),
        "cls": cls.astype(np.int32),
    }
    out_counts = np.bincount(event[keep], minlength=counts.size).astype(np.int64)
    return {k: v[keep] for k, v in columns.items()}, out_counts, cls
