"""tt̄ jet-parton assignment processor: χ², KLFitter-style fit, permutation DNN and SPANet on the same events.

For each chunk it

- selects semileptonic tt̄ candidates (exactly one isolated e/μ, ≥ 4 jets; :mod:`coffea_mlreco.ttbar.inputs`);
- runs every method on the selected events and appends ``TTbarReco`` to the events: one record per method
  (``chi2``, ``klfitter``, ``pdnn``, ``spanet``) with ``had_b``, ``had_q1``, ``had_q2``, ``lep_b`` as indices
  into the event's ``Jet`` collection (−1 when not assigned or the event is not selected); ``spanet`` adds
  ``assignment_prob``, ``detection_prob``, ``marginal_prob`` (records with ``t_had``, ``t_lep``) and
  ``nu_eta``; ``klfitter`` adds its ``event_probability`` and fitted ``nu_eta``;
- where the file has ``GenPart``, matches the partons to the selected jets (ΔR < 0.4) and fills the outcome
  histogram (per method, N_jets, and whether each top is reconstructable and correctly assigned), the SPANet
  probability distributions and the neutrino-η residuals (SPANet, KLFitter-style fit, and the W-mass
  constraint solution with the smaller |p_z|).

The output dict is what :func:`coffea_mlreco.evaluation.ttbar_report.ttbar_section` reads; histograms hold
integer counts, so it does not depend on the executor except for the timings under ``"seconds"``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import awkward as ak
import hist
import numpy as np
from coffea import processor

from coffea_mlreco.baselines.klfitter import klfitter_assignment
from coffea_mlreco.baselines.ttbar_chi2 import chi2_assignment
from coffea_mlreco.truth import ttbar_partons
from coffea_mlreco.ttbar.inputs import assignment_targets, semileptonic_inputs
from coffea_mlreco.ttbar.neutrino import neutrino_pz
from coffea_mlreco.ttbar.outcomes import TopOutcomes, top_outcomes
from coffea_mlreco.ttbar.permutations import PERMUTATION_FIELDS
from coffea_mlreco.ttbar.wrappers import shipped_ttbar_model, shipped_ttbar_models

__all__ = ["METHODS", "ML_METHODS", "TTbarProcessor", "jet_indices", "reconstruct_ttbar"]

METHODS: tuple[str, ...] = ("chi2", "klfitter", "pdnn", "spanet")
ML_METHODS = ("pdnn", "spanet")
_NJETS = (4, 5, 6)  # 6 = six or more
_PROB_FIELDS = ("assignment_prob", "detection_prob", "marginal_prob")


def default_models() -> dict[str, str]:
    """Shipped model per machine-learned method (``{"spanet": "spanet_pu60", ...}``), those that exist."""
    shipped = shipped_ttbar_models()
    return {method: name for method in ML_METHODS for name in shipped if name.startswith(f"{method}_")}


def jet_indices(positions: np.ndarray, jets: ak.Array) -> np.ndarray:
    """Map [N, k] positions in the selected-jet list to indices in the event's ``Jet`` collection (−1 kept)."""
    counts = np.asarray(ak.to_numpy(ak.num(jets, axis=1)), np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    flat = np.asarray(ak.to_numpy(ak.flatten(jets.index)), np.int64)
    out = np.full(positions.shape, -1, np.int64)
    ok = positions >= 0
    rows = np.broadcast_to(starts[:, None], positions.shape)
    out[ok] = flat[rows[ok] + positions[ok]]
    return out


def _positions(result: ak.Array) -> np.ndarray:
    return np.stack([np.asarray(ak.to_numpy(result[f]), np.int64) for f in PERMUTATION_FIELDS], axis=1)


def reconstruct_ttbar(events: Any, methods: Sequence[str] = METHODS, models: dict[str, Any] | None = None,
                      max_jets: int = 6) -> tuple[ak.Array, dict[str, Any]]:
    """Run the assignment methods on the selected events of ``events``.

    Args:
        methods: which of :data:`METHODS` to run (ML methods need a wrapper in ``models``).
        models: method → model wrapper (:func:`coffea_mlreco.ttbar.wrappers.shipped_ttbar_model`).
        max_jets: jets the χ² and KLFitter-style fits permute.

    Returns:
        ``(ttbar_reco, details)``: ``ttbar_reco`` has one record per method and event (all events; indices into
        ``Jet``); ``details`` holds ``selected`` [N] bool, ``inputs`` (selected events), per-method ``positions``
        ([n_selected, 4] in the selected-jet list), the raw per-method ``results`` and ``seconds``.
    """
    models = models or {}
    inputs = semileptonic_inputs(events)
    selected = np.asarray(ak.to_numpy(inputs.selected), bool)
    chosen = inputs[selected]
    runners = {
        "chi2": lambda: chi2_assignment(chosen, max_jets=max_jets),
        "klfitter": lambda: klfitter_assignment(chosen, max_jets=max_jets),
        **{m: (lambda m=m: models[m](chosen)) for m in ML_METHODS if m in models},
    }
    n_all = len(selected)
    columns: dict[str, ak.Array] = {}
    details: dict[str, Any] = {"selected": selected, "inputs": chosen, "positions": {}, "results": {}, "seconds": {}}
    for method in methods:
        if method not in runners:
            continue
        tic = time.perf_counter()
        result = runners[method]()
        details["seconds"][method] = time.perf_counter() - tic
        positions = _positions(result)
        details["positions"][method] = positions
        details["results"][method] = result
        index = np.full((n_all, 4), -1, np.int64)
        index[selected] = jet_indices(positions, chosen.jets)
        fields: dict[str, Any] = {f: index[:, i] for i, f in enumerate(PERMUTATION_FIELDS)}
        extra = [f for f in ak.fields(result) if f not in PERMUTATION_FIELDS and f in (*_PROB_FIELDS, "nu_eta",
                                                                                       "event_probability")]
        for name in extra:
            values = result[name]
            if values.fields:
                fields[name] = ak.zip({top: _expand(np.asarray(ak.to_numpy(values[top]), np.float64), selected)
                                       for top in values.fields})
            else:
                fields[name] = _expand(np.asarray(ak.to_numpy(values), np.float64), selected)
        columns[method] = ak.zip(fields, depth_limit=1)
    return ak.zip(columns, depth_limit=1) if columns else ak.Array([{}] * n_all), details


def _expand(values: np.ndarray, selected: np.ndarray) -> np.ndarray:
    out = np.full(selected.shape, np.nan)
    out[selected] = values
    return out


def _w_constraint_eta(inputs: ak.Array) -> np.ndarray:
    """η of the neutrino from the W-mass constraint (smaller-|p_z| root), MET as its transverse momentum."""
    lep = inputs.lepton
    pt, eta, phi, mass = (np.asarray(ak.to_numpy(lep[f]), np.float64) for f in ("pt", "eta", "phi", "mass"))
    p4 = np.stack([pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta),
                   np.sqrt((pt * np.cosh(eta)) ** 2 + mass**2)], axis=1)
    met_px = np.asarray(ak.to_numpy(inputs.met.px), np.float64)
    met_py = np.asarray(ak.to_numpy(inputs.met.py), np.float64)
    pz = neutrino_pz(p4, met_px, met_py)[:, 0]
    return np.arcsinh(pz / np.maximum(np.hypot(met_px, met_py), 1e-9))


