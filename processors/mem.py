"""Matrix Element Method processor: VEGAS-integrated and DeepMEM weights of dilepton events, and their discriminant.

For each chunk it

- selects the leading e⁺e⁻/μ⁺μ⁻ pair, the two leading jets and the MET
  (:func:`coffea_mlreco.mem.inputs.dilepton_candidates`);
- runs the shipped DeepMEM network (:mod:`coffea_mlreco.mem.wrappers`, when a model is shipped) on every selected
  event, and the VEGAS integration (:func:`coffea_mlreco.mem.mem_log_weights`, at ``precision``, one process or
  ``n_workers``) on the first ``max_integrated_events`` selected events of the chunk — the integration costs
  ~3 ms per weight at 1 % on one core, the network ~µs, so by default the integration is capped (1000 events per
  chunk, ~7 s for two hypotheses at 1 % on one core); ``max_integrated_events=None`` integrates every selected event and
  ``integrate=False`` (or 0) skips it;
- appends ``MEMReco`` to the events, one record per event (NaN where not computed): ``logw_<h>_integrated``,
  ``logw_<h>_integrated_err`` and ``logw_<h>_network`` (log₁₀ P per hypothesis h, P in GeV⁻²), ``d_integrated``,
  ``d_network`` (d = P_S/(P_S + P_B), S = ``signal``, B = ``background``), ``flavour`` (11, 13, 0) and
  ``selected``;
- fills histograms: ``residual`` (network P̂/P − 1 per hypothesis, on events with both), ``llr``
  (log₁₀ P_S/P_B per method, dataset and whether the event was integrated; 0.02 bins, the ROC curves and AUCs
  are read from it: d is a monotonic function of it), ``d`` (the discriminant per method and dataset, for the
  plots); and the exact MAPE sums ``mape_sum``/``mape_n`` per hypothesis.

Eager and virtual NanoEvents (coffea's iterative/futures/dask executors); not dask-awkward arrays (the feature
builder and the integration need concrete arrays). Conventions: the integrated weights use the MET resolution at the default ΣE_T unless ``use_sum_et`` (as the
training tables do, :func:`coffea_mlreco.mem.inputs.integration_inputs`), so network and integration compare like
with like. The VEGAS seed of a chunk is ``seed + entrystart``. The dataset label is
``events.metadata["dataset"]`` (``"default"`` when absent). The output dict is what
:func:`coffea_mlreco.evaluation.mem_report.mem_section` reads: ``histograms``, ``mape_sum``, ``mape_n``,
``events`` (per dataset), ``events_selected``, ``events_per_method``, ``seconds`` (per method, summed over chunks),
``hypotheses`` (``{"signal", "background", "integrated", "network"}``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import awkward as ak
import hist
import numpy as np
from coffea import processor

from coffea_mlreco.mem.hypothesis import load_hypothesis
from coffea_mlreco.mem.inputs import dilepton_candidates
from coffea_mlreco.mem.tables import integrate_candidates
from coffea_mlreco.mem.wrappers import DEFAULT_MEM_MODEL, shipped_mem_model, shipped_mem_models

__all__ = ["METHODS", "MEMProcessor", "discriminant"]

METHODS: tuple[str, ...] = ("integrated", "network")
"""metrics.json keys of the ``mem`` task."""
LLR_RANGE = (-40.0, 40.0)
LLR_BINS = 4000


def discriminant(log10_signal: np.ndarray, log10_background: np.ndarray) -> np.ndarray:
    """d = P_S/(P_S + P_B) = 1/(1 + 10^(log₁₀ P_B − log₁₀ P_S)) from log₁₀ weights (overflow-safe; NaN in → NaN)."""
    llr = np.asarray(log10_signal, np.float64) - np.asarray(log10_background, np.float64)
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.power(10.0, -llr))


class MEMProcessor(processor.ProcessorABC):
    """Integrated and network MEM weights on dilepton events (module docstring).

    Args:
        options: evaluate's task options (``device`` for the network).
        model: name of the shipped DeepMEM model (None: no network; the default model when it is not shipped:
            integration only).
        signal, background: hypothesis names of the discriminant.
        hypotheses: hypotheses to integrate (default: the model's, else ``(background, signal)``).
        integrate: run the integration at all.
        precision: target relative uncertainty of each integrated weight.
        max_integrated_events: integrate at most this many selected events per chunk (None: all).
        seed: VEGAS base seed; n_workers: integration processes per chunk (keep 1 under a futures/dask executor).
        use_sum_et: integrate with each event's MET_sumEt (see the module docstring).
        sqrt_s: pp centre-of-mass energy (GeV) of the integration.
    """

    def __init__(self, options: Any = None, *, model: str | None = DEFAULT_MEM_MODEL, signal: str = "zprime",
                 background: str = "dy_sm", hypotheses: Sequence[str] | None = None, integrate: bool = True,
                 precision: float = 0.01, max_integrated_events: int | None = 1000, seed: int = 0,
                 n_workers: int = 1, use_sum_et: bool = False, sqrt_s: float = 13600.0) -> None:
        if max_integrated_events is not None and max_integrated_events < 0:
            raise ValueError("max_integrated_events must be ≥ 0 or None")
        self.options = options
        self.signal, self.background = signal, background
        device = getattr(options, "device", "auto")
        if model is not None and model not in shipped_mem_models():
            if model != DEFAULT_MEM_MODEL:
                raise ValueError(f"no shipped DeepMEM model {model!r}; shipped: "
                                 f"{', '.join(shipped_mem_models()) or 'none'}")
            model = None  # a checkout without the shipped weights: integration only
        self.model = shipped_mem_model(model, device=device) if model is not None else None
        network = self.model.hypotheses if self.model is not None else ()
        self.integrate = bool(integrate) and max_integrated_events != 0
        chosen = tuple(hypotheses) if hypotheses is not None else (network or (background, signal))
        self.hypotheses = tuple(load_hypothesis(h).name for h in chosen) if self.integrate else ()
        if not self.integrate and self.model is None:
            raise ValueError("nothing to run: no network model and the integration is off")
        self.precision, self.max_integrated_events = precision, max_integrated_events
        self.seed, self.n_workers, self.use_sum_et, self.sqrt_s = seed, n_workers, use_sum_et, sqrt_s

    @staticmethod
    def _empty_histograms() -> dict[str, hist.Hist]:
        method = hist.axis.StrCategory(list(METHODS), name="method")
        dataset = hist.axis.StrCategory([], name="dataset", growth=True)
        return {
            "residual": hist.Hist(hist.axis.StrCategory([], name="hypothesis", growth=True),
                                  hist.axis.Regular(400, -0.1, 0.1, name="residual",
                                                    label=r"$P_{network}/P_{integrated} - 1$"),
                                  storage=hist.storage.Double()),
            "llr": hist.Hist(method, dataset, hist.axis.IntCategory([0, 1], name="integrated"),
                             hist.axis.Regular(LLR_BINS, *LLR_RANGE, name="llr", label=r"$\log_{10} P_S/P_B$"),
                             storage=hist.storage.Double()),
            "d": hist.Hist(method, dataset, hist.axis.Regular(50, 0.0, 1.0, name="d", label=r"$d = P_S/(P_S+P_B)$"),
                           storage=hist.storage.Double()),
        }

    def _chunk_seed(self, events: Any) -> int:
        metadata = getattr(events, "metadata", None) or {}
        return int(self.seed) + int(metadata.get("entrystart", 0) or 0)

    def process(self, events: Any) -> dict[str, Any]:
        """Fill the histograms for one chunk; see the module docstring."""
        metadata = getattr(events, "metadata", None) or {}
        dataset = str(metadata.get("dataset", "default"))
        candidates = dilepton_candidates(events)
        selected = np.asarray(ak.to_numpy(candidates.selected), bool)
        sel_index = np.flatnonzero(selected)
        sel = candidates[selected]
        n, n_sel = len(selected), len(sel_index)
        fields: dict[str, Any] = {}
        logw: dict[str, dict[str, np.ndarray]] = {"integrated": {}, "network": {}}
        seconds: dict[str, float] = {}
        counts: dict[str, int] = {}
        integrated = np.zeros(n, bool)

        if self.model is not None:
            tic = time.perf_counter()
            out = self.model(sel) if n_sel else None
            seconds["network"] = time.perf_counter() - tic
            counts["network"] = n_sel
            for h in self.model.hypotheses:
                column = np.full(n, np.nan)
                if out is not None:
                    column[sel_index] = np.asarray(ak.to_numpy(out[f"logw_{h}"]), np.float64)
                logw["network"][h] = column
        if self.integrate:
            k = n_sel if self.max_integrated_events is None else min(n_sel, self.max_integrated_events)
            tic = time.perf_counter()
            results = integrate_candidates(sel[:k], self.hypotheses, precision=self.precision,
                                           seed=self._chunk_seed(events), n_workers=self.n_workers,
                                           use_sum_et=self.use_sum_et, sqrt_s=self.sqrt_s) if k else {}
            seconds["integrated"] = time.perf_counter() - tic
            counts["integrated"] = k
            integrated[sel_index[:k]] = True
            for h in self.hypotheses:
                column, err = np.full(n, np.nan), np.full(n, np.nan)
                if k:
                    column[sel_index[:k]] = results[h].log10_weight
                    err[sel_index[:k]] = results[h].log10_weight_err
                logw["integrated"][h] = column
                fields[f"logw_{h}_integrated_err"] = err
        for method, columns in logw.items():
            for h, column in columns.items():
                fields[f"logw_{h}_{method}"] = column

        hists = self._empty_histograms()
        mape_sum: dict[str, float] = {}
        mape_n: dict[str, int] = {}
        for h in set(logw["integrated"]) & set(logw["network"]):
            delta = logw["network"][h] - logw["integrated"][h]
            ok = np.isfinite(delta)
            rel = np.expm1(delta[ok] * np.log(10.0))
            hists["residual"].fill(hypothesis=h, residual=rel)
            mape_sum[h], mape_n[h] = float(np.abs(rel).sum()), int(ok.sum())
        for method, columns in logw.items():
            if self.signal in columns and self.background in columns:
                d = discriminant(columns[self.signal], columns[self.background])
                llr = columns[self.signal] - columns[self.background]
                ok = np.isfinite(llr)
                hists["llr"].fill(method=method, dataset=dataset, integrated=integrated[ok].astype(int), llr=llr[ok])
                hists["d"].fill(method=method, dataset=dataset, d=d[ok])
                fields[f"d_{method}"] = d
        fields["flavour"] = np.asarray(ak.to_numpy(candidates.flavour), np.int64)
        fields["selected"] = selected
        events["MEMReco"] = ak.zip(fields, depth_limit=1)
        return {
            "histograms": hists,
            "mape_sum": mape_sum,
            "mape_n": mape_n,
            "events": {dataset: n},
            "events_selected": n_sel,
            "events_per_method": counts,
            "seconds": seconds,
        }

    def postprocess(self, accumulator: dict[str, Any]) -> dict[str, Any]:
        """Add the hypothesis roles (constant, so not accumulated per chunk)."""
        accumulator["hypotheses"] = {
            "signal": self.signal, "background": self.background, "integrated": list(self.hypotheses),
            "network": list(self.model.hypotheses) if self.model is not None else []}
        return accumulator
