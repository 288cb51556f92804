"""The parametric detector: every number the fast simulation uses to turn particles into measurements.

A CMS-like detector (Run-3 acceptance) in one place, so a reader sees the whole model at once:

Tracking (|η| < 2.5, 3.8 T)
    charged particles with pT > `track_pt_min` are found with efficiency `track_eff_*` (muons
    `track_eff_muon`, electrons `track_eff_electron`); pT resolution
    σ(pT)/pT = a·pT ⊕ b with (a, b) = (`track_res_a`, `track_res_b`) in the barrel (|η| < 1.5), doubled
    in the endcaps; longitudinal impact parameter resolution σ(z0) = `dz_res_a` ⊕ `dz_res_b`·√cosh η / pT
    (cm, pT in GeV). Charged particles not tracked reach the calorimeter if pT > `calo_reach_pt`
    (loopers below that curl up in the field) or |η| > 2.5.
Calorimeter entry (`calorimeter_entry`)
    a track is extrapolated as a helix in the uniform solenoid field B = `solenoid_field` (3.8 T, along +z;
    radius of curvature ρ = pT / (0.2998·B) m, pT in GeV) from its measured (pT, η, φ, z0) to the ECAL
    surface: the barrel cylinder r = `calo_radius` (1.29 m, CMS ECAL barrel front face) if it gets there
    with |z| ≤ `calo_endcap_z`, otherwise the endcap disk |z| = `calo_endcap_z` (3.15 m, CMS ECAL endcap
    front face). Transverse path to radius r: L = 2ρ·asin(r/2ρ); azimuth there φ − q·L/(2ρ) (positive
    particles bend clockwise seen from +z); z = z0 + L·sinh η. `eta_calo`/`phi_calo` are the pseudorapidity
    and azimuth of that point seen from the detector origin. A track with 2ρ < r and a small |η| (a looper,
    pT below ≈ 0.3·B·r/2 = 0.74 GeV) reaches the endcap disk after many turns or never (then its point of
    largest radius, L = πρ, is used); loopers leave no calorimeter deposit (`calo_reach_pt`).
Vertices
    the hard scatter and each pileup interaction sit at z ~ N(0, `beamspot_sigma_z`); the primary vertex
    (PV) is the hard scatter, measured with resolution `pv_res_z`. Track–vertex association: a track
    whose nearest vertex in z is the PV and which is compatible with it (|dz|/σ(z0) < `assoc_nsigma`)
    gets fromPV = 3 (used in the PV fit); nearest to the PV but not compatible: fromPV = 2; nearest to
    another vertex but compatible with the PV: fromPV = 1; otherwise fromPV = 0 (CMS PackedCandidate
    convention). `pvAssocQuality` (PFNano) is 7 for fromPV 3, 5 for fromPV 2 within 2× the window, 1 for
    other fromPV 2, and 0 for tracks assigned to another vertex. Neutral candidates get fromPV = 3 and
    pvAssocQuality = 0 (by convention neutrals are assigned to the PV; charged-hadron subtraction keeps
    them). Reconstructed vertices (``PV_npvs``): the PV plus each pileup vertex with at least
    `vertex_min_tracks` tracks in the tracker acceptance (pT > `track_pt_min`); ``PV_npvsGood`` counts
    those with `vertex_good_min_tracks`.
Particle flow (tracks)
    tracked particles become charged PF candidates: muons (pT > `muon_pt_min`, |η| < 2.4) as ±13,
    electrons (pT > `electron_pt_min`) as ±11 with the ECAL resolution, everything else as ±211 — told apart
    by their calorimeter signature (a muon's track has no deposit, an electron's is in the ECAL; `pfcands.py`).
    PF is
    assumed to subtract a tracked particle's calorimeter deposit exactly (no neutral fakes from
    charged-hadron showers).
Calorimeters (what the tracker did not take)
    ECAL (|η| < 3): cells of Δη×Δφ = `ecal_cell`² (PF clusters of about 3×3 crystals), photons and
    untracked electrons; σ(E)/E = `ecal_stochastic`/√E ⊕ `ecal_constant` ⊕ `ecal_noise`/E.
    HCAL (|η| < 3): towers of `hcal_cell`² for neutral and untracked charged hadrons;
    σ(E)/E = `hcal_stochastic`/√E ⊕ `hcal_constant`.
    HF (3 < |η| < 5): towers of `hf_cell`², every visible particle except muons; σ(E)/E
    = `hf_stochastic`/√E ⊕ `hf_constant` for hadrons (`hf_em_stochastic`, `hf_em_constant` for e/γ).
    Deposits of one cell merge into one neutral PF candidate (ECAL → 22, HCAL → 130, HF → 1 hadronic or
    2 electromagnetic, by the larger share), at the energy-weighted direction, massless, kept when its
    measured transverse energy exceeds the cell type's threshold (`*_et_min`). Muons leave no deposit.
    With ``--elements`` the cells are also written as clusters (`elements.py`): those above half these
    thresholds (`*_seed_et`) or holding a tracked particle's deposit.
Objects
    electrons: PF electrons with |η| < 2.5, pT > `electron_object_pt_min` (7 GeV), identification efficiency
    `electron_id_eff`, relative isolation ``pfRelIso03_all`` in a cone ΔR < `electron_iso_cone` (0.3);
    muons: PF muons with |η| < 2.4, pT > `muon_object_pt_min` (3 GeV), `muon_id_eff`, ``pfRelIso04_all``
    in ΔR < `muon_iso_cone` (0.4). Hadronic taus: visible taus with pT > `tau_pt_min` (18 GeV),
    |η| < 2.5, efficiency `tau_id_eff`, pT resolution `tau_pt_res`; jets with pT > `tau_fake_jet_pt_min`,
    |η| < 2.5 and no visible tau within ΔR < `tau_jet_match_dr` fake a tau with probability
    `tau_fake_rate`, with pT a uniform fraction `tau_fake_pt_fraction` of the jet's, a uniform mass in
    `tau_fake_mass_range` (GeV) and a decay mode drawn from `tau_fake_decay_modes`.
    b tagging: the discriminant is logistic(x) with x ~ N(μ_f, `btag_sigma`) for hadron flavour f, μ
    chosen so that at the medium working point (`btag_medium_wp`) the efficiency is 80 % (b), 18 % (c),
    1.2 % (light), like DeepJet's medium point; −1 outside |η| < 2.5.
Jets
    anti-kT R = `jet_radius` on charged-hadron-subtracted candidates (fromPV > 0), clustered above
    `jet_raw_pt_min` and kept above `jet_pt_min` (|η| < `jet_eta_max`) once corrected; offset-corrected with the
    median pileup density of the event in bins of η: pT_corr = pT_raw − ρ(η)·A with A = πR², then
    corrected for the detector response R(pT) = 1 − `jes_c`·pT^(−`jes_k`) (pT of the generator jet in
    GeV), the median response of PU 0 tt̄ jets to their generator jets (thresholds and untracked loopers
    make it < 1); `benchmarks/jet_response.py` checks the closure. Generator jets: the same algorithm on
    the visible hard-scatter particles, above `genjet_pt_min`; ``Jet_genJetIdx`` is the nearest generator
    jet within ΔR < `jet_genjet_match_dr`.
Missing transverse momentum
    MET = −Σ pT of all PF candidates, ΣE_T = Σ pT (`MET_sumEt`). Its covariance (`MET_covXX/XY/YY`, GeV²)
    is the sum of the candidates' own resolutions (σ(pT) from the models above, along each candidate's
    direction) plus an isotropic unclustered term per component, σ_u² = `met_unclustered_sigma0`² +
    `met_unclustered_k`²·ΣE_T (ΣE_T in GeV; like the soft term of CMS's MET significance), for what the
    candidates do not show: particles below the thresholds or outside the acceptance, untracked loopers,
    calorimeter thresholds and cell merging, pileup fluctuations. Calibrated so that the pulls
    (MET − GenMET)_x/√covXX and _y/√covYY have unit width, (P84 − P16)/2 = 1, by a least-squares fit of
    the pull widths in sumEt quartiles of 8 samples (PU 0: htautau seed 101, ztautau 102, ttbar-semilep
    103, dy-ll 104, 2000 events each; PU 60: dy-ll 105, ttbar-semilep 106, htautau 107, ztautau 108, 1500
    each), leaving out events with a muon (pT > 3 GeV) beyond |η| = 2.5, which escapes unmeasured (no
    Gaussian term can describe it; 27 % of dy-ll events, 5–9 % of the others). Fitted: σ₀ = 1.7 GeV,
    k = 0.50 GeV^½. The candidates' own term alone gave pull widths of 3.1–3.7 (ττ, dy-ll) and 2.1 (tt̄)
    at PU 0, 2.6–2.7 at PU 60; with the unclustered term they are 0.92–1.08 (ττ, dy-ll) at PU 0 and
    0.99–1.05 (all four) at PU 60. Limits of the ΣE_T form: tt̄ at PU 0, whose ΣE_T is mostly
    well-measured jets, is over-covered (0.77), and so is PU 200 (0.76–0.93, tt̄ and dy-ll, seeds 109, 110).
    `tests/simulation/test_met_covariance.py` checks the widths on other seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "DEFAULT_DETECTOR",
    "DetectorParameters",
    "calorimeter_entry",
    "calorimeter_resolution",
    "dz_resolution",
    "jet_response_correction",
    "track_pt_resolution",
]


@dataclass(frozen=True)
class DetectorParameters:
    """Numbers of the parametric detector (GeV, cm, radians). See the module docstring."""

    tracker_eta_max: float = 2.5
    track_pt_min: float = 0.3
    track_eff_hadron: float = 0.93
    track_eff_muon: float = 0.99
    track_eff_electron: float = 0.90
    track_res_a: float = 1.5e-4  # GeV^-1
    track_res_b: float = 0.006
    dz_res_a: float = 0.0030  # cm
    dz_res_b: float = 0.0120  # cm GeV
    calo_reach_pt: float = 0.8
    solenoid_field: float = 3.8  # T
    calo_radius: float = 1.29  # m
    calo_endcap_z: float = 3.15  # m
    beamspot_sigma_z: float = 3.5  # cm
    pv_res_z: float = 0.0012  # cm
    assoc_nsigma: float = 3.0
    vertex_min_tracks: int = 2  # tracks a pileup vertex needs to be reconstructed (PV_npvs)
    vertex_good_min_tracks: int = 4  # tracks a pileup vertex needs to count as good (PV_npvsGood)
    muon_pt_min: float = 3.0
    muon_eta_max: float = 2.4
    electron_pt_min: float = 2.0
    ecal_eta_max: float = 3.0
    ecal_cell: float = 2 * math.pi / 120
    ecal_stochastic: float = 0.03
    ecal_constant: float = 0.005
    ecal_noise: float = 0.25
    ecal_et_min: float = 0.3
    ecal_seed_et: float = 0.15
    hcal_cell: float = 2 * math.pi / 72
    hcal_stochastic: float = 1.0
    hcal_constant: float = 0.05
    hcal_et_min: float = 0.8
    hcal_seed_et: float = 0.4
    hf_eta_max: float = 5.0
    hf_cell: float = 2 * math.pi / 36
    hf_stochastic: float = 1.5
    hf_constant: float = 0.10
    hf_em_stochastic: float = 0.3
    hf_em_constant: float = 0.02
    hf_et_min: float = 2.0
    hf_seed_et: float = 1.0
    electron_id_eff: float = 0.85
    muon_id_eff: float = 0.97
    electron_object_pt_min: float = 7.0  # GeV, pT threshold of the Electron collection
    muon_object_pt_min: float = 3.0  # GeV, pT threshold of the Muon collection
    electron_iso_cone: float = 0.3  # ΔR of the electrons' isolation cone (pfRelIso03_all)
    muon_iso_cone: float = 0.4  # ΔR of the muons' isolation cone (pfRelIso04_all)
    tau_pt_min: float = 18.0  # GeV, visible pT threshold of genuine hadronic taus
    tau_id_eff: float = 0.60
    tau_pt_res: float = 0.08
    tau_fake_rate: float = 0.005
    tau_jet_match_dr: float = 0.4  # ΔR within which a jet matches a visible tau (and cannot fake one)
    tau_fake_jet_pt_min: float = 20.0  # GeV, pT threshold of jets that can fake a tau
    tau_fake_pt_fraction: tuple[float, float] = (0.5, 0.9)  # range of a fake tau's pT / its jet's pT (uniform)
    tau_fake_mass_range: tuple[float, float] = (0.14, 1.5)  # GeV, range of a fake tau's mass (uniform)
    tau_fake_decay_modes: tuple[int, ...] = (0, 1, 10)  # decay modes a fake tau is given (equally likely)
    btag_sigma: float = 2.0
    btag_mean_b: float = 0.836
    btag_mean_c: float = -2.677
    btag_mean_light: float = -5.362
    btag_medium_wp: float = 0.3
    jes_c: float = 0.654
    jes_k: float = 0.695
    jet_radius: float = 0.4
    jet_pt_min: float = 15.0
    jet_raw_pt_min: float = 5.0  # GeV, clustering threshold before the offset and response corrections
    genjet_pt_min: float = 10.0
    jet_genjet_match_dr: float = 0.2  # ΔR within which a jet matches its generator jet (Jet_genJetIdx)
    jet_eta_max: float = 4.7
    met_unclustered_sigma0: float = 1.7  # GeV
    met_unclustered_k: float = 0.50  # GeV^(1/2)


DEFAULT_DETECTOR = DetectorParameters()


def track_pt_resolution(pt: np.ndarray, eta: np.ndarray, det: DetectorParameters = DEFAULT_DETECTOR) -> np.ndarray:
    """Relative track pT resolution σ(pT)/pT (barrel value doubled for |η| > 1.5)."""
    scale = np.where(np.abs(eta) > 1.5, 2.0, 1.0)
    return scale * np.hypot(det.track_res_a * pt, det.track_res_b)


def dz_resolution(pt: np.ndarray, eta: np.ndarray, det: DetectorParameters = DEFAULT_DETECTOR) -> np.ndarray:
    """Resolution of the track's z0 (cm): a ⊕ b·√cosh η / pT."""
    return np.hypot(det.dz_res_a, det.dz_res_b * np.sqrt(np.cosh(eta)) / np.maximum(pt, 1e-3))


