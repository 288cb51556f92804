"""PUPPI (pileup per particle identification) weights in numba, following CMS's `PuppiContainer`.

Bertolini, Harris, Low, Tran, JHEP 10 (2014) 059; CMS, JINST 15 (2020) P09018. For each PF candidate i

    α_i = log Σ_j pT_j² / ΔR_ij²   over neighbours with 0.01 ≤ ΔR_ij < R0 (η–φ distance),

where the neighbours are the charged candidates from the primary vertex (PV) in regions that use the
"central" α, and all candidates in regions that use the "forward" α. The median and left RMS of α
(over α ≤ median) come from charged pileup candidates with |η| < 2.0 and pT > `rms_pt_min`, are scaled
per η region (`med_eta_sf`, `rms_eta_sf`) and corrected for low pileup (CMS's `applyLowPUCorr`). Then

    w_i = F_χ²(ndf=1)((α_i − med)·|α_i − med| / RMS²),   0 for α_i below the median,

charged candidates from the PV get w = 1 and charged pileup w = 0; a neutral with w·pT below
`min_neutral_pt + min_neutral_pt_slope·N_PV` gets 0; neutrals above `pt_max_neutrals_start_slope` are
protected linearly up to w = 1 at `pt_max_neutrals`; weights below `min_weight` become 0. Without any
charged pileup (PU 0) every weight is 1 before these cuts.

The neighbour search uses an η–φ grid (R0/4 cells, candidates stored cell by cell) and reads per η strip only
the φ bins the R0 disc reaches, so the cost per event is O(N) at fixed particle density (never the O(N²)
double loop). R0 ≤ 1.5. The tunes are data (`puppi_tunes.json`): ``run3`` (the
CMSSW default) and ``phase2`` (PU 200). ``alpha="seed"`` uses α = log Σ pT/ΔR instead (the MET seed talk).

PV association of charged candidates: our files and CMS PFNano with ``fromPV``: fromPV = 3, or
fromPV ∈ {1, 2} with |dz| < `delta_z_cut` (cm). Files with only ``pvAssocQuality`` and ``dz`` (PFNano
without fromPV): pvAssocQuality ≥ 5 (compatible in dz or used in the PV fit) and |dz| < `delta_z_cut`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from importlib import resources
from typing import Any

import awkward as ak
import numba
import numpy as np
from numpy.typing import ArrayLike

from coffea_mlreco.core.columns import to_numpy

__all__ = ["TUNES", "PuppiRegion", "PuppiTune", "load_tune", "puppi_weights", "puppi_weights_flat", "pv_class"]

_ALPHA_TYPES = {"central": 0, "forward": 1}
_TUNE_KEYS = {
    "cone",
    "min_delta_r",
    "eta_max_extrap",
    "min_weight",
    "delta_z_cut",
    "apply_low_pu_correction",
    "pt_max_neutrals",
    "pt_max_neutrals_start_slope",
    "rms_pt_min",
    "regions",
}
_REGION_KEYS = {"eta_min", "eta_max", "alpha", "min_neutral_pt", "min_neutral_pt_slope", "rms_eta_sf", "med_eta_sf"}


@dataclass(frozen=True)
class PuppiRegion:
    eta_min: float
    eta_max: float
    alpha: str
    min_neutral_pt: float
    min_neutral_pt_slope: float
    rms_eta_sf: float
    med_eta_sf: float


@dataclass(frozen=True)
class PuppiTune:
    """One PUPPI parameter set (GeV, cm); see puppi_tunes.json and the module docstring."""

    name: str
    cone: float
    min_delta_r: float
    eta_max_extrap: float
    min_weight: float
    delta_z_cut: float
    apply_low_pu_correction: bool
    pt_max_neutrals: float
    pt_max_neutrals_start_slope: float
    rms_pt_min: dict[str, float]
    regions: tuple[PuppiRegion, ...]


def _validate(name: str, raw: dict[str, Any]) -> PuppiTune:
    unknown, missing = set(raw) - _TUNE_KEYS, _TUNE_KEYS - set(raw)
    if unknown or missing:
        raise ValueError(f"PUPPI tune {name!r}: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}")
    regions = []
    for r in raw["regions"]:
        if set(r) != _REGION_KEYS:
            raise ValueError(f"PUPPI tune {name!r}: region keys {sorted(r)} differ from {sorted(_REGION_KEYS)}")
        if r["alpha"] not in _ALPHA_TYPES:
            raise ValueError(f"PUPPI tune {name!r}: alpha must be one of {sorted(_ALPHA_TYPES)}, not {r['alpha']!r}")
        regions.append(PuppiRegion(**r))
    if set(raw["rms_pt_min"]) != set(_ALPHA_TYPES):
        raise ValueError(f"PUPPI tune {name!r}: rms_pt_min needs keys {sorted(_ALPHA_TYPES)}")
    return PuppiTune(name=name, **{**raw, "regions": tuple(regions)})


def load_tune(name: str) -> PuppiTune:
    """A named tune from puppi_tunes.json (``run3`` or ``phase2``); unknown names and keys are errors."""
    data = json.loads(resources.files(__package__).joinpath("puppi_tunes.json").read_text())
    data.pop("_doc", None)
    if name not in data:
        raise ValueError(f"unknown PUPPI tune {name!r}; known: {', '.join(sorted(data))}")
    return _validate(name, data[name])


TUNES = ("run3", "phase2")


# ---------------------------------------------------------------------------------------------
# numba kernels: plain loops over flat arrays with per-event offsets
# ---------------------------------------------------------------------------------------------
@numba.njit(cache=True)
def _inverse_normal(p: float) -> float:
    """Φ⁻¹(p) (Acklam's rational approximation, refined by one Halley step; |error| < 1e-12)."""
    a = (
        -3.969683028665376e01,
        2.209460984245205e02,
        -2.759285104469687e02,
        1.383577518672690e02,
        -3.066479806614716e01,
        2.506628277459239e00,
    )
    b = (
        -5.447609879822406e01,
        1.615858368580409e02,
        -1.556989798598866e02,
        6.680131188771972e01,
        -1.328068155288572e01,
    )
    c = (
        -7.784894002430293e-03,
        -3.223964580411365e-01,
        -2.400758277161838e00,
        -2.549732539343734e00,
        4.374664141464968e00,
        2.938163982698783e00,
    )
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
    if p <= 0.0:
        return -math.inf
    if p >= 1.0:
        return math.inf
    if p < 0.02425:
        q = math.sqrt(-2 * math.log(p))
        x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / (
            (((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1
        )
    elif p > 1 - 0.02425:
        q = math.sqrt(-2 * math.log(1 - p))
        x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / (
            (((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1
        )
    else:
        q = p - 0.5
        r = q * q
        x = (
            (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5])
            * q
            / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
        )
    e = 0.5 * math.erfc(-x / math.sqrt(2.0)) - p
    u = e * math.sqrt(2 * math.pi) * math.exp(x * x / 2)
    return x - u / (1 + x * u / 2)


@numba.njit(cache=True)
def chi2_cdf_ndf1(x: float) -> float:
    """CDF of the χ² distribution with one degree of freedom (0 for x ≤ 0)."""
    return math.erf(math.sqrt(x / 2.0)) if x > 0 else 0.0


@numba.njit(cache=True)
def chi2_quantile_ndf1(p: float) -> float:
    """Inverse of `chi2_cdf_ndf1`."""
    z = _inverse_normal(0.5 * (1.0 + p))
    return z * z


_STRIPS_PER_CONE = 4
"""η strips are R0/4 high and φ bins R0/4 wide. Candidates are stored strip by strip, φ bin by φ bin, so the
neighbours of a particle in one strip form one contiguous run (two where φ wraps); each strip's run covers
only the φ bins its chord of the R0 disc reaches, about 1.5 πR0² in all (a 5×5 block of R0/2 cells: 3.2 πR0²)."""


@numba.njit(cache=True)
def _grid(eta, phi, pt, selected, cone, seed_variant):  # type: ignore[no-untyped-def]
    """η–φ grid of the selected particles: their η, φ and pT² (pT for the seed α) copied in cell order.

    Returns (start, g_eta, g_phi, g_weight, order, n_eta, n_phi, height, width): cell k = strip·n_phi + φ bin
    holds entries start[k]:start[k+1]; ``order`` maps an entry back to its particle.
    """
    height = cone / _STRIPS_PER_CONE
    n_eta = int(12.0 / height) + 1
    n_phi = max(int(2 * math.pi * _STRIPS_PER_CONE / cone), 1)
    width = 2 * math.pi / n_phi
    start = np.zeros(n_eta * n_phi + 1, np.int64)
    cell = np.empty(eta.size, np.int64)
    for i in range(eta.size):
        if selected[i]:
            ie = min(max(int((eta[i] + 6.0) / height), 0), n_eta - 1)
            ip = min(max(int((phi[i] + math.pi) / width), 0), n_phi - 1)
            cell[i] = ie * n_phi + ip
            start[cell[i] + 1] += 1
        else:
            cell[i] = -1
    for k in range(n_eta * n_phi):
        start[k + 1] += start[k]
    fill = start[:-1].copy()
    n_sel = start[-1]
    g_eta, g_phi, g_weight = np.empty(n_sel), np.empty(n_sel), np.empty(n_sel)
    order = np.empty(n_sel, np.int64)
    for i in range(eta.size):
        k = cell[i]
        if k >= 0:
            m = fill[k]
            g_eta[m], g_phi[m] = eta[i], phi[i]
            g_weight[m] = pt[i] if seed_variant else pt[i] * pt[i]
            order[m] = i
            fill[k] += 1
    return start, g_eta, g_phi, g_weight, order, n_eta, n_phi, height, width


_MAX_CONE = 1.5
"""Largest R0 the grid handles (a strip's chord of the disc then never wraps all the way round in φ)."""


@numba.njit(cache=True, inline="always")
def _cone_runs(eta_i, phi_i, start, n_eta, n_phi, height, width, cone, run_lo, run_hi, run_phi):  # type: ignore[no-untyped-def]
    """The grid entries that can lie within R0 of (η_i, φ_i), as runs run_lo[k]:run_hi[k] (k < returned count).

    Per η strip within R0, only the φ bins that the strip's chord of the R0 disc reaches, as one contiguous run
    (two where φ wraps around ±π); run_phi[k] is φ_i shifted by ±2π where needed, so that Δφ = run_phi[k] − φ_j
    needs no wrapping inside a run.
    """
    ie0 = min(max(int((eta_i + 6.0) / height), 0), n_eta - 1)
    n_runs = 0
    for ie in range(max(ie0 - _STRIPS_PER_CONE, 0), min(ie0 + _STRIPS_PER_CONE + 1, n_eta)):
        row = ie * n_phi
        if start[row] == start[row + n_phi]:
            continue
        # closest |Δη| of the strip (edge strips also hold the clamped |η| > 6), less a rounding margin
        deta_min = 0.0
        if ie != ie0 and 0 < ie < n_eta - 1:
            deta_min = (ie * height - 6.0 - eta_i) if ie > ie0 else (eta_i - (ie + 1) * height + 6.0)
            deta_min = max(deta_min - 1e-9, 0.0)
        if deta_min >= cone:
            continue
        half = math.sqrt(cone * cone - deta_min * deta_min) + 1e-9
        ip_lo = math.floor((phi_i - half + math.pi) / width)
        ip_hi = math.floor((phi_i + half + math.pi) / width)
        if ip_lo < 0:
            run_lo[n_runs], run_hi[n_runs], run_phi[n_runs] = (
                start[row + ip_lo + n_phi],
                start[row + n_phi],
                phi_i + 2 * math.pi,
            )
            n_runs += 1
            ip_lo = 0
        if ip_hi >= n_phi:
            run_lo[n_runs], run_hi[n_runs], run_phi[n_runs] = (
                start[row],
                start[row + ip_hi - n_phi + 1],
                phi_i - 2 * math.pi,
            )
            n_runs += 1
            ip_hi = n_phi - 1
        run_lo[n_runs], run_hi[n_runs], run_phi[n_runs] = start[row + ip_lo], start[row + ip_hi + 1], phi_i
        n_runs += 1
    return n_runs


_RUNS = 3 * (2 * _STRIPS_PER_CONE + 1)


@numba.njit(cache=True, fastmath={"reassoc"}, error_model="numpy")
def _gather_alpha(alpha, need, grid, cone, min_dr, seed_variant):  # type: ignore[no-untyped-def]
    """alpha[i] = α of particle i over the particles of ``grid`` (its own included, at ΔR = 0 < min_dr)
    wherever need[i]; the particles are visited in grid order (cache locality).

    The inner loop is branch-free (a select, not a jump) and, with reassociation allowed for the sum only,
    vectorised; that changes α only by rounding (~1e-16 relative).
    """
    start, g_eta, g_phi, g_weight, order, n_eta, n_phi, height, width = grid
    r2max, r2min = cone * cone, min_dr * min_dr
    run_lo, run_hi, run_phi = np.empty(_RUNS, np.int64), np.empty(_RUNS, np.int64), np.empty(_RUNS)
    for q in range(order.size):
        i = order[q]
        if not need[i]:
            continue
        eta_i = g_eta[q]
        n_runs = _cone_runs(eta_i, g_phi[q], start, n_eta, n_phi, height, width, cone, run_lo, run_hi, run_phi)
        total = 0.0
        for k in range(n_runs):
            phi_k = run_phi[k]
            if seed_variant:
                for m in range(run_lo[k], run_hi[k]):
                    deta = eta_i - g_eta[m]
                    dphi = phi_k - g_phi[m]
                    dr2 = deta * deta + dphi * dphi
                    term = g_weight[m] / math.sqrt(dr2)
                    total += term if (dr2 < r2max) & (dr2 >= r2min) else 0.0
            else:
                for m in range(run_lo[k], run_hi[k]):
                    deta = eta_i - g_eta[m]
                    dphi = phi_k - g_phi[m]
                    dr2 = deta * deta + dphi * dphi
                    term = g_weight[m] / dr2
                    total += term if (dr2 < r2max) & (dr2 >= r2min) else 0.0
        alpha[i] = math.log(total) if total > 0 else 0.0


@numba.njit(cache=True, error_model="numpy")
def _scatter_alpha(alpha, need, grid, sources, cone, min_dr, seed_variant):  # type: ignore[no-untyped-def]
    """alpha[i] = α of particle i over the particles of the sparse grid ``sources`` wherever need[i]: each
    source adds its term to the particles of ``grid`` within its R0 (the same pairs as a gather, visited
    from the few sources, charged candidates from the PV, rather than from every particle)."""
    start, g_eta, g_phi, _, order, n_eta, n_phi, height, width = grid
    s_eta, s_phi, s_weight = sources[1], sources[2], sources[3]
    r2max, r2min = cone * cone, min_dr * min_dr
    run_lo, run_hi, run_phi = np.empty(_RUNS, np.int64), np.empty(_RUNS, np.int64), np.empty(_RUNS)
    total = np.zeros(order.size)
    for j in range(s_eta.size):
        eta_j, w_j = s_eta[j], s_weight[j]
        n_runs = _cone_runs(eta_j, s_phi[j], start, n_eta, n_phi, height, width, cone, run_lo, run_hi, run_phi)
        for k in range(n_runs):
            phi_k = run_phi[k]
            for m in range(run_lo[k], run_hi[k]):
                deta = eta_j - g_eta[m]
                dphi = phi_k - g_phi[m]
                dr2 = deta * deta + dphi * dphi
                term = w_j / math.sqrt(dr2) if seed_variant else w_j / dr2
                total[m] += term if (dr2 < r2max) & (dr2 >= r2min) else 0.0
    for q in range(order.size):
        i = order[q]
        if need[i]:
            alpha[i] = math.log(total[q]) if total[q] > 0 else 0.0


@numba.njit(cache=True)
def _alphas(eta, phi, pt, cls, need_central, need_forward, cone, min_dr, seed_variant):  # type: ignore[no-untyped-def]
    """α over charged-PV neighbours (central, where ``need_central``) and over all neighbours (forward,
    where ``need_forward``) for one event; 0 elsewhere. R0 = ``cone`` ≤ 1.5."""
    n = pt.size
    alpha_c = np.zeros(n)
    alpha_f = np.zeros(n)
    every = _grid(eta, phi, pt, np.ones(n, np.bool_), cone, seed_variant)
    if need_central.any():
        _scatter_alpha(
            alpha_c, need_central, every, _grid(eta, phi, pt, cls == 1, cone, seed_variant), cone, min_dr, seed_variant
        )
    if need_forward.any():
        _gather_alpha(alpha_f, need_forward, every, cone, min_dr, seed_variant)
    return alpha_c, alpha_f


@numba.njit(cache=True)
def _median_rms(alpha, pu_sel, pv_sel, low_pu_correction):  # type: ignore[no-untyped-def]
    """CMS PuppiAlgo::computeMedRMS on the α of charged pileup (pu_sel) and charged PV (pv_sel)."""
    values = alpha[pu_sel]
    n = values.size
    if n == 0:
        return 0.0, 0.0, 0
    # CMS takes the median of the sorted values above the last zero; a selection finds the same element in O(n)
    n_negative, n_zero = 0, 0
    for k in range(n):
        if values[k] < 0:
            n_negative += 1
        elif values[k] == 0:
            n_zero += 1
    last_zero = n_negative + n_zero - 1 if n_zero > 0 else 0
    rank = last_zero + int((n - last_zero) * 0.5)
    median = np.partition(values, rank)[rank]
    rms = 0.0
    n_rms = 0
    for k in range(n):
        if values[k] == 0 or (low_pu_correction and values[k] > median):
            continue
        rms += (values[k] - median) ** 2
        n_rms += 1
    if n_rms > 0:
        rms /= n_rms
    if rms == 0:
        rms = 1e-5
    rms = math.sqrt(rms)
    if low_pu_correction:
        pv = alpha[pv_sel]
        n_pv_below = 0
        for k in range(pv.size):
            if pv[k] <= median:
                n_pv_below += 1
        adjust = n_pv_below / (n_pv_below + 0.5 * n)
        if adjust > 0:
            shift = math.sqrt(chi2_quantile_ndf1(adjust) * rms)
            median -= shift
            rms -= shift
    return median, rms, n


def _f64(values: ArrayLike) -> np.ndarray:
    """``values`` as a contiguous float64 array, as `_puppi_kernel` takes them."""
    return np.ascontiguousarray(values, dtype=np.float64)


@numba.njit(cache=True)
def _puppi_kernel(  # type: ignore[no-untyped-def]
    offsets,
    pt,
    eta,
    phi,
    cls,
    npv,
    cone,
    min_dr,
    eta_max_extrap,
    rms_pt_min_c,
    rms_pt_min_f,
    low_pu,
    reg_eta_min,
    reg_eta_max,
    reg_alpha,
    reg_min_pt,
    reg_slope,
    reg_rms_sf,
    reg_med_sf,
    pt_max_neutrals,
    pt_max_start,
    min_weight,
    seed_variant,
):
    weights = np.zeros(pt.size)
    for ev in range(offsets.size - 1):
        lo, hi = offsets[ev], offsets[ev + 1]
        if hi == lo:
            continue
        e_eta, e_phi, e_pt, e_cls = eta[lo:hi], phi[lo:hi], pt[lo:hi], cls[lo:hi]
        central = np.abs(e_eta) < eta_max_extrap
        region_of = np.full(hi - lo, -1, np.int64)
        for i in range(hi - lo):
            a_eta = abs(e_eta[i])
            for r in range(reg_eta_min.size):
                if reg_eta_min[r] < a_eta < reg_eta_max[r] or (a_eta == 0.0 and reg_eta_min[r] == 0.0):
                    region_of[i] = r
                    break
        need_forward = central & (e_cls >= 1) & (e_pt > rms_pt_min_f)  # charged PU and PV: median, low-PU count
        for i in range(hi - lo):
            if region_of[i] >= 0 and reg_alpha[region_of[i]] == 1:
                need_forward[i] = True
        pu_c, pv_c = central & (e_cls == 2) & (e_pt > rms_pt_min_c), central & (e_cls == 1) & (e_pt > rms_pt_min_c)
        pu_f, pv_f = central & (e_cls == 2) & (e_pt > rms_pt_min_f), central & (e_cls == 1) & (e_pt > rms_pt_min_f)
        # α only where it is used: neutrals' weights, and the median/RMS samples with the charged-PV candidates
        # that the low-pileup correction counts (CMS computes every algorithm's α for them too)
        need_central = pu_c | pv_c
        for i in range(hi - lo):
            if e_cls[i] == 0 and region_of[i] >= 0 and reg_alpha[region_of[i]] == 0:
                need_central[i] = True
            need_forward[i] = need_forward[i] and (e_cls[i] == 0 or pu_f[i] or pv_f[i])
        alpha_c, alpha_f = _alphas(e_eta, e_phi, e_pt, e_cls, need_central, need_forward, cone, min_dr, seed_variant)
        med_c, rms_c, n_c = _median_rms(alpha_c, pu_c, pv_c, low_pu)
        med_f, rms_f, n_f = _median_rms(alpha_f, pu_f, pv_f, low_pu)
        for i in range(hi - lo):
            region = region_of[i]
            if region < 0:
                continue  # outside every region: weight 0
            if reg_alpha[region] == 0:
                alpha, med, rms, n_pu = alpha_c[i], med_c, rms_c, n_c
            else:
                alpha, med, rms, n_pu = alpha_f[i], med_f, rms_f, n_f
            if n_pu == 0:
                w = 1.0  # no charged pileup to learn from (PU 0)
            else:
                med *= reg_med_sf[region]
                rms *= reg_rms_sf[region]
                if alpha == 0.0:
                    alpha = med
                d = alpha - med
                w = chi2_cdf_ndf1(d * abs(d) / (rms * rms))
            if e_cls[i] == 1:
                w = 1.0
            elif e_cls[i] == 2:
                w = 0.0
            else:
                if w * e_pt[i] < reg_min_pt[region] + reg_slope[region] * npv[ev]:
                    w = 0.0
                if pt_max_neutrals > 0:
                    ramp = (e_pt[i] - pt_max_start) / (pt_max_neutrals - pt_max_start)
                    w = min(max(ramp, w), 1.0)
            if w < min_weight:
                w = 0.0
            weights[lo + i] = w
    return weights


# ---------------------------------------------------------------------------------------------
# awkward front end
# ---------------------------------------------------------------------------------------------
def pv_class(pfcands: ak.Array, delta_z_cut: float) -> ak.Array:
    """0 for neutral candidates, 1 for charged from the PV, 2 for charged pileup (see module docstring)."""
    fields = set(ak.fields(pfcands))
    charged = pfcands.charge != 0
    if "fromPV" in fields:
        dz_ok = abs(pfcands.dz) < delta_z_cut if "dz" in fields else False
        from_pv = (pfcands.fromPV == 3) | ((pfcands.fromPV >= 1) & dz_ok)
    elif {"pvAssocQuality", "dz"} <= fields:
        from_pv = (pfcands.pvAssocQuality >= 5) & (abs(pfcands.dz) < delta_z_cut)
    else:
        raise KeyError(
            "PUPPI needs PFCands_fromPV, or PFCands_pvAssocQuality and PFCands_dz, to tell charged "
            f"candidates from the PV; the PF candidates have only {sorted(fields)}"
        )
    return ak.where(charged, ak.where(from_pv, 1, 2), 0)


def puppi_weights_flat(
    counts: np.ndarray,
    pt: np.ndarray,
    eta: np.ndarray,
    phi: np.ndarray,
    cls: np.ndarray,
    npv: np.ndarray,
    tune: PuppiTune,
    alpha: str = "cms",
) -> np.ndarray:
    """PUPPI weights of flat candidate arrays (numpy); ``cls`` from `pv_class`, ``npv`` per event."""
    if alpha not in ("cms", "seed"):
        raise ValueError(f"alpha must be 'cms' (Σ pT²/ΔR²) or 'seed' (Σ pT/ΔR), not {alpha!r}")
    if not 0 < tune.cone <= _MAX_CONE:
        raise ValueError(f"PUPPI tune {tune.name!r}: cone must be in (0, {_MAX_CONE}], not {tune.cone}")
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    regions = tune.regions
    return _puppi_kernel(
        offsets,
        _f64(pt),
        _f64(eta),
        _f64(phi),
        np.asarray(cls, np.int64),
        _f64(npv),
        tune.cone,
        tune.min_delta_r,
        tune.eta_max_extrap,
        tune.rms_pt_min["central"],
        tune.rms_pt_min["forward"],
        tune.apply_low_pu_correction,
        _f64([r.eta_min for r in regions]),
        _f64([r.eta_max for r in regions]),
        np.array([_ALPHA_TYPES[r.alpha] for r in regions], np.int64),
        _f64([r.min_neutral_pt for r in regions]),
        _f64([r.min_neutral_pt_slope for r in regions]),
        _f64([r.rms_eta_sf for r in regions]),
        _f64([r.med_eta_sf for r in regions]),
        tune.pt_max_neutrals,
        tune.pt_max_neutrals_start_slope,
        tune.min_weight,
        alpha == "seed",
    )


def puppi_weights(
    events_or_pfcands: ak.Array, tune: str | PuppiTune = "run3", npv: Any = None, alpha: str = "cms"
) -> ak.Array:
    """PUPPI weight in [0, 1] of every PF candidate, aligned with ``events.PFCands``.

    Accepts NanoEvents (uses ``events.PFCands`` and ``events.PV.npvsGood``) or the PFCands collection
    itself (then ``npv``, the number of good primary vertices per event, is required).
    """
    tune = load_tune(tune) if isinstance(tune, str) else tune
    if "PFCands" in ak.fields(events_or_pfcands):
        pfcands = events_or_pfcands.PFCands
        if npv is None:
            npv = events_or_pfcands.PV.npvsGood
    else:
        pfcands = events_or_pfcands
        if npv is None:
            raise ValueError("puppi_weights on a PFCands collection needs npv (good primary vertices per event)")
    counts = to_numpy(ak.num(pfcands, axis=1), np.int64)
    npv = np.array(
        np.broadcast_to(
            np.asarray(ak.to_numpy(npv) if isinstance(npv, ak.Array) else npv, dtype=np.float64), counts.shape
        )
    )
    flat = {k: ak.to_numpy(ak.flatten(pfcands[k])) for k in ("pt", "eta", "phi")}
    cls = ak.to_numpy(ak.flatten(pv_class(pfcands, tune.delta_z_cut)))
    weights = puppi_weights_flat(counts, flat["pt"], flat["eta"], flat["phi"], cls, npv, tune, alpha)
    return ak.unflatten(weights.astype(np.float32), counts)
