"""Per-event MEM weights of q q̄ → ℓ⁺ℓ⁻ hypotheses, integrated with VEGAS, in parallel over events.

The weight of a measured dilepton event y (two leptons, MET) under hypothesis α is

    P(y|α) = 1/σ_fid(α) ∫ dp_a dp_b  Σ_q [f_q(x₁) f_q̄(x₂) |M̄_q|²(ŝ, c) + f_q̄(x₁) f_q(x₂) |M̄_q|²(ŝ, −c)] / (2 x₁ x₂ s)
                                    × (2π)⁻² (p_a p_b / 4)(2/s) × W_a(p_T,a^meas | p_a) W_b(p_T,b^meas | p_b) × W_MET,

summed over the quark flavours d u s c b and both beam orientations (f = number densities, μ_F = m_ℓℓ;
kinematics, x₁, x₂, c = cos θ* and the phase-space factor: :mod:`coffea_mlreco.mem.phase_space`;
|M̄|²: :mod:`coffea_mlreco.mem.matrix_elements`; W: :mod:`coffea_mlreco.mem.transfer_functions`).

MET
    With no neutrinos, momentum balance gives p_a + p_b + u = 0 for the true recoil u (ISR), so the
    measured MET satisfies MET + (p_T,a^meas − p_a) n̂_a + (p_T,b^meas − p_b) n̂_b = u − u^meas: the
    recoil mis-measurement. W_MET is the isotropic 2D Gaussian of that vector with σ_u per component
    (GeV⁻²). The recoil's true transverse momentum has a flat prior (the LO matrix element does not
    describe it); this factor is common to every hypothesis and cancels in likelihood ratios.
Normalisation and units
    σ_fid is the hypothesis's LO cross-section in the fiducial region (:class:`FiducialRegion`,
    computed with the same |M̄|² and PDF, in GeV⁻², once per process and cached), so weights of different
    hypotheses are comparable. P is then a density in (p_T,a, η_a, φ_a, p_T,b, η_b, φ_b, MET_x, MET_y)
    in GeV⁻⁴ (η dimensionless, φ in rad) times the GeV² of the flat recoil prior: **P is in GeV⁻²**
    (dimensionless with the MET term disabled). ``log10_weight`` is log₁₀ of P in these units.
    Events outside the fiducial region still get a weight; it is not truncated to the region.
Integration
    The true p_T's are sampled from Gaussians in the curvature 1/p_T around the measured ones, of the
    measured resolution (±``n_sigma``·σ, within 0.05–20 × the measured p_T), which VEGAS
    (``vegas.Integrator``, a vectorised batch integrand) then adapts to the matrix element during
    ``n_warmup`` iterations whose results are discarded; then, on the frozen grid, iterations of
    ``n_eval`` points are averaged until the relative uncertainty of their mean is below ``precision``
    (at least two iterations) or ``max_evals`` evaluations are used. ``converged`` also requires χ²/dof < 5 across
    iterations. Random numbers come from ``numpy.random.default_rng([seed, event_index])``, so each
    event's weight depends only on (seed, its index), not on ``n_workers`` or the chunking.
Invalid input
    NaN/inf or non-positive p_T, a lepton pair that is not an opposite-sign e⁺e⁻ or μ⁺μ⁻, or arrays of
    different lengths raise ``ValueError`` naming the problem and the first offending events. A weight
    that is exactly 0 (x₁ or x₂ > 1 everywhere) gives ``log10_weight = -inf`` (never NaN).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import ndtr, ndtri

from coffea_mlreco.core.constants import GEV2_TO_PB
from coffea_mlreco.mem.cross_section import FiducialRegion, fiducial_cross_section_gev2, parton_luminosities
from coffea_mlreco.mem.hypothesis import Hypothesis, load_hypothesis
from coffea_mlreco.mem.matrix_elements import MatrixElement
from coffea_mlreco.mem.pdf import PartonDensity, load_pdf
from coffea_mlreco.mem.phase_space import dilepton_kinematics, phase_space_factor
from coffea_mlreco.mem.transfer_functions import TransferFunctions, gaussian_pdf

__all__ = ["IntegrationSettings", "MEMResult", "mem_log_weights"]

_LEPTON_FIELDS = ("pt", "eta", "phi", "mass", "pdgId")


@dataclass(frozen=True)
class IntegrationSettings:
    """VEGAS settings per event (see the module docstring)."""

    precision: float = 0.01
    max_evals: int = 200_000
    n_eval: int = 500
    n_warmup: int = 2
    max_chi2_dof: float = 5.0

    def __post_init__(self) -> None:
        if not (0 < self.precision < 1 and self.max_evals > 0 and self.n_eval >= 50 and self.n_warmup >= 0):
            raise ValueError(f"invalid integration settings {self}")


@dataclass
class MEMResult:
    """Integrated MEM weights, one entry per event.

    Attributes:
        log10_weight: log₁₀ P(y|α), P in GeV⁻² (see the module docstring); −inf for an exactly zero weight.
        log10_weight_err: its 1σ Monte Carlo uncertainty.
        rel_precision: relative uncertainty of P.
        converged: the requested precision was reached with χ²/dof below the limit.
        n_evals: integrand evaluations used (warm-up included).
        chi2_dof: χ²/dof of the iteration estimates (NaN-free; 0 for a single iteration).
        sigma_fid_pb: the normalisation σ_fid used for the event (pb).
    """

    log10_weight: np.ndarray
    log10_weight_err: np.ndarray
    rel_precision: np.ndarray
    converged: np.ndarray
    n_evals: np.ndarray
    chi2_dof: np.ndarray
    sigma_fid_pb: np.ndarray


@dataclass(frozen=True)
class _Event:
    """One measured event, the ℓ⁻ first (a) and the ℓ⁺ second (b)."""

    pt: tuple[float, float]
    eta: tuple[float, float]
    phi: tuple[float, float]
    lepton: int  # 11 or 13
    met: tuple[float, float]  # MET x, y (GeV)
    met_sigma: float  # GeV


_PT_TRUE_MIN, _PT_TRUE_MAX = 0.05, 20.0
"""Range of p_T,true / p_T,meas (the simulation clips p_T,meas ≥ 0.05 p_T,true)."""


class _Integrand:
    """The batch integrand of one event over the unit square (true p_a, p_b via the resolution proposal)."""

    def __init__(
        self,
        event: _Event,
        me: MatrixElement,
        pdf: PartonDensity,
        tf: TransferFunctions,
        sqrt_s: float,
        sigma_fid: float,
    ) -> None:
        self.e, self.me, self.pdf, self.tf, self.sqrt_s = event, me, pdf, tf, sqrt_s
        self.norm = 1.0 / sigma_fid
        self.n_calls = 0
        # proposal: truncated Gaussians in the curvature κ = 1/p_T around the measured one, of width
        # σ_κ = r(p_T,meas)/p_T,meas: ±n_sigma in κ is ±n_sigma of the transfer function for a constant
        # relative resolution r, and follows the tracker's σ ∝ p_T² growth at high p_T
        self.kappa, self.sigma_kappa, self.p_lo, self.p_hi = [], [], [], []
        for k in range(2):
            r = float(tf.relative_pt_resolution(np.array([event.pt[k]]), np.array([event.eta[k]]), event.lepton)[0])
            kappa = 1.0 / event.pt[k]
            sigma = r * kappa
            z_lo = max(-tf.n_sigma, (kappa / _PT_TRUE_MAX - kappa) / sigma)  # high p_T side
            z_hi = min(tf.n_sigma, (kappa / _PT_TRUE_MIN - kappa) / sigma)  # low p_T side
            self.kappa.append(kappa)
            self.sigma_kappa.append(sigma)
            self.p_lo.append(float(ndtr(z_lo)))
            self.p_hi.append(float(ndtr(z_hi)))
        self.cos_phi = np.cos(event.phi)
        self.sin_phi = np.sin(event.phi)

    def __call__(self, u: np.ndarray) -> np.ndarray:
        e, tf = self.e, self.tf
        self.n_calls += u.shape[0]
        true_pt, inv_proposal, w_tf = [], [], np.ones(u.shape[0])
        for k in range(2):
            p_lo, p_hi = self.p_lo[k], self.p_hi[k]
            kappa = self.kappa[k] + self.sigma_kappa[k] * ndtri(p_lo + u[:, k] * (p_hi - p_lo))
            pt = 1.0 / kappa
            true_pt.append(pt)
            # dp_T/du = (dp_T/dκ)/g(κ) = p_T² / g(κ), g the truncated-normal proposal density in κ
            inv_proposal.append(pt * pt * (p_hi - p_lo) / gaussian_pdf(kappa, self.kappa[k], self.sigma_kappa[k]))
            sigma_true = pt * tf.relative_pt_resolution(pt, np.full_like(pt, e.eta[k]), e.lepton)
            w_tf = w_tf * gaussian_pdf(e.pt[k], pt, sigma_true)
        pa, pb = true_pt
        kin = dilepton_kinematics(pa, e.eta[0], e.phi[0], pb, e.eta[1], e.phi[1], self.sqrt_s)
        out = np.zeros(u.shape[0])
        ok = (kin.x1 < 1.0) & (kin.x2 < 1.0)
        if not np.any(ok):
            return out
        s_hat, c = kin.s_hat[ok], kin.cos_theta[ok]
        forward, backward = parton_luminosities(self.pdf, kin.x1[ok], kin.x2[ok], s_hat)
        a, b, cc = self.me.coefficients(s_hat, e.lepton)
        sym = a * (1.0 + c * c)[:, None] + cc
        odd = b * c[:, None]
        hard = (forward * (sym + odd) + backward * (sym - odd)).sum(axis=1)
        flux = 1.0 / (2.0 * kin.x1[ok] * kin.x2[ok] * self.sqrt_s**2)
        jacobian = (w_tf * inv_proposal[0] * inv_proposal[1])[ok]
        value = hard * flux * phase_space_factor(pa[ok], pb[ok], self.sqrt_s) * jacobian
        if tf.met.enabled:
            rx = e.met[0] + (e.pt[0] - pa[ok]) * self.cos_phi[0] + (e.pt[1] - pb[ok]) * self.cos_phi[1]
            ry = e.met[1] + (e.pt[0] - pa[ok]) * self.sin_phi[0] + (e.pt[1] - pb[ok]) * self.sin_phi[1]
            var = e.met_sigma**2
            value = value * np.exp(-0.5 * (rx * rx + ry * ry) / var) / (2.0 * math.pi * var)
        out[ok] = value * self.norm
        return out


def _combine(means: list[float], variances: list[float]) -> tuple[float, float, float]:
    """Mean of equally sized, independent iteration estimates, its error and their χ²/dof (0 for one).

    The plain mean is used, not vegas's inverse-variance weighting: with a frozen grid the iterations are
    identically distributed, and weighting each by its own *estimated* variance biases skewed integrands
    low (estimates that undershoot also underestimate their variance) — 0.2 % for high-p_T muons.
    """
    m, v = np.array(means), np.array(variances)
    mean = float(m.mean())
    err = float(math.sqrt(v.sum()) / m.size)
    chi2 = float(np.sum((m - mean) ** 2 / v) / (m.size - 1)) if m.size > 1 and np.all(v > 0) else 0.0
    return mean, err, chi2


def _event_weight(
    event: _Event,
    hypothesis: Hypothesis,
    tf: TransferFunctions,
    sigma_fid: float,
    settings: IntegrationSettings,
    seed: int,
    index: int,
    sqrt_s: float,
) -> tuple[float, float, float, bool, int, float]:
    """Integrate one event: (log10 P, its error, relative precision, converged, n_evals, χ²/dof)."""
    rng = np.random.default_rng([seed, index])
    f = _Integrand(event, MatrixElement(hypothesis), load_pdf(hypothesis.pdf), tf, sqrt_s, sigma_fid)
    import vegas  # imported here: the simulation imports the MEM package, and needs no integrator

    integrator = vegas.Integrator([[0.0, 1.0], [0.0, 1.0]], ran_array_generator=rng.random)
    batch = vegas.batchintegrand(f)
    if settings.n_warmup:  # adapt the grid; these estimates are discarded
        integrator(batch, nitn=settings.n_warmup, neval=settings.n_eval)
    means: list[float] = []
    variances: list[float] = []
    while True:  # frozen grid: independent, identically distributed estimates
        r = integrator(batch, nitn=1, neval=settings.n_eval, adapt=False)
        means.append(float(r.mean))
        variances.append(float(r.sdev) ** 2)
        mean, err, chi2 = _combine(means, variances)
        rel = err / mean if mean > 0 else 0.0
        done = len(means) >= 2 and rel < settings.precision and chi2 < settings.max_chi2_dof
        if done or f.n_calls >= settings.max_evals:
            break
    if mean <= 0:  # exactly zero: the integrand vanished everywhere (e.g. x₁x₂ > 1)
        return -math.inf, 0.0, 0.0, done, f.n_calls, chi2
    return math.log10(mean), err / (mean * math.log(10)), rel, done, f.n_calls, chi2


def _field(obj: Any, name: str, where: str) -> np.ndarray:
    try:
        value = obj[name]
    except (KeyError, ValueError, IndexError, TypeError):
        raise ValueError(f"{where} has no field {name!r}") from None
    return np.asarray(value, dtype=float).ravel()


def _first(mask: np.ndarray) -> str:
    idx = np.flatnonzero(mask)
    return ", ".join(map(str, idx[:5])) + (" …" if idx.size > 5 else "")


def _events(lep1: Any, lep2: Any, met: Any, tf: TransferFunctions) -> list[_Event]:
    cols = {f"lep{i}": {f: _field(lep, f, f"lep{i}") for f in _LEPTON_FIELDS} for i, lep in ((1, lep1), (2, lep2))}
    met_pt, met_phi = _field(met, "pt", "met"), _field(met, "phi", "met")
    n = cols["lep1"]["pt"].size
    sizes = {len(v) for c in cols.values() for v in c.values()} | {met_pt.size, met_phi.size}
    if sizes != {n}:
        raise ValueError(f"lep1, lep2 and met must have one entry per event; got lengths {sorted(sizes)}")
    sum_et = None
    if (isinstance(met, Mapping) and "sumEt" in met) or ("sumEt" in getattr(met, "fields", ())):
        sum_et = _field(met, "sumEt", "met")
    for lep, c in cols.items():
        for f, v in c.items():
            if not np.all(np.isfinite(v)):
                raise ValueError(f"{lep}.{f} is not finite in events {_first(~np.isfinite(v))}")
        if np.any(c["pt"] <= 0):
            raise ValueError(f"{lep}.pt must be positive; events {_first(c['pt'] <= 0)}")
    met_cols = [("met.pt", met_pt), ("met.phi", met_phi)] + ([("met.sumEt", sum_et)] if sum_et is not None else [])
    for name, v in met_cols:
        if not np.all(np.isfinite(v)):
            raise ValueError(f"{name} is not finite in events {_first(~np.isfinite(v))}")
    id1, id2 = cols["lep1"]["pdgId"].astype(int), cols["lep2"]["pdgId"].astype(int)
    bad = (id1 != -id2) | ~np.isin(np.abs(id1), (11, 13))
    if np.any(bad):
        k = np.flatnonzero(bad)[0]
        raise ValueError(
            f"events {_first(bad)}: the leptons are not an opposite-sign e+e- or mu+mu- pair "
            f"(e.g. pdgId {id1[k]}, {id2[k]})"
        )
    met_sigma = tf.met.sigma(sum_et, n)
    events = []
    for i in range(n):
        # PDG: 11/13 are the negatively charged leptons; put the ℓ⁻ first
        a, b = ("lep1", "lep2") if id1[i] > 0 else ("lep2", "lep1")
        events.append(
            _Event(
                (float(cols[a]["pt"][i]), float(cols[b]["pt"][i])),
                (float(cols[a]["eta"][i]), float(cols[b]["eta"][i])),
                (float(cols[a]["phi"][i]), float(cols[b]["phi"][i])),
                int(abs(id1[i])),
                (float(met_pt[i] * math.cos(met_phi[i])), float(met_pt[i] * math.sin(met_phi[i]))),
                float(met_sigma[i]),
            )
        )
    return events


def _integrate_chunk(args: tuple) -> list[tuple[float, float, float, bool, int, float]]:
    events, indices, hypothesis, tf, sigma_fid, settings, seed, sqrt_s = args
    return [
        _event_weight(ev, hypothesis, tf, sigma_fid[ev.lepton], settings, seed, int(i), sqrt_s)
        for ev, i in zip(events, indices, strict=True)
    ]


def mem_log_weights(
    lep1: Any,
    lep2: Any,
    met: Any,
    hypothesis: str | Path | Hypothesis,
    *,
    precision: float = 0.01,
    seed: int = 0,
    n_workers: int = 1,
    max_evals: int = 200_000,
    transfer: TransferFunctions | None = None,
    fiducial: FiducialRegion | None = None,
    sqrt_s: float = 13600.0,
    settings: IntegrationSettings | None = None,
) -> MEMResult:
    """MEM weights log₁₀ P(y|α) of dilepton events under one hypothesis (module docstring: definition, units).

    Args:
        lep1, lep2: the two leptons, mappings or records of equal-length arrays ``pt`` (GeV), ``eta``,
            ``phi`` (rad), ``mass`` (GeV, unused: leptons are massless), ``pdgId``. Either may be the ℓ⁻
            (PDG id 11 or 13); they must form an opposite-sign same-flavour e or μ pair.
        met: ``pt`` (GeV), ``phi`` (rad), optionally ``sumEt`` (GeV) for the recoil resolution.
        hypothesis: a shipped hypothesis name (``"dy_sm"``, ``"zprime"`` …), a YAML path or a Hypothesis.
        precision: target relative uncertainty of each weight.
        seed: base seed; event i uses ``default_rng([seed, i])``.
        n_workers: processes (1: in this process).
        max_evals: cap on integrand evaluations per event.
        transfer: transfer functions (default: the simulated detector's).
        fiducial: normalisation region (default :class:`FiducialRegion`).
        sqrt_s: pp centre-of-mass energy, GeV.
        settings: full VEGAS settings (overrides ``precision`` and ``max_evals``).

    Raises:
        ValueError: invalid events (non-finite values, non-positive p_T, not an OS e/μ pair), see above.
    """
    if n_workers < 1:
        raise ValueError("n_workers must be at least 1")
    hyp = load_hypothesis(hypothesis)
    tf = transfer or TransferFunctions.from_detector()
    region = fiducial or FiducialRegion()
    cfg = settings or IntegrationSettings(precision=precision, max_evals=max_evals)
    events = _events(lep1, lep2, met, tf)
    n = len(events)
    sigma_fid = {lep: fiducial_cross_section_gev2(hyp, region, lep, sqrt_s) for lep in {ev.lepton for ev in events}}
    for lep, value in sigma_fid.items():
        if not value > 0:
            raise ValueError(f"hypothesis {hyp.name!r} has zero cross-section in the fiducial region for |pdgId| {lep}")
    if n_workers == 1 or n <= 1:
        rows = _integrate_chunk((events, np.arange(n), hyp, tf, sigma_fid, cfg, seed, sqrt_s))
    else:
        n_chunks = min(n, 4 * n_workers)
        bounds = np.linspace(0, n, n_chunks + 1).astype(int)
        jobs = [
            (events[lo:hi], np.arange(lo, hi), hyp, tf, sigma_fid, cfg, seed, sqrt_s)
            for lo, hi in itertools.pairwise(bounds)
            if hi > lo
        ]
        with ProcessPoolExecutor(max_workers=n_workers) as pool:
            rows = [row for chunk in pool.map(_integrate_chunk, jobs) for row in chunk]
    table = np.array([r[:3] for r in rows], dtype=float).reshape(n, 3)
    return MEMResult(
        log10_weight=table[:, 0],
        log10_weight_err=table[:, 1],
        rel_precision=table[:, 2],
        converged=np.array([r[3] for r in rows], dtype=bool),
        n_evals=np.array([r[4] for r in rows], dtype=np.int64),
        chi2_dof=np.array([r[5] for r in rows], dtype=float),
        sigma_fid_pb=np.array([GEV2_TO_PB * sigma_fid[ev.lepton] for ev in events]),
    )
