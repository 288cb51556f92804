"""Resolutions of the semileptonic tt̄ assignment baselines, fitted on generated events, and their loader.

What is fitted (on truth-matched jets, :func:`coffea_mlreco.ttbar.inputs.assignment_targets`):

- χ² mass windows (:mod:`coffea_mlreco.ttbar.chi2`): peak and width of m_jj (hadronic W), m_jjb
  (hadronic top) and m_ℓνb (leptonic top, neutrino pz from the W-mass constraint, the root closest to the
  top mass) on selected, fully reconstructable events. Peak = median, width = (P84 − P16)/2 (DESIGN.md's
  resolution).
- Transfer functions of the KLFitter-style fit (:mod:`coffea_mlreco.ttbar.klfitter`), double Gaussians
  in the relative response r = x_meas/x_true − 1 as KLFitter's ``ResDoubleGaussE_4`` (Erdmann et al.,
  NIM A 748 (2014) 18)::

      W(r | x) = [exp(−(r−μ1)²/2σ1²) + A2·exp(−(r−μ2)²/2σ2²)] / (√(2π)·(σ1 + A2·σ2))

  with each of μ1, σ1, A2, μ2, σ2 = a + b·g(x), g ∈ {1/x, 1/√x, x} (``BASES``), x the true energy (jets,
  electrons) or true pT (muons) in GeV, clamped to the fitted range. Light jets (the W's quarks) and b jets
  in |η| bins, electrons and muons inclusively. Fit: unbinned maximum likelihood of the ten coefficients (BFGS).
- Effective Breit-Wigner widths of the KLFitter-style fit: the fit keeps jet directions fixed, so the spread
  that direction errors give the W and top masses is folded into the widths: Γ_eff = 2√(2 ln 2)·σ, σ the
  (P84 − P16)/2 of m(q q′) and m(b q q′) built from the partons' energies along the matched jets' directions
  (with the jets' masses), which also holds the natural widths.
- MET: the resolution of each component of (MET − ν_W) as a Gaussian: σ² = k²·cov (k fitted, for files with
  ``MET_covXX/XY/YY``), σ = a + b·√ΣET (files with ``MET_sumEt``) or a constant σ (neither).
- b tagging at the medium working point: ε_b (tag rate of jets matched to the b quarks), ε_light (tag rate
  of jets matched to the W's quarks, c included) and ε_other (tag rate of the first six jets matched to no tt̄
  parton: radiation, pileup, partons matched elsewhere), on selected events.

Run ``python -m coffea_mlreco.ttbar.resolutions --input FILE --output JSON``; the shipped
``ttbar_resolutions.json`` records the command, file and generator seed it was fitted with.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from coffea_mlreco.core.columns import Events
from coffea_mlreco.ttbar.neutrino import neutrino_pz_solutions

__all__ = [
    "BASES",
    "TF_PARAMETERS",
    "DoubleGaussianTF",
    "MassWindow",
    "MetResolution",
    "TTbarParameters",
    "fit_ttbar_parameters",
    "load_ttbar_parameters",
    "main",
]

BASES = ("inv", "inv_sqrt", "lin")
"""g(x) of a transfer-function parameter a + b·g(x): 1/x, 1/√x or x (x in GeV)."""
TF_PARAMETERS = ("mean1", "sigma1", "amplitude2", "mean2", "sigma2")
JET_BASES = ("inv", "inv_sqrt", "inv", "inv_sqrt", "lin")
"""KLFitter ``ResDoubleGaussE_4``: μ1 = a + b/E, σ1 = a + b/√E, A2 = a + b/E, μ2 = a + b/√E, σ2 = a + b·E."""
MUON_BASES = ("inv", "lin", "inv", "inv_sqrt", "lin")
"""Muons in pT: the tracker's σ(pT)/pT grows linearly with pT."""
ETA_EDGES = (0.0, 1.0, 1.5, 2.5)
_SHIPPED = "resolutions.json"
_MIN_PER_BIN = 150


