"""Di-tau mass processor: visible mass, collinear approximation, FastMTT-style likelihood and the transformer on
the same events, built on :func:`coffea_mlreco.ditau.reconstruct`.

For each chunk it

- where the file has PF candidates, appends PUPPI MET and the Perceiver's ``MLMET`` with their covariances to the
  events with a di-tau pair (:func:`coffea_mlreco.met.reconstruct`), so ``fastmtt`` reads PUPPI MET and
  ``fastmtt_mlmet`` the ML MET (``reconstruct_met=False``: the file's MET only);
- appends ``DiTauReco`` (:mod:`coffea_mlreco.ditau.columns`: one selected visible pair per event, its
  ``mass_vis``, ``mass_collinear``, ``mass_fastmtt``, ``mass_ml``, statuses, fitted taus, ``channel`` and
  ``valid``), running ``methods`` (default: every method the file supports; the transformer needs
  ``TauProd``, which CMS NanoAOD lacks);
- computes the fill values from the returned events and the generator truth with
  :func:`coffea_mlreco.core.map_events` (the same code on eager, virtual and dask-awkward events);
- fills, for every selected valid event, the reconstructed mass per (method, dataset) in a fine histogram
  (0.5 GeV bins, 0–600 GeV: enough for the mass plots and for the H-vs-Z ROC AUC) and the collinear/FastMTT
  failure flags per reconstructed channel;
- where the file has ``GenPart`` and the event has two prompt generator taus, fills m_reco/m_gen − 1 per
  (method incl. ``m_vis``, reconstructed channel); m_gen = m(τ1 + τ2) from
  :func:`coffea_mlreco.core.truth.tau_decays`.

Events whose inputs hold NaN/inf (``DiTauReco.valid`` False) are counted in ``events_invalid`` and left out of
every histogram. The dataset label is ``events.metadata["dataset"]`` (``"default"`` when absent). The output
dict is what :func:`coffea_mlreco.ditau.report.ditau_section` reads: ``histograms`` (``ratio``,
``mass``, ``failed``), ``events`` (per dataset), ``events_invalid``, ``events_selected`` (valid events with a
pair), ``events_per_method``, ``events_collision_data`` (:func:`coffea_mlreco.core.collision_data_events`: the
events' count when they are collision data, without any generator branch, else 0: the section then shows the
mass distributions and no truth metric), ``met_columns`` (per method, the MET column it read → events) and, on
eager/virtual events only, ``seconds`` (per method, summed over chunks, including the reconstruction of the MET it
read, PUPPI and the network on the pair events; the only executor-dependent numbers). On dask-awkward events
(``apply_to_fileset``) the histograms are ``hist.dask`` objects and the counts lazy scalars: ``dask.compute``
gives the same histograms as ``processor.Runner``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import awkward as ak
import hist
import numpy as np
from coffea import processor

from coffea_mlreco import met
from coffea_mlreco.core import (
    choose_methods,
    collision_data_events,
    count_true,
    event_count,
    has_column,
    is_dask,
    map_events,
    new_hist,
)
from coffea_mlreco.core.columns import to_numpy
from coffea_mlreco.core.truth import tau_decays
from coffea_mlreco.ditau.collinear_mass import CollinearStatus
from coffea_mlreco.ditau.columns import (
    COLUMN,
    MASS_FIELDS,
    METHODS,
    DiTauReconstruction,
    PairOrInvalid,
    append_ditau,
    default_methods,
    ditau_model,
    met_columns,
    pair_columns,
    shipped_met_input,
    shipped_model,
)
from coffea_mlreco.ditau.fastmtt import FastMTTStatus
from coffea_mlreco.ditau.inputs import FILE_MET, Channel
from coffea_mlreco.ditau.methods import DITAU_METHODS

__all__ = ["CHANNELS", "HIST_METHODS", "METHODS", "TRUTH_COLUMNS", "DiTauProcessor", "generator_mass"]

HIST_METHODS: tuple[str, ...] = ("m_vis", *METHODS)
"""Method axis of the histograms: the visible mass is the reference lower bound."""
CHANNELS: tuple[int, ...] = tuple(int(c) for c in Channel if c != Channel.NONE)
_NO_PAIR = {
    "collinear": int(CollinearStatus.NO_PAIR),
    "fastmtt": int(FastMTTStatus.NO_PAIR),
    "fastmtt_mlmet": int(FastMTTStatus.NO_PAIR),
}
_HIST_FIELDS = {"m_vis": "mass_vis", **MASS_FIELDS}
_MET_METHOD = {column: method for method, column in met.COLUMNS.items()}
TRUTH_COLUMNS: dict[str, tuple[str, ...]] = {
    "GenPart": ("pt", "eta", "phi", "mass", "pdgId", "genPartIdxMother", "statusFlags"),
    "GenVisTau": ("pt", "eta", "phi", "mass", "charge", "genPartIdxMother"),
}
"""Generator branches :func:`generator_mass` reads (``GenVisTau`` only where the file has it)."""


def generator_mass(events: Any) -> np.ndarray:
    """m(τ1 + τ2) of the two prompt generator taus (GeV); NaN unless the event has exactly two."""
    if len(events) == 0:
        return np.zeros(0)
    taus = tau_decays(events)
    two = to_numpy(ak.num(taus, axis=1) == 2, bool)
    p4 = taus.visible + taus.invisible
    total = np.stack([to_numpy(ak.sum(getattr(p4, c), axis=1), np.float64) for c in "xyzt"], axis=1)
    mass = np.sqrt(np.maximum(total[:, 3] ** 2 - (total[:, :3] ** 2).sum(axis=1), 0.0))
    return np.where(two, mass, np.nan)


def _truth_columns(events: Any) -> dict[str, tuple[str, ...]]:
    """The :data:`TRUTH_COLUMNS` the file has (none without every ``GenPart`` one)."""
    if not all(has_column(events, "GenPart", f) for f in TRUTH_COLUMNS["GenPart"]):
        return {}
    columns = {"GenPart": TRUTH_COLUMNS["GenPart"]}
    if all(has_column(events, "GenVisTau", f) for f in TRUTH_COLUMNS["GenVisTau"]):
        columns["GenVisTau"] = TRUTH_COLUMNS["GenVisTau"]
    return columns


class _FillValues:
    """Per event, from ``DiTauReco`` and the generator taus: ``channel``, ``selected`` (valid with a pair),
    ``invalid``, and per histogram method ``mass_<m>`` (GeV; NaN unless selected and finite), ``ratio_<m>``
    (m/m_gen − 1; NaN without truth) and, for collinear/FastMTT, ``failed_<m>`` (0/1; −1 unless selected)."""

    def __init__(self, methods: Sequence[str], truth: bool) -> None:
        self.methods = tuple(methods)
        self.truth = truth

    def __call__(self, events: Any) -> ak.Array:
        reco = events[COLUMN]
        valid = to_numpy(reco.valid, bool)
        channel = to_numpy(reco.channel, np.int64)
        selected = valid & (channel >= 0)
        m_gen = generator_mass(events) if self.truth else np.full(len(valid), np.nan)
        with np.errstate(invalid="ignore"):
            truth = selected & np.isfinite(m_gen) & (m_gen > 0)
        out: dict[str, np.ndarray] = {"channel": channel, "selected": selected, "invalid": ~valid}
        for method in ("m_vis", *self.methods):
            mass = to_numpy(reco[_HIST_FIELDS[method]], np.float64)
            ok = selected & np.isfinite(mass)
            out[f"mass_{method}"] = np.where(ok, mass, np.nan)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[f"ratio_{method}"] = np.where(ok & truth, mass / m_gen - 1.0, np.nan)
        for method in (m for m in self.methods if m in _NO_PAIR):
            status = to_numpy(reco[f"{method}_status"], np.int64)
            out[f"failed_{method}"] = np.where(selected, ((status & ~_NO_PAIR[method]) != 0).astype(np.int64), -1)
        return ak.zip(out, depth_limit=1)


def _finite(values: Any) -> Any:
    return values[~np.isnan(values)]


class DiTauProcessor(processor.ProcessorABC):
    """m_ττ of the collinear, FastMTT-style and transformer methods on the same selected events (module docstring).

    Args:
        methods: which of :data:`METHODS` to run; default None: per chunk, every method the file supports
            (:func:`coffea_mlreco.ditau.supported_methods`). An explicit method the file cannot run is a
            ``MissingBranchError``.
        models: ``{"transformer": spec}``, spec a shipped name, a model directory or a wrapper (default: the
            one in ``options``, else per chunk the shipped one its columns call for,
            :func:`coffea_mlreco.ditau.shipped_model`).
        options: evaluate's :class:`~coffea_mlreco.evaluation.tasks.TaskOptions` (``device`` for the
            transformer and the MET networks, ``models_for("ditau")`` and ``models_for("met")``).
        reconstruct_met: where the file has PF candidates, append PUPPI MET and the Perceiver's ``MLMET``
            (:func:`coffea_mlreco.met.reconstruct`) before the di-tau columns, so ``fastmtt`` reads PUPPI MET and
            ``fastmtt_mlmet`` runs (:func:`coffea_mlreco.ditau.met_columns`); False: the file's MET only.
    """

    def __init__(
        self,
        methods: Sequence[str] | None = None,
        models: Mapping[str, Any] | None = None,
        options: Any = None,
        reconstruct_met: bool = True,
    ) -> None:
        self.methods = None if methods is None else choose_methods(methods, DITAU_METHODS, allow_empty=True)
        chosen = dict(options.models_for("ditau")) if options is not None and hasattr(options, "models_for") else {}
        chosen.update(models or {})
        unknown = sorted(set(chosen) - {"transformer"})
        if unknown:
            raise ValueError(f"models= keys must be among ('transformer',), not {unknown}")
        self.options = options
        self.device = getattr(options, "device", "auto")
        wanted = self.methods is None or "transformer" in self.methods
        # a model given is used on every chunk; else the shipped one each chunk's columns call for (shipped_model)
        self.model = ditau_model(chosen["transformer"], self.device) if wanted and "transformer" in chosen else None
        self._shipped: dict[str, Any] = {}
        self.reconstruct_met = reconstruct_met
        self.met_models = (
            dict(options.models_for("met")) if options is not None and hasattr(options, "models_for") else {}
        )
        self._kernels: dict[tuple[Any, ...], DiTauReconstruction] = {}

    def _met_methods(self) -> tuple[str, ...]:
        """The MET methods the di-tau methods read: PUPPI for the fits, the Perceiver for ``fastmtt_mlmet`` and
        a transformer trained with it."""
        wanted = ["puppi"]
        if self.methods is None or "fastmtt_mlmet" in self.methods:
            wanted.append("perceiver")
        if self.model is not None:
            met_input = getattr(self.model, "met_input", FILE_MET)
        else:
            met_input = shipped_met_input() or FILE_MET
        if met_input != FILE_MET:
            wanted.append(met_input)
        return tuple(dict.fromkeys(wanted))

    def _with_met(self, events: Any, timings: dict[str, float]) -> Any:
        """``events`` with the MET columns the di-tau methods read, where the file has PF candidates. The MET
        is reconstructed on the events with a di-tau pair only (and those with NaN/inf in the pair's inputs, to
        be counted invalid): the others fill no histogram, and a network over every PF candidate is costly.
        ``timings`` receives the seconds of each MET method (eager and virtual events)."""
        if not self.reconstruct_met:
            return events
        methods = [m for m in self._met_methods() if m in met.supported_methods(events)]
        if not methods:
            return events
        columns = pair_columns(events)
        keep = map_events(PairOrInvalid(columns), events, columns, label="ditau-preselection")
        models = {m: spec for m, spec in self.met_models.items() if m in methods}
        return met.reconstruct(
            events[keep], methods=methods, models=models or None, device=self.device, timings=timings
        )

    def _model_for(self, events: Any) -> Any:
        """The transformer for this chunk: the one given, else the shipped one its columns call for (loaded once);
        None when the transformer is not asked for or no model ships."""
        if self.model is not None or (self.methods is not None and "transformer" not in self.methods):
            return self.model
        name = shipped_model(events, required=self.methods is not None)
        if name is None:
            return None
        if name not in self._shipped:
            self._shipped[name] = ditau_model(name, self.device)
        return self._shipped[name]

    def _kernel(self, events: Any) -> DiTauReconstruction:
        model = self._model_for(events)
        methods = default_methods(events, model) if self.methods is None else self.methods
        model = model if "transformer" in methods else None
        columns = met_columns(events, methods, model)
        key = (methods, tuple(sorted((m, c or FILE_MET) for m, c in columns.items())))
        if key not in self._kernels:
            self._kernels[key] = DiTauReconstruction(methods, model, met=columns)
        return self._kernels[key]

    @staticmethod
    def _empty_histograms(like: Any) -> dict[str, Any]:
        method = hist.axis.StrCategory(list(HIST_METHODS), name="method")
        channel = hist.axis.IntCategory(list(CHANNELS), name="channel", label="reconstructed channel")
        return {
            "ratio": new_hist(
                method,
                channel,
                hist.axis.Regular(400, -1.0, 3.0, name="ratio", label=r"$m_{reco}/m_{gen} - 1$"),
                like=like,
            ),
            "mass": new_hist(
                method,
                hist.axis.StrCategory([], name="dataset", growth=True),
                hist.axis.Regular(1200, 0.0, 600.0, name="mass", label=r"$m_{\tau\tau}$ [GeV]"),
                like=like,
            ),
            "failed": new_hist(
                hist.axis.StrCategory(list(_NO_PAIR), name="method"),
                channel,
                hist.axis.IntCategory([0, 1], name="failed"),
                like=like,
            ),
        }

    def process(self, events: Any) -> dict[str, Any]:
        """Fill the histograms for one chunk (eager/virtual) or build their graph (dask); see the module."""
        metadata = getattr(events, "metadata", None) or {}
        dataset = str(metadata.get("dataset", "default"))
        n_events, n_collision_data = event_count(events), collision_data_events(events)
        met_seconds: dict[str, float] = {}
        events = self._with_met(events, met_seconds)
        kernel = self._kernel(events)
        events = append_ditau(events, kernel)
        seconds = dict(kernel.seconds)
        for method, column in kernel.met.items():  # a method's time includes the MET it read
            if method in seconds and column in _MET_METHOD:
                seconds[method] += sum(met_seconds.get(m, 0.0) for m in {"puppi", _MET_METHOD[column]})
        truth = _truth_columns(events)
        fill = map_events(
            _FillValues(kernel.methods, bool(truth)), events, {COLUMN: None, **truth}, label="ditau-fill-values"
        )
        hists = self._empty_histograms(events)
        for method in ("m_vis", *kernel.methods):
            hists["mass"].fill(method=method, dataset=dataset, mass=_finite(fill[f"mass_{method}"]))
            keep = ~np.isnan(fill[f"ratio_{method}"])
            hists["ratio"].fill(method=method, channel=fill.channel[keep], ratio=fill[f"ratio_{method}"][keep])
        for method in (m for m in kernel.methods if m in _NO_PAIR):
            failed = fill[f"failed_{method}"]
            hists["failed"].fill(method=method, channel=fill.channel[failed >= 0], failed=failed[failed >= 0])
        n_selected = count_true(fill.selected)
        out: dict[str, Any] = {
            "histograms": hists,
            "events": {dataset: n_events},
            "events_invalid": count_true(fill.invalid),
            "events_selected": n_selected,
            "events_per_method": dict.fromkeys(kernel.methods, n_selected),
            "events_collision_data": n_collision_data,
            "met_columns": {m: {column or FILE_MET: n_selected} for m, column in kernel.met.items()},
        }
        if not is_dask(events):
            out["seconds"] = seconds
        return out

    def postprocess(self, accumulator: dict[str, Any]) -> dict[str, Any]:
        """Nothing to do after merging; the accumulator is returned as is."""
        return accumulator
