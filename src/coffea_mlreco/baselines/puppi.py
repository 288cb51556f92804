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

The neighbour search uses an η–φ grid of cells at least R0 wide, so the cost per event is O(N) at fixed
particle density (never the O(N²) double loop). The tunes are data (`puppi_tunes.json`): ``run3`` (the
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

__all__ = ["PuppiTune", "PuppiRegion", "load_tune", "TUNES", "puppi_weights", "puppi_weights_flat", "pv_class"]

_ALPHA_TYPES = {"central": 0, "forward": 1}
_TUNE_KEYS = {"cone", "min_delta_r", "eta_max_extrap", "min_weight", "delta_z_cut", "apply_low_pu_correction",
              "pt_max_neutrals", "pt_max_neutrals_start_slope", "rms_pt_min", "regions"}
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
    a = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02, 1.383577518672690e02,
         -3.066479806614716e01, 2.506628277459239e00)
    b = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02, 6.680131188771972e01,
         -1.328068155288572e01)
    c = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00, -2.549732539343734e00,
         4.374664141464968e00, 2.938163982698783e00)
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
    if p <= 0.0:
        return -math.inf
    if p >= 1.0:
        return math.inf
    if p < 0.02425:
        q = math.sqrt(-2 * math.log(p))
        x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / \
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
    elif p > 1 - 0.02425:
        q = math.sqrt(-2 * math.log(1 - p))
        x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / \
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
    else:
        q = p - 0.5
        r = q * q
        x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q / \
            (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
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


_CELLS_PER_CONE = 2
"""Grid cells are R0/2 wide: a neighbour search visits 5×5 cells (area ≈ 2.1 R0²) instead of 3×3 cells of
side R0 (≈ 3.8 R0²) around a cone of area π R0²."""


@numba.njit(cache=True)
def _grid(eta, phi, pt, selected, cone):  # noqa: ANN001, ANN202
    """η–φ cells of side ≥ R0/2 with the selected particles' (η, φ, pT) copied cell by cell (contiguous)."""
    size = cone / _CELLS_PER_CONE
    n_phi = max(int(2 * math.pi / size), 1)
    n_eta = int(12.0 / size) + 1
    cell_phi = 2 * math.pi / n_phi
    n_cells = n_eta * n_phi
    start = np.zeros(n_cells + 1, np.int64)
    cell = np.full(eta.size, -1, np.int64)
    for i in range(eta.size):
        if selected[i]:
            ie = min(max(int((eta[i] + 6.0) / size), 0), n_eta - 1)
            ip = min(int((phi[i] + math.pi) / cell_phi), n_phi - 1)
            cell[i] = ie * n_phi + ip
            start[cell[i] + 1] += 1
    for k in range(n_cells):
        start[k + 1] += start[k]
    fill = start[:-1].copy()
    g_eta = np.empty(start[-1])
    g_phi = np.empty(start[-1])
    g_pt = np.empty(start[-1])
    for i in range(eta.size):
        if cell[i] >= 0:
            m = fill[cell[i]]
            g_eta[m], g_phi[m], g_pt[m] = eta[i], phi[i], pt[i]
            fill[cell[i]] += 1
    return start, g_eta, g_phi, g_pt, n_eta, n_phi, size, cell_phi


@numba.njit(cache=True)
def _alpha(eta_i, phi_i, grid, cone, min_dr, seed_variant):  # noqa: ANN001, ANN202
    """α at (η_i, φ_i) over the particles held by one grid (the cells within R0)."""
    start, g_eta, g_phi, g_pt, n_eta, n_phi, size, cell_phi = grid
    reach = _CELLS_PER_CONE
    ie0 = min(max(int((eta_i + 6.0) / size), 0), n_eta - 1)
    ip0 = min(int((phi_i + math.pi) / cell_phi), n_phi - 1)
    r2max, r2min = cone * cone, min_dr * min_dr
    total = 0.0
    for ie in range(max(ie0 - reach, 0), min(ie0 + reach + 1, n_eta)):
        for dp in range(-reach, reach + 1):
            if 2 * reach + 1 > n_phi and dp != 0:
                continue
            ip = ip0 + dp
            if ip < 0:
                ip += n_phi
            elif ip >= n_phi:
                ip -= n_phi
            k = ie * n_phi + ip
            for m in range(start[k], start[k + 1]):
                deta = eta_i - g_eta[m]
                dphi = phi_i - g_phi[m]
                if dphi > math.pi:
                    dphi -= 2 * math.pi
                elif dphi < -math.pi:
                    dphi += 2 * math.pi
                dr2 = deta * deta + dphi * dphi
                if dr2 >= r2max or dr2 < r2min:
                    continue
                total += g_pt[m] / math.sqrt(dr2) if seed_variant else g_pt[m] * g_pt[m] / dr2
    return math.log(total) if total > 0 else 0.0


@numba.njit(cache=True)
def _alphas(eta, phi, pt, cls, need_forward, cone, min_dr, seed_variant):  # noqa: ANN001, ANN202
    """α over charged-PV neighbours (central, for every particle) and over all neighbours (forward, only
    where ``need_forward``), for one event."""
    n = pt.size
    alpha_c = np.zeros(n)
    alpha_f = np.zeros(n)
    grid = _grid(eta, phi, pt, cls == 1, cone)
    for i in range(n):
        alpha_c[i] = _alpha(eta[i], phi[i], grid, cone, min_dr, seed_variant)
    if need_forward.any():
        grid = _grid(eta, phi, pt, np.ones(n, np.bool_), cone)
        for i in range(n):
            if need_forward[i]:
                alpha_f[i] = _alpha(eta[i], phi[i], grid, cone, min_dr, seed_variant)
    return alpha_c, alpha_f


@numba.njit(cache=True)
def _median_rms(alpha, pu_sel, pv_sel, low_pu_correction):  # noqa: ANN001, ANN202
    """CMS PuppiAlgo::computeMedRMS on the α of charged pileup (pu_sel) and charged PV (pv_sel)."""
    values = np.sort(alpha[pu_sel])
    n = values.size
    if n == 0:
        return 0.0, 0.0, 0
    last_zero = 0
    for k in range(n):
        if values[k] == 0:
            last_zero = k
    median = values[last_zero + int((n - last_zero) * 0.5)]
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


@numba.njit(cache=True)
def _puppi_kernel(offsets, pt, eta, phi, cls, npv, cone, min_dr, eta_max_extrap, rms_pt_min_c, rms_pt_min_f,  # noqa: ANN001, ANN202
                  low_pu, reg_eta_min, reg_eta_max, reg_alpha, reg_min_pt, reg_slope, reg_rms_sf, reg_med_sf,
                  pt_max_neutrals, pt_max_start, min_weight, seed_variant):
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
        need_forward = central & (e_cls == 2) & (e_pt > rms_pt_min_f)
        for i in range(hi - lo):
            if region_of[i] >= 0 and reg_alpha[region_of[i]] == 1:
                need_forward[i] = True
        alpha_c, alpha_f = _alphas(e_eta, e_phi, e_pt, e_cls, need_forward, cone, min_dr, seed_variant)
        med_c, rms_c, n_c = _median_rms(alpha_c, central & (e_cls == 2) & (e_pt > rms_pt_min_c),
                                        central & (e_cls == 1) & (e_pt > rms_pt_min_c), low_pu)
        med_f, rms_f, n_f = _median_rms(alpha_f, central & (e_cls == 2) & (e_pt > rms_pt_min_f),
                                        central & (e_cls == 1) & (e_pt > rms_pt_min_f), low_pu)
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
        raise KeyError("PUPPI needs PFCands_fromPV, or PFCands_pvAssocQuality and PFCands_dz, to tell charged "
                       f"candidates from the PV; the PF candidates have only {sorted(fields)}")
    return ak.where(charged, ak.where(from_pv, 1, 2), 0)


def puppi_weights_flat(counts: np.ndarray, pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, cls: np.ndarray,
                       npv: np.ndarray, tune: PuppiTune, alpha: str = "cms") -> np.ndarray:
    """PUPPI weights of flat candidate arrays (numpy); ``cls`` from `pv_class`, ``npv`` per event."""
    if alpha not in ("cms", "seed"):
        raise ValueError(f"alpha must be 'cms' (Σ pT²/ΔR²) or 'seed' (Σ pT/ΔR), not {alpha!r}")
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    regions = tune.regions
    f64 = lambda values: np.ascontiguousarray(values, dtype=np.float64)  # noqa: E731
    return _puppi_kernel(
        offsets, f64(pt), f64(eta), f64(phi), np.asarray(cls, np.int64), f64(npv), tune.cone, tune.min_delta_r,
        tune.eta_max_extrap, tune.rms_pt_min["central"], tune.rms_pt_min["forward"], tune.apply_low_pu_correction,
        f64([r.eta_min for r in regions]), f64([r.eta_max for r in regions]),
        np.array([_ALPHA_TYPES[r.alpha] for r in regions], np.int64), f64([r.min_neutral_pt for r in regions]),
        f64([r.min_neutral_pt_slope for r in regions]), f64([r.rms_eta_sf for r in regions]),
        f64([r.med_eta_sf for r in regions]), tune.pt_max_neutrals, tune.pt_max_neutrals_start_slope,
        tune.min_weight, alpha == "seed")


def puppi_weights(events_or_pfcands: ak.Array, tune: str | PuppiTune = "run3", npv: Any = None,
                  alpha: str = "cms") -> ak.Array:
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
    counts = np.asarray(ak.to_numpy(ak.num(pfcands, axis=1)), dtype=np.int64)
    npv = np.array(np.broadcast_to(np.asarray(ak.to_numpy(npv) if isinstance(npv, ak.Array) else npv,
                                              dtype=np.float64), counts.shape))
    flat = {k: ak.to_numpy(ak.flatten(pfcands[k])) for k in ("pt", "eta", "phi")}
    cls = ak.to_numpy(ak.flatten(pv_class(pfcands, tune.delta_z_cut)))
    weights = puppi_weights_flat(counts, flat["pt"], flat["eta"], flat["phi"], cls, npv, tune, alpha)
    return ak.unflatten(weights.astype(np.float32), counts)