@dataclass(frozen=True)
class DoubleGaussianTF:
    """A double-Gaussian transfer function W(x_meas | x_true) in r = x_meas/x_true − 1 (see the module doc).

    Attributes:
        variable: ``"energy"`` or ``"pt"`` (GeV), the quantity x.
        bases: g(x) of each of ``TF_PARAMETERS`` (names from ``BASES``).
        coefficients: (a, b) of each of ``TF_PARAMETERS``.
        x_range: (min, max) GeV; x is clamped to it when the parameters are evaluated.
    """

    variable: str
    bases: tuple[str, ...]
    coefficients: tuple[tuple[float, float], ...]
    x_range: tuple[float, float]

    def parameters(self, x: np.ndarray) -> np.ndarray:
        """``(5, len(x))`` μ1, σ1, A2, μ2, σ2 at true x (GeV), with σ ≥ 0.005 and A2 ≥ 0."""
        xc = np.clip(np.asarray(x, np.float64), *self.x_range)
        out = np.array([a + b * _basis(g, xc) for g, (a, b) in zip(self.bases, self.coefficients, strict=True)])
        out[[1, 4]] = np.maximum(out[[1, 4]], 0.005)
        out[2] = np.maximum(out[2], 0.0)
        return out

    def log_pdf(self, x_meas: np.ndarray, x_true: np.ndarray) -> np.ndarray:
        """log W, a density in r (KLFitter's convention, no 1/x_true); the numpy reference of ``klfitter``'s kernel."""
        m1, s1, a2, m2, s2 = self.parameters(x_true)
        r = np.asarray(x_meas) / np.asarray(x_true) - 1.0
        z1 = -0.5 * ((r - m1) / s1) ** 2
        z2 = np.log(np.where(a2 > 0, a2, 1.0)) - 0.5 * ((r - m2) / s2) ** 2
        z = np.where(a2 > 0, np.logaddexp(z1, z2), z1)
        return z - np.log(s1 + a2 * s2) - 0.5 * math.log(2 * math.pi)

    def to_json(self) -> dict[str, Any]:
        return {
            "variable": self.variable,
            "x_range": list(self.x_range),
            **{
                p: {"basis": g, "a": a, "b": b}
                for p, g, (a, b) in zip(TF_PARAMETERS, self.bases, self.coefficients, strict=True)
            },
        }

    @classmethod
    def from_json(cls, where: str, raw: dict[str, Any]) -> DoubleGaussianTF:
        _check_keys(where, raw, {"variable", "x_range", *TF_PARAMETERS})
        if raw["variable"] not in ("energy", "pt"):
            raise ValueError(f"{where}: variable must be 'energy' or 'pt', not {raw['variable']!r}")
        bases, coefficients = [], []
        for p in TF_PARAMETERS:
            _check_keys(f"{where}.{p}", raw[p], {"basis", "a", "b"})
            if raw[p]["basis"] not in BASES:
                raise ValueError(f"{where}.{p}: basis must be one of {BASES}, not {raw[p]['basis']!r}")
            bases.append(raw[p]["basis"])
            coefficients.append((float(raw[p]["a"]), float(raw[p]["b"])))
        lo, hi = (float(v) for v in raw["x_range"])
        if not 0 < lo < hi:
            raise ValueError(f"{where}: x_range must be 0 < min < max, got {raw['x_range']}")
        return cls(raw["variable"], tuple(bases), tuple(coefficients), (lo, hi))


@dataclass(frozen=True)
class MassWindow:
    """Peak and width (GeV) of a reconstructed mass for correctly assigned jets."""

    peak: float
    sigma: float


@dataclass(frozen=True)
class MetResolution:
    """Resolution of each MET component (GeV): σ² = cov_scale²·cov, σ = a + b·√ΣET, or ``constant``."""

    cov_scale: float
    sumet: tuple[float, float]
    constant: float


