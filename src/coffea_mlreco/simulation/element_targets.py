"""Per-element truth targets and the NanoAOD collections ``PFTrack``, ``PFCluster``, ``PFTarget`` (``--elements``).

Truth target of an element — the generated particle(s) a perfect particle-flow algorithm should produce
from it; this defines what counts as efficiency and fake rate for PF and MLPF alike:

- every visible generated particle (hard scatter and pileup) is ASSIGNED to at most one element: to its
  track if it was tracked; otherwise to the cluster holding its calorimeter deposit (neutral particles,
  untracked charged particles that reach the calorimeter, everything in HF); particles with neither
  (muons without a track, untracked loopers, particles of |η| > 5, deposits in a cell that made no cluster:
  measured at E ≤ 0 or below the seed threshold) are assigned to nothing — no algorithm can reconstruct them;
- a TRACK's target is its particle: class ``muon`` (|pdgId| 13), ``electron`` (11) or ``charged_hadron``
  (anything else), its true pT, η, φ (at the vertex), energy E = √(p² + m²) and charge;
- a CLUSTER's target is the sum of the four-momenta of the particles assigned to it, with charge 0 and class
  ``photon`` when the most energetic of them is a photon or an electron, ``neutral_hadron`` otherwise (without a
  track a particle can only be reconstructed as neutral: untracked charged hadrons count as neutral hadrons,
  untracked electrons as photons — the convention of CMS's MLPF targets). A cluster with no particle
  assigned — its energy is all track deposits, already accounted for by the tracks — has class ``none``
  and zero momentum.

No threshold is applied: a cluster whose neutral part is far below what the calorimeter can resolve still
has its particle as target, so efficiencies fall at low pT for every algorithm.

Collections written (one entry per element; units GeV, cm, rad): ``PFTrack`` (see `elements.Tracks`),
``PFCluster`` (see `elements.Clusters`) and ``PFTarget`` with, per event, the targets of its tracks (in
``PFTrack`` order) followed by those of its clusters (in ``PFCluster`` order): ``cls`` (index into
`coffea_mlreco.mlpf.model.PARTICLE_CLASSES`), ``pt``, ``eta``, ``phi``, ``e``, ``charge``, ``genVertex``
(of the target's most energetic particle: 0 hard scatter, k ≥ 1 pileup interaction k, −1 for ``none``).
``PFCands`` gains ``trackIdx`` and ``clusterIdx``: the element (index within the event) each candidate
was made from, −1 for the other type.
"""

from __future__ import annotations

import numpy as np

from coffea_mlreco.simulation.elements import ElementCollections, VisibleParticles, cluster_details, genpart_link
from coffea_mlreco.simulation.gen_record import GenTruth
from coffea_mlreco.simulation.objects import Collection, event_index
from coffea_mlreco.simulation.pfcands import PFCandidates

__all__ = ["TARGET_CLASSES", "element_branches", "element_targets"]

TARGET_CLASSES = ("none", "charged_hadron", "neutral_hadron", "photon", "electron", "muon")
"""Target classes (equal to `coffea_mlreco.mlpf.model.PARTICLE_CLASSES`; kept here so the simulation does
not import torch)."""
NONE, CHARGED_HADRON, NEUTRAL_HADRON, PHOTON, ELECTRON, MUON = range(6)


