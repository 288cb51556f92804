"""Report section of the ``mem`` task: network-vs-integration weight MAPE, discriminant distributions and ROC curves.

Definitions (DESIGN.md): the MAPE of the network weight is ⟨|P_network/P_integrated − 1|⟩ over events with both
(exact sums from the processor, not histogram bins), per hypothesis; d = P_S/(P_S + P_B); the ROC curve and AUC
of d (signal datasets vs background datasets) are read from the histogram of log₁₀ P_S/P_B (0.02 bins; d is a
monotonic function of it): AUC = P(score_S > score_B) + ½ P(same bin).

metrics.json ``mem``: ``{"integrated": {"auc", "n"}, "network": {"mape", "mape_per_hypothesis", "n_mape", "auc",
"auc_integrated_events", "n"}}``. ``n`` counts the events the method ran on (integration: at most
``max_integrated_events`` per chunk); ``network.mape`` is the mean over hypotheses of ``mape_per_hypothesis``
({hypothesis: fraction}) on ``n_mape`` events; ``network.auc`` uses every selected event, ``auc_integrated_events``
only the integrated ones (the like-for-like comparison with ``integrated.auc``). A method that did not run is
absent; an AUC without both a signal and a background dataset is absent.

Signal and background datasets are recognised by name (:func:`coffea_mlreco.mem.datasets.dataset_kind`).

Throughput: ``{"mem/integrated": events/s (all hypotheses of an event), "mem/network": events/s}``, from the
processor's ``seconds`` (eager runs only: a dask-awkward run has no per-method timing, and then no throughput rows).
The note above the tables gives the number of events left out for NaN/inf inputs (``events_invalid``).

Collision data (:func:`~coffea_mlreco.evaluation.report.from_collision_data`: the processor read no generator
branch): no ROC and no AUC (a dataset's name is no truth). The MAPE table stays (it compares the network with the
integration on the same events, no truth involved), and the section shows the distributions of d and of log₁₀
P_S/P_B per method (all datasets summed; :func:`~coffea_mlreco.evaluation.report.distributions`) and the throughput;
metrics.json ``mem`` is ``{"integrated": {"n", "distributions"}, "network": {"n", "mape", "mape_per_hypothesis",
"n_mape", "distributions"}}`` with ``distributions`` = ``{"d": summary, "llr": summary}`` (llr = log₁₀ P_S/P_B;
summary :func:`~coffea_mlreco.evaluation.report.distribution_summary`), absent for a method without events.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import hist
import mplhep as hep
import numpy as np

from coffea_mlreco.core.metrics import hist_select, histogram_roc
from coffea_mlreco.evaluation.report import (
    COLLISION_DATA_NOTE,
    distributions,
    event_rates,
    from_collision_data,
    html_table,
    label_axes,
    new_figure,
    plot_style,
    save_figure,
    throughput_table,
)
from coffea_mlreco.evaluation.tasks import TaskReport
from coffea_mlreco.mem.datasets import BACKGROUND_TOKENS, SIGNAL_TOKENS, dataset_kind
from coffea_mlreco.mem.methods import MEM_METHODS

__all__ = ["mem_section"]

_TITLES = MEM_METHODS.titles


def _datasets(h: hist.Hist) -> list[str]:
    return [str(d) for d in h.axes["dataset"]]


def _scores(llr: hist.Hist, method: str, kind: str, integrated_only: bool) -> hist.Hist | None:
    names = [d for d in _datasets(llr) if dataset_kind(d) == kind]
    if not names or method not in llr.axes["method"]:
        return None
    cut = {"integrated": hist.loc(1) if integrated_only else sum}
    parts = [hist_select(llr, {"method": method, "dataset": name, **cut}) for name in names]
    total = parts[0].copy()
    for part in parts[1:]:
        total += part
    return total


def _roc(llr: hist.Hist, method: str, integrated_only: bool) -> tuple[np.ndarray, np.ndarray, float] | None:
    s, b = _scores(llr, method, "signal", integrated_only), _scores(llr, method, "background", integrated_only)
    if s is None or b is None:
        return None
    roc = histogram_roc(s, b)
    return None if math.isnan(roc[2]) else roc


def _metrics(output: dict[str, Any], with_auc: bool = True) -> dict[str, Any]:
    """metrics.json ``mem`` (module docstring); ``with_auc`` False leaves every AUC out (collision data)."""
    counts: dict[str, int] = output.get("events_per_method", {})
    llr = output.get("histograms", {}).get("llr") if with_auc else None
    metrics: dict[str, Any] = {}
    if counts.get("integrated", 0) > 0:
        entry: dict[str, Any] = {"n": int(counts["integrated"])}
        roc = _roc(llr, "integrated", True) if llr is not None else None
        if roc is not None:
            entry["auc"] = roc[2]
        metrics["integrated"] = entry
    if counts.get("network", 0) > 0:
        entry = {"n": int(counts["network"])}
        sums, ns = output.get("mape_sum", {}), output.get("mape_n", {})
        per = {h: sums[h] / ns[h] for h in sorted(sums) if ns.get(h, 0) > 0}
        if per:
            entry["mape"] = float(np.mean(list(per.values())))
            entry["mape_per_hypothesis"] = per
            entry["n_mape"] = int(min(ns[h] for h in per))
        if llr is not None:
            for key, only in (("auc", False), ("auc_integrated_events", True)):
                roc = _roc(llr, "network", only)
                if roc is not None:
                    entry[key] = roc[2]
        metrics["network"] = entry
    return metrics


def _plot_residual(residual: hist.Hist, outdir: Path) -> str:
    with plot_style():
        fig, ax = new_figure(figsize=(9, 7))
        for h in residual.axes["hypothesis"]:
            part = hist_select(residual, {"hypothesis": h, "residual": hist.rebin(4)})
            if float(np.sum(part.values())) > 0:
                hep.histplot(part, ax=ax, density=True, flow="none", yerr=False, label=str(h))
        ax.set_xlim(-0.1, 0.1)
        ax.set_ylabel("Normalised")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
        label_axes(ax)
        return save_figure(fig, outdir, "mem_weight_residual")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _plot_discriminant(d: hist.Hist, dataset: str, outdir: Path) -> str:
    with plot_style():
        fig, ax = new_figure(figsize=(9, 7))
        for method in d.axes["method"]:
            part = hist_select(d, {"method": method, "dataset": dataset})
            if float(np.sum(part.values())) > 0:
                hep.histplot(part, ax=ax, density=True, flow="none", yerr=False, label=_TITLES.get(method, method))
        ax.set_ylabel("Normalised")
        ax.set_yscale("log")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
        label_axes(ax, dataset)
        return save_figure(fig, outdir, f"mem_discriminant_{_safe(dataset)}")


def _plot_roc(curves: list[tuple[str, tuple[np.ndarray, np.ndarray, float]]], outdir: Path) -> str:
    with plot_style():
        fig, ax = new_figure(figsize=(9, 7))
        for label, (eff_b, eff_s, auc) in curves:
            ax.plot(eff_b, eff_s, label=f"{label}: AUC {auc:.4f}")
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
        ax.set_xlabel("background efficiency")
        ax.set_ylabel("signal efficiency")
        ax.set_xscale("log")
        ax.set_xlim(1e-4, 1)
        ax.set_ylim(0, 1.05)
        ax.legend(fontsize="x-small", loc="lower right")
        label_axes(ax)
        return save_figure(fig, outdir, "mem_roc")


def _root_histograms(hists: dict[str, hist.Hist]) -> dict[str, hist.Hist]:
    out: dict[str, hist.Hist] = {}
    residual, d = hists.get("residual"), hists.get("d")
    if residual is not None:
        for h in residual.axes["hypothesis"]:
            out[f"mem/network/residual_{_safe(str(h))}"] = hist_select(residual, {"hypothesis": h})
    if d is not None:
        for method in d.axes["method"]:
            for dataset in _datasets(d):
                part = hist_select(d, {"method": method, "dataset": dataset})
                if float(np.sum(part.values(flow=True))) > 0:
                    out[f"mem/{method}/d_{_safe(dataset)}"] = part
    return out


def _finite(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items() if not (isinstance(v, float) and not math.isfinite(v))}
    return value


def _events_note(output: dict[str, Any]) -> str:
    """Selected events, the events each method ran on, the invalid ones and the discriminant's hypotheses."""
    counts: dict[str, int] = output.get("events_per_method", {})
    roles = output.get("hypotheses", {})
    invalid = int(output.get("events_invalid", 0))
    return (
        f"{output.get('events_selected', 0)} events with an e⁺e⁻/μ⁺μ⁻ pair; network on all "
        f"of them ({counts.get('network', 0)}), VEGAS integration on {counts.get('integrated', 0)}; "
        f"{invalid} event(s) with NaN/inf inputs left out. "
        f"Discriminant d = P<sub>S</sub>/(P<sub>S</sub> + P<sub>B</sub>), S = {roles.get('signal', '?')}, "
        f"B = {roles.get('background', '?')}"
    )