def calorimeter_resolution(
    energy: np.ndarray, stochastic: float | np.ndarray, constant: float | np.ndarray, noise: float | np.ndarray = 0.0
) -> np.ndarray:
    """Absolute energy resolution σ(E) (GeV) = E·(S/√E ⊕ C ⊕ N/E)."""
    e = np.maximum(energy, 1e-6)
    return np.sqrt(stochastic**2 * e + (constant * e) ** 2 + noise**2)


def calorimeter_entry(
    pt: np.ndarray,
    eta: np.ndarray,
    phi: np.ndarray,
    charge: np.ndarray,
    z0: np.ndarray,
    det: DetectorParameters = DEFAULT_DETECTOR,
) -> tuple[np.ndarray, np.ndarray]:
    """(η, φ) where tracks (pT in GeV, z0 in cm, charge ±1) cross the ECAL surface; see the module docstring.

    φ is wrapped to [−π, π). Neutral inputs (charge 0) go straight: (η of the straight line from z0, φ).
    """
    pt = np.maximum(np.asarray(pt, np.float64), 1e-6)
    sinh = np.sinh(eta)
    z0_m = np.asarray(z0, np.float64) / 100.0
    rho = pt / (0.299792458 * det.solenoid_field)
    rho = np.where(charge != 0, rho, np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        reaches = 2 * rho >= det.calo_radius
        path_barrel = np.where(reaches, 2 * rho * np.arcsin(np.minimum(det.calo_radius / (2 * rho), 1.0)), np.inf)
        z_barrel = z0_m + path_barrel * sinh
        barrel = reaches & (np.abs(z_barrel) <= det.calo_endcap_z)
        # endcap: transverse path to |z| = calo_endcap_z, but not past the looper's first half turn if it never
        # gets there
        z_face = np.where(sinh >= 0, det.calo_endcap_z, -det.calo_endcap_z)
        path_endcap = np.where(sinh != 0, (z_face - z0_m) / sinh, np.inf)
        path = np.where(barrel, path_barrel, np.minimum(path_endcap, np.where(np.isinf(rho), np.inf, np.pi * rho)))
        turn = np.where(np.isinf(rho), 0.0, path / (2 * rho))
        radius = np.where(barrel, det.calo_radius, np.where(np.isinf(rho), path, 2 * rho * np.abs(np.sin(turn))))
        z = z0_m + path * sinh
    eta_calo = np.arcsinh(z / np.maximum(radius, 1e-9))
    phi_calo = np.remainder(phi - np.sign(charge) * turn + np.pi, 2 * np.pi) - np.pi
    return eta_calo, phi_calo


def jet_response_correction(pt: np.ndarray, det: DetectorParameters = DEFAULT_DETECTOR) -> np.ndarray:
    """Factor that takes an offset-corrected jet pT (GeV) to the generator-jet scale.

    Solves pT = R(pT_gen)·pT_gen for pT_gen by fixed-point iteration (R from the module docstring).
    """
    gen = np.maximum(pt, 1.0)
    for _ in range(6):
        gen = pt / (1.0 - det.jes_c * np.maximum(gen, 1.0) ** (-det.jes_k))
    return gen / np.maximum(pt, 1e-9)
