"""NanoAOD-style generator truth from a Pythia event record: GenPart, GenVisTau and GenMET.

`statusFlags` bits follow CMS's `GenStatusFlags` (the bits coffea's `hasFlags` reads):
0 isPrompt, 1 isDecayedLeptonHadron, 2 isTauDecayProduct, 3 isPromptTauDecayProduct,
4 isDirectTauDecayProduct, 5 isDirectPromptTauDecayProduct, 6 isDirectHadronDecayProduct,
7 isHardProcess, 8 fromHardProcess, 9 isHardProcessTauDecayProduct,
10 isDirectHardProcessTauDecayProduct, 12 isFirstCopy, 13 isLastCopy.
Bits 11 (fromHardProcessBeforeFSR) and 14 (isLastCopyBeforeFSR) are not set.

A "copy" is Pythia's re-listing of a particle after a recoil or emission: a daughter with the same
pdgId whose only mother is the particle. The pruning keeps, like NanoAOD's `finalGenParticles`:
first and last copies of hard-process particles and their copies (quarks, gluons, W/Z/H, tops,
leptons), all prompt leptons and their last copies, leptons from tau decays, every final-state
neutrino, charged leptons above 3 GeV, weakly
decaying b and c hadrons, prompt photons above 10 GeV. `genPartIdxMother` points to the nearest
kept ancestor (following mother1), −1 if none.

GenVisTau (hadronic decays of last-copy prompt taus): visible four-momentum = sum of the tau's direct
non-neutrino daughters; `status` = decay mode (0, 1, 2 one-prong with 0/1/≥2 π⁰; 10, 11 three-prong
with 0/≥1 π⁰; 15 other), counted over all descendants.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from coffea_mlreco.simulation.pythia_source import ParticleRecord

__all__ = ["STATUS_FLAG_BITS", "GenTruth", "gen_truth", "heavy_flavour"]

STATUS_FLAG_BITS = {
    "isPrompt": 0,
    "isDecayedLeptonHadron": 1,
    "isTauDecayProduct": 2,
    "isPromptTauDecayProduct": 3,
    "isDirectTauDecayProduct": 4,
    "isDirectPromptTauDecayProduct": 5,
    "isDirectHadronDecayProduct": 6,
    "isHardProcess": 7,
    "fromHardProcess": 8,
    "isHardProcessTauDecayProduct": 9,
    "isDirectHardProcessTauDecayProduct": 10,
    "isFirstCopy": 12,
    "isLastCopy": 13,
}


@dataclass
class GenTruth:
    """Per-chunk generator truth. Jagged collections are (counts, dict of flat columns)."""

    genpart_counts: np.ndarray
    genpart: dict[str, np.ndarray]
    genpart_source: np.ndarray
    """flat index into the ParticleRecord of each kept GenPart (to link reco objects to truth)."""
    visible_tau_counts: np.ndarray
    visible_tau: dict[str, np.ndarray]
    genmet_pt: np.ndarray
    genmet_phi: np.ndarray
    status_flags: np.ndarray
    """statusFlags of every particle of the ParticleRecord (not only the kept ones)."""
    tau_ancestor: np.ndarray
    """per particle of the ParticleRecord, flat index of the last-copy tau it descends from (−1: none)."""
    visible_tau_source: np.ndarray
    """flat index into the ParticleRecord of the tau behind each GenVisTau entry."""


@numba.njit(cache=True, inline="always")
def _is_hadron(pdg: int) -> bool:
    """Mesons and baryons: PDG codes above 100 whose tens digit is non-zero (diquarks have 0 there)."""
    a = abs(pdg)
    return 100 < a < 1_000_000 and (a // 10) % 10 != 0


@numba.njit(cache=True, inline="always")
def _heavy_flavour(pdg: int) -> int:
    """5 for b hadrons, 4 for c hadrons (from the PDG code's quark digits), else 0."""
    a = abs(pdg)
    if a < 100:
        return 0
    q1 = (a // 1000) % 10
    q2 = (a // 100) % 10
    q3 = (a // 10) % 10
    if q1 == 5 or q2 == 5 or (q1 == 0 and q3 == 5):
        return 5
    if q1 == 4 or q2 == 4 or (q1 == 0 and q3 == 4):
        return 4
    return 0


@numba.njit(cache=True)
def heavy_flavour(pdg_id: np.ndarray) -> np.ndarray:
    """Per particle: 5 for b hadrons, 4 for c hadrons, 0 otherwise."""
    out = np.zeros(pdg_id.size, np.int32)
    for i in range(pdg_id.size):
        out[i] = _heavy_flavour(pdg_id[i])
    return out


@numba.njit(cache=True)
def _flags_kernel(offsets, pdg, status, mother1, mother2, daughter1, daughter2, pt):  # type: ignore[no-untyped-def]
    n = pdg.size
    flags = np.zeros(n, np.int32)
    copy_parent = np.full(n, -1, np.int64)
    has_copy = np.zeros(n, np.bool_)
    from_hadron = np.zeros(n, np.bool_)
    tau_anc = np.full(n, -1, np.int64)  # flat index of the (last-copy) tau this particle descends from
    keep = np.zeros(n, np.bool_)
    for ev in range(offsets.size - 1):
        lo, hi = offsets[ev], offsets[ev + 1]
        for i in range(lo + 1, hi):
            m1, m2 = mother1[i], mother2[i]
            if m1 > 0 and (m2 == 0 or m2 == m1) and pdg[lo + m1] == pdg[i]:  # noqa: PLR1714 (numba: no `in` on mixed tuples)
                copy_parent[i] = lo + m1
                has_copy[lo + m1] = True
        for i in range(lo + 1, hi):
            f = 0
            st = abs(status[i])
            m = lo + mother1[i] if mother1[i] > 0 else -1
            if 21 <= st <= 29:
                f |= 1 << 7
            if copy_parent[i] >= 0:
                cp = copy_parent[i]
                from_hadron[i] = from_hadron[cp]
                tau_anc[i] = tau_anc[cp]
                if (flags[cp] >> 8) & 1:
                    f |= 1 << 8
            elif m >= 0:
                from_hadron[i] = from_hadron[m] or _is_hadron(pdg[m])
                if abs(pdg[m]) == 15 and not has_copy[m]:
                    tau_anc[i] = m
                    f |= 1 << 4
                else:
                    tau_anc[i] = tau_anc[m]
                if _is_hadron(pdg[m]):
                    f |= 1 << 6
            if (f >> 7) & 1:
                f |= 1 << 8
            if not from_hadron[i]:
                f |= 1 << 0
            t = tau_anc[i]
            if t >= 0:
                f |= 1 << 2
                tau_prompt = (flags[t] & 1) == 1
                tau_hard = ((flags[t] >> 8) & 1) == 1
                if tau_prompt:
                    f |= 1 << 3
                    if (f >> 4) & 1:
                        f |= 1 << 5
                if tau_hard:
                    f |= 1 << 9
                    if (f >> 4) & 1:
                        f |= 1 << 10
            if copy_parent[i] < 0:
                f |= 1 << 12
            if not has_copy[i]:
                f |= 1 << 13
                if status[i] < 0 and (abs(pdg[i]) == 15 or _is_hadron(pdg[i])):
                    f |= 1 << 1
            flags[i] = f
        # pruning (NanoAOD-like), then nearest kept ancestor
        for i in range(lo + 1, hi):
            a = abs(pdg[i])
            f = flags[i]
            first_or_last = ((f >> 12) & 1) or ((f >> 13) & 1)
            hard = (f >> 8) & 1
            if (hard and first_or_last and (a <= 6 or a == 21 or 11 <= a <= 16 or 23 <= a <= 25)) or (
                11 <= a <= 16 and ((f & 1) or ((f >> 2) & 1)) and first_or_last
            ):
                keep[i] = True
            elif status[i] > 0 and a in (12, 14, 16):
                keep[i] = True  # every final-state neutrino, so that GenMET is their vector sum
            elif (
                (11 <= a <= 16 and status[i] > 0 and pt[i] > 3.0)
                or (
                    (f >> 13) & 1
                    and _heavy_flavour(pdg[i]) > 0
                    and not _decays_to_same_flavour(i, lo, pdg, daughter1, daughter2)
                )
                or (a == 22 and status[i] > 0 and (f & 1) and pt[i] > 10.0)
            ):
                keep[i] = True
    return flags, keep, tau_anc


@numba.njit(cache=True)
def _decays_to_same_flavour(i, lo, pdg, daughter1, daughter2):  # type: ignore[no-untyped-def]
    """True if a heavy-flavour hadron decays (strongly/electromagnetically) to one of the same flavour."""
    hf = _heavy_flavour(pdg[i])
    d1, d2 = daughter1[i], daughter2[i]
    if d1 <= 0:
        return False
    d2 = max(d2, d1)
    # a loop, not any(): numba has no any() over a generator
    for d in range(d1, d2 + 1):  # noqa: SIM110
        if _heavy_flavour(pdg[lo + d]) == hf:
            return True
    return False


@numba.njit(cache=True)
def _kept_mother_kernel(offsets, mother1, keep):  # type: ignore[no-untyped-def]
    """Index (within the kept list of the event) of each kept particle's nearest kept ancestor."""
    n = keep.size
    new_index = np.full(n, -1, np.int64)
    out = []
    for ev in range(offsets.size - 1):
        lo, hi = offsets[ev], offsets[ev + 1]
        k = 0
        for i in range(lo, hi):
            if keep[i]:
                new_index[i] = k
                k += 1
        for i in range(lo, hi):
            if keep[i]:
                m = mother1[i]
                mi = -1
                while m > 0:
                    if keep[lo + m]:
                        mi = new_index[lo + m]
                        break
                    m = mother1[lo + m]
                out.append(mi)
    return np.array(out, dtype=np.int32)


@numba.njit(cache=True)
def _visible_tau_kernel(offsets, pdg, status, mother1, flags, tau_anc, px, py, pz, energy):  # type: ignore[no-untyped-def]
    """Hadronic prompt last-copy taus: visible 4-momentum, decay mode, flat index of the tau."""
    n = pdg.size
    n_charged = np.zeros(n, np.int32)
    n_pi0 = np.zeros(n, np.int32)
    leptonic = np.zeros(n, np.bool_)
    vis = np.zeros((n, 4))
    for i in range(n):
        t = tau_anc[i]
        if t < 0:
            continue
        a = abs(pdg[i])
        if (flags[i] >> 4) & 1:  # direct daughter
            if a in (11, 13):
                leptonic[t] = True
            if a not in (12, 14, 16):
                vis[t, 0] += px[i]
                vis[t, 1] += py[i]
                vis[t, 2] += pz[i]
                vis[t, 3] += energy[i]
        if a == 111:
            n_pi0[t] += 1
        elif status[i] > 0 and a in (211, 321, 11, 13):
            n_charged[t] += 1
    taus = []
    modes = []
    for ev in range(offsets.size - 1):
        for i in range(offsets[ev], offsets[ev + 1]):
            if abs(pdg[i]) == 15 and (flags[i] >> 13) & 1 and flags[i] & 1 and not leptonic[i] and vis[i, 3] > 0:
                taus.append(i)
                nc, npi = n_charged[i], n_pi0[i]
                if nc == 1:
                    modes.append(min(npi, 2))
                elif nc == 3:
                    modes.append(10 + min(npi, 1))
                else:
                    modes.append(15)
    return np.array(taus, dtype=np.int64), np.array(modes, dtype=np.int32), vis


def _pt_eta_phi(px: np.ndarray, py: np.ndarray, pz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pt = np.hypot(px, py)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.where(pt > 0, np.arcsinh(pz / np.where(pt > 0, pt, 1.0)), np.sign(pz) * 1e4)
    return pt, eta, np.arctan2(py, px)


def _hepmc_status(status: np.ndarray, flags: np.ndarray) -> np.ndarray:
    """NanoAOD GenPart_status: 1 final state, 2 decayed hadron/tau, else |Pythia status|."""
    out = np.abs(status)
    out = np.where(status > 0, 1, out)
    return np.where((flags >> 1) & 1 == 1, 2, out).astype(np.int32)


def gen_truth(record: ParticleRecord) -> GenTruth:
    """Build GenPart, GenVisTau and GenMET for every event of ``record`` (the hard scatter only)."""
    offsets = record.offsets
    pt, eta, phi = _pt_eta_phi(record.px, record.py, record.pz)
    flags, keep, tau_anc = _flags_kernel(
        offsets, record.pdg_id, record.status, record.mother1, record.mother2, record.daughter1, record.daughter2, pt
    )
    mothers = _kept_mother_kernel(offsets, record.mother1, keep)
    event_of = np.repeat(np.arange(record.counts.size), record.counts)
    kept = np.flatnonzero(keep)
    genpart = {
        "pt": pt[kept].astype(np.float32),
        "eta": eta[kept].astype(np.float32),
        "phi": phi[kept].astype(np.float32),
        "mass": record.mass[kept].astype(np.float32),
        "pdgId": record.pdg_id[kept],
        "status": _hepmc_status(record.status[kept], flags[kept]),
        "statusFlags": flags[kept],
        "genPartIdxMother": mothers,
    }
    taus, modes, vis = _visible_tau_kernel(
        offsets,
        record.pdg_id,
        record.status,
        record.mother1,
        flags,
        tau_anc,
        record.px,
        record.py,
        record.pz,
        record.energy,
    )
    genpart_counts = np.bincount(event_of[kept], minlength=record.counts.size).astype(np.int64)
    genpart_starts = np.concatenate([[0], np.cumsum(genpart_counts)[:-1]])
    # index of each kept particle within the GenPart list of its event
    kept_position = np.cumsum(keep) - 1 - genpart_starts[event_of]
    v = vis[taus]
    vpt, veta, vphi = _pt_eta_phi(v[:, 0], v[:, 1], v[:, 2])
    vmass = np.sqrt(np.maximum(v[:, 3] ** 2 - v[:, 0] ** 2 - v[:, 1] ** 2 - v[:, 2] ** 2, 0.0))
    visible_tau = {
        "pt": vpt.astype(np.float32),
        "eta": veta.astype(np.float32),
        "phi": vphi.astype(np.float32),
        "mass": vmass.astype(np.float32),
        "charge": np.sign(-record.pdg_id[taus]).astype(np.int32),
        "status": modes,
        "genPartIdxMother": kept_position[taus].astype(np.int32),
    }
    neutrino = (record.status > 0) & np.isin(np.abs(record.pdg_id), (12, 14, 16))
    # GenMET: the invisible transverse momentum of the hard scatter, i.e. the vector sum of its neutrinos
    met_x = np.bincount(event_of, weights=np.where(neutrino, record.px, 0.0), minlength=record.counts.size)
    met_y = np.bincount(event_of, weights=np.where(neutrino, record.py, 0.0), minlength=record.counts.size)
    return GenTruth(
        genpart_counts=genpart_counts,
        genpart=genpart,
        genpart_source=kept,
        visible_tau_counts=np.bincount(event_of[taus], minlength=record.counts.size).astype(np.int64),
        visible_tau=visible_tau,
        genmet_pt=np.hypot(met_x, met_y).astype(np.float32),
        genmet_phi=np.arctan2(met_y, met_x).astype(np.float32),
        status_flags=flags,
        tau_ancestor=tau_anc,
        visible_tau_source=taus,
    )