def _mape_table(output: dict[str, Any], network: dict[str, Any], outdir: Path) -> tuple[str, str] | None:
    """The network-vs-integration MAPE table and the residual plot; None without events having both weights."""
    if not network.get("mape_per_hypothesis"):
        return None
    residual = output["histograms"]["residual"]
    rows = []
    for h, value in network["mape_per_hypothesis"].items():
        part = hist_select(residual, {"hypothesis": h})
        inside = float(np.sum(part.values(flow=False))) / max(float(np.sum(part.values(flow=True))), 1.0)
        rows.append([h, int(output["mape_n"][h]), f"{100 * value:.3f} %", f"{100 * inside:.1f} %"])
    table = html_table(
        ["Hypothesis", "Events", "MAPE", "|P̂/P − 1| < 10 %"],
        rows,
        caption="Network weight vs integration: MAPE = ⟨|P_network/P_integrated − 1|⟩",
    )
    return table, _plot_residual(residual, outdir)


def _throughput(rates: dict[str, float]) -> list[str]:
    if not rates:
        return []
    caption = "MEM throughput (selected events per second, every hypothesis, per process)"
    return [throughput_table(rates, _TITLES, caption, digits=1)]


def _data_section(output: dict[str, Any], outdir: Path) -> TaskReport:
    """The section on collision data: MAPE, d and log₁₀ P_S/P_B distributions, throughput (module docstring)."""
    hists: dict[str, hist.Hist] = output.get("histograms", {})
    counts: dict[str, int] = output.get("events_per_method", {})
    metrics = _metrics(output, with_auc=False)
    text = [COLLISION_DATA_NOTE, f'<p class="note">{_events_note(output)}.</p>']
    mape = _mape_table(output, metrics.get("network", {}), outdir)
    if mape is not None:
        text += [mape[0], f'<img src="{mape[1]}" alt="{mape[1]}">']
    shown = {  # histogram: (axes summed, caption, plot rebin, log-scale counts)
        "d": ({"dataset": sum}, "Discriminant d = P_S/(P_S + P_B), all datasets", 1, True),
        "llr": ({"dataset": sum, "integrated": sum}, "log₁₀ P_S/P_B, all datasets", 25, False),
    }
    for name, (summed, caption, rebin, logy) in shown.items():
        h = hists.get(name)
        if h is None or not _datasets(h):
            continue
        summaries, fragment = distributions(
            hist_select(h, summed), _TITLES, outdir, f"mem_{name}", caption=caption, data=True, rebin=rebin, logy=logy
        )
        for method, summary in summaries.items():
            if method in metrics:
                metrics[method].setdefault("distributions", {})[name] = summary
        if fragment:
            text.append(fragment)
    rates = event_rates(counts, output.get("seconds", {}), MEM_METHODS.names)
    text += _throughput(rates)
    if not counts:
        text.append("<p>No method ran.</p>")
    return TaskReport(
        metrics=_finite(metrics),
        throughput={f"mem/{m}": v for m, v in rates.items()},
        html="\n".join(text),
        root_histograms=_root_histograms(hists),
        histograms={f"mem/{name}": h for name, h in hists.items()},
    )


