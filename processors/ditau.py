"""Di-tau mass processor: visible mass, collinear approximation and FastMTT-style likelihood on the same events.

For each chunk it

- selects one visible di-tau pair per event (:func:`coffea_mlreco.ditau.inputs.ditau_candidates`:
  τhτh, ℓτh, eμ, μμ, ee);
- runs the collinear approximation and the FastMTT-style scan and appends ``DiTauReco`` to the events, one
  record per event: ``mass_vis``, ``mass_collinear``, ``mass_fastmtt`` (GeV; NaN when the event has no pair),
  ``collinear_status`` (:class:`~coffea_mlreco.baselines.collinear_mass.CollinearStatus` bits),
  ``fastmtt_status`` (:class:`~coffea_mlreco.baselines.fastmtt.FastMTTStatus` bits; both 8 = no pair),
  ``tau1_fastmtt``, ``tau2_fastmtt`` (FastMTT's tau four-momenta: ``pt``, ``eta``, ``phi``, ``mass``; GeV, rad)
  and ``channel`` (:class:`~coffea_mlreco.ditau.inputs.Channel`, −1 without a pair); with the transformer
  (when a shipped model exists) also ``mass_ml`` and its taus ``tau1_ml``, ``tau2_ml``
  (:mod:`coffea_mlreco.ditau.wrappers`);
- fills, for every selected event, the reconstructed mass per (method, dataset) in a fine histogram
  (0.5 GeV bins, 0–600 GeV: enough for the mass plots and for the H-vs-Z ROC AUC) and the collinear/FastMTT
  failure flags per channel;
- where the file has ``GenPart`` and the event has two prompt generator taus, fills m_reco/m_gen − 1 per
  (method incl. ``m_vis``, reconstructed channel); m_gen = m(τ1 + τ2) from
  :func:`coffea_mlreco.truth.tau_decays`.

The dataset label is ``events.metadata["dataset"]`` (``"default"`` when absent). The output dict is what
:func:`coffea_mlreco.evaluation.ditau_report.ditau_section` reads: ``histograms`` (``ratio``, ``mass``,
``failed``), ``events`` (per dataset), ``events_selected``, ``events_per_method`` and ``seconds`` (per method,
summed over chunks; the only executor-dependent numbers).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import awkward as ak
import hist
import numpy as np
from coffea import processor

from coffea_mlreco.baselines.collinear_mass import CollinearStatus, collinear_mass
from coffea_mlreco.baselines.fastmtt import FastMTTStatus, fastmtt_mass
from coffea_mlreco.ditau.inputs import Channel, ditau_candidates
from coffea_mlreco.ditau.wrappers import shipped_ditau_model, shipped_ditau_models
from coffea_mlreco.truth import tau_decays

__all__ = ["CHANNELS", "METHODS", "DiTauProcessor", "generator_mass", "reconstruct_ditau", "visible_mass"]

METHODS: tuple[str, ...] = ("collinear", "fastmtt", "transformer")
"""Reconstruction methods run by the processor (metrics.json keys); the transformer runs when a model is shipped."""
HIST_METHODS: tuple[str, ...] = ("m_vis", *METHODS)
"""Method axis of the histograms: the visible mass is the reference lower bound."""
CHANNELS: tuple[int, ...] = tuple(int(c) for c in Channel if c != Channel.NONE)
_NO_PAIR = {"collinear": int(CollinearStatus.NO_PAIR), "fastmtt": int(FastMTTStatus.NO_PAIR)}
_TAU_FIELDS = ("pt", "eta", "phi", "mass")


def _p4(leg: ak.Array) -> np.ndarray:
    """(n, 4) px, py, pz, E of option records (zeros where None)."""
    pt, eta, phi, mass = (np.asarray(ak.to_numpy(ak.fill_none(leg[f], 0.0)), np.float64) for f in _TAU_FIELDS)
    return np.stack([pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta),
                     np.sqrt((pt * np.cosh(eta)) ** 2 + mass**2)], axis=1)


def _mass(p4: np.ndarray) -> np.ndarray:
    return np.sqrt(np.maximum(p4[:, 3] ** 2 - (p4[:, :3] ** 2).sum(axis=1), 0.0))


def visible_mass(leg1: ak.Array, leg2: ak.Array) -> np.ndarray:
    """m(leg1 + leg2) in GeV; NaN where a leg is None."""
    missing = np.asarray(ak.to_numpy(ak.is_none(leg1.pt) | ak.is_none(leg2.pt)), bool)
    return np.where(missing, np.nan, _mass(_p4(leg1) + _p4(leg2)))


def generator_mass(events: ak.Array) -> np.ndarray:
    """m(τ1 + τ2) of the two prompt generator taus (GeV); NaN unless the event has exactly two."""
    taus = tau_decays(events)
    two = np.asarray(ak.to_numpy(ak.num(taus, axis=1) == 2), bool)
    p4 = taus.visible + taus.invisible
    total = np.stack([np.asarray(ak.to_numpy(ak.sum(getattr(p4, c), axis=1)), np.float64) for c in "xyzt"], axis=1)
    return np.where(two, _mass(total), np.nan)


def _tau_column(tau: ak.Array) -> ak.Array:
    return ak.zip({f: np.asarray(ak.to_numpy(tau[f]), np.float64) for f in _TAU_FIELDS})


def _transformer_mass(model: Any, events: Any, candidates: ak.Array, selected: np.ndarray) -> tuple[np.ndarray, ...]:
    """m_ττ (GeV, NaN without a pair) and the two taus (records, NaN without a pair) of the transformer."""
    n = len(selected)
    mass = np.full(n, np.nan)
    taus = [{f: np.full(n, np.nan) for f in _TAU_FIELDS} for _ in range(2)]
    if selected.any():
        out = model(events[selected], candidates[selected])
        mass[selected] = np.asarray(ak.to_numpy(out.mass), np.float64)
        for k in range(2):
            for f in _TAU_FIELDS:
                taus[k][f][selected] = np.asarray(ak.to_numpy(out[f"tau{k + 1}"][f]), np.float64)
    return mass, ak.zip(taus[0]), ak.zip(taus[1])


def reconstruct_ditau(events: Any, methods: Sequence[str] = METHODS, model: Any = None
                      ) -> tuple[ak.Array, dict[str, Any]]:
    """Select di-tau pairs and run ``methods`` on them (``transformer`` needs ``model``, a
    :class:`~coffea_mlreco.ditau.wrappers.DiTauTransformerWrapper`).

    Returns:
        ``(ditau_reco, details)``: ``ditau_reco`` is the ``DiTauReco`` record array (module docstring; every
        event); ``details`` holds ``selected`` [N] bool, ``channel`` [N] int, per-method masses ``mass``
        (``m_vis`` and each method; [N] GeV, NaN without a pair), ``status`` [N] and ``seconds``.
    """
    candidates = ditau_candidates(events)
    selected = np.asarray(ak.to_numpy(candidates.selected), bool)
    channel = np.asarray(ak.to_numpy(candidates.channel), np.int64)
    runners = {"collinear": collinear_mass, "fastmtt": fastmtt_mass}
    masses = {"m_vis": visible_mass(candidates.leg1, candidates.leg2)}
    fields: dict[str, Any] = {"mass_vis": masses["m_vis"]}
    details: dict[str, Any] = {"selected": selected, "channel": channel, "mass": masses, "status": {}, "seconds": {}}
    for method in methods:
        tic = time.perf_counter()
        if method == "transformer":
            if model is None:
                raise ValueError("the transformer method needs a model (shipped_ditau_model())")
            masses[method], tau1, tau2 = _transformer_mass(model, events, candidates, selected)
            details["seconds"][method] = time.perf_counter() - tic
            fields["mass_ml"], fields["tau1_ml"], fields["tau2_ml"] = masses[method], tau1, tau2
            continue
        result = runners[method](candidates.leg1, candidates.leg2, candidates.met)  # no-pair rows are skipped
        details["seconds"][method] = time.perf_counter() - tic
        masses[method] = np.asarray(ak.to_numpy(result.mass), np.float64)
        status = np.asarray(ak.to_numpy(result.status), np.int64)
        details["status"][method] = status
        fields[f"mass_{method}"] = masses[method]
        fields[f"{method}_status"] = status
        if method == "fastmtt":
            fields["tau1_fastmtt"] = _tau_column(result.tau1)
            fields["tau2_fastmtt"] = _tau_column(result.tau2)
            candidates = ak.with_field(candidates, result, "fastmtt")  # the transformer's inputs reuse the fit
    fields["channel"] = channel
    return ak.zip(fields, depth_limit=1), details


class DiTauProcessor(processor.ProcessorABC):
    """m_ττ of the collinear, FastMTT-style and transformer methods on the same selected events (module docstring).

    Args:
        methods: which of :data:`METHODS` to run (default all; the transformer only when a model is shipped).
        model: name of the shipped transformer (default ``"transformer"``).
        options: evaluate's task options (``device`` for the transformer).
    """

    def __init__(self, methods: Sequence[str] = METHODS, model: str = "transformer", options: Any = None) -> None:
        unknown = set(methods) - set(METHODS)
        if unknown:
            raise ValueError(f"unknown di-tau method(s) {sorted(unknown)}; known: {', '.join(METHODS)}")
        if "transformer" in methods and model not in shipped_ditau_models():
            methods = tuple(m for m in methods if m != "transformer")
        self.methods = tuple(methods)
        self.options = options
        device = getattr(options, "device", "auto")
        self.model = shipped_ditau_model(model, device=device) if "transformer" in self.methods else None

    @staticmethod
    def _empty_histograms() -> dict[str, hist.Hist]:
        method = hist.axis.StrCategory(list(HIST_METHODS), name="method")
        channel = hist.axis.IntCategory(list(CHANNELS), name="channel", label="reconstructed channel")
        return {
            "ratio": hist.Hist(method, channel,
                               hist.axis.Regular(400, -1.0, 3.0, name="ratio", label=r"$m_{reco}/m_{gen} - 1$"),
                               storage=hist.storage.Double()),
            "mass": hist.Hist(method, hist.axis.StrCategory([], name="dataset", growth=True),
                              hist.axis.Regular(1200, 0.0, 600.0, name="mass", label=r"$m_{\tau\tau}$ [GeV]"),
                              storage=hist.storage.Double()),
            "failed": hist.Hist(hist.axis.StrCategory(list(_NO_PAIR), name="method"), channel,
                                hist.axis.IntCategory([0, 1], name="failed"), storage=hist.storage.Double()),
        }

    def process(self, events: ak.Array) -> dict[str, Any]:
        """Fill the histograms for one chunk; see the module docstring."""
        dataset = str(events.metadata.get("dataset", "default")) if hasattr(events, "metadata") else "default"
        reco, details = reconstruct_ditau(events, self.methods, self.model)
        events["DiTauReco"] = reco
        selected, channel = details["selected"], details["channel"]
        hists = self._empty_histograms()
        has_truth = "GenPart" in ak.fields(events) and len(events) > 0
        m_gen = generator_mass(events) if has_truth else np.full(len(events), np.nan)
        truth = selected & np.isfinite(m_gen) & (m_gen > 0)
        for method, mass in details["mass"].items():
            ok = selected & np.isfinite(mass)
            hists["mass"].fill(method=method, dataset=dataset, mass=mass[ok])
            keep = truth & np.isfinite(mass)
            hists["ratio"].fill(method=method, channel=channel[keep], ratio=mass[keep] / m_gen[keep] - 1.0)
        for method, status in details["status"].items():
            failed = (status & ~_NO_PAIR[method]) != 0
            hists["failed"].fill(method=method, channel=channel[selected], failed=failed[selected].astype(int))
        n_sel = int(selected.sum())
        return {
            "histograms": hists,
            "events": {dataset: len(events)},
            "events_selected": n_sel,
            "events_per_method": {m: n_sel for m in details["seconds"]},
            "seconds": details["seconds"],
        }

    def postprocess(self, accumulator: dict[str, Any]) -> dict[str, Any]:
        """Nothing to do after merging; the accumulator is returned as is."""
        return accumulator