def element_targets(c: ElementCollections, p: VisibleParticles) -> Collection:
    """The ``PFTarget`` collection of a chunk (module docstring), aligned per event with tracks then clusters."""
    el = c.elements
    energy = np.sqrt((p.pt * np.cosh(p.eta)) ** 2 + p.mass**2)
    absid = np.abs(p.pdg_id)

    # tracks: their own particle
    tp = el.tracks.particle[c.track_order]
    t_cls = np.select([absid[tp] == 13, absid[tp] == 11], [MUON, ELECTRON], CHARGED_HADRON)
    tracks = {
        "cls": t_cls,
        "pt": p.pt[tp],
        "eta": p.eta[tp],
        "phi": p.phi[tp],
        "e": energy[tp],
        "charge": p.charge[tp],
        "genVertex": p.vertex[tp],
    }

    # clusters: the four-momentum sum of the particles assigned to them
    n_cl = el.clusters.event.size
    assigned = np.flatnonzero(el.cluster_of_particle >= 0)
    cl = el.cluster_of_particle[assigned]

    def per_cluster(x: np.ndarray) -> np.ndarray:
        return np.bincount(cl, weights=x, minlength=n_cl)

    pt, eta, phi = p.pt[assigned], p.eta[assigned], p.phi[assigned]
    px, py = per_cluster(pt * np.cos(phi)), per_cluster(pt * np.sin(phi))
    pz, e = per_cluster(pt * np.sinh(eta)), per_cluster(energy[assigned])
    sum_pt = np.hypot(px, py)
    has = np.bincount(cl, minlength=n_cl) > 0
    order = np.lexsort((-energy[assigned], cl))
    first = order[np.concatenate([[0], np.flatnonzero(np.diff(cl[order])) + 1])] if cl.size else order
    lead = np.full(n_cl, -1, np.int64)
    lead[cl[first]] = assigned[first]
    is_em = has & np.isin(absid[np.maximum(lead, 0)], (11, 22))
    with np.errstate(divide="ignore", invalid="ignore"):
        c_eta = np.where(has, np.arcsinh(pz / np.maximum(sum_pt, 1e-12)), 0.0)
    clusters = {
        "cls": np.where(has, np.where(is_em, PHOTON, NEUTRAL_HADRON), NONE),
        "pt": np.where(has, sum_pt, 0.0),
        "eta": c_eta,
        "phi": np.where(has, np.arctan2(py, px), 0.0),
        "e": np.where(has, e, 0.0),
        "charge": np.zeros(n_cl, np.int32),
        "genVertex": np.where(has, p.vertex[np.maximum(lead, 0)], -1),
    }
    clusters = {k: v[c.cluster_order] for k, v in clusters.items()}

    n_t = tp.size
    event = np.concatenate([el.tracks.event[c.track_order], el.clusters.event[c.cluster_order]])
    kind = np.concatenate([np.zeros(n_t, np.int8), np.ones(n_cl, np.int8)])
    flat = np.lexsort((kind, event))  # stable: keeps the sorted order within (event, kind)
    columns = {k: np.concatenate([tracks[k], clusters[k]])[flat] for k in tracks}
    columns["cls"] = columns["cls"].astype(np.int32)
    columns["charge"] = columns["charge"].astype(np.int32)
    columns["genVertex"] = columns["genVertex"].astype(np.int32)
    return Collection(np.bincount(event, minlength=el.n_events).astype(np.int64), columns)


def _within_event(flat: np.ndarray, counts: np.ndarray, event: np.ndarray) -> np.ndarray:
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    return np.where(flat >= 0, flat - starts[event], -1).astype(np.int32)


def element_branches(
    c: ElementCollections, pf: PFCandidates, p: VisibleParticles, gen: GenTruth
) -> dict[str, Collection]:
    """``PFTrack``, ``PFCluster``, ``PFTarget`` and ``PFCands`` with element links, for one chunk."""
    el = c.elements
    t_particle = el.tracks.particle[c.track_order]
    t_event = event_index(c.tracks.counts)
    track_cols = {k: v for k, v in c.tracks.columns.items() if k not in ("genIndex", "energy")}
    track_cols.update(
        {
            "genPartIdx": genpart_link(p.gen_index[t_particle], gen.genpart_source, gen.genpart_counts, t_event),
            "genVertex": p.vertex[t_particle].astype(np.int32),
            "genPdgId": p.pdg_id[t_particle].astype(np.int32),
        }
    )
    c_event = event_index(c.clusters.counts)
    details = {k: v[c.cluster_order] for k, v in cluster_details(el, p).items()}
    dominant = details["dominant"]
    cluster_cols = dict(c.clusters.columns)
    cluster_cols["width"] = details["width"]
    cluster_cols["pt"] = cluster_cols["energy"] / np.cosh(cluster_cols["eta"])
    gen_index = np.where(dominant >= 0, p.gen_index[np.maximum(dominant, 0)], -1)
    cluster_cols.update(
        {
            "genPartIdx": genpart_link(gen_index, gen.genpart_source, gen.genpart_counts, c_event),
            "genVertex": np.where(dominant >= 0, p.vertex[np.maximum(dominant, 0)], -1).astype(np.int32),
            "genPdgId": np.where(dominant >= 0, p.pdg_id[np.maximum(dominant, 0)], 0).astype(np.int32),
        }
    )
    pf_event = event_index(pf.counts)
    pf_cols = dict(pf.columns)
    pf_cols["trackIdx"] = _within_event(pf.track, c.tracks.counts, pf_event)
    pf_cols["clusterIdx"] = _within_event(pf.cluster, c.clusters.counts, pf_event)
    return {
        "PFCands": Collection(pf.counts, pf_cols),
        "PFTrack": Collection(c.tracks.counts, track_cols),
        "PFCluster": Collection(c.clusters.counts, cluster_cols),
        "PFTarget": element_targets(c, p),
    }
