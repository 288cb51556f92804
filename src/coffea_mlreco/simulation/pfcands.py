"""Particle-flow candidates from generated particles: tracking, vertex association, calorimeter cells.

Implements the model described in `detector.py` (read that first). Input is every visible particle of
a chunk of events (hard scatter and pileup together), output the PF candidates as flat columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from .detector import (
    DEFAULT_DETECTOR,
    DetectorParameters,
    calorimeter_resolution,
    dz_resolution,
    track_pt_resolution,
)

__all__ = ["VisibleParticles", "PFCandidates", "reconstruct_pf_candidates"]


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
class PFCandidates:
    """PF candidates of a chunk, sorted by event then decreasing pT. Units GeV, cm."""

    counts: np.ndarray
    columns: dict[str, np.ndarray]
    gen_index: np.ndarray  # dominant hard-scatter particle (flat Pythia index) or −1


@numba.njit(cache=True)
def _associate(event, z0, sigma, vtx_offsets, vtx_z_sorted, pv_z, nsigma):  # noqa: ANN001, ANN202
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


def _tracks(p: VisibleParticles, pileup_vertex_z: list[np.ndarray], pv_z: np.ndarray,
            det: DetectorParameters, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    charged = p.charge != 0
    absid = np.abs(p.pdg_id)
    eff = np.where(absid == 13, det.track_eff_muon, np.where(absid == 11, det.track_eff_electron,
                                                             det.track_eff_hadron))
    tracked = (charged & (np.abs(p.eta) < det.tracker_eta_max) & (p.pt > det.track_pt_min)
               & (rng.random(p.pt.size) < eff))
    idx = np.flatnonzero(tracked)
    pt, eta, pid, q = p.pt[idx], p.eta[idx], absid[idx], p.charge[idx]
    is_muon = (pid == 13) & (pt > det.muon_pt_min) & (np.abs(eta) < det.muon_eta_max)
    is_electron = (pid == 11) & (pt > det.electron_pt_min)
    rel = track_pt_resolution(pt, eta, det)
    energy = pt * np.cosh(eta)
    ecal_rel = calorimeter_resolution(energy, det.ecal_stochastic, det.ecal_constant, det.ecal_noise) / energy
    rel = np.where(is_electron, ecal_rel, rel)
    pt_meas = pt * np.maximum(1.0 + rel * rng.standard_normal(idx.size), 0.05)
    sigma_z = dz_resolution(pt, eta, det)
    z0 = p.z[idx] + sigma_z * rng.standard_normal(idx.size)
    # the other vertices of each event (pileup), sorted in z
    others = [np.sort(z) for z in pileup_vertex_z]
    vtx_offsets = np.concatenate([[0], np.cumsum([v.size for v in others])]).astype(np.int64)
    from_pv, quality = _associate(p.event[idx], z0, sigma_z, vtx_offsets,
                                  np.concatenate([np.zeros(0), *others]), pv_z, det.assoc_nsigma)
    pdg = np.where(is_muon, -13 * q, np.where(is_electron, -11 * q, 211 * q)).astype(np.int32)
    mass = np.where(is_muon, 0.10566, np.where(is_electron, 0.000511, 0.13957))
    cols = {
        "pt": pt_meas, "eta": eta, "phi": p.phi[idx], "mass": mass, "charge": q.astype(np.int32), "pdgId": pdg,
        "fromPV": from_pv, "pvAssocQuality": quality, "dz": z0 - pv_z[p.event[idx]], "dzErr": sigma_z,
        "genPUFraction": (p.vertex[idx] > 0).astype(np.float32),
    }
    return tracked, cols


def _cells(eta: np.ndarray, phi: np.ndarray, size: float, eta_max: float) -> tuple[np.ndarray, int]:
    n_phi = int(round(2 * np.pi / size))
    n_eta = int(np.ceil(2 * eta_max / size))
    ieta = np.clip(((eta + eta_max) / size).astype(np.int64), 0, n_eta - 1)
    iphi = np.clip(((phi + np.pi) / (2 * np.pi) * n_phi).astype(np.int64), 0, n_phi - 1)
    return ieta * n_phi + iphi, n_eta * n_phi


def _calorimeter(p: VisibleParticles, tracked: np.ndarray, det: DetectorParameters,
                 rng: np.random.Generator) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    absid = np.abs(p.pdg_id)
    abseta = np.abs(p.eta)
    untracked_charged = (p.charge != 0) & ~tracked & ((p.pt > det.calo_reach_pt) | (abseta > det.tracker_eta_max))
    deposits = ((p.charge == 0) | untracked_charged) & (absid != 13)
    em = (absid == 22) | (absid == 11)
    energy = p.pt * np.cosh(p.eta)
    # calorimeter system: 0 ECAL, 1 HCAL, 2 HF
    system = np.where(abseta >= det.ecal_eta_max, 2, np.where(em, 0, 1))
    deposits &= abseta < det.hf_eta_max
    sel = np.flatnonzero(deposits)
    sizes = (det.ecal_cell, det.hcal_cell, det.hf_cell)
    keys = np.empty(sel.size, np.int64)
    system_start = []  # first cell key of each calorimeter system within one event
    offset = 0
    for s, (size, eta_max) in enumerate(zip(sizes, (det.ecal_eta_max, det.ecal_eta_max, det.hf_eta_max), strict=True)):
        m = system[sel] == s
        cell, n_cells = _cells(p.eta[sel][m], p.phi[sel][m], size, eta_max)
        keys[m] = offset + cell
        system_start.append(offset)
        offset += n_cells
    keys += p.event[sel].astype(np.int64) * offset
    uniq, inverse = np.unique(keys, return_inverse=True)
    e, w = energy[sel], lambda x: np.bincount(inverse, weights=x, minlength=uniq.size)
    e_sum = w(e)
    e_em = w(e * em[sel])
    e_pu = w(e * (p.vertex[sel] > 0))
    eta_c = w(e * p.eta[sel]) / e_sum
    phi_c = np.arctan2(w(e * np.sin(p.phi[sel])), w(e * np.cos(p.phi[sel])))
    cell_event = uniq // offset
    cell_system = np.searchsorted(np.array(system_start), uniq % offset, side="right") - 1
    # dominant hard-scatter contributor of each cell (for truth links)
    hs_energy = np.where(p.vertex[sel] == 0, e, 0.0)
    order = np.lexsort((-hs_energy, inverse))
    first = np.concatenate([[0], np.flatnonzero(np.diff(inverse[order])) + 1])
    dominant = np.where(hs_energy[order][first] > 0, p.gen_index[sel][order][first], -1)
    # energy measurement per cell
    em_share = e_em / e_sum
    stoch = np.select([cell_system == 0, cell_system == 1],
                      [det.ecal_stochastic, det.hcal_stochastic],
                      em_share * det.hf_em_stochastic + (1 - em_share) * det.hf_stochastic)
    const = np.select([cell_system == 0, cell_system == 1], [det.ecal_constant, det.hcal_constant],
                      em_share * det.hf_em_constant + (1 - em_share) * det.hf_constant)
    noise = np.where(cell_system == 0, det.ecal_noise, 0.0)
    e_meas = e_sum + calorimeter_resolution(e_sum, stoch, const, noise) * rng.standard_normal(e_sum.size)
    et_meas = np.maximum(e_meas, 0.0) / np.cosh(eta_c)
    et_min = np.select([cell_system == 0, cell_system == 1], [det.ecal_et_min, det.hcal_et_min], det.hf_et_min)
    keep = et_meas > et_min
    pdg = np.select([cell_system == 0, cell_system == 1], [22, 130], np.where(em_share > 0.5, 2, 1))[keep]
    n = int(keep.sum())
    cols = {
        "pt": et_meas[keep], "eta": eta_c[keep], "phi": phi_c[keep], "mass": np.zeros(n),
        "charge": np.zeros(n, np.int32), "pdgId": pdg.astype(np.int32), "fromPV": np.full(n, 3, np.int32),
        "pvAssocQuality": np.zeros(n, np.int32), "dz": np.zeros(n), "dzErr": np.zeros(n),
        "genPUFraction": (e_pu / e_sum)[keep].astype(np.float32),
    }
    return cols, cell_event[keep], dominant[keep]


def reconstruct_pf_candidates(p: VisibleParticles, pileup_vertex_z: list[np.ndarray], pv_z: np.ndarray,
                              rng: np.random.Generator,
                              det: DetectorParameters = DEFAULT_DETECTOR) -> PFCandidates:
    """Run tracking, vertex association and the calorimeters on one chunk; return its PF candidates.

    ``pileup_vertex_z[e]`` are the pileup vertex positions of event e and ``pv_z[e]`` the measured
    primary-vertex z (cm).
    """
    tracked, charged = _tracks(p, pileup_vertex_z, pv_z, det, rng)
    neutral, neutral_event, neutral_gen = _calorimeter(p, tracked, det, rng)
    event = np.concatenate([p.event[tracked], neutral_event])
    columns = {k: np.concatenate([charged[k], neutral[k]]) for k in charged}
    gen_index = np.concatenate([p.gen_index[tracked], neutral_gen])
    order = np.lexsort((-columns["pt"], event))
    return PFCandidates(
        counts=np.bincount(event, minlength=p.n_events).astype(np.int64),
        columns={k: v[order] for k, v in columns.items()},
        gen_index=gen_index[order],
    )