@dataclass(frozen=True)
class TTbarParameters:
    """Everything the χ² and KLFitter-style assignments take from the simulation (GeV, rad).

    ``light_jet``/``b_jet`` hold one transfer function per |η| bin of ``eta_edges``.
    """

    m_w: MassWindow
    m_top_had: MassWindow
    m_top_lep: MassWindow
    btag_working_point: float
    btag_eff_b: float
    btag_eff_light: float
    btag_eff_other: float
    bw_width_w: float
    bw_width_top: float
    eta_edges: tuple[float, ...]
    light_jet: tuple[DoubleGaussianTF, ...]
    b_jet: tuple[DoubleGaussianTF, ...]
    electron: DoubleGaussianTF
    muon: DoubleGaussianTF
    met: MetResolution
    meta: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        def window(w: MassWindow) -> dict[str, float]:
            return {"peak": w.peak, "sigma": w.sigma}

        return {
            "meta": self.meta,
            "chi2": {"m_w": window(self.m_w), "m_top_had": window(self.m_top_had), "m_top_lep": window(self.m_top_lep)},
            "breit_wigner": {"w_width": self.bw_width_w, "top_width": self.bw_width_top},
            "btag": {
                "working_point": self.btag_working_point,
                "eff_b": self.btag_eff_b,
                "eff_light": self.btag_eff_light,
                "eff_other": self.btag_eff_other,
            },
            "transfer_functions": {
                "eta_edges": list(self.eta_edges),
                "light_jet": [tf.to_json() for tf in self.light_jet],
                "b_jet": [tf.to_json() for tf in self.b_jet],
                "electron": self.electron.to_json(),
                "muon": self.muon.to_json(),
                "met": {"cov_scale": self.met.cov_scale, "sumet": list(self.met.sumet), "constant": self.met.constant},
            },
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> TTbarParameters:
        _check_keys("parameters", raw, {"meta", "chi2", "breit_wigner", "btag", "transfer_functions"})
        chi2, btag, tfs, bw = raw["chi2"], raw["btag"], raw["transfer_functions"], raw["breit_wigner"]
        _check_keys("breit_wigner", bw, {"w_width", "top_width"})
        if not (float(bw["w_width"]) > 0 and float(bw["top_width"]) > 0):
            raise ValueError("breit_wigner widths must be positive")
        _check_keys("chi2", chi2, {"m_w", "m_top_had", "m_top_lep"})
        _check_keys("btag", btag, {"working_point", "eff_b", "eff_light", "eff_other"})
        _check_keys("transfer_functions", tfs, {"eta_edges", "light_jet", "b_jet", "electron", "muon", "met"})
        _check_keys("transfer_functions.met", tfs["met"], {"cov_scale", "sumet", "constant"})
        windows = {}
        for name in ("m_w", "m_top_had", "m_top_lep"):
            _check_keys(f"chi2.{name}", chi2[name], {"peak", "sigma"})
            windows[name] = MassWindow(float(chi2[name]["peak"]), float(chi2[name]["sigma"]))
            if not windows[name].sigma > 0:
                raise ValueError(f"chi2.{name}.sigma must be positive")
        edges = tuple(float(e) for e in tfs["eta_edges"])
        n_bins = len(edges) - 1
        if n_bins < 1 or any(b <= a for a, b in itertools.pairwise(edges)):
            raise ValueError(f"transfer_functions.eta_edges must increase, got {edges}")
        for kind in ("light_jet", "b_jet"):
            if len(tfs[kind]) != n_bins:
                raise ValueError(f"transfer_functions.{kind}: {len(tfs[kind])} entries for {n_bins} |η| bins")
        for name in ("eff_b", "eff_light", "eff_other"):
            if not 0 < float(btag[name]) < 1:
                raise ValueError(f"btag.{name} must be in (0, 1)")
        met = tfs["met"]
        return cls(
            windows["m_w"],
            windows["m_top_had"],
            windows["m_top_lep"],
            float(btag["working_point"]),
            float(btag["eff_b"]),
            float(btag["eff_light"]),
            float(btag["eff_other"]),
            float(bw["w_width"]),
            float(bw["top_width"]),
            edges,
            tuple(DoubleGaussianTF.from_json(f"light_jet[{i}]", t) for i, t in enumerate(tfs["light_jet"])),
            tuple(DoubleGaussianTF.from_json(f"b_jet[{i}]", t) for i, t in enumerate(tfs["b_jet"])),
            DoubleGaussianTF.from_json("electron", tfs["electron"]),
            DoubleGaussianTF.from_json("muon", tfs["muon"]),
            MetResolution(
                float(met["cov_scale"]), (float(met["sumet"][0]), float(met["sumet"][1])), float(met["constant"])
            ),
            dict(raw["meta"]),
        )


def _check_keys(where: str, raw: Any, expected: set[str]) -> None:
    if not isinstance(raw, dict):
        raise TypeError(f"{where}: expected a mapping, got {type(raw).__name__}")
    unknown, missing = set(raw) - expected, expected - set(raw)
    if unknown or missing:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}")


def _basis(name: str, x: np.ndarray) -> np.ndarray:
    if name == "inv":
        return 1.0 / x
    if name == "inv_sqrt":
        return 1.0 / np.sqrt(x)
    return x


