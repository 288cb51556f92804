"""Report section of the ``ditau`` task: m_ττ resolution per channel, H-vs-Z separation, mass plots.

Definitions (DESIGN.md): the residual is r = m_reco/m_gen − 1 on selected events with two prompt
generator taus; bias = mean(r) (bin-centre mean of the ratio histogram), resolution = (P84 − P16)/2, both
read from the histograms with :func:`coffea_mlreco.core.metrics.summarize_residual_hist` (0.01 bins in r,
flow bins counted). Channels are the *reconstructed* channel of the selected pair.

metrics.json ``ditau``: ``{METHOD: {"bias", "median", "resolution", "n", "n_selected", "n_invalid",
"failure_fraction", "channels": {CHANNEL: {"bias", "median", "resolution", "n"}}, "auc_h_vs_z"}}`` for METHOD
in ``collinear``, ``fastmtt``, ``fastmtt_mlmet``, ``transformer`` (methods with at least one selected event).
``n`` counts the events entering the resolution; without generator taus (real data, non-ττ samples) ``bias``,
``median``, ``resolution`` and ``channels`` are absent. ``failure_fraction`` is the fraction of selected events whose
status has a failure bit set (collinear: singular or x ∉ (0, 1], mass falls back to m_vis; FastMTT: MET tension or bad
covariance). ``n_invalid`` (every method, when the processor output has ``events_invalid``) is the number of
events whose inputs held NaN/inf: they carry no masses and are in none of the histograms.

H-vs-Z recognition (``auc_h_vs_z``): a dataset name is split into lower-case alphanumeric tokens (at
every character other than a–z, 0–9). It is a *Higgs* dataset when a token is one of :data:`H_TOKENS`
or contains ``htotautau``; a *Z* dataset when a token is one of :data:`Z_TOKENS` or contains
``ztotautau`` or starts with ``dyjets``/``dyto``. Names matching both or neither are ignored. When at
least one dataset of each kind holds selected events, the H datasets and the Z datasets are each summed
and the AUC of the reconstructed mass as a score (larger for H) is computed from the fine mass histogram:
AUC = P(m_H > m_Z) + ½ P(same bin). Otherwise ``auc_h_vs_z`` is absent.

MET: each method's entry has ``met``, the MET it read (``PuppiMETReco``, ``MLMET`` or ``file``: the processor's
``met_columns``; :func:`coffea_mlreco.ditau.met_columns`); the section opens with that list. ``fastmtt`` is the fit
with PUPPI MET and its calibrated covariance where the file has PF candidates, as analyses use it,
``fastmtt_mlmet`` the fit with the Perceiver MET.

Throughput: ``{"ditau/<method>": selected events per second}`` of each method's mass computation, from the
processor's ``seconds`` (absent when the processor ran as a dask graph: then no throughput rows).

Collision data (:func:`~coffea_mlreco.evaluation.report.from_collision_data`: the processor read no generator
branch): no residual and no H-vs-Z AUC (a dataset's name is no truth). The section shows the m_ττ distribution of
each method and of ``m_vis`` (all datasets summed; :func:`~coffea_mlreco.evaluation.report.distributions`), the
failure fractions (status bits, not truth) and the throughput; metrics.json ``ditau`` is ``{METHOD: {"n",
"n_selected", "n_invalid", "failure_fraction", "distributions": {"mass": summary}}}``, ``n`` the selected events
with a finite mass (the distribution's entries), summary :func:`~coffea_mlreco.evaluation.report.
distribution_summary` in GeV.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import hist
import mplhep as hep
import numpy as np

from coffea_mlreco.core.metrics import ResidualSummary, hist_select, histogram_roc, summarize_residual_hist
from coffea_mlreco.ditau.inputs import channel_name
from coffea_mlreco.ditau.methods import DITAU_METHODS
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

__all__ = ["H_TOKENS", "Z_TOKENS", "dataset_kind", "ditau_section"]

_TITLES = DITAU_METHODS.titles
H_TOKENS = frozenset({"h", "htautau", "htt", "h125", "higgs", "ggh", "vbfh", "hig"})
Z_TOKENS = frozenset({"z", "ztautau", "ztt", "dy", "dyll", "zll", "ztoll"})
_PLOT_REBIN = 10  # 5 GeV bins in the mass plots


def dataset_kind(name: str) -> str | None:
    """``"h"``, ``"z"`` or None for a dataset name (rules in the module docstring)."""
    tokens = [t for t in re.split(r"[^a-z0-9]+", name.lower()) if t]
    is_h = any(t in H_TOKENS or "htotautau" in t for t in tokens)
    is_z = any(t in Z_TOKENS or "ztotautau" in t or t.startswith(("dyjets", "dyto")) for t in tokens)
    if is_h == is_z:
        return None
    return "h" if is_h else "z"


def _title(method: str) -> str:
    return _TITLES.get(method, method)


def _entries(h: hist.Hist) -> float:
    return float(np.sum(h.values(flow=True)))


def _drawable(h: hist.Hist) -> bool:
    """Entries inside the axis range (a density plot of flow-only entries divides by zero)."""
    return float(np.sum(h.values())) > 0


def _summary_dict(s: ResidualSummary) -> dict[str, Any]:
    return {"bias": s.bias, "median": s.median, "resolution": s.resolution, "n": s.n}


def _datasets(mass: hist.Hist) -> list[str]:
    return [str(d) for d in mass.axes["dataset"]]


def _sum_datasets(mass: hist.Hist, method: str, names: list[str]) -> hist.Hist:
    parts = [hist_select(mass, {"method": method, "dataset": name}) for name in names]
    total = parts[0].copy()
    for part in parts[1:]:
        total += part
    return total


def _auc(mass: hist.Hist, method: str) -> float | None:
    kinds: dict[str, list[str]] = {"h": [], "z": []}
    for name in _datasets(mass):
        kind = dataset_kind(name)
        if kind is not None:
            kinds[kind].append(name)
    if not kinds["h"] or not kinds["z"]:
        return None
    _, _, value = histogram_roc(_sum_datasets(mass, method, kinds["h"]), _sum_datasets(mass, method, kinds["z"]))
    return None if math.isnan(value) else value


def _method_metrics(hists: dict[str, hist.Hist], method: str, n_selected: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    ratio = hists.get("ratio")
    if ratio is not None and method in ratio.axes["method"]:
        by_method = hist_select(ratio, {"method": method})
        total = summarize_residual_hist(hist_select(by_method, {"channel": sum}))
        if total.n > 0:
            out.update(_summary_dict(total))
            out["channels"] = {}
            for code in by_method.axes["channel"]:
                part = summarize_residual_hist(hist_select(by_method, {"channel": hist.loc(code)}))
                if part.n > 0:
                    out["channels"][channel_name(code)] = _summary_dict(part)
        else:
            out["n"] = 0
    out["n_selected"] = n_selected
    failure = _failure_fraction(hists, method)
    if failure is not None:
        out["failure_fraction"] = failure
    mass = hists.get("mass")
    if mass is not None and method in mass.axes["method"] and _datasets(mass):
        auc = _auc(mass, method)
        if auc is not None:
            out["auc_h_vs_z"] = auc
    return out


def _failure_fraction(hists: dict[str, hist.Hist], method: str) -> float | None:
    """Fraction of the selected events whose status has a failure bit set; None without such events."""
    failed = hists.get("failed")
    if failed is None or method not in failed.axes["method"]:
        return None
    flags = hist_select(failed, {"method": method, "channel": sum})
    n = _entries(flags)
    return float(flags[hist.loc(1)]) / n if n > 0 else None


def _channel_table(hists: dict[str, hist.Hist]) -> str:
    ratio = hists["ratio"]
    methods = list(ratio.axes["method"])
    rows = []
    for code in [*ratio.axes["channel"], None]:
        label = "all" if code is None else channel_name(code)
        sel = {"channel": sum} if code is None else {"channel": hist.loc(code)}
        for method in methods:
            s = summarize_residual_hist(hist_select(ratio, {"method": method, **sel}))
            if s.n > 0:
                rows.append([label, _title(method), s.n, s.bias, s.median, s.resolution])
    return html_table(
        ["Channel", "Method", "Events", "Bias (mean)", "Median", "Resolution"],
        rows,
        caption="m_reco/m_gen − 1 per reconstructed channel (resolution = (P84 − P16)/2)",
    )


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _plot_mass(mass: hist.Hist, dataset: str, outdir: Path) -> str:
    with plot_style():
        fig, ax = new_figure(figsize=(9, 7))
        for method in mass.axes["method"]:
            part = hist_select(mass, {"method": method, "dataset": dataset, "mass": hist.rebin(_PLOT_REBIN)})
            if _drawable(part):
                hep.histplot(part, ax=ax, density=True, flow="none", yerr=False, label=_title(method))
        ax.set_xlim(0, 300)
        ax.set_ylabel("Normalised")
        ax.set_ylim(0, 1.3 * ax.get_ylim()[1])
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
        label_axes(ax, dataset)
        return save_figure(fig, outdir, f"ditau_mass_{_safe(dataset)}")


def _plot_ratio(ratio: hist.Hist, outdir: Path) -> str:
    with plot_style():
        fig, ax = new_figure(figsize=(9, 7))
        for method in ratio.axes["method"]:
            part = hist_select(ratio, {"method": method, "channel": sum, "ratio": hist.rebin(4)})
            if _drawable(part):
                s = summarize_residual_hist(hist_select(ratio, {"method": method, "channel": sum}))
                hep.histplot(
                    part, ax=ax, density=True, flow="none", yerr=False, label=f"{_title(method)}: σ {s.resolution:.3f}"
                )
        ax.set_xlim(-1, 1.5)
        ax.set_ylabel("Normalised")
        ax.set_ylim(0, 1.3 * ax.get_ylim()[1])
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="x-small")
        label_axes(ax)
        return save_figure(fig, outdir, "ditau_mass_ratio")


def _root_histograms(hists: dict[str, hist.Hist]) -> dict[str, hist.Hist]:
    out: dict[str, hist.Hist] = {}
    ratio, mass = hists.get("ratio"), hists.get("mass")
    if ratio is not None:
        for method in ratio.axes["method"]:
            if _entries(total := hist_select(ratio, {"method": method, "channel": sum})) > 0:
                out[f"ditau/{method}/ratio"] = total
                for code in ratio.axes["channel"]:
                    part = hist_select(ratio, {"method": method, "channel": hist.loc(code)})
                    if _entries(part) > 0:
                        out[f"ditau/{method}/ratio_{channel_name(code)}"] = part
    if mass is not None:
        for method in mass.axes["method"]:
            for dataset in _datasets(mass):
                part = hist_select(mass, {"method": method, "dataset": dataset})
                if _entries(part) > 0:
                    out[f"ditau/{method}/mass_{_safe(dataset)}"] = part
    return out


def _finite(value: Any) -> Any:
    """``value`` without the entries that are not finite numbers (e.g. a resolution whose residuals all fell
    outside the histogram): metrics.json leaves out what was not measured, it never writes null."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items() if not (isinstance(v, float) and not math.isfinite(v))}
    return value


