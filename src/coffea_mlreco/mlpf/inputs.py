"""MLPF inputs: the event's detector elements (``PFTrack``, ``PFCluster``) as rows of :data:`FEATURES`.

Per event the element list is its tracks (in ``PFTrack`` order) followed by its clusters (in ``PFCluster``
order) — the order of ``PFTarget``. Columns follow :data:`FEATURES`:

| feature | track (type 1) | cluster (type 2) |
|---|---|---|
| pt, eta, phi | measured at the vertex (GeV, rad) | 0, cluster η, φ |
| e, e_em, e_had | 0 | cluster energy, its ECAL and hadronic parts (GeV) |
| eta_calo, phi_calo | where the track meets the ECAL surface | 0 (the model uses η, φ) |
| charge, dz, quality | ±1, dz to the PV (cm), pvAssocQuality / 7 | 0 |
| width | 0 | energy-weighted RMS spread in (η, φ) |
| e_linked | energy of the cluster it is linked to, 0 if none | Σ energy pT·cosh η of the tracks linked to it |
| n_linked | tracks sharing its linked cluster, 0 if none | number of tracks linked to it |

The links are the detector's geometric track–cluster links (``PFTrack_clusterIdx``: the cluster the track's
calorimeter-surface point falls in), the same ones rule-based PF uses; no truth enters.

`element_table` builds flat numpy rows + per-event counts (training, evaluation); `mlpf_elements` the
same as an awkward ``N * var * {feature}`` record array (the wrapper's input).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import awkward as ak
import numpy as np

from coffea_mlreco.core.columns import Events, to_numpy

__all__ = ["ELEMENT_BRANCHES", "FEATURES", "element_order", "element_table", "mlpf_elements"]

FEATURES = (
    "type",
    "pt",
    "eta",
    "phi",
    "e",
    "e_em",
    "e_had",
    "eta_calo",
    "phi_calo",
    "charge",
    "dz",
    "quality",
    "width",
    "e_linked",
    "n_linked",
)
"""Columns of the ``elements`` input [B, N, 15] — the contract with the simulation. Units: GeV (pt, e, e_em,
e_had, e_linked), rad (phi, phi_calo), cm (dz). Tracks fill type, pt, eta, phi (at the vertex), eta_calo,
phi_calo (at the calorimeter surface), charge (±1), dz, quality (a [0, 1] score); clusters fill type, e, e_em,
e_had, eta, phi, width (energy-weighted RMS in η-φ). Features an element type does not have are 0. The
detector's track–cluster links: a cluster's e_linked / n_linked are the summed energy and number of its
linked tracks; a track's are its linked cluster's energy and the tracks sharing it (0 when unlinked). Models
built with ``link_features=False`` ignore the last two columns."""
TRACK_SOURCES = {
    "pt": "pt",
    "eta": "eta",
    "phi": "phi",
    "eta_calo": "etaCalo",
    "phi_calo": "phiCalo",
    "charge": "charge",
    "dz": "dz",
    "quality": "quality",
}
CLUSTER_SOURCES = {"e": "energy", "e_em": "eEm", "e_had": "eHad", "eta": "eta", "phi": "phi", "width": "width"}
ELEMENT_BRANCHES = tuple(f"PFTrack_{v}" for v in (*TRACK_SOURCES.values(), "clusterIdx")) + tuple(
    f"PFCluster_{v}" for v in CLUSTER_SOURCES.values()
)
"""The file branches the inputs read."""


def element_order(n_tracks: np.ndarray, n_clusters: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row of every track and every cluster in the event-major element table, and the elements per event."""
    n_tracks, n_clusters = np.asarray(n_tracks, np.int64), np.asarray(n_clusters, np.int64)
    counts = n_tracks + n_clusters
    start = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    t_event = np.repeat(np.arange(counts.size), n_tracks)
    c_event = np.repeat(np.arange(counts.size), n_clusters)
    t_start = np.concatenate([[0], np.cumsum(n_tracks)[:-1]]).astype(np.int64)
    c_start = np.concatenate([[0], np.cumsum(n_clusters)[:-1]]).astype(np.int64)
    t_rows = start[t_event] + np.arange(n_tracks.sum()) - t_start[t_event]
    c_rows = start[c_event] + n_tracks[c_event] + np.arange(n_clusters.sum()) - c_start[c_event]
    return t_rows, c_rows, counts