def load_ttbar_parameters(path: str | Path | None = None) -> TTbarParameters:
    """Read and validate a parameter file (default: the shipped ``ttbar_resolutions.json``).

    Unknown or missing keys and out-of-range values raise ``ValueError``.
    """
    text = resources.files(__package__).joinpath(_SHIPPED).read_text() if path is None else Path(path).read_text()
    return TTbarParameters.from_json(json.loads(text))


# ---------------------------------------------------------------------------------------------- fitting


def _robust_width(x: np.ndarray) -> float:
    return float((np.percentile(x, 84) - np.percentile(x, 16)) / 2)


def _dg_parameters(theta: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, ...]:
    """μ1, σ1, A2, μ2, σ2 from coefficients ``theta`` (10,) and basis values ``g`` (5, n), clamped."""
    m1, s1, a2, m2, s2 = (theta[2 * k] + theta[2 * k + 1] * g[k] for k in range(5))
    return m1, np.maximum(s1, 0.005), np.maximum(a2, 0.0), m2, np.maximum(s2, 0.005)


def _dg_nll(theta: np.ndarray, g: np.ndarray, r: np.ndarray) -> float:
    m1, s1, a2, m2, s2 = _dg_parameters(theta, g)
    dens = (np.exp(-0.5 * ((r - m1) / s1) ** 2) + a2 * np.exp(-0.5 * ((r - m2) / s2) ** 2)) / (s1 + a2 * s2)
    # soft walls keep the fit inside the physical region (σ > 0.005, A2 ≥ 0) where the clamps are flat, and
    # the first Gaussian the narrower (the core) everywhere, so that the two components cannot swap roles
    raw = [theta[2 * k] + theta[2 * k + 1] * g[k] for k in (1, 2, 4)]
    wall = sum(float(np.mean(np.minimum(v - lo, 0.0) ** 2)) for v, lo in zip(raw, (0.005, 0.0, 0.005), strict=True))
    wall += float(np.mean(np.maximum(raw[0] - raw[2], 0.0) ** 2))
    return float(-np.mean(np.log(np.maximum(dens, 1e-300)))) + 1e4 * wall


def _minimise(fun: Any, x0: np.ndarray, iterations: int = 400) -> np.ndarray:
    """BFGS with central-difference gradients and a backtracking line search (small smooth problems)."""

    def grad(x: np.ndarray) -> np.ndarray:
        out = np.empty_like(x)
        for k in range(len(x)):
            h = 1e-6 * max(1.0, abs(x[k]))
            up, down = x.copy(), x.copy()
            up[k] += h
            down[k] -= h
            out[k] = (fun(up) - fun(down)) / (2 * h)
        return out

    x, f, g = x0.copy(), fun(x0), grad(x0)
    inv_h = np.eye(len(x))
    for _ in range(iterations):
        step = -inv_h @ g
        if g @ step >= 0:
            inv_h, step = np.eye(len(x)), -g
        t = 1.0
        while t > 1e-10 and fun(x + t * step) > f + 1e-4 * t * (g @ step):
            t *= 0.5
        if t <= 1e-10:
            break
        x_new = x + t * step
        f_new, g_new = fun(x_new), grad(x_new)
        s, y = x_new - x, g_new - g
        x, f, g = x_new, f_new, g_new
        if abs(s @ y) > 1e-12 and s @ y > 0:
            rho = 1.0 / (s @ y)
            eye = np.eye(len(x))
            inv_h = (eye - rho * np.outer(s, y)) @ inv_h @ (eye - rho * np.outer(y, s)) + rho * np.outer(s, s)
        if np.max(np.abs(g)) < 1e-7:
            break
    return x