_MET_TITLES = {
    "PuppiMETReco": "PUPPI MET (calibrated covariance)",
    "MLMET": "Perceiver MET (calibrated covariance)",
    "file": "the file's MET (its covariance)",
}


def _met_read(output: dict[str, Any], metrics: dict[str, dict[str, Any]]) -> str:
    """Record in ``metrics`` the MET each method read (the one of most of its events) and say it in HTML."""
    read: dict[str, dict[str, int]] = output.get("met_columns", {})
    items = []
    for method, entry in metrics.items():
        if read.get(method):
            column = max(read[method], key=lambda c: read[method][c])
            entry["met"] = column
            items.append(f"{_title(method)}: {_MET_TITLES.get(column, column)}")
    return f'<p class="note">MET read: {"; ".join(items)}.</p>' if items else ""


def _data_section(output: dict[str, Any], outdir: Path) -> TaskReport:
    """The section on collision data: m_ττ distributions, failure fractions, throughput (module docstring)."""
    hists: dict[str, hist.Hist] = output.get("histograms", {})
    counts: dict[str, int] = output.get("events_per_method", {})
    methods = [m for m in DITAU_METHODS.names if counts.get(m, 0) > 0]
    invalid = output.get("events_invalid")
    mass = hists.get("mass")
    summaries, fragment = (
        distributions(
            hist_select(mass, {"dataset": sum}),
            _TITLES,
            outdir,
            "ditau_mass",
            caption="Reconstructed m_ττ per method, all datasets, GeV",
            data=True,
            rebin=_PLOT_REBIN,
        )
        if mass is not None and _datasets(mass)
        else ({}, "")
    )
    metrics: dict[str, dict[str, Any]] = {}
    for method in methods:
        entry: dict[str, Any] = {"n": summaries[method]["n"] if method in summaries else 0}
        entry["n_selected"] = int(counts[method])
        if invalid is not None:
            entry["n_invalid"] = int(invalid)
        failure = _failure_fraction(hists, method)
        if failure is not None:
            entry["failure_fraction"] = failure
        if method in summaries:
            entry["distributions"] = {"mass": summaries[method]}
        metrics[method] = entry
    invalid_note = f" {int(invalid)} event(s) with NaN/inf inputs were left out." if invalid is not None else ""
    text = [
        COLLISION_DATA_NOTE,
        _met_read(output, metrics),
        (
            f'<p class="note">{int(output.get("events_selected", 0))} events with a di-tau pair (eμ, μτh, eτh, '
            f"τhτh, μμ, ee); the visible mass m<sub>vis</sub> is the reference lower bound.{invalid_note}</p>"
        ),
        fragment or "<p>No event had a di-tau pair.</p>",
    ]
    if metrics:
        rows = [
            [_title(m), v["n_selected"], v.get("n_invalid", "–"), v.get("failure_fraction", math.nan)]
            for m, v in metrics.items()
        ]
        text.append(
            html_table(
                ["Method", "Selected events", "Invalid events", "Failure fraction"],
                rows,
                caption=(
                    "Failure fraction: selected events whose status has a failure bit (collinear: no physical "
                    "solution, mass = m_vis; FastMTT: MET tension or bad covariance)"
                ),
            )
        )
    rates = event_rates(counts, output.get("seconds", {}), methods)
    if rates:
        text.append(throughput_table(rates, _TITLES, "m_ττ throughput (selected events per second, per process)"))
    return TaskReport(
        metrics=_finite(metrics),
        throughput={f"ditau/{m}": v for m, v in rates.items()},
        html="\n".join(text),
        root_histograms=_root_histograms(hists),
        histograms={f"ditau/{name}": h for name, h in hists.items()},
    )


