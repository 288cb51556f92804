"""Physics objects from PF candidates and truth: pileup density, jets, leptons, taus, b tags, MET.

The numbers (thresholds, efficiencies, resolutions) are in `detector.py`; this module applies them.
Collections are returned as (counts, {field: flat array}) in NanoAOD naming, sorted by decreasing pT.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import awkward as ak
import numba
import numpy as np

from coffea_mlreco.simulation.detector import (
    DEFAULT_DETECTOR,
    DetectorParameters,
    calorimeter_resolution,
    track_pt_resolution,
)

__all__ = [
    "Collection",
    "btag_discriminant",
    "cluster_jets",
    "hadron_flavour",
    "isolation",
    "missing_momentum",
    "nearest_match",
    "pileup_density",
]

RHO_ETA_EDGES = np.linspace(-5.0, 5.0, 21)
"""η rings (width 0.5) in which the pileup density ρ(η) for the jet offset correction is measured."""
RHO_N_PHI = 12


@dataclass
class Collection:
    """A jagged collection of one chunk: per-event counts and flat NanoAOD-named columns."""

    counts: np.ndarray
    columns: dict[str, np.ndarray]

    def select(self, mask: np.ndarray, event: np.ndarray, n_events: int) -> Collection:
        return Collection(
            np.bincount(event[mask], minlength=n_events).astype(np.int64), {k: v[mask] for k, v in self.columns.items()}
        )


def event_index(counts: np.ndarray) -> np.ndarray:
    return np.repeat(np.arange(counts.size), counts)


def pileup_density(
    event: np.ndarray, pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, n_events: int
) -> tuple[np.ndarray, np.ndarray]:
    """Median pT density (GeV per unit η×φ area) of the candidates given, per event.

    Returns ρ per η ring (shape [n_events, 20], rings of `RHO_ETA_EDGES`) and the event's central
    ρ (median over all cells with |η| < 2.5, like CMS's fixedGridRhoFastjetAll in spirit).
    """
    n_eta = RHO_ETA_EDGES.size - 1
    inside = np.abs(eta) < RHO_ETA_EDGES[-1]
    ieta = np.clip(np.searchsorted(RHO_ETA_EDGES, eta[inside], side="right") - 1, 0, n_eta - 1)
    iphi = np.clip(((phi[inside] + np.pi) / (2 * np.pi) * RHO_N_PHI).astype(np.int64), 0, RHO_N_PHI - 1)
    key = (event[inside] * n_eta + ieta) * RHO_N_PHI + iphi
    cell_area = (RHO_ETA_EDGES[1] - RHO_ETA_EDGES[0]) * 2 * np.pi / RHO_N_PHI
    grid = np.bincount(key, weights=pt[inside], minlength=n_events * n_eta * RHO_N_PHI)
    grid = grid.reshape(n_events, n_eta, RHO_N_PHI) / cell_area
    rho_ring = np.median(grid, axis=2)
    central = np.abs(RHO_ETA_EDGES[:-1] + 0.25) < 2.5
    rho_central = np.median(grid[:, central, :].reshape(n_events, -1), axis=1)
    return rho_ring, rho_central


def cluster_jets(
    counts: np.ndarray, pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, mass: np.ndarray, radius: float, pt_min: float
) -> Collection:
    """Anti-kT jets (FastJet, E-scheme) of each event's particles; fields pt, eta, phi, mass, nConstituents."""
    import fastjet

    px, py = pt * np.cos(phi), pt * np.sin(phi)
    pz = pt * np.sinh(eta)
    energy = np.sqrt(px**2 + py**2 + pz**2 + mass**2)
    particles = ak.unflatten(ak.zip({"px": px, "py": py, "pz": pz, "E": energy}, with_name="Momentum4D"), counts)
    sequence = fastjet.ClusterSequence(particles, fastjet.JetDefinition(fastjet.antikt_algorithm, radius))
    jets = sequence.inclusive_jets(min_pt=pt_min)
    n_const = ak.num(sequence.constituent_index(min_pt=pt_min), axis=2)
    jx, jy, jz, je = (ak.to_numpy(ak.flatten(jets[c])) for c in ("px", "py", "pz", "E"))
    jpt = np.hypot(jx, jy)
    jeta = np.arcsinh(jz / np.maximum(jpt, 1e-9))
    jmass = np.sqrt(np.maximum(je**2 - jx**2 - jy**2 - jz**2, 0.0))
    jet_counts = ak.to_numpy(ak.num(jets)).astype(np.int64)
    cols = {
        "pt": jpt,
        "eta": jeta,
        "phi": np.arctan2(jy, jx),
        "mass": jmass,
        "nConstituents": ak.to_numpy(ak.flatten(n_const)).astype(np.int32),
    }
    order = np.lexsort((-jpt, event_index(jet_counts)))
    return Collection(jet_counts, {k: v[order] for k, v in cols.items()})


@numba.njit(cache=True)
def _nearest_match_kernel(offsets_a, eta_a, phi_a, offsets_b, eta_b, phi_b, max_dr):  # type: ignore[no-untyped-def]
    out = np.full(eta_a.size, -1, np.int32)
    for ev in range(offsets_a.size - 1):
        for i in range(offsets_a[ev], offsets_a[ev + 1]):
            best = max_dr
            for j in range(offsets_b[ev], offsets_b[ev + 1]):
                dphi = (phi_a[i] - phi_b[j] + math.pi) % (2 * math.pi) - math.pi
                dr = math.sqrt((eta_a[i] - eta_b[j]) ** 2 + dphi**2)
                if dr < best:
                    best = dr
                    out[i] = j - offsets_b[ev]
    return out


def _offsets(counts: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def nearest_match(a: Collection, b: Collection, max_dr: float) -> np.ndarray:
    """For each object of ``a``, the index (within its event) of the nearest ``b`` within ΔR, else −1."""
    return _nearest_match_kernel(
        _offsets(a.counts),
        a.columns["eta"],
        a.columns["phi"],
        _offsets(b.counts),
        b.columns["eta"],
        b.columns["phi"],
        max_dr,
    )


def hadron_flavour(jets: Collection, hadrons: Collection, radius: float) -> np.ndarray:
    """5 if a weakly decaying b hadron (pT > 5 GeV) is within ΔR < R of the jet, else 4 for a c hadron, else 0.

    ``hadrons`` carries a ``flavour`` column (4 or 5). Each hadron is given to its nearest jet, as ghost
    association does.
    """
    flavour = np.zeros(jets.columns["pt"].size, np.int32)
    jet_offsets = _offsets(jets.counts)
    h_event = event_index(hadrons.counts)
    for f in (4, 5):  # b overrides c
        sel = (hadrons.columns["flavour"] == f) & (hadrons.columns["pt"] > 5.0)
        sub = hadrons.select(sel, h_event, jets.counts.size)
        match = nearest_match(sub, jets, radius)
        ok = match >= 0
        flavour[jet_offsets[event_index(sub.counts)[ok]] + match[ok]] = f
    return flavour


def btag_discriminant(
    flavour: np.ndarray, eta: np.ndarray, rng: np.random.Generator, det: DetectorParameters = DEFAULT_DETECTOR
) -> np.ndarray:
    """DeepJet-like b-tag score in [0, 1] from the jet's hadron flavour (−1 outside the tracker)."""
    mean = np.select([flavour == 5, flavour == 4], [det.btag_mean_b, det.btag_mean_c], det.btag_mean_light)
    score = 1.0 / (1.0 + np.exp(-(mean + det.btag_sigma * rng.standard_normal(flavour.size))))
    return np.where(np.abs(eta) < det.tracker_eta_max, score, -1.0)


def candidate_pt_resolution(
    pt: np.ndarray, eta: np.ndarray, pdg_id: np.ndarray, det: DetectorParameters = DEFAULT_DETECTOR
) -> np.ndarray:
    """Absolute pT resolution (GeV) of PF candidates from the detector model (for MET covariance)."""
    a = np.abs(pdg_id)
    energy = pt * np.cosh(eta)
    with np.errstate(divide="ignore", invalid="ignore"):
        sin_theta = 1.0 / np.cosh(eta)
    ecal = calorimeter_resolution(energy, det.ecal_stochastic, det.ecal_constant, det.ecal_noise) * sin_theta
    hcal = calorimeter_resolution(energy, det.hcal_stochastic, det.hcal_constant) * sin_theta
    hf_em = calorimeter_resolution(energy, det.hf_em_stochastic, det.hf_em_constant) * sin_theta
    hf = calorimeter_resolution(energy, det.hf_stochastic, det.hf_constant) * sin_theta
    track = track_pt_resolution(pt, eta, det) * pt
    return np.select([(a == 211) | (a == 13), (a == 11) | (a == 22), a == 130, a == 2], [track, ecal, hcal, hf_em], hf)


def missing_momentum(
    counts: np.ndarray,
    pt: np.ndarray,
    phi: np.ndarray,
    sigma_pt: np.ndarray | None = None,
    det: DetectorParameters = DEFAULT_DETECTOR,
) -> dict[str, np.ndarray]:
    """MET = −Σ pT of the candidates (GeV): pt, phi, sumEt, and with ``sigma_pt`` the covariance (GeV²).

    covXX, covXY, covYY = Σ σ(pT)² (cos²φ, cos φ sin φ, sin²φ) over the candidates (``sigma_pt``: their
    absolute pT resolutions, GeV) plus the isotropic unclustered term σ_u² = σ₀² + k²·sumEt on XX and YY
    (σ₀, k: ``det.met_unclustered_sigma0``, ``det.met_unclustered_k``; calibrated in `detector.py`).
    With σ₀ > 0 the covariance is positive definite, also for an event without candidates.
    """
    event = event_index(counts)
    n = counts.size
    cos, sin = np.cos(phi), np.sin(phi)
    mex = -np.bincount(event, weights=pt * cos, minlength=n)
    mey = -np.bincount(event, weights=pt * sin, minlength=n)
    sumet = np.bincount(event, weights=pt, minlength=n)
    out = {"pt": np.hypot(mex, mey), "phi": np.arctan2(mey, mex), "sumEt": sumet}
    if sigma_pt is not None:
        s2 = sigma_pt**2
        unclustered = det.met_unclustered_sigma0**2 + det.met_unclustered_k**2 * sumet
        out["covXX"] = np.bincount(event, weights=s2 * cos * cos, minlength=n) + unclustered
        out["covXY"] = np.bincount(event, weights=s2 * cos * sin, minlength=n)
        out["covYY"] = np.bincount(event, weights=s2 * sin * sin, minlength=n) + unclustered
    return out


@numba.njit(cache=True)
def _isolation_kernel(  # type: ignore[no-untyped-def]
    lep_offsets,
    lep_eta,
    lep_phi,
    lep_pt,
    cand_offsets,
    cand_eta,
    cand_phi,
    cand_pt,
    cand_charged_pv,
    cand_neutral,
    rho,
    cone,
):
    out = np.zeros(lep_pt.size)
    for ev in range(lep_offsets.size - 1):
        for i in range(lep_offsets[ev], lep_offsets[ev + 1]):
            charged = 0.0
            neutral = 0.0
            for j in range(cand_offsets[ev], cand_offsets[ev + 1]):
                dphi = (lep_phi[i] - cand_phi[j] + math.pi) % (2 * math.pi) - math.pi
                dr2 = (lep_eta[i] - cand_eta[j]) ** 2 + dphi**2
                if dr2 < 1e-8 or dr2 > cone * cone:
                    continue
                if cand_charged_pv[j]:
                    charged += cand_pt[j]
                elif cand_neutral[j]:
                    neutral += cand_pt[j]
            out[i] = (charged + max(0.0, neutral - rho[ev] * math.pi * cone * cone)) / lep_pt[i]
    return out


def isolation(leptons: Collection, cands: Collection, rho: np.ndarray, cone: float) -> np.ndarray:
    """Relative PF isolation: (Σ charged pT from the PV + max(0, Σ neutral pT − ρ·πR²)) / pT_lepton.

    The lepton's own candidate (ΔR < 1e-4) is excluded. ``cands`` needs pt, eta, phi, charge, fromPV.
    """
    c = cands.columns
    return _isolation_kernel(
        _offsets(leptons.counts),
        leptons.columns["eta"],
        leptons.columns["phi"],
        leptons.columns["pt"],
        _offsets(cands.counts),
        c["eta"],
        c["phi"],
        c["pt"],
        (c["charge"] != 0) & (c["fromPV"] >= 2),
        c["charge"] == 0,
        rho,
        cone,
    )