def _table(
    get: Callable[[str, str], np.ndarray], n_tracks: np.ndarray, n_clusters: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    t_rows, c_rows, counts = element_order(n_tracks, n_clusters)
    table = np.zeros((int(counts.sum()), len(FEATURES)), np.float32)
    column = {name: i for i, name in enumerate(FEATURES)}
    table[t_rows, 0] = 1.0
    table[c_rows, 0] = 2.0
    for feature, branch in TRACK_SOURCES.items():
        table[t_rows, column[feature]] = get("PFTrack", branch)
    for feature, branch in CLUSTER_SOURCES.items():
        table[c_rows, column[feature]] = get("PFCluster", branch)
    _fill_links(table, get("PFTrack", "clusterIdx"), t_rows, c_rows, n_tracks, n_clusters)
    return table, counts


def _fill_links(
    table: np.ndarray,
    cluster_idx: np.ndarray,
    t_rows: np.ndarray,
    c_rows: np.ndarray,
    n_tracks: np.ndarray,
    n_clusters: np.ndarray,
) -> None:
    """Fill ``e_linked`` / ``n_linked`` (module docstring) from each track's event-local linked-cluster index."""
    column = {name: i for i, name in enumerate(FEATURES)}
    link = np.asarray(cluster_idx, np.int64)
    n_tracks, n_clusters = np.asarray(n_tracks, np.int64), np.asarray(n_clusters, np.int64)
    if (link >= np.repeat(n_clusters, n_tracks)).any():
        raise ValueError("PFTrack_clusterIdx points past the event's clusters")
    linked = link >= 0
    c_start = np.cumsum(n_clusters) - n_clusters
    flat = c_start[np.repeat(np.arange(n_tracks.size), n_tracks)[linked]] + link[linked]
    track_energy = table[t_rows, column["pt"]].astype(np.float64) * np.cosh(table[t_rows, column["eta"]])
    e_sum = np.bincount(flat, weights=track_energy[linked], minlength=c_rows.size)
    n_sum = np.bincount(flat, minlength=c_rows.size).astype(np.float64)
    table[c_rows, column["e_linked"]] = e_sum
    table[c_rows, column["n_linked"]] = n_sum
    table[t_rows[linked], column["e_linked"]] = table[c_rows[flat], column["e"]]
    table[t_rows[linked], column["n_linked"]] = n_sum[flat]


def element_table(events: Events) -> tuple[np.ndarray, np.ndarray]:
    """(rows [M, 15] float32 in `FEATURES` order, elements per event [N]) from NanoEvents or any record array
    with ``PFTrack`` and ``PFCluster`` collections."""

    def get(collection: str, field: str) -> np.ndarray:
        return to_numpy(ak.flatten(events[collection][field], axis=1), np.float32)

    n_t = to_numpy(ak.num(events.PFTrack.pt, axis=1), np.int64)
    n_c = to_numpy(ak.num(events.PFCluster.energy, axis=1), np.int64)
    return _table(get, n_t, n_c)


def element_table_from_tree(
    tree: Any, entry_start: int | None = None, entry_stop: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """`element_table` straight from an uproot ``Events`` tree (faster than NanoEvents for training)."""
    arrays = tree.arrays(["nPFTrack", "nPFCluster", *ELEMENT_BRANCHES], entry_start=entry_start, entry_stop=entry_stop)

    def get(collection: str, field: str) -> np.ndarray:
        return to_numpy(ak.flatten(arrays[f"{collection}_{field}"], axis=1), np.float32)

    return _table(get, ak.to_numpy(arrays["nPFTrack"]), ak.to_numpy(arrays["nPFCluster"]))


def mlpf_elements(events: Events) -> ak.Array:
    """The elements as an awkward ``N * var * {FEATURES}`` record array (tracks then clusters per event)."""
    table, counts = element_table(events)
    return ak.unflatten(ak.zip({name: table[:, i] for i, name in enumerate(FEATURES)}), counts)