def mem_section(output: dict[str, Any], outdir: Path) -> TaskReport:
    """Metrics (metrics.json ``mem``), throughput, HTML and histograms from the MEM processor output; on collision
    data the distributions instead of the ROC (module docstring)."""
    if from_collision_data(output):
        return _data_section(output, outdir)
    hists: dict[str, hist.Hist] = output.get("histograms", {})
    counts: dict[str, int] = output.get("events_per_method", {})
    seconds: dict[str, float] = output.get("seconds", {})
    metrics = _finite(_metrics(output))
    rates = event_rates(counts, seconds, MEM_METHODS.names)
    text = [
        (
            f'<p class="note">{_events_note(output)}; signal datasets: names with a token among '
            f"{', '.join(sorted(SIGNAL_TOKENS))}; background: {', '.join(sorted(BACKGROUND_TOKENS))}.</p>"
        )
    ]
    images = []
    network = metrics.get("network", {})
    mape = _mape_table(output, network, outdir)
    if mape is not None:
        text.append(mape[0])
        images.append(mape[1])
    auc_rows = [
        [_TITLES[m], metrics[m].get("n"), metrics[m].get("auc", math.nan)] for m in MEM_METHODS.names if m in metrics
    ]
    if "auc_integrated_events" in network:
        auc_rows.append(
            [
                "DeepMEM network, integrated events",
                metrics.get("integrated", {}).get("n"),
                network["auc_integrated_events"],
            ]
        )
    if auc_rows:
        text.append(
            html_table(
                ["Method", "Events", "ROC AUC (signal vs background datasets)"],
                auc_rows,
                caption="Discriminant separation (AUC absent without a signal and a background dataset)",
            )
        )
    llr = hists.get("llr")
    if llr is not None:
        curves = []
        for method, only, label in (
            ("integrated", True, "Integrated"),
            ("network", True, "Network, same events"),
            ("network", False, "Network, all events"),
        ):
            roc = _roc(llr, method, only)
            if roc is not None:
                curves.append((label, roc))
        if curves:
            images.append(_plot_roc(curves, outdir))
    d = hists.get("d")
    if d is not None:
        images += [
            _plot_discriminant(d, name, outdir)
            for name in _datasets(d)
            if float(np.sum(hist_select(d, {"dataset": name, "method": sum}).values())) > 0
        ]
    text += [f'<img src="{name}" alt="{name}">' for name in images]
    text += _throughput(rates)
    if not counts:
        text.append("<p>No method ran.</p>")
    return TaskReport(
        metrics=metrics,
        throughput={f"mem/{m}": v for m, v in rates.items()},
        html="\n".join(text),
        root_histograms=_root_histograms(hists),
        histograms={f"mem/{name}": h for name, h in hists.items()},
    )