def ditau_section(output: dict[str, Any], outdir: Path) -> TaskReport:
    """Metrics (metrics.json ``ditau``), throughput, HTML and histograms from the ditau processor output.

    Only methods that processed at least one selected event appear (module docstring for the keys); collision
    data get distributions instead of truth metrics.
    """
    if from_collision_data(output):
        return _data_section(output, outdir)
    hists: dict[str, hist.Hist] = output.get("histograms", {})
    counts: dict[str, int] = output.get("events_per_method", {})
    seconds: dict[str, float] = output.get("seconds", {})
    methods = [m for m in DITAU_METHODS.names if counts.get(m, 0) > 0]
    metrics = {m: _method_metrics(hists, m, int(counts[m])) for m in methods}
    invalid = output.get("events_invalid")
    if invalid is not None:
        for values in metrics.values():
            values["n_invalid"] = int(invalid)
    rates = event_rates(counts, seconds, methods)
    invalid_note = (
        f" {int(invalid)} event(s) with NaN/inf inputs were left out (no masses, not in any histogram)."
        if invalid is not None
        else ""
    )
    text = [
        (
            f'<p class="note">{int(output.get("events_selected", 0))} events with a di-tau pair (eμ, μτh, eτh, '
            "τhτh, μμ, ee). Residual m<sub>reco</sub>/m<sub>gen</sub> − 1 on events with two generator taus; "
            f"AUC: H→ττ vs Z→ττ datasets, score = mass.{invalid_note}</p>"
        ),
        _met_read(output, metrics),
    ]
    images = []
    ratio = hists.get("ratio")
    if ratio is not None and _entries(ratio) > 0:
        text.append(_channel_table(hists))
        if _drawable(hist_select(ratio, {"method": sum, "channel": sum})):
            images.append(_plot_ratio(ratio, outdir))
    elif methods:
        text.append("<p>No generator taus: no resolution (mass distributions only).</p>")
    else:
        text.append("<p>No event had a di-tau pair.</p>")
    summary = [
        [
            _title(m),
            v.get("n_selected"),
            v.get("n_invalid", "–"),
            v.get("failure_fraction", math.nan),
            v.get("auc_h_vs_z", math.nan),
        ]
        for m, v in metrics.items()
    ]
    if summary:
        text.append(
            html_table(
                ["Method", "Selected events", "Invalid events", "Failure fraction", "AUC H vs Z"],
                summary,
                caption="Per method (AUC absent unless an H and a Z dataset were processed)",
            )
        )
    mass = hists.get("mass")
    if mass is not None:
        images += [
            _plot_mass(mass, d, outdir)
            for d in _datasets(mass)
            if _drawable(hist_select(mass, {"dataset": d, "method": sum}))
        ]
    text += [f'<img src="{name}" alt="{name}">' for name in images]
    if rates:
        text.append(throughput_table(rates, _TITLES, "m_ττ throughput (selected events per second, per process)"))
    return TaskReport(
        metrics=_finite(metrics),
        throughput={f"ditau/{m}": v for m, v in rates.items()},
        html="\n".join(text),
        root_histograms=_root_histograms(hists),
        histograms={f"ditau/{name}": h for name, h in hists.items()},
    )