def _fit_double_gaussian(
    x_true: np.ndarray, x_meas: np.ndarray, variable: str, bases: tuple[str, ...]
) -> DoubleGaussianTF:
    """Unbinned maximum-likelihood fit of the ten coefficients (a, b) of μ1, σ1, A2, μ2, σ2.

    Start: a core (σ1 = a + b·g from the robust widths in quantile bins of x, μ1 the median) and a tail three
    times wider with A2 = 0.1. The basis values are scaled to 1 at the median x during the fit.
    """
    ok = np.isfinite(x_true) & np.isfinite(x_meas) & (x_true > 0)
    x_true, x_meas = x_true[ok], x_meas[ok]
    r = x_meas / x_true - 1.0
    x_range = (float(np.min(x_true)), float(np.max(x_true)))
    reference = np.array([_basis(g, np.array([np.median(x_true)]))[0] for g in bases])
    g = np.stack([_basis(b, x_true) for b in bases]) / reference[:, None]
    n_bins = int(np.clip(len(r) // _MIN_PER_BIN, 2, 8))
    edges = np.quantile(x_true, np.linspace(0, 1, n_bins + 1))
    bin_of = np.clip(np.searchsorted(edges, x_true, side="right") - 1, 0, n_bins - 1)
    widths = np.array([0.8 * _robust_width(r[bin_of == k]) for k in range(n_bins)])
    g_core = np.array([np.median(g[1][bin_of == k]) for k in range(n_bins)])
    slope, intercept = np.polyfit(g_core, widths, 1)
    core = float(np.median(widths))
    theta0 = np.array([np.median(r), 0.0, intercept, slope, 0.1, 0.0, np.median(r), 0.0, 3 * core, 0.0])
    theta = _minimise(lambda t: _dg_nll(t, g, r), theta0)
    coefficients = tuple((float(theta[2 * k]), float(theta[2 * k + 1] / reference[k])) for k in range(5))
    return DoubleGaussianTF(variable, bases, coefficients, x_range)


def _array(values: Any, dtype: type = np.float64) -> np.ndarray:
    """A plain numpy array (masked entries: NaN, or False for booleans; never a slow MaskedArray)."""
    return np.asarray(np.ma.filled(ak.to_numpy(values), False if dtype is bool else np.nan), dtype=dtype)


def _energy(pt: Any, eta: Any, mass: Any) -> np.ndarray:
    return _array(np.sqrt((pt * np.cosh(eta)) ** 2 + mass**2))


def _matched(jets: ak.Array, targets: ak.Array, k: int, mask: np.ndarray) -> tuple[ak.Array, np.ndarray]:
    """The jet matched to parton ``k`` in events where it is matched (and ``mask``), and those events."""
    ok = _array(targets[:, k] >= 0, bool) & mask
    return jets[ok][ak.singletons(targets[ok, k])][:, 0], ok


def _fit_jets(
    inputs: ak.Array,
    targets: ak.Array,
    truth: ak.Array,
    fields: tuple[str, ...],
    positions: tuple[int, ...],
    eta_edges: tuple[float, ...],
) -> tuple[DoubleGaussianTF, ...]:
    true_e, meas_e, eta = [], [], []
    every = np.ones(len(inputs), bool)
    for name, k in zip(fields, positions, strict=True):
        jet, ok = _matched(inputs.jets, targets, k, every)
        parton = truth[name][ok]
        true_e.append(_energy(parton.pt, parton.eta, parton.mass))
        meas_e.append(_energy(jet.pt, jet.eta, jet.mass))
        eta.append(np.abs(_array(jet.eta)))
    te, me, ae = np.concatenate(true_e), np.concatenate(meas_e), np.concatenate(eta)
    out = []
    for lo, hi in itertools.pairwise(eta_edges):
        sel = (ae >= lo) & (ae < hi)
        out.append(_fit_double_gaussian(te[sel], me[sel], "energy", JET_BASES))
    return tuple(out)


def _neutrino_pz_closest(
    lep: ak.Array, met_px: np.ndarray, met_py: np.ndarray, b: np.ndarray, target: float
) -> np.ndarray:
    """m_ℓνb with the W-constrained neutrino root giving the mass closest to ``target`` (real part when
    the discriminant is negative)."""
    lpx, lpy = _array(lep.pt * np.cos(lep.phi)), _array(lep.pt * np.sin(lep.phi))
    lpz = _array(lep.pt * np.sinh(lep.eta))
    le = np.sqrt(lpx**2 + lpy**2 + lpz**2 + _array(lep.mass) ** 2)
    pz1, pz2, _ = neutrino_pz_solutions(np.stack([lpx, lpy, lpz, le], axis=1), met_px, met_py)
    best = np.full(len(lpx), np.inf)
    mass = np.zeros(len(lpx))
    for pz in (pz1, pz2):
        nu_e = np.sqrt(met_px**2 + met_py**2 + pz**2)
        tot = np.stack([lpx + met_px, lpy + met_py, lpz + pz, le + nu_e], axis=1) + b
        m = np.sqrt(np.maximum(tot[:, 3] ** 2 - (tot[:, :3] ** 2).sum(axis=1), 0.0))
        closer = np.abs(m - target) < best
        mass[closer], best[closer] = m[closer], np.abs(m - target)[closer]
    return mass


def _four_vectors(jet: ak.Array) -> np.ndarray:
    pt, eta, phi, m = (_array(jet[f]) for f in ("pt", "eta", "phi", "mass"))
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    return np.stack([px, py, pz, np.sqrt(px**2 + py**2 + pz**2 + m**2)], axis=1)


def _along_jet(jet: ak.Array, parton: ak.Array) -> np.ndarray:
    """Four-vectors with the parton's energy and the jet's direction and mass (GeV)."""
    p4 = _four_vectors(jet)
    mass = _array(jet.mass)
    energy = np.maximum(_energy(parton.pt, parton.eta, parton.mass), mass + 1e-3)
    scale = np.sqrt(energy**2 - mass**2) / np.linalg.norm(p4[:, :3], axis=1)
    return np.concatenate([p4[:, :3] * scale[:, None], energy[:, None]], axis=1)


def _inv_mass(p: np.ndarray) -> np.ndarray:
    return np.sqrt(np.maximum(p[:, 3] ** 2 - (p[:, :3] ** 2).sum(axis=1), 0.0))


def fit_ttbar_parameters(events: Events, meta: dict[str, Any] | None = None) -> TTbarParameters:
    """Fit every parameter of :class:`TTbarParameters` on generated semileptonic tt̄ NanoEvents (eager).

    Never fit on the test sample. ``meta`` is stored as is (command, file, seed).
    """
    from coffea_mlreco.core.constants import M_TOP
    from coffea_mlreco.core.truth import ttbar_partons
    from coffea_mlreco.ttbar.inputs import BTAG_MEDIUM_WP, assignment_targets, semileptonic_inputs

    inputs = semileptonic_inputs(events)
    targets = assignment_targets(events, inputs.jets)
    truth = ttbar_partons(events)
    selected = _array(inputs.selected, bool)
    light = _fit_jets(inputs, targets, truth, ("had_q1", "had_q2"), (1, 2), ETA_EDGES)
    bjet = _fit_jets(inputs, targets, truth, ("had_b", "lep_b"), (0, 3), ETA_EDGES)

    # χ² windows on selected, fully matched events
    full = selected & _array(ak.all(targets >= 0, axis=1), bool)
    p = [_four_vectors(_matched(inputs.jets, targets, k, full)[0]) for k in range(4)]
    met = inputs.met[full]
    m_w = _inv_mass(p[1] + p[2])
    m_th = _inv_mass(p[0] + p[1] + p[2])
    m_tl = _neutrino_pz_closest(inputs.lepton[full], _array(met.px), _array(met.py), p[3], M_TOP)

    def window(m: np.ndarray) -> MassWindow:
        return MassWindow(float(np.median(m)), _robust_width(m))

    # leptons: the selected lepton against the W's lepton (same flavour by construction of the selection)
    has_lep = selected & _array(~ak.is_none(truth.lepton), bool)
    lep, true_lep = inputs.lepton[has_lep], truth.lepton[has_lep]
    flavour = np.abs(_array(lep.pdgId))
    same = flavour == np.abs(_array(true_lep.pdgId))
    ele = same & (flavour == 11)
    mu = same & (flavour == 13)
    electron = _fit_double_gaussian(
        _energy(true_lep.pt, true_lep.eta, true_lep.mass)[ele],
        _energy(lep.pt, lep.eta, lep.mass)[ele],
        "energy",
        JET_BASES,
    )
    muon = _fit_double_gaussian(
        _array(true_lep.pt)[mu].astype(np.float64), _array(lep.pt)[mu].astype(np.float64), "pt", MUON_BASES
    )

    # MET against the W's neutrino
    has_nu = selected & _array(~ak.is_none(truth.neutrino), bool)
    nu, met = truth.neutrino[has_nu], inputs.met[has_nu]
    dx = _array(met.px - nu.pt * np.cos(nu.phi))
    dy = _array(met.py - nu.pt * np.sin(nu.phi))
    residuals = np.concatenate([dx, dy])
    cov_scale = 1.0
    if "covXX" in met.fields:
        cov_scale = _robust_width(np.concatenate([dx / np.sqrt(_array(met.covXX)), dy / np.sqrt(_array(met.covYY))]))
    sumet_fit = (_robust_width(residuals), 0.0)
    if "sumEt" in events.MET.fields:
        root = np.sqrt(_array(events.MET.sumEt[has_nu]))
        edges = np.quantile(root, np.linspace(0, 1, 6))
        xs, ys = [], []
        for lo, hi in itertools.pairwise(edges):
            sel = (root >= lo) & (root <= hi)
            xs.append(np.median(root[sel]))
            ys.append(_robust_width(np.concatenate([dx[sel], dy[sel]])))
        b, a = np.polyfit(xs, ys, 1)
        sumet_fit = (float(a), float(b))

    jets_sel = inputs.jets[selected]
    tags = jets_sel.btag > BTAG_MEDIUM_WP
    targets_sel = targets[selected]

    def tag_rate(positions: tuple[int, ...]) -> float:
        tagged, total = 0, 0
        for k in positions:
            t = targets_sel[:, k]
            ok = _array(t >= 0, bool)
            hit = _array(tags[ok][ak.singletons(t[ok])][:, 0], bool)
            tagged, total = tagged + int(hit.sum()), total + len(hit)
        return tagged / max(total, 1)

    position = ak.local_index(jets_sel.pt, axis=1)
    assigned = (
        (position == targets_sel[:, 0])
        | (position == targets_sel[:, 1])
        | (position == targets_sel[:, 2])
        | (position == targets_sel[:, 3])
    )
    other = ~assigned & (position < 6)
    eff_other = float(ak.sum(tags[other]) / max(int(ak.sum(other)), 1))

    # effective Breit-Wigner widths: parton energies along the matched jets' directions
    fwhm = 2.0 * math.sqrt(2.0 * math.log(2.0))
    had = _array(ak.all(targets[:, :3] >= 0, axis=1), bool)
    along = [
        _along_jet(_matched(inputs.jets, targets, k, had)[0], truth[name][had])
        for k, name in enumerate(("had_b", "had_q1", "had_q2"))
    ]
    width_w = fwhm * _robust_width(_inv_mass(along[1] + along[2]))
    width_top = fwhm * _robust_width(_inv_mass(along[0] + along[1] + along[2]))

    info = dict(meta or {})
    info.update({"events": len(events), "selected": int(selected.sum()), "fully_matched": int(full.sum())})
    return TTbarParameters(
        window(m_w),
        window(m_th),
        window(m_tl),
        BTAG_MEDIUM_WP,
        tag_rate((0, 3)),
        tag_rate((1, 2)),
        eff_other,
        width_w,
        width_top,
        ETA_EDGES,
        light,
        bjet,
        electron,
        muon,
        MetResolution(float(cov_scale), sumet_fit, _robust_width(residuals)),
        info,
    )


def _file_metadata(path: str) -> dict[str, str]:
    import uproot

    with uproot.open(path) as f:
        if "Metadata" not in f:
            return {}
        directory = f["Metadata"]
        return {key: str(directory[key]) for key in directory.keys(cycle=False)}


def main(argv: list[str] | None = None) -> int:
    """Command line: fit on ``--input`` (a generated NanoAOD-like file) and write ``--output`` (JSON)."""
    from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

    from coffea_mlreco.core.version import __version__

    parser = argparse.ArgumentParser(
        prog="python -m coffea_mlreco.ttbar.resolutions", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--input", required=True, help="generated semileptonic tt̄ file (never the test sample)")
    parser.add_argument("--output", required=True, help="JSON file to write")
    args = parser.parse_args(argv)
    events = NanoEventsFactory.from_root({args.input: "Events"}, schemaclass=NanoAODSchema, mode="eager").events()
    file_meta = _file_metadata(args.input)
    meta = {
        "command": "python -m coffea_mlreco.ttbar.resolutions " + " ".join(sys.argv[1:] if argv is None else argv),
        "input": str(args.input),
        "seed": file_meta.get("seed"),
        "pileup": file_meta.get("pileup"),
        "process": file_meta.get("process"),
        "package_version": __version__,
    }
    params = fit_ttbar_parameters(events, meta)
    Path(args.output).write_text(json.dumps(params.to_json(), indent=1) + "\n")
    print(
        f"wrote {args.output} ({params.meta['selected']} selected events, {params.meta['fully_matched']} fully matched)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
