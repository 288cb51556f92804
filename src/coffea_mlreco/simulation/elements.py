"""Detector elements — tracks and calorimeter clusters — the input of particle flow, with truth links.

The parametric detector of `detector.py` measures a chunk's visible particles as ELEMENTS; the rule-based
particle flow (`pfcands.rule_based_pf`) and the machine-learned one (`coffea_mlreco.mlpf`) both start from
them. Units GeV, cm (dz), rad.

Tracks (`Tracks`)
    one per tracked charged particle (efficiency, acceptance, pT and z0 resolution, vertex association as in
    `detector.py`): measured pT, η, φ at the vertex, charge, z0 and dz = z0 − z(PV), its resolution dzErr,
    fromPV / pvAssocQuality, ``quality`` = pvAssocQuality / 7 in [0, 1], the point where the track crosses
    the ECAL surface (`detector.calorimeter_entry`: helix in 3.8 T to r = 1.29 m or |z| = 3.15 m), and
    ``cluster`` — the cluster holding its calorimeter deposit (the geometric track–cluster link; −1 for
    none). Electron tracks above `electron_pt_min` (true pT) carry the momentum of the combined track+ECAL
    fit (the ECAL resolution), as PF electrons do.
Calorimeter deposits
    - a tracked charged hadron (true pT ≥ `calo_reach_pt`) deposits in the HCAL cell where its track meets
      the calorimeter, a tracked electron in the ECAL cell; muons and loopers deposit nothing. The deposit's
      energy is the track's energy pT·cosh η (massless): the detector model assumes a tracked particle's
      calorimeter response is known exactly from its track (the exact-subtraction assumption of `detector.py`,
      made explicit) — so rule-based PF recovers the neutral energy below exactly;
    - every other visible particle except muons (neutrals, untracked charged particles that reach the
      calorimeter, everything in HF) deposits its true energy in the ECAL (γ, e) or HCAL (hadrons) cell of its
      (η, φ), or in an HF tower; the sum of these "neutral" deposits of a cell is measured once with the
      cell's resolution (stochastic, constant, noise terms), giving E_neutral (floored at 0).
Clusters (`Clusters`)
    one per cell: E = E_neutral + Σ deposits of its tracks, kept when it holds a track deposit or its
    transverse energy E/cosh η exceeds the layer's seed threshold (`ecal_seed_et`, `hcal_seed_et`,
    `hf_seed_et`: half the PF candidate thresholds, so every cell that can make a PF candidate is a cluster;
    a cell below it is noise-level and its particles reach no element). ``layer`` 0 ECAL,
    1 HCAL, 2 HF; E_em = E (ECAL), 0 (HCAL), E·(EM share of the true neutral energy) in HF, E_had = E − E_em.
    (η, φ): the energy-weighted centroid of the neutral deposits (true energies), or of the track deposits
    (at their calorimeter points) when the cell has no neutral deposit. ``width``: energy-weighted RMS
    distance in (η, φ) of all deposits from (η, φ). ``genPUFraction``: pileup share of the true neutral
    energy (of the track deposits when there is none).
Truth links
    each element names the generated particle dominating it: the track's own particle; for a cluster the
    largest neutral deposit (the largest track deposit when there is none). ``genPartIdx`` is its index in
    the event's GenPart list (−1 for pileup or a particle GenPart does not keep), ``genVertex`` 0 for the hard
    scatter and k ≥ 1 for the k-th pileup interaction, ``genPdgId`` its pdgId.

Per-element truth targets (`element_targets`) are defined in that function's docstring.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from coffea_mlreco.simulation.detector import (
    DEFAULT_DETECTOR,
    DetectorParameters,
    calorimeter_entry,
    calorimeter_resolution,
    dz_resolution,
    track_pt_resolution,
)
from coffea_mlreco.simulation.objects import Collection

__all__ = [
    "CALORIMETER_LAYERS",
    "Clusters",
    "DetectorElements",
    "ElementCollections",
    "Tracks",
    "VisibleParticles",
    "associate_tracks",
    "cluster_details",
    "detector_elements",
    "element_collections",
    "genpart_link",
]

CALORIMETER_LAYERS = ("ECAL", "HCAL", "HF")
"""Cluster ``layer`` codes 0, 1, 2."""


@dataclass
class VisibleParticles:
    """Visible final-state particles of a chunk (flat columns; ``event`` gives each one's event).

    ``vertex`` is 0 for the hard scatter and k ≥ 1 for the k-th pileup interaction; ``z`` is the true z
    of that vertex (cm); ``gen_index`` the flat index into the hard scatter's Pythia record (−1 for pileup).
    """

    n_events: int
    event: np.ndarray
    vertex: np.ndarray
    pt: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    mass: np.ndarray
    pdg_id: np.ndarray
    charge: np.ndarray
    z: np.ndarray
    gen_index: np.ndarray


@dataclass
class Tracks:
    """Tracks of a chunk, flat, in particle order (not event-sorted); ``columns`` as in the module docstring.

    ``particle`` is the index of each track's particle in the chunk's `VisibleParticles`, ``deposit_key``
    the global cell key of its calorimeter deposit (−1: none), ``energy`` its deposit energy pT·cosh η.
    """

    event: np.ndarray
    particle: np.ndarray
    columns: dict[str, np.ndarray]
    deposit_key: np.ndarray


@dataclass
class Clusters:
    """Clusters of a chunk, flat, sorted by global cell key (event-major); ``columns`` per the module docstring.

    ``key`` is the global cell key; ``pf_gen_index`` the flat Pythia index of the dominant hard-scatter
    NEUTRAL deposit (−1: none), the truth link rule-based PF gives its neutral candidate.
    """

    event: np.ndarray
    key: np.ndarray
    columns: dict[str, np.ndarray]
    pf_gen_index: np.ndarray


@dataclass
class DetectorElements:
    """Tracks and clusters of a chunk, and where each visible particle ended up.

    ``track_of_particle`` / ``cluster_of_particle``: for every particle of the chunk, the index of its track
    (flat, in `Tracks` order) and of the cluster holding its neutral deposit (flat, in `Clusters` order), −1
    for none. ``track_cluster``: per track, the flat index of the cluster with its deposit (−1: none).
    """

    n_events: int
    tracks: Tracks
    clusters: Clusters
    track_cluster: np.ndarray
    track_of_particle: np.ndarray
    cluster_of_particle: np.ndarray
    deposits: _Deposits


@numba.njit(cache=True)
def _associate(event, z0, sigma, vtx_offsets, vtx_z_sorted, pv_z, nsigma):  # type: ignore[no-untyped-def]
    """fromPV and pvAssocQuality of each track; the non-PV vertices of event e are vtx_z_sorted[vtx_offsets[e]:...]."""
    n = event.size
    from_pv = np.zeros(n, np.int32)
    quality = np.zeros(n, np.int32)
    for i in range(n):
        e = event[i]
        lo, hi = vtx_offsets[e], vtx_offsets[e + 1]
        d_pv = abs(z0[i] - pv_z[e])
        j = np.searchsorted(vtx_z_sorted[lo:hi], z0[i]) + lo
        d_other = 1e9
        for k in (j - 1, j):
            if lo <= k < hi:
                d_other = min(d_other, abs(z0[i] - vtx_z_sorted[k]))
        compatible = d_pv < nsigma * sigma[i]
        if d_pv <= d_other:
            if compatible:
                from_pv[i], quality[i] = 3, 7
            elif d_pv < 2 * nsigma * sigma[i]:
                from_pv[i], quality[i] = 2, 5
            else:
                from_pv[i], quality[i] = 2, 1
        elif compatible:
            from_pv[i] = 1
    return from_pv, quality


def associate_tracks(
    event: np.ndarray,
    z0: np.ndarray,
    sigma_z: np.ndarray,
    pileup_vertex_z: list[np.ndarray],
    pv_z: np.ndarray,
    nsigma: float,
) -> tuple[np.ndarray, np.ndarray]:
    """fromPV and pvAssocQuality of tracks (z0, σ(z0) in cm) of events ``event`` (rules in `detector.py`)."""
    others = [np.sort(z) for z in pileup_vertex_z]
    vtx_offsets = np.concatenate([[0], np.cumsum([v.size for v in others])]).astype(np.int64)
    return _associate(event, z0, sigma_z, vtx_offsets, np.concatenate([np.zeros(0), *others]), pv_z, nsigma)


def genpart_link(
    gen_index: np.ndarray, genpart_source: np.ndarray, genpart_counts: np.ndarray, event: np.ndarray
) -> np.ndarray:
    """Index within the event's GenPart list of the particle with flat Pythia index ``gen_index`` (−1 if not kept)."""
    if genpart_source.size == 0:
        return np.full(gen_index.size, -1, np.int32)
    pos = np.clip(np.searchsorted(genpart_source, gen_index), 0, genpart_source.size - 1)
    found = (gen_index >= 0) & (genpart_source[pos] == gen_index)
    starts = np.concatenate([[0], np.cumsum(genpart_counts)[:-1]])
    return np.where(found, pos - starts[event], -1).astype(np.int32)


def _measure_tracks(
    p: VisibleParticles,
    pileup_vertex_z: list[np.ndarray],
    pv_z: np.ndarray,
    det: DetectorParameters,
    rng: np.random.Generator,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Tracking and vertex association (the random draws, in this order, are part of the sample's identity)."""
    charged = p.charge != 0
    absid = np.abs(p.pdg_id)
    eff = np.where(absid == 13, det.track_eff_muon, np.where(absid == 11, det.track_eff_electron, det.track_eff_hadron))
    tracked = (
        charged & (np.abs(p.eta) < det.tracker_eta_max) & (p.pt > det.track_pt_min) & (rng.random(p.pt.size) < eff)
    )
    idx = np.flatnonzero(tracked)
    pt, eta = p.pt[idx], p.eta[idx]
    is_electron = (absid[idx] == 11) & (pt > det.electron_pt_min)
    rel = track_pt_resolution(pt, eta, det)
    energy = pt * np.cosh(eta)
    ecal_rel = calorimeter_resolution(energy, det.ecal_stochastic, det.ecal_constant, det.ecal_noise) / energy
    rel = np.where(is_electron, ecal_rel, rel)
    pt_meas = pt * np.maximum(1.0 + rel * rng.standard_normal(idx.size), 0.05)
    sigma_z = dz_resolution(pt, eta, det)
    z0 = p.z[idx] + sigma_z * rng.standard_normal(idx.size)
    from_pv, quality = associate_tracks(p.event[idx], z0, sigma_z, pileup_vertex_z, pv_z, det.assoc_nsigma)
    q = p.charge[idx].astype(np.int32)
    eta_calo, phi_calo = calorimeter_entry(pt_meas, eta, p.phi[idx], q, z0, det)
    cols = {
        "pt": pt_meas,
        "eta": eta,
        "phi": p.phi[idx],
        "charge": q,
        "dz": z0 - pv_z[p.event[idx]],
        "dzErr": sigma_z,
        "fromPV": from_pv,
        "pvAssocQuality": quality,
        "quality": quality / 7.0,
        "etaCalo": eta_calo,
        "phiCalo": phi_calo,
        "genPUFraction": (p.vertex[idx] > 0).astype(np.float32),
        "genIndex": p.gen_index[idx],
    }
    return idx, cols


def _cell_keys(
    eta: np.ndarray, phi: np.ndarray, system: np.ndarray, event: np.ndarray, det: DetectorParameters
) -> tuple[np.ndarray, np.ndarray, int]:
    """Global cell key (event-major) of each deposit; also the first key of each system and keys per event."""
    keys = np.empty(eta.size, np.int64)
    system_start = []
    offset = 0
    for s, (size, eta_max) in enumerate(
        ((det.ecal_cell, det.ecal_eta_max), (det.hcal_cell, det.ecal_eta_max), (det.hf_cell, det.hf_eta_max))
    ):
        n_phi = round(2 * np.pi / size)
        n_eta = int(np.ceil(2 * eta_max / size))
        m = system == s
        ieta = np.clip(((eta[m] + eta_max) / size).astype(np.int64), 0, n_eta - 1)
        iphi = np.clip(((phi[m] + np.pi) / (2 * np.pi) * n_phi).astype(np.int64), 0, n_phi - 1)
        keys[m] = offset + ieta * n_phi + iphi
        system_start.append(offset)
        offset += n_eta * n_phi
    return keys + event.astype(np.int64) * offset, np.array(system_start), offset


@numba.njit(cache=True)
def _group_argmax(group, weight, n_groups):  # type: ignore[no-untyped-def]
    """Per group, the index of the member with the largest weight (> 0), else −1 (one pass, no sort)."""
    best = np.full(n_groups, -1, np.int64)
    for i in range(group.size):
        g = group[i]
        if weight[i] > 0 and (best[g] < 0 or weight[i] > weight[best[g]]):
            best[g] = i
    return best


def _sorted_union(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Sorted unique values of a ∪ b (a sort, not numpy's hash-based unique, which is slower here)."""
    x = np.sort(np.concatenate([a, b]))
    return x[np.concatenate([[True], x[1:] != x[:-1]])] if x.size else x


@dataclass
class _Deposits:
    """Where each calorimeter deposit of a chunk went (for the cluster widths and truth links)."""

    particle: np.ndarray  # particle index of each neutral deposit
    cell: np.ndarray  # its cell (index into the union of cells, before the seed threshold)
    track: np.ndarray  # track (flat) of each track deposit
    track_cell: np.ndarray
    track_energy: np.ndarray
    kept: np.ndarray  # per cell: cluster index after the seed threshold, −1 if dropped


def detector_elements(
    p: VisibleParticles,
    pileup_vertex_z: list[np.ndarray],
    pv_z: np.ndarray,
    rng: np.random.Generator,
    det: DetectorParameters = DEFAULT_DETECTOR,
) -> DetectorElements:
    """Tracks and clusters of one chunk (module docstring). ``pileup_vertex_z[e]``: pileup vertex z of event e;
    ``pv_z[e]``: measured primary-vertex z (cm). Cluster widths and truth links are added by `cluster_details`."""
    n_particles = p.pt.size
    track_idx, tcols = _measure_tracks(p, pileup_vertex_z, pv_z, det, rng)
    tracked = np.zeros(n_particles, bool)
    tracked[track_idx] = True
    absid = np.abs(p.pdg_id)
    abseta = np.abs(p.eta)
    em = (absid == 22) | (absid == 11)

    # neutral deposits: every visible particle the tracker did not take, except muons and loopers
    untracked_charged = (p.charge != 0) & ~tracked & ((p.pt > det.calo_reach_pt) | (abseta > det.tracker_eta_max))
    deposits = ((p.charge == 0) | untracked_charged) & (absid != 13) & (abseta < det.hf_eta_max)
    sel = np.flatnonzero(deposits)
    system = np.where(abseta[sel] >= det.ecal_eta_max, 2, np.where(em[sel], 0, 1))
    keys, system_start, keys_per_event = _cell_keys(p.eta[sel], p.phi[sel], system, p.event[sel], det)
    uniq_n, inverse = np.unique(keys, return_inverse=True)
    e = p.pt[sel] * np.cosh(p.eta[sel])

    def cell_sum(x: np.ndarray) -> np.ndarray:
        return np.bincount(inverse, weights=x, minlength=uniq_n.size)

    e_sum = cell_sum(e)
    share_em = cell_sum(e * em[sel]) / e_sum
    share_pu = cell_sum(e * (p.vertex[sel] > 0)) / e_sum
    eta_n = cell_sum(e * p.eta[sel]) / e_sum
    phi_n = np.arctan2(cell_sum(e * np.sin(p.phi[sel])), cell_sum(e * np.cos(p.phi[sel])))
    sys_n = np.searchsorted(system_start, uniq_n % keys_per_event, side="right") - 1
    stoch = np.select(
        [sys_n == 0, sys_n == 1],
        [det.ecal_stochastic, det.hcal_stochastic],
        share_em * det.hf_em_stochastic + (1 - share_em) * det.hf_stochastic,
    )
    const = np.select(
        [sys_n == 0, sys_n == 1],
        [det.ecal_constant, det.hcal_constant],
        share_em * det.hf_em_constant + (1 - share_em) * det.hf_constant,
    )
    noise = np.where(sys_n == 0, det.ecal_noise, 0.0)
    e_neutral = np.maximum(
        e_sum + calorimeter_resolution(e_sum, stoch, const, noise) * rng.standard_normal(e_sum.size), 0.0
    )
    hs_best = _group_argmax(inverse, np.where(p.vertex[sel] == 0, e, 0.0), uniq_n.size)
    pf_gen_n = np.where(hs_best >= 0, p.gen_index[sel][np.maximum(hs_best, 0)], -1)

    # track deposits: charged hadrons in HCAL, electrons in ECAL, at the track's calorimeter point
    t_pid = absid[track_idx]
    dep = np.flatnonzero(
        (t_pid != 13) & (p.pt[track_idx] >= det.calo_reach_pt) & (np.abs(tcols["etaCalo"]) < det.ecal_eta_max)
    )
    t_keys = np.full(track_idx.size, -1, np.int64)
    t_keys[dep] = _cell_keys(
        tcols["etaCalo"][dep], tcols["phiCalo"][dep], np.where(t_pid[dep] == 11, 0, 1), p.event[track_idx][dep], det
    )[0]
    t_energy = tcols["pt"] * np.cosh(tcols["eta"])

    # clusters: union of neutral cells and cells with track deposits
    uniq = _sorted_union(uniq_n, t_keys[dep])
    n_cells = uniq.size
    pos_n = np.searchsorted(uniq, uniq_n)
    pos_t = np.searchsorted(uniq, t_keys[dep])
    w_t = t_energy[dep]

    def track_sum(x: np.ndarray) -> np.ndarray:
        return np.bincount(pos_t, weights=x, minlength=n_cells)

    e_tracks = track_sum(w_t)
    cl_energy = e_tracks.copy()
    cl_energy[pos_n] += e_neutral
    safe = np.maximum(e_tracks, 1e-300)
    cl_eta = track_sum(w_t * tcols["etaCalo"][dep]) / safe
    cl_phi = np.arctan2(track_sum(w_t * np.sin(tcols["phiCalo"][dep])), track_sum(w_t * np.cos(tcols["phiCalo"][dep])))
    cl_eta[pos_n], cl_phi[pos_n] = eta_n, phi_n
    layer = np.searchsorted(system_start, uniq % keys_per_event, side="right") - 1
    em_fraction = (layer == 0).astype(np.float64)
    em_fraction[pos_n] = np.select([sys_n == 0, sys_n == 1], [1.0, 0.0], share_em)
    pu_fraction = track_sum(w_t * (p.vertex[track_idx][dep] > 0)) / safe
    pu_fraction[pos_n] = share_pu
    pf_gen = np.full(n_cells, -1, np.int64)
    pf_gen[pos_n] = pf_gen_n

    seed = np.select([layer == 0, layer == 1], [det.ecal_seed_et, det.hcal_seed_et], det.hf_seed_et)
    keep = (cl_energy > 0) & ((cl_energy / np.cosh(cl_eta) > seed) | (e_tracks > 0))
    kept = np.where(keep, np.cumsum(keep) - 1, -1)
    clusters = Clusters(
        event=(uniq // keys_per_event)[keep],
        key=uniq[keep],
        pf_gen_index=pf_gen[keep],
        columns={
            "energy": cl_energy[keep],
            "eEm": (cl_energy * em_fraction)[keep],
            "eHad": (cl_energy * (1 - em_fraction))[keep],
            "eta": cl_eta[keep],
            "phi": cl_phi[keep],
            "layer": layer[keep].astype(np.int32),
            "genPUFraction": pu_fraction[keep],
        },
    )
    track_cluster = np.full(track_idx.size, -1, np.int64)
    track_cluster[dep] = kept[pos_t]  # cells with a track deposit are always kept
    cluster_of_particle = np.full(n_particles, -1, np.int64)
    cluster_of_particle[sel] = kept[pos_n[inverse]]
    track_of_particle = np.full(n_particles, -1, np.int64)
    track_of_particle[track_idx] = np.arange(track_idx.size)
    tracks = Tracks(
        event=p.event[track_idx], particle=track_idx, deposit_key=t_keys, columns={**tcols, "energy": t_energy}
    )
    deposits_info = _Deposits(
        particle=sel, cell=pos_n[inverse], track=dep, track_cell=pos_t, track_energy=w_t, kept=kept
    )
    return DetectorElements(
        p.n_events, tracks, clusters, track_cluster, track_of_particle, cluster_of_particle, deposits_info
    )


def cluster_details(elements: DetectorElements, p: VisibleParticles) -> dict[str, np.ndarray]:
    """Per cluster (flat, `Clusters` order): ``width`` and ``dominant`` (the particle index of its truth link:
    the largest neutral deposit, else the largest track deposit); see the module docstring."""
    d = elements.deposits
    n_cl = elements.clusters.event.size
    energy = p.pt[d.particle] * np.cosh(p.eta[d.particle])
    tcols = elements.tracks.columns
    cell = np.concatenate([d.kept[d.cell], d.kept[d.track_cell]])
    ok = cell >= 0
    weight = np.concatenate([energy, d.track_energy])[ok]
    cell = cell[ok]
    eta = np.concatenate([p.eta[d.particle], tcols["etaCalo"][d.track]])[ok]
    phi = np.concatenate([p.phi[d.particle], tcols["phiCalo"][d.track]])[ok]
    c = elements.clusters.columns
    d_eta = eta - c["eta"][cell]
    d_phi = np.remainder(phi - c["phi"][cell] + np.pi, 2 * np.pi) - np.pi
    width = np.sqrt(
        np.bincount(cell, weights=weight * (d_eta**2 + d_phi**2), minlength=n_cl)
        / np.maximum(np.bincount(cell, weights=weight, minlength=n_cl), 1e-300)
    )
    neutral = d.kept[d.cell]
    n_ok = neutral >= 0
    best_n = _group_argmax(neutral[n_ok], energy[n_ok], n_cl)
    t_cell = d.kept[d.track_cell]
    best_t = _group_argmax(t_cell, d.track_energy, n_cl)
    dominant = np.where(
        best_n >= 0,
        d.particle[n_ok][np.maximum(best_n, 0)],
        np.where(best_t >= 0, elements.tracks.particle[d.track][np.maximum(best_t, 0)], -1),
    )
    return {"width": width, "dominant": dominant}


@dataclass
class ElementCollections:
    """Event-sorted tracks (by decreasing pT) and clusters (by calorimeter cell) as NanoAOD-style collections.

    ``tracks.columns["clusterIdx"]`` is the linked cluster's index within the event (−1: none).
    ``track_order`` / ``cluster_order`` map each sorted entry to its flat index in `Tracks` / `Clusters`;
    ``track_gen_index`` (the track particle's flat Pythia index, −1 for pileup) and ``cluster_pf_gen_index``
    (`Clusters.pf_gen_index`) are the truth links rule-based PF candidates inherit, aligned with the sorted
    entries.
    """

    elements: DetectorElements
    tracks: Collection
    clusters: Collection
    track_order: np.ndarray
    cluster_order: np.ndarray
    track_gen_index: np.ndarray
    cluster_pf_gen_index: np.ndarray


def _local_index(counts: np.ndarray) -> np.ndarray:
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    return np.arange(int(counts.sum())) - np.repeat(starts, counts)


def element_collections(elements: DetectorElements) -> ElementCollections:
    """Sort a chunk's elements per event and express the track–cluster links as within-event indices."""
    n = elements.n_events
    tr, cl = elements.tracks, elements.clusters
    t_order = np.lexsort((-tr.columns["pt"], tr.event))
    c_order = np.arange(cl.event.size)  # already event-major, by calorimeter cell
    t_counts = np.bincount(tr.event, minlength=n).astype(np.int64)
    c_counts = np.bincount(cl.event, minlength=n).astype(np.int64)
    c_rank = np.empty(c_order.size, np.int64)
    c_rank[c_order] = _local_index(c_counts)
    link = elements.track_cluster[t_order]
    t_cols = {k: v[t_order] for k, v in tr.columns.items()}
    t_cols["clusterIdx"] = np.where(link >= 0, c_rank[np.maximum(link, 0)], -1).astype(np.int32)
    c_cols = {k: v[c_order] for k, v in cl.columns.items()}
    return ElementCollections(
        elements,
        Collection(t_counts, t_cols),
        Collection(c_counts, c_cols),
        t_order,
        c_order,
        tr.columns["genIndex"][t_order],
        cl.pf_gen_index[c_order],
    )
