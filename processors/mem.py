"""Matrix Element Method processor: VEGAS-integrated and DeepMEM weights of dilepton events, and their discriminant.

Built on :func:`coffea_mlreco.mem.reconstruct`, which appends ``MEMReco`` (weights log₁₀ P per hypothesis, P in
GeV⁻², the discriminants d = P_S/(P_S + P_B), ``flavour``, ``selected``, ``integrated``, ``valid``; module docstring
of :mod:`coffea_mlreco.mem.columns`) to the chunk's events; this processor only histograms them. Per chunk:

- the network runs on every selected event, the integration on the first ``max_integrated_events`` selected events
  of the chunk (default 1000; ``None``: all; ``methods=("network",)`` skips it) — it costs a few ms per weight at
  1 % on one core, the network ~µs. Each integrated event has its own VEGAS seed, a hash of ``seed`` and the
  event's inputs, so an integrated weight does not depend on the chunking (:func:`coffea_mlreco.mem.columns.
  integration_seeds`);
- the per-event fill values come from one :func:`coffea_mlreco.core.map_events` over ``MEMReco``, so the same code
  fills ``hist.Hist`` on eager/virtual events (``processor.Runner``) and ``hist.dask.Hist`` on dask-awkward events
  (``coffea.dataset_tools.apply_to_fileset``), with identical counts;
- histograms: ``residual`` (network P̂/P − 1 per hypothesis, on events with both), ``llr`` (log₁₀ P_S/P_B per
  method, dataset and whether the event was integrated; 0.02 bins, the ROC curves and AUCs are read from it: d is a
  monotonic function of it), ``d`` (the discriminant per method and dataset); all unit-weight counts;
- the MAPE sums ``mape_sum``/``mape_n`` per hypothesis: Σ|P̂/P − 1| with each term rounded to a multiple of 2⁻³⁰, so
  the float64 sum is exact and does not depend on the order chunks are merged in.

Invalid events (NaN/inf in an input: ``MEMReco.valid`` False) are counted in ``events_invalid`` and left out of every
histogram and sum. The output dict is what :func:`coffea_mlreco.mem.report.mem_section` reads:
``histograms``, ``mape_sum``, ``mape_n``, ``events`` (per dataset), ``events_selected``, ``events_invalid``,
``events_per_method``, ``events_collision_data`` (:func:`coffea_mlreco.core.collision_data_events`: the events'
count when they are collision data, without any generator branch, else 0: the section then shows the discriminant
distributions and no ROC), in eager mode ``seconds`` (per method, summed over chunks; absent in dask mode), and after
:meth:`MEMProcessor.postprocess` ``hypotheses`` (``{"signal", "background", "integrated", "network"}``). The dataset
label is ``events.metadata["dataset"]`` (``"default"`` when absent). Compute a dask-mode output with
``dask.compute(out)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import awkward as ak
import hist
import numpy as np
from coffea import processor

from coffea_mlreco.core import (
    choose_methods,
    collision_data_events,
    count_true,
    event_count,
    is_dask,
    map_events,
    new_hist,
)
from coffea_mlreco.core.columns import to_numpy
from coffea_mlreco.mem import columns as mem_columns
from coffea_mlreco.mem.columns import COLUMN, discriminant, mem_network
from coffea_mlreco.mem.hypothesis import Hypothesis, load_hypothesis
from coffea_mlreco.mem.methods import MEM_METHODS
from coffea_mlreco.mem.wrappers import DEFAULT_MEM_MODEL, MEM_MODELS

__all__ = ["METHODS", "MEMProcessor", "discriminant"]

METHODS: tuple[str, ...] = mem_columns.METHODS
"""metrics.json keys of the ``mem`` task."""
LLR_RANGE = (-40.0, 40.0)
LLR_BINS = 4000
MAPE_QUANTUM = 2.0**-30
"""Each |P̂/P − 1| is rounded to a multiple of this before summing: float64 sums are then exact (below 2²³)."""


class _FillValues:
    """Per event, the histogram fill values from ``MEMReco`` (picklable; runs through ``map_events``)."""

    def __init__(
        self,
        llr_methods: Sequence[str],
        signal: str,
        background: str,
        residual_hypotheses: Sequence[str],
        network_hypothesis: str | None,
    ) -> None:
        self.llr_methods = tuple(llr_methods)
        self.signal, self.background = signal, background
        self.residual_hypotheses = tuple(residual_hypotheses)
        self.network_hypothesis = network_hypothesis

    def __call__(self, events: Any) -> ak.Array:
        reco = events[COLUMN]
        fields = set(ak.fields(reco))

        def column(name: str) -> np.ndarray:
            return to_numpy(reco[name], np.float64)

        valid = to_numpy(reco.valid, bool)
        out: dict[str, np.ndarray] = {"valid": valid, "selected": to_numpy(reco.selected, bool)}
        integrated = to_numpy(reco.integrated, bool) if "integrated" in fields else np.zeros(len(valid), bool)
        out["integrated"] = integrated.astype(np.int64)
        for method in self.llr_methods:
            llr = column(f"logw_{self.signal}_{method}") - column(f"logw_{self.background}_{method}")
            ok = np.isfinite(llr) & valid
            out[f"ok_{method}"] = ok
            out[f"llr_{method}"] = np.where(ok, llr, 0.0)
            out[f"d_{method}"] = np.where(ok, column(f"d_{method}"), 0.0)
        if self.network_hypothesis is not None:
            out["ran_network"] = np.isfinite(column(f"logw_{self.network_hypothesis}_network")) & valid
        for h in self.residual_hypotheses:
            delta = column(f"logw_{h}_network") - column(f"logw_{h}_integrated")
            ok = np.isfinite(delta) & valid
            rel = np.where(ok, np.expm1(np.where(ok, delta, 0.0) * np.log(10.0)), 0.0)
            out[f"ok_residual_{h}"] = ok
            out[f"residual_{h}"] = rel
            out[f"abs_residual_{h}"] = np.round(np.abs(rel) / MAPE_QUANTUM) * MAPE_QUANTUM
        return ak.zip(out, depth_limit=1)


def _total(values: Any) -> Any:
    """Σ of a per-event float array: a float eagerly, a lazy dask scalar in dask mode."""
    if is_dask(values):
        import dask_awkward as dak

        return dak.sum(values, axis=None)
    return float(ak.sum(values, axis=None))


class MEMProcessor(processor.ProcessorABC):
    """Integrated and network MEM weights on dilepton events (module docstring).

    Args:
        options: evaluate's task options (``device`` for the network, ``models_for("mem")``).
        methods: ``integrated`` and/or ``network`` (default both; ``network`` only when a model is shipped or given).
        models: ``{"network": shipped name | model directory | DeepMEMWrapper}``, over ``options``' (default the
            shipped ``deepmem``).
        signal, background: hypothesis names of the discriminant.
        hypotheses: hypotheses to integrate: shipped names, YAML files or :class:`Hypothesis` (default: the
            network's, else ``(background, signal)``).
        precision: target relative uncertainty of each integrated weight.
        max_integrated_events: integrate at most this many selected events per chunk (None: all).
        seed: base VEGAS seed (hashed with each event's inputs); n_workers: integration processes per chunk (keep 1
            under a futures/dask executor).
        use_sum_et: integrate with each event's MET_sumEt (default: as the network's tables were integrated; see
            :func:`coffea_mlreco.mem.reconstruct`).
        sqrt_s: pp centre-of-mass energy (GeV) of the integration.
    """

    def __init__(
        self,
        options: Any = None,
        *,
        methods: Sequence[str] | None = None,
        models: Mapping[str, Any] | None = None,
        signal: str = "zprime",
        background: str = "dy_sm",
        hypotheses: Sequence[str | Hypothesis] | None = None,
        precision: float = 0.01,
        max_integrated_events: int | None = 1000,
        seed: int = 0,
        n_workers: int = 1,
        use_sum_et: bool | None = None,
        sqrt_s: float = mem_columns.DEFAULT_SQRT_S,
    ) -> None:
        if max_integrated_events is not None and max_integrated_events < 0:
            raise ValueError("max_integrated_events must be ≥ 0 or None")
        self.options = options
        self.device = getattr(options, "device", "auto")
        given = dict(options.models_for("mem")) if hasattr(options, "models_for") else {}
        given.update(models or {})
        if methods is None:
            has_model = given.get("network") is not None or DEFAULT_MEM_MODEL in MEM_MODELS.names()
            methods = METHODS if has_model else ("integrated",)
        self.methods = choose_methods(methods, MEM_METHODS)
        self.model = mem_network(given, self.device) if "network" in self.methods else None
        self.signal, self.background = signal, background
        network_hyps = self.model.hypotheses if self.model is not None else ()
        chosen = tuple(hypotheses) if hypotheses is not None else (network_hyps or (background, signal))
        self._integrated = tuple(load_hypothesis(h) for h in chosen) if "integrated" in self.methods else ()
        self.hypotheses = tuple(h.name for h in self._integrated)
        self.precision, self.max_integrated_events, self.seed = precision, max_integrated_events, seed
        self.n_workers, self.use_sum_et, self.sqrt_s = n_workers, use_sum_et, sqrt_s

    def method_hypotheses(self, method: str) -> tuple[str, ...]:
        """The hypotheses whose weights ``method`` computes."""
        if method == "network":
            return tuple(self.model.hypotheses) if self.model is not None else ()
        return self.hypotheses

    def _llr_methods(self) -> tuple[str, ...]:
        return tuple(m for m in self.methods if {self.signal, self.background} <= set(self.method_hypotheses(m)))

    def _residual_hypotheses(self) -> tuple[str, ...]:
        return tuple(h for h in self.hypotheses if h in self.method_hypotheses("network"))

    def _histograms(self, events: Any, dataset: str) -> dict[str, Any]:
        method = hist.axis.StrCategory(list(METHODS), name="method")
        datasets = hist.axis.StrCategory([dataset], name="dataset", growth=True)
        return {
            "residual": new_hist(
                hist.axis.StrCategory(list(self._residual_hypotheses()), name="hypothesis", growth=True),
                hist.axis.Regular(400, -0.1, 0.1, name="residual", label=r"$P_{network}/P_{integrated} - 1$"),
                like=events,
            ),
            "llr": new_hist(
                method,
                datasets,
                hist.axis.IntCategory([0, 1], name="integrated"),
                hist.axis.Regular(LLR_BINS, *LLR_RANGE, name="llr", label=r"$\log_{10} P_S/P_B$"),
                like=events,
            ),
            "d": new_hist(
                method, datasets, hist.axis.Regular(50, 0.0, 1.0, name="d", label=r"$d = P_S/(P_S+P_B)$"), like=events
            ),
        }

    def process(self, events: Any) -> dict[str, Any]:
        """Reconstruct ``MEMReco`` and fill the histograms for one chunk (eager/virtual) or one graph (dask)."""
        dataset = str((getattr(events, "metadata", None) or {}).get("dataset", "default"))
        eager = not is_dask(events)
        seconds: dict[str, float] = {}
        reco = mem_columns.reconstruct(
            events,
            methods=self.methods,
            models={"network": self.model},
            device=self.device,
            hypotheses=self._integrated or None,
            signal=self.signal,
            background=self.background,
            precision=self.precision,
            max_integrated_events=self.max_integrated_events,
            seed=self.seed,
            n_workers=self.n_workers,
            use_sum_et=self.use_sum_et,
            sqrt_s=self.sqrt_s,
            timings=seconds if eager else None,
        )
        llr_methods, residual_hyps = self._llr_methods(), self._residual_hypotheses()
        network_hyps = self.method_hypotheses("network")
        fill = _FillValues(
            llr_methods, self.signal, self.background, residual_hyps, network_hyps[0] if network_hyps else None
        )
        values = map_events(fill, reco, {COLUMN: None}, label="mem-fill")
        hists = self._histograms(events, dataset)
        mape_sum: dict[str, Any] = {}
        mape_n: dict[str, Any] = {}
        for h in residual_hyps:
            ok = values[f"ok_residual_{h}"]
            hists["residual"].fill(hypothesis=h, residual=values[f"residual_{h}"][ok])
            mape_sum[h], mape_n[h] = _total(values[f"abs_residual_{h}"][ok]), count_true(ok)
        for method in llr_methods:
            ok = values[f"ok_{method}"]
            hists["llr"].fill(
                method=method, dataset=dataset, integrated=values.integrated[ok], llr=values[f"llr_{method}"][ok]
            )
            hists["d"].fill(method=method, dataset=dataset, d=values[f"d_{method}"][ok])
        counts: dict[str, Any] = {}
        if network_hyps:
            counts["network"] = count_true(values.ran_network)
        if "integrated" in self.methods:
            counts["integrated"] = count_true(values.integrated == 1)
        out: dict[str, Any] = {
            "histograms": hists,
            "mape_sum": mape_sum,
            "mape_n": mape_n,
            "events": {dataset: event_count(events)},
            "events_selected": count_true(values.selected),
            "events_invalid": count_true(~values.valid),
            "events_per_method": counts,
            "events_collision_data": collision_data_events(events),
        }
        if eager:
            out["seconds"] = {m: seconds.get(m, 0.0) for m in self.methods}
        return out

    def postprocess(self, accumulator: dict[str, Any]) -> dict[str, Any]:
        """Add the hypothesis roles (constant, so not accumulated per chunk)."""
        accumulator["hypotheses"] = {
            "signal": self.signal,
            "background": self.background,
            "integrated": list(self.hypotheses),
            "network": list(self.method_hypotheses("network")),
        }
        return accumulator
