"""Rule-based particle flow: PF candidates from the detector elements (tracks, calorimeter clusters).

The detector (`elements.py`, numbers in `detector.py`) measures a chunk's visible particles as tracks and
clusters; `rule_based_pf` turns those into PF candidates, the way the simulation has always made its
``PFCands``:

- every track is a charged candidate at the track's momentum: a muon (±13) when it has no calorimeter
  deposit (no linked cluster: the minimum-ionising signature), pT > `muon_pt_min` and |η| < `muon_eta_max`;
  an electron (±11) when its deposit is in the ECAL and pT > `electron_pt_min`; otherwise a charged hadron
  (±211). fromPV, pvAssocQuality, dz, dzErr are the track's;
- every cluster gives at most one neutral candidate: the energy left after subtracting the energies
  pT·cosh η of the tracks linked to it (exact, as the detector model assumes), at the cluster's (η, φ),
  massless, kept when its transverse energy exceeds the layer's threshold (`*_et_min`); pdgId 22 (ECAL),
  130 (HCAL), in HF 2 when E_em/E > 0.5 else 1. Neutral candidates get fromPV = 3, pvAssocQuality = 0.

It reads only element fields a NanoAOD file carries (``PFTrack_*``, ``PFCluster_*``), so it can be re-run on
a file made with ``--elements``, and gives the file's ``PFCands``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from coffea_mlreco.simulation.detector import DEFAULT_DETECTOR, DetectorParameters
from coffea_mlreco.simulation.elements import (
    ElementCollections,
    VisibleParticles,
    detector_elements,
    element_collections,
)
from coffea_mlreco.simulation.objects import Collection, event_index

__all__ = ["PFCandidates", "VisibleParticles", "reconstruct_pf_candidates", "rule_based_pf"]

TRACK_FIELDS = ("pt", "eta", "phi", "charge", "dz", "dzErr", "fromPV", "pvAssocQuality", "genPUFraction", "clusterIdx")
"""Track (``PFTrack``) fields `rule_based_pf` reads."""
CLUSTER_FIELDS = ("energy", "eEm", "eta", "phi", "layer", "genPUFraction")
"""Cluster (``PFCluster``) fields `rule_based_pf` reads."""


@dataclass
class PFCandidates:
    """PF candidates of a chunk, sorted by event then decreasing pT. Units GeV, cm.

    ``track`` / ``cluster``: flat index (in the input collections) of the element each candidate was made
    from, −1 for the other type. ``gen_index``: dominant hard-scatter particle (flat Pythia index) or −1,
    filled by `reconstruct_pf_candidates`.
    """

    counts: np.ndarray
    columns: dict[str, np.ndarray]
    track: np.ndarray
    cluster: np.ndarray
    gen_index: np.ndarray | None = None


def _stored(values: np.ndarray) -> np.ndarray:
    """``values`` at the precision `nanoaod_writer` stores them (floats as float32)."""
    return values.astype(np.float32) if values.dtype.kind == "f" else values


def rule_based_pf(tracks: Collection, clusters: Collection, det: DetectorParameters = DEFAULT_DETECTOR) -> PFCandidates:
    """PF candidates from event-sorted tracks and clusters (fields `TRACK_FIELDS`, `CLUSTER_FIELDS`;
    ``clusterIdx`` is the linked cluster's index within the event, −1 for none). See the module docstring."""
    t, c = tracks.columns, clusters.columns
    n_events = tracks.counts.size
    t_event, c_event = event_index(tracks.counts), event_index(clusters.counts)
    c_start = np.concatenate([[0], np.cumsum(clusters.counts)[:-1]]).astype(np.int64)
    link = np.asarray(t["clusterIdx"], np.int64)
    linked = link >= 0
    flat_link = np.where(linked, c_start[t_event] + link, -1)
    layer = np.asarray(c["layer"])
    pt, eta = np.asarray(t["pt"], np.float64), np.asarray(t["eta"], np.float64)
    q = np.asarray(t["charge"], np.int32)
    in_ecal = np.zeros(pt.size, bool)
    in_ecal[linked] = layer[flat_link[linked]] == 0
    is_muon = ~linked & (pt > det.muon_pt_min) & (np.abs(eta) < det.muon_eta_max)
    is_electron = in_ecal & (pt > det.electron_pt_min)
    charged = {
        "pt": pt,
        "eta": eta,
        "phi": np.asarray(t["phi"], np.float64),
        "mass": np.where(is_muon, 0.10566, np.where(is_electron, 0.000511, 0.13957)),
        "charge": q,
        "pdgId": np.where(is_muon, -13 * q, np.where(is_electron, -11 * q, 211 * q)).astype(np.int32),
        "fromPV": np.asarray(t["fromPV"], np.int32),
        "pvAssocQuality": np.asarray(t["pvAssocQuality"], np.int32),
        "dz": np.asarray(t["dz"], np.float64),
        "dzErr": np.asarray(t["dzErr"], np.float64),
        "genPUFraction": np.asarray(t["genPUFraction"], np.float32),
    }
    energy = np.asarray(c["energy"], np.float64)
    c_eta = np.asarray(c["eta"], np.float64)
    subtracted = np.bincount(flat_link[linked], weights=pt[linked] * np.cosh(eta[linked]), minlength=energy.size)
    et = np.maximum(energy - subtracted, 0.0) / np.cosh(c_eta)
    et_min = np.select([layer == 0, layer == 1], [det.ecal_et_min, det.hcal_et_min], det.hf_et_min)
    keep = np.flatnonzero(et > et_min)
    em_share = np.asarray(c["eEm"], np.float64)[keep] / energy[keep]
    lay = layer[keep]
    n = keep.size
    neutral = {
        "pt": et[keep],
        "eta": c_eta[keep],
        "phi": np.asarray(c["phi"], np.float64)[keep],
        "mass": np.zeros(n),
        "charge": np.zeros(n, np.int32),
        "pdgId": np.select([lay == 0, lay == 1], [22, 130], np.where(em_share > 0.5, 2, 1)).astype(np.int32),
        "fromPV": np.full(n, 3, np.int32),
        "pvAssocQuality": np.zeros(n, np.int32),
        "dz": np.zeros(n),
        "dzErr": np.zeros(n),
        "genPUFraction": np.asarray(c["genPUFraction"], np.float32)[keep],
    }
    event = np.concatenate([t_event, c_event[keep]])
    columns = {k: np.concatenate([charged[k], neutral[k]]) for k in charged}
    track = np.concatenate([np.arange(pt.size), np.full(n, -1)])
    cluster = np.concatenate([np.full(pt.size, -1), keep])
    order = np.lexsort((-columns["pt"], event))
    return PFCandidates(
        counts=np.bincount(event, minlength=n_events).astype(np.int64),
        columns={k: v[order] for k, v in columns.items()},
        track=track[order],
        cluster=cluster[order],
    )


def reconstruct_pf_candidates(
    p: VisibleParticles,
    pileup_vertex_z: list[np.ndarray],
    pv_z: np.ndarray,
    rng: np.random.Generator,
    det: DetectorParameters = DEFAULT_DETECTOR,
) -> PFCandidates:
    """Detector elements of one chunk (`elements.detector_elements`) turned into PF candidates by `rule_based_pf`.

    ``pileup_vertex_z[e]`` are the pileup vertex positions of event e and ``pv_z[e]`` the measured
    primary-vertex z (cm). ``gen_index`` links charged candidates to their particle and neutral ones to
    the cluster's dominant hard-scatter neutral deposit.
    """
    return pf_from_elements(element_collections(detector_elements(p, pileup_vertex_z, pv_z, rng, det)), det)


def pf_from_elements(collections: ElementCollections, det: DetectorParameters = DEFAULT_DETECTOR) -> PFCandidates:
    """`rule_based_pf` on `elements.ElementCollections`, with the candidates' ``gen_index`` filled.

    The elements enter at the precision a file stores them (float32), so re-running `rule_based_pf` on a
    file's ``PFTrack``/``PFCluster`` gives its ``PFCands`` bit for bit.
    """
    tracks, clusters = (
        Collection(x.counts, {k: _stored(x.columns[k]) for k in fields})
        for x, fields in ((collections.tracks, TRACK_FIELDS), (collections.clusters, CLUSTER_FIELDS))
    )
    pf = rule_based_pf(tracks, clusters, det)
    gen = np.where(
        pf.track >= 0,
        collections.track_gen_index[np.maximum(pf.track, 0)],
        collections.cluster_pf_gen_index[np.maximum(pf.cluster, 0)],
    )
    pf.gen_index = gen.astype(np.int64)
    return pf
