"""Per-event MET covariance of each MET method, calibrated in bins on simulated events with generator MET.

What FastMTT-style fits (and any MET-significance-like use) need is the covariance of the MET measurement,
event by event. Each method's mis-measurement Δ = p⃗_miss,reco − p⃗_miss,gen is modelled as an isotropic 2D
Gaussian, covXX = covYY = σ², covXY = 0 (GeV²), with σ per transverse component a function of

- Σ, the event's scalar p_T sum the method is built from (GeV): Σ p_T of all PF candidates for ``pf``, the
  PUPPI-weighted Σ wᵢ p_T for ``puppi``, ``deepmet`` and ``perceiver`` (whose inputs carry the PUPPI weights);
- N_PV, the number of good primary vertices (``PV_npvsGood``), for the PUPPI-weighted methods (``pf``'s Σ grows
  with pileup itself, so its σ is a function of Σ alone).

The function is the calibration table itself (:class:`METResolution`): per calibrated pileup (its mean N_PV), σ
measured in quantile bins of Σ and interpolated linearly between the bins' mean Σ (constant beyond the first and
last), then linearly in N_PV between the calibrated pileups (constant beyond). A parametrisation such as
σ² = a + b·Σ + c·N_PV was tried first on the shipped calibration events and missed the PUPPI-weighted methods'
σ by up to 25 % at PU 60 (their σ rises with Σ faster at pileup, and saturates): the bins are the measurement.

σ in a bin is the Gaussian-core width (P84 − P16)/2 of Δx and Δy together (:func:`core_variance`): the fit that
uses it has a Gaussian MET likelihood, and a few badly measured events should not widen it for every event. The
direction dependence of a jet-by-jet significance is not modelled.

The shipped table, ``met/met_resolution.json``, was measured on the events its ``calibration`` entry names
(generated with seeds used nowhere else) with the shipped networks chosen by pileup;
``coffea-mlreco calibrate-met FILES --output JSON`` (:mod:`coffea_mlreco.met.calibration`) measures it again, and
``met.reconstruct(events, resolution=JSON)`` uses such a table (needed after retraining a network).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "PUPPI_WEIGHTED",
    "METResolution",
    "calibrate_resolution",
    "core_variance",
    "load_resolutions",
    "met_covariance",
    "write_resolutions",
]

PUPPI_WEIGHTED: frozenset[str] = frozenset({"puppi", "deepmet", "perceiver"})
"""Methods whose Σ is the PUPPI-weighted scalar p_T sum and whose σ depends on N_PV (``pf``: neither)."""
MIN_BIN_EVENTS = 50
"""Fewest events a calibration bin may hold."""
_SHIPPED = "met_resolution.json"


@dataclass(frozen=True)
class METResolution:
    """σ(Σ, N_PV) of one method, per MET component (module docstring).

    ``npv``: the mean N_PV of each calibrated pileup, ascending (one entry, ignored, for a Σ-only table);
    ``sum_pt``, ``sigma``: per pileup, the bins' mean Σ (ascending, GeV) and σ (GeV).
    """

    npv: tuple[float, ...]
    sum_pt: tuple[tuple[float, ...], ...]
    sigma: tuple[tuple[float, ...], ...]

    def __post_init__(self) -> None:
        if not self.npv or len(self.sum_pt) != len(self.npv) or len(self.sigma) != len(self.npv):
            raise ValueError("a MET resolution needs, per calibrated pileup, its N_PV, bin Σ and σ")
        if np.any(np.diff(self.npv) <= 0):
            raise ValueError(f"calibrated N_PV values must ascend, got {self.npv}")
        for s, sg in zip(self.sum_pt, self.sigma, strict=True):
            if len(s) == 0 or len(s) != len(sg) or np.any(np.diff(s) < 0) or min(sg) <= 0:
                raise ValueError("each pileup needs ascending bin Σ and positive σ of the same length")

    def sigma_at(self, sum_pt: Any, npv: Any) -> np.ndarray:
        """σ per transverse component (GeV) for Σ ``sum_pt`` (GeV) and ``npv`` good vertices (arrays or scalars)."""
        sum_pt = np.asarray(sum_pt, np.float64)
        per_pileup = np.stack([np.interp(sum_pt, s, sg) for s, sg in zip(self.sum_pt, self.sigma, strict=True)])
        if len(self.npv) == 1:
            return per_pileup[0]
        npv = np.broadcast_to(np.asarray(npv, np.float64), sum_pt.shape).ravel()
        points = np.asarray(self.npv)
        upper = np.clip(np.searchsorted(points, npv), 1, len(points) - 1)
        t = np.clip((npv - points[upper - 1]) / (points[upper] - points[upper - 1]), 0.0, 1.0)
        flat = per_pileup.reshape(len(points), -1)
        event = np.arange(npv.size)
        return ((1.0 - t) * flat[upper - 1, event] + t * flat[upper, event]).reshape(sum_pt.shape)

    def variance(self, sum_pt: Any, npv: Any) -> np.ndarray:
        """σ² per transverse component (GeV²); see :meth:`sigma_at`."""
        return self.sigma_at(sum_pt, npv) ** 2

    def to_dict(self) -> dict[str, Any]:
        return {"npv": list(self.npv), "sum_pt": [list(s) for s in self.sum_pt], "sigma": [list(s) for s in self.sigma]}


def load_resolutions(path: str | Path | None = None) -> dict[str, METResolution]:
    """The per-method resolutions of a calibration JSON (default: the shipped ``met/met_resolution.json``).

    Raises:
        ValueError: the file lacks a ``methods`` entry, or a method's table is incomplete or inconsistent.
    """
    if path is None:
        text = resources.files("coffea_mlreco.met").joinpath(_SHIPPED).read_text()
        where = f"coffea_mlreco/met/{_SHIPPED}"
    else:
        text, where = Path(path).read_text(), str(path)
    table = json.loads(text)
    if not isinstance(table, dict) or not isinstance(table.get("methods"), dict):
        raise ValueError(f"{where}: a MET resolution table needs a 'methods' object")
    out: dict[str, METResolution] = {}
    for method, entry in table["methods"].items():
        missing = [k for k in ("npv", "sum_pt", "sigma") if k not in entry]
        if missing:
            raise ValueError(f"{where}: method {method!r} lacks {', '.join(missing)}")
        try:
            out[method] = METResolution(
                tuple(float(v) for v in entry["npv"]),
                tuple(tuple(float(v) for v in s) for s in entry["sum_pt"]),
                tuple(tuple(float(v) for v in s) for s in entry["sigma"]),
            )
        except (TypeError, ValueError) as err:
            raise ValueError(f"{where}: method {method!r}: {err}") from err
    return out


def met_covariance(resolution: METResolution, sum_pt: Any, npv: Any) -> dict[str, np.ndarray]:
    """``covXX``, ``covXY``, ``covYY`` (GeV²) of the isotropic MET covariance, per event."""
    var = resolution.variance(sum_pt, npv)
    return {"covXX": var, "covXY": np.zeros_like(var), "covYY": var}


def core_variance(residuals: np.ndarray) -> float:
    """((P84 − P16)/2)² of ``residuals`` (GeV²): the variance of their Gaussian core."""
    p16, p84 = np.percentile(residuals, [16.0, 84.0])
    return float(((p84 - p16) / 2.0) ** 2)


def calibrate_resolution(
    dx: np.ndarray,
    dy: np.ndarray,
    sum_pt: np.ndarray,
    npv: np.ndarray,
    groups: np.ndarray,
    *,
    quantiles: int = 10,
    pileup_dependent: bool = True,
) -> tuple[METResolution, list[dict[str, float]]]:
    """Measure a :class:`METResolution` from MET residuals (module docstring).

    Args:
        dx, dy: reco − generator MET components per event (GeV).
        sum_pt: the method's Σ per event (GeV); ``npv``: good primary vertices per event.
        groups: a label per event, the pileup of its sample; each group is split into ``quantiles`` bins of Σ.
        pileup_dependent: False pools the groups' bins into one σ(Σ) (the ``pf`` table).

    Returns:
        The resolution and, per bin, ``pileup`` (group label), ``n``, mean Σ, mean N_PV and σ.
    """
    rows: list[dict[str, float]] = []
    for label in np.unique(groups):
        in_group = np.flatnonzero(groups == label)
        edges = np.quantile(sum_pt[in_group], np.linspace(0.0, 1.0, quantiles + 1))
        which = np.clip(np.searchsorted(edges, sum_pt[in_group], side="right") - 1, 0, quantiles - 1)
        for b in range(quantiles):
            sel = in_group[which == b]
            if len(sel) < MIN_BIN_EVENTS:
                continue
            sigma = float(np.sqrt(core_variance(np.concatenate([dx[sel], dy[sel]]))))
            rows.append(
                {
                    "pileup": float(label),
                    "n": float(len(sel)),
                    "sum_pt": float(sum_pt[sel].mean()),
                    "npv": float(npv[sel].mean()),
                    "sigma": sigma,
                }
            )
    if not rows:
        raise ValueError(f"MET resolution calibration needs bins of ≥ {MIN_BIN_EVENTS} events; there are none")
    return resolution_from_bins(rows, pileup_dependent), rows


def resolution_from_bins(rows: Sequence[Mapping[str, float]], pileup_dependent: bool = True) -> METResolution:
    """The :class:`METResolution` of calibration bins (``pileup``, ``sum_pt``, ``npv``, ``sigma`` each)."""
    if not pileup_dependent:
        ordered = sorted(rows, key=lambda r: r["sum_pt"])
        return METResolution((0.0,), (tuple(r["sum_pt"] for r in ordered),), (tuple(r["sigma"] for r in ordered),))
    labels = sorted({r["pileup"] for r in rows})
    by_group = [sorted((r for r in rows if r["pileup"] == g), key=lambda r: r["sum_pt"]) for g in labels]
    npv = [float(np.average([r["npv"] for r in g], weights=[r["n"] for r in g])) for g in by_group]
    order = np.argsort(npv)
    return METResolution(
        tuple(npv[i] for i in order),
        tuple(tuple(r["sum_pt"] for r in by_group[i]) for i in order),
        tuple(tuple(r["sigma"] for r in by_group[i]) for i in order),
    )


def write_resolutions(
    path: str | Path, resolutions: Mapping[str, METResolution], calibration: Mapping[str, Any], bins: Sequence[Any]
) -> None:
    """Write a calibration JSON :func:`load_resolutions` reads: ``methods``, ``calibration``, ``bins``."""
    table = {
        "definition": (
            "sigma per MET component (GeV), measured in bins of the method's scalar pT sum (sum_pt, GeV) per "
            "calibrated pileup (mean PV_npvsGood: npv); interpolated linearly in sum_pt, then in npv"
        ),
        "methods": {m: r.to_dict() for m, r in resolutions.items()},
        "calibration": dict(calibration),
        "bins": list(bins),
    }
    Path(path).write_text(json.dumps(table, indent=1) + "\n")
