"""Transfer functions W(measured | true) of the MEM: Gaussian lepton p_T and MET resolutions.

Defaults describe the package's own simulated detector (:mod:`coffea_mlreco.simulation.detector`), which
smears p_T,meas = p_T (1 + r ξ), ξ ~ N(0, 1), with the relative resolution r taken at the true p_T and η:

muons (tracker)
    r = k(η) · √((a p_T)² + b²), a = ``track_res_a`` (1.5e-4 GeV⁻¹), b = ``track_res_b`` (0.006),
    k = 2 for |η| > 1.5 (endcaps), else 1.
electrons (ECAL)
    r = √(S²/E + C² + N²/E²), E = p_T cosh η, S = ``ecal_stochastic`` (0.03 GeV^½),
    C = ``ecal_constant`` (0.005), N = ``ecal_noise`` (0.25 GeV).
MET (hadronic recoil)
    each transverse component of the recoil mis-measurement is Gaussian with
    σ_u² = σ₀² + k² ΣE_T (σ₀ = ``met_unclustered_sigma0`` = 1.7 GeV, k = ``met_unclustered_k`` =
    0.50 GeV^½, the detector's calibrated unclustered term); events without ΣE_T use
    ``met_sum_et_default`` (160 GeV, the median of PU-0 Drell-Yan events of the simulation).

So the lepton transfer function is W(p_T,meas | p_T) = N(p_T,meas; p_T, r(p_T, η) p_T), normalised in
p_T,meas (GeV⁻¹); lepton angles are taken as measured (δ functions). The MET transfer function
(GeV⁻²) is described in :mod:`coffea_mlreco.mem.integration`.

Everything is overridable: :meth:`TransferFunctions.from_dict` takes a mapping such as
``{"muon": {"a": 2e-4}, "met": {"enabled": false}}`` (unknown keys are errors).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any, TypeVar

import numpy as np

from coffea_mlreco.simulation.detector import DEFAULT_DETECTOR, DetectorParameters

__all__ = ["ElectronResolution", "MetResolution", "MuonResolution", "TransferFunctions", "gaussian_pdf"]


def gaussian_pdf(x: np.ndarray | float, mean: np.ndarray | float, sigma: np.ndarray | float) -> np.ndarray:
    """Normal density N(x; mean, sigma), in units of 1/x."""
    z = (np.asarray(x) - mean) / sigma
    return np.asarray(np.exp(-0.5 * z * z) / (math.sqrt(2.0 * math.pi) * np.asarray(sigma)))


@dataclass(frozen=True)
class MuonResolution:
    """Tracker p_T resolution r = k(η)·√((a p_T)² + b²); k = ``endcap_factor`` for |η| > ``endcap_eta``."""

    a: float = DEFAULT_DETECTOR.track_res_a
    b: float = DEFAULT_DETECTOR.track_res_b
    endcap_factor: float = 2.0
    endcap_eta: float = 1.5

    def relative(self, pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
        """σ(p_T)/p_T at true p_T (GeV) and η."""
        scale = np.where(np.abs(eta) > self.endcap_eta, self.endcap_factor, 1.0)
        return scale * np.hypot(self.a * pt, self.b)


@dataclass(frozen=True)
class ElectronResolution:
    """ECAL resolution applied to p_T: r = √(S²/E + C² + N²/E²), E = p_T cosh η (GeV)."""

    stochastic: float = DEFAULT_DETECTOR.ecal_stochastic
    constant: float = DEFAULT_DETECTOR.ecal_constant
    noise: float = DEFAULT_DETECTOR.ecal_noise

    def relative(self, pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
        """σ(p_T)/p_T at true p_T (GeV) and η."""
        energy = np.maximum(pt * np.cosh(eta), 1e-6)
        return np.sqrt(self.stochastic**2 / energy + self.constant**2 + (self.noise / energy) ** 2)


@dataclass(frozen=True)
class MetResolution:
    """Gaussian recoil resolution per MET component, σ_u = √(σ₀² + k² ΣE_T) (GeV)."""

    enabled: bool = True
    sigma0: float = DEFAULT_DETECTOR.met_unclustered_sigma0
    k: float = DEFAULT_DETECTOR.met_unclustered_k
    sum_et_default: float = 160.0

    def sigma(self, sum_et: np.ndarray | None, n: int) -> np.ndarray:
        """σ_u (GeV) per event; ``sum_et`` (GeV) may be None (then ``sum_et_default``)."""
        se = np.full(n, self.sum_et_default) if sum_et is None else np.asarray(sum_et, dtype=float)
        return np.sqrt(self.sigma0**2 + self.k**2 * np.maximum(se, 0.0))


_Part = TypeVar("_Part", MuonResolution, ElectronResolution, MetResolution)


def _override(part: _Part, override: dict[str, Any] | None, name: str) -> _Part:
    """``part`` with the fields in ``override`` replaced; unknown fields and wrong types are errors."""
    override = override or {}
    allowed = {f.name for f in fields(part)}
    bad = set(override) - allowed
    if bad:
        raise ValueError(f"transfer functions: unknown key(s) {sorted(bad)} in {name!r}; allowed: {sorted(allowed)}")
    for key, value in override.items():
        is_flag = key == "enabled"
        if isinstance(value, bool) != is_flag or not isinstance(value, (int, float)):
            raise ValueError(f"transfer functions: {name}.{key} must be {'true/false' if is_flag else 'a number'}")
    values: dict[str, Any] = {k: (v if k == "enabled" else float(v)) for k, v in override.items()}
    return replace(part, **values)


@dataclass(frozen=True)
class TransferFunctions:
    """All transfer functions of the MEM, plus the integration range in true lepton p_T.

    Attributes:
        muon, electron: p_T resolution models.
        met: recoil (MET) resolution; ``enabled=False`` drops the MET term.
        n_sigma: true p_T is integrated over p_T,meas ± n_sigma·σ (the Gaussian tails beyond are
            neglected: 6e-7 of the probability for 5σ).
    """

    muon: MuonResolution = MuonResolution()
    electron: ElectronResolution = ElectronResolution()
    met: MetResolution = MetResolution()
    n_sigma: float = 5.0

    def __post_init__(self) -> None:
        if not self.n_sigma > 0:
            raise ValueError("n_sigma must be positive")
        for part in (self.muon, self.electron, self.met):
            for f in fields(part):
                value = getattr(part, f.name)
                if not isinstance(value, bool) and not (math.isfinite(value) and value >= 0):
                    raise ValueError(
                        f"transfer function parameter {type(part).__name__}.{f.name} = {value!r} "
                        "must be finite and non-negative"
                    )

    @classmethod
    def from_detector(cls, det: DetectorParameters = DEFAULT_DETECTOR) -> TransferFunctions:
        """The transfer functions of the simulated detector ``det``."""
        return cls(
            MuonResolution(det.track_res_a, det.track_res_b),
            ElectronResolution(det.ecal_stochastic, det.ecal_constant, det.ecal_noise),
            MetResolution(True, det.met_unclustered_sigma0, det.met_unclustered_k),
        )

    @classmethod
    def from_dict(cls, spec: dict[str, Any] | None, base: TransferFunctions | None = None) -> TransferFunctions:
        """Override ``base`` (default: the simulated detector) with ``spec``; unknown keys are errors."""
        tf = base or cls.from_detector()
        if not spec:
            return tf
        if not isinstance(spec, dict):
            raise TypeError("transfer functions must be a mapping")
        unknown = set(spec) - {"muon", "electron", "met", "n_sigma"}
        if unknown:
            raise ValueError(
                f"unknown transfer-function section(s) {sorted(unknown)}; known: muon, electron, met, n_sigma"
            )
        return cls(
            _override(tf.muon, spec.get("muon"), "muon"),
            _override(tf.electron, spec.get("electron"), "electron"),
            _override(tf.met, spec.get("met"), "met"),
            float(spec.get("n_sigma", tf.n_sigma)),
        )

    def relative_pt_resolution(self, pt: np.ndarray, eta: np.ndarray, abs_pdg: int) -> np.ndarray:
        """σ(p_T)/p_T of a lepton of flavour ``abs_pdg`` (11 or 13) at true p_T (GeV) and η."""
        if abs_pdg == 13:
            return self.muon.relative(pt, eta)
        if abs_pdg == 11:
            return self.electron.relative(pt, eta)
        raise ValueError(f"no transfer function for |pdgId| = {abs_pdg}")