class TTbarProcessor(processor.ProcessorABC):
    """Assignment efficiencies of every method on the same selected events (see the module docstring).

    Args:
        methods: the methods to run (default all four; ML methods run when a shipped model exists).
        models: method → shipped model name (default :func:`default_models`).
        max_jets: jets permuted by the χ² and KLFitter-style fits.
        options: evaluate's task options (``device`` for the networks).
    """

    def __init__(self, methods: Sequence[str] = METHODS, models: dict[str, str] | None = None, max_jets: int = 6,
                 options: Any = None) -> None:
        unknown = set(methods) - set(METHODS)
        if unknown:
            raise ValueError(f"unknown tt̄ method(s) {sorted(unknown)}; known: {', '.join(METHODS)}")
        self.methods = tuple(methods)
        device = getattr(options, "device", "auto")
        names = default_models() if models is None else dict(models)
        self.models = {m: shipped_ttbar_model(name, device=device) for m, name in names.items() if m in self.methods}
        self.max_jets = int(max_jets)

    @staticmethod
    def _empty_histograms() -> dict[str, hist.Hist]:
        flag = {name: hist.axis.IntCategory([0, 1], name=name) for name in ("thad_reco", "thad_ok", "tlep_reco", "tlep_ok")}
        return {
            "outcome": hist.Hist(hist.axis.StrCategory(list(METHODS), name="method"),
                                 hist.axis.IntCategory(list(_NJETS), name="njets", label="selected jets (6 = ≥ 6)"),
                                 *flag.values(), storage=hist.storage.Double()),
            "assignment_prob": hist.Hist(hist.axis.StrCategory(["t_had", "t_lep"], name="top"),
                                         hist.axis.IntCategory([0, 1], name="correct"),
                                         hist.axis.Regular(50, 0, 1, name="prob", label="assignment probability")),
            "detection_prob": hist.Hist(hist.axis.StrCategory(["t_had", "t_lep"], name="top"),
                                        hist.axis.IntCategory([0, 1], name="reconstructable"),
                                        hist.axis.Regular(50, 0, 1, name="prob", label="detection probability")),
            "nu_eta_residual": hist.Hist(hist.axis.StrCategory(["spanet", "klfitter", "w_constraint"], name="method"),
                                         hist.axis.Regular(120, -6, 6, name="residual",
                                                           label=r"$\eta_\nu$ reco $-$ gen")),
        }

    def process(self, events: ak.Array) -> dict[str, Any]:
        """Fill the histograms for one chunk; see the module docstring."""
        dataset = str(events.metadata.get("dataset", "default"))
        reco, details = reconstruct_ttbar(events, self.methods, self.models, self.max_jets)
        events["TTbarReco"] = reco
        selected, chosen = details["selected"], details["inputs"]
        hists = self._empty_histograms()
        n_sel = int(selected.sum())
        njets = np.minimum(np.asarray(ak.to_numpy(chosen.n_jets), np.int64), _NJETS[-1])
        has_truth = "GenPart" in events.fields
        if has_truth:
            target = np.asarray(ak.to_numpy(assignment_targets(events[selected], chosen.jets)), np.int64).reshape(-1, 4)
        else:
            target = np.full((n_sel, 4), -1, np.int64)
        for method, positions in details["positions"].items():
            outcome: TopOutcomes = top_outcomes(positions, target)
            hists["outcome"].fill(method=method, njets=njets, **{k: v.astype(int) for k, v in outcome._asdict().items()})
        if has_truth:
            self._fill_truth_plots(hists, details, target, events[selected])
        return {
            "histograms": hists,
            "events": {dataset: len(events)},
            "events_selected": n_sel,
            "events_per_method": {m: n_sel for m in details["positions"]},
            "seconds": details["seconds"],
        }

    @staticmethod
    def _fill_truth_plots(hists: dict[str, hist.Hist], details: dict[str, Any], target: np.ndarray,
                          events: ak.Array) -> None:
        results = details["results"]
        if "spanet" in results:
            outcome = top_outcomes(details["positions"]["spanet"], target)
            spanet = results["spanet"]
            for top, reco, ok in (("t_had", outcome.thad_reco, outcome.thad_ok), ("t_lep", outcome.tlep_reco, outcome.tlep_ok)):
                assignment = np.asarray(ak.to_numpy(spanet.assignment_prob[top]), np.float64)
                hists["assignment_prob"].fill(top=top, correct=ok[reco].astype(int), prob=assignment[reco])
                detection = np.asarray(ak.to_numpy(spanet.detection_prob[top]), np.float64)
                hists["detection_prob"].fill(top=top, reconstructable=reco.astype(int), prob=detection)
        gen_eta = np.asarray(ak.to_numpy(ak.fill_none(ttbar_partons(events).neutrino.eta, np.nan)), np.float64)
        has_nu = np.isfinite(gen_eta)
        estimates = {"w_constraint": _w_constraint_eta(details["inputs"])}
        for method in ("spanet", "klfitter"):
            if method in results and "nu_eta" in ak.fields(results[method]):
                estimates[method] = np.asarray(ak.to_numpy(results[method].nu_eta), np.float64)
        for method, eta in estimates.items():
            ok = has_nu & np.isfinite(eta)
            hists["nu_eta_residual"].fill(method=method, residual=eta[ok] - gen_eta[ok])

    def postprocess(self, accumulator: dict[str, Any]) -> dict[str, Any]:
        """Nothing to do after merging; the accumulator is returned as is."""
        return accumulator
