"""Report section of the ``ttbar`` task: jet-parton assignment efficiencies, tables and plots.

Definitions follow DESIGN.md (the SPANet convention; semileptonic tt̄ in Fenton, Shmakov et al.,
"Reconstruction of Unstable Heavy Particles Using Deep Symmetry-Preserving Attention Networks",
arXiv:2309.01886). A top is *reconstructable* when its partons match distinct selected jets (ΔR < 0.4).

- "All events": selected events with at least one reconstructable top; an event is correct when every
  reconstructable top in it is correctly assigned (q1 ↔ q2 symmetric). Events without a reconstructable
  top count in the event fraction only.
- "Fully reconstructable events": both tops reconstructable; correct when both are correct.
- t_had (t_lep) efficiency: among events whose t_had (t_lep) is reconstructable (within the column group),
  the fraction with a correct t_had (t_lep) assignment.

Rows are the ``njets`` categories of the outcome histogram (4, 5, 6, the last one meaning ≥ 6 and labelled
``"6+"``) and ``"all"``. Efficiencies are fractions in [0, 1]; uncertainties (HTML only) are binomial,
sqrt(p(1 − p)/n). An efficiency whose denominator is empty is *omitted* from metrics.json (the key is
absent), never written as NaN or null.

histograms.root holds, per method, ``ttbar/<m>/outcome_vs_njets`` (N_jets × outcome code
c = 8·thad_reco + 4·thad_ok + 2·tlep_reco + tlep_ok, the outcome histogram without loss) and
``ttbar/<m>/efficiency_{event,event_reconstructable,thad,tlep}`` vs N_jets (variance = binomial error²),
plus the SPANet probability distributions and the ν η residuals. Throughput is selected events per second
of each method's assignment step, summed over chunks; it is absent when the output has no ``"seconds"``
(a dask-awkward run). Events whose inputs hold NaN/inf (``"events_invalid"``) are left out of every
histogram by the processor; the section states their number.

Reconstructed masses: from the processor's ``mass`` histogram (per method, the hadronic top mass m(b + q1 + q2),
``t_had``, and the hadronic W mass m(q1 + q2), ``w_had``, of the assigned jets, GeV), a table (events, mean,
median, P16, P84) and an overlay plot per quantity (:func:`coffea_mlreco.evaluation.report.distributions`);
histograms.root holds ``ttbar/<m>/mass_t_had`` and ``ttbar/<m>/mass_w_had``. On simulation they close the section
and add nothing to metrics.json.

Collision data (:func:`~coffea_mlreco.evaluation.report.from_collision_data`: the processor read no generator
branch): no truth, so no efficiency, SPANet-probability or ν-η table or plot; the section shows the number of
selected events, the mass distributions and the throughput, and metrics.json ``ttbar`` is ``{METHOD: {"n":
selected events, "distributions": {"m_thad": summary, "m_whad": summary}}}`` (summary:
:func:`~coffea_mlreco.evaluation.report.distribution_summary`, GeV) for every method that ran, ``distributions``
absent when no event was selected.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import hist
import mplhep as hep
import numpy as np

from coffea_mlreco.core.metrics import hist_select, summarize_residual_hist
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
from coffea_mlreco.ttbar.methods import TTBAR_METHODS

__all__ = [
    "AssignmentRow",
    "Efficiency",
    "assignment_efficiencies",
    "assignment_table",
    "ttbar_section",
]

_TITLES = TTBAR_METHODS.titles
_ORDER = TTBAR_METHODS.names[::-1]  # display order, the networks first; unknown methods follow
_FLAGS = ("thad_reco", "thad_ok", "tlep_reco", "tlep_ok")
_REFERENCE = "SPANet 76 %, permutation DNN 68 %, KLFitter 42 %"
_PROBABILITIES = {  # SPANet histogram: its split axis and {value: legend label}
    "assignment_prob": ("correct", {1: "correct", 0: "wrong"}),
    "detection_prob": ("reconstructable", {1: "reconstructable", 0: "not reconstructable"}),
}
_EFFICIENCIES = {"event": "event", "event_reconstructable": "event_full", "thad": "thad", "tlep": "tlep"}
_MASSES = {  # quantity of the mass histogram: (metrics.json key, caption)
    "t_had": ("m_thad", "Hadronic top mass m(b + q1 + q2) of the assigned jets, GeV"),
    "w_had": ("m_whad", "Hadronic W mass m(q1 + q2) of the assigned jets, GeV"),
}


class Efficiency(NamedTuple):
    """``passed`` out of ``total`` events; ``value`` and binomial ``error`` are NaN when ``total`` is 0."""

    passed: float
    total: float

    @property
    def value(self) -> float:
        return self.passed / self.total if self.total > 0 else math.nan

    @property
    def error(self) -> float:
        p = self.value
        return math.sqrt(p * (1.0 - p) / self.total) if self.total > 0 else math.nan


class AssignmentRow(NamedTuple):
    """One N_jets row of the assignment table (event counts, efficiencies as in the module docstring)."""

    n: float
    n_full: float
    event: Efficiency
    thad: Efficiency
    tlep: Efficiency
    event_full: Efficiency
    thad_full: Efficiency
    tlep_full: Efficiency


def _counts(outcome: hist.Hist, method: str) -> tuple[list[int], np.ndarray]:
    """Sorted N_jets values and counts of shape (n_njets, 2, 2, 2, 2), flag axes in ``_FLAGS`` order,
    index = flag value (flow bins left out)."""
    h = hist_select(outcome, {"method": method})
    names = [ax.name for ax in h.axes]
    values = np.transpose(np.asarray(h.values(), dtype=float), [names.index(n) for n in ("njets", *_FLAGS)])
    for k, flag in enumerate(_FLAGS, start=1):
        values = np.take(values, [h.axes[flag].index(0), h.axes[flag].index(1)], axis=k)
    njets = [int(v) for v in h.axes["njets"]]
    order = np.argsort(njets)
    return [njets[i] for i in order], values[order]


def _row(c: np.ndarray) -> AssignmentRow:
    """Row from counts ``c[thad_reco, thad_ok, tlep_reco, tlep_ok]``."""
    had, lep, full = c.sum(axis=(2, 3)), c.sum(axis=(0, 1)), c[1, :, 1, :]
    any_reco = c.sum() - c[0, :, 0, :].sum()
    correct = c[1, 1, 1, 1] + c[1, 1, 0, :].sum() + c[0, :, 1, 1].sum()
    return AssignmentRow(
        n=float(c.sum()),
        n_full=float(full.sum()),
        event=Efficiency(float(correct), float(any_reco)),
        thad=Efficiency(float(had[1, 1]), float(had[1].sum())),
        tlep=Efficiency(float(lep[1, 1]), float(lep[1].sum())),
        event_full=Efficiency(float(full[1, 1]), float(full.sum())),
        thad_full=Efficiency(float(full[1, :].sum()), float(full.sum())),
        tlep_full=Efficiency(float(full[:, 1].sum()), float(full.sum())),
    )


def _row_key(njets: int, last: int) -> str:
    return f"{njets}+" if njets == last else str(njets)


def _row_label(key: str) -> str:
    """Display label of a row key: ``"6+"`` → ``"≥ 6"``, ``"all"`` → ``"All"``."""
    return "All" if key == "all" else f"≥ {key[:-1]}" if key.endswith("+") else key


def assignment_table(outcome: hist.Hist, method: str) -> dict[str, AssignmentRow]:
    """Rows ``"4"``, ``"5"``, ``"6+"`` (the last N_jets category is open) and ``"all"`` for ``method``."""
    njets, counts = _counts(outcome, method)
    rows = {_row_key(n, njets[-1]): _row(counts[i]) for i, n in enumerate(njets)}
    rows["all"] = _row(counts.sum(axis=0))
    return rows


def assignment_efficiencies(outcome: hist.Hist, methods: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """metrics.json ``ttbar`` entries ``{METHOD: {"event_efficiency": {row: f}, "event_efficiency_reconstructable":
    {row: f}, "thad_efficiency", "tlep_efficiency", "n"}}`` from the outcome histogram.

    ``methods`` defaults to every method with entries; a method without entries is left out. ``n`` is the
    number of selected events of the method; efficiencies with an empty denominator are omitted.
    """
    chosen = list(outcome.axes["method"]) if methods is None else list(methods)
    out: dict[str, dict[str, Any]] = {}
    for method in chosen:
        rows = assignment_table(outcome, method)
        total = rows["all"]
        if total.n > 0:
            out[method] = {
                "event_efficiency": _defined({k: r.event for k, r in rows.items()}),
                "event_efficiency_reconstructable": _defined({k: r.event_full for k, r in rows.items()}),
                **{f"{t}_efficiency": v for t, v in _defined({"thad": total.thad, "tlep": total.tlep}).items()},
                "n": round(total.n),
            }
    return out


def _defined(efficiencies: dict[str, Efficiency]) -> dict[str, float]:
    return {k: e.value for k, e in efficiencies.items() if e.total > 0}


def _title(method: str) -> str:
    return _TITLES.get(method, method)


def _pct(eff: Efficiency) -> str:
    return "—" if eff.total <= 0 else f"{100 * eff.value:.1f} ± {100 * eff.error:.1f}"


def _method_table(method: str, rows: dict[str, AssignmentRow]) -> str:
    n_all = rows["all"].n
    head = (
        '<tr><th rowspan="2">N<sub>jets</sub></th><th rowspan="2">Event fraction</th>'
        '<th colspan="3">All events</th><th colspan="4">Fully reconstructable events</th></tr>\n'
        "<tr><th>Event</th><th>t<sub>had</sub></th><th>t<sub>lep</sub></th>"
        "<th>Fraction</th><th>Event</th><th>t<sub>had</sub></th><th>t<sub>lep</sub></th></tr>"
    )
    body = []
    for key, r in rows.items():
        cells = [_row_label(key), f"{100 * r.n / n_all:.1f}", _pct(r.event), _pct(r.thad), _pct(r.tlep)]
        cells += [f"{100 * r.n_full / n_all:.1f}", _pct(r.event_full), _pct(r.thad_full), _pct(r.tlep_full)]
        body.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    caption = f"{_title(method)}: {round(n_all)} selected events; efficiencies and fractions in %"
    return f"<table>\n<caption>{html.escape(caption)}</caption>\n{head}\n" + "\n".join(body) + "\n</table>"


def _comparison(tables: dict[str, dict[str, AssignmentRow]]) -> str:
    ours = ", ".join(f"{_title(m)} {_pct(rows['all'].event)} %" for m, rows in tables.items())
    return (
        f"<p>Event efficiency, all events, all N<sub>jets</sub> (this run): {html.escape(ours)}.<br>"
        f'<span class="note">Reference, not ours: the Spa-Net paper (Fenton, Shmakov et al., '
        f"arXiv:2309.01886; semileptonic tt̄, Delphes, all events) quotes {_REFERENCE}.</span></p>"
    )


def _plot_efficiency_vs_njets(tables: dict[str, dict[str, AssignmentRow]], outdir: Path) -> str:
    with plot_style():
        fig, axes = new_figure(1, 2, figsize=(18, 7.5))
        for ax, attr, title in zip(axes, ("event", "event_full"), ("All events", "Fully reconstructable"), strict=True):
            keys: list[str] = []
            for i, (method, rows) in enumerate(tables.items()):
                keys = [k for k in rows if k != "all"]
                points = [(j, getattr(rows[k], attr)) for j, k in enumerate(keys) if getattr(rows[k], attr).total > 0]
                if points:
                    x = [j + 0.08 * (i - (len(tables) - 1) / 2) for j, _ in points]
                    y, yerr = [e.value for _, e in points], [e.error for _, e in points]
                    ax.errorbar(x, y, yerr=yerr, fmt="o", label=_title(method))
            ax.set_xticks(range(len(keys)), [_row_label(k) for k in keys])
            ax.set_xlim(-0.5, len(keys) - 0.5)
            ax.set_ylim(0, 1.25)  # room for the legend
            ax.set_xlabel(r"$N_\mathrm{jets}$")
            ax.set_ylabel("Event efficiency")
            _legend(ax)
            label_axes(ax, title)
        fig.tight_layout()
        return save_figure(fig, outdir, "ttbar_efficiency_vs_njets")


def _legend(ax: Any) -> None:
    """A legend where something was drawn (matplotlib warns for an empty one)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")


def _nonempty(h: hist.Hist | None) -> bool:
    return h is not None and float(np.sum(h.values(flow=True))) > 0


def _probability_parts(h: hist.Hist, name: str) -> list[tuple[str, str, hist.Hist]]:
    """Non-empty (top, label, 1-D histogram) slices of a SPANet probability histogram."""
    flag, labels = _PROBABILITIES[name]
    parts = [
        (top, label, hist_select(h, {"top": top, flag: hist.loc(v)}))
        for top in ("t_had", "t_lep")
        for v, label in labels.items()
    ]
    return [part for part in parts if _nonempty(part[2])]


def _plot_probability(h: hist.Hist, name: str, outdir: Path) -> str:
    parts = _probability_parts(h, name)
    with plot_style():
        fig, axes = new_figure(1, 2, figsize=(18, 7.5))
        for ax, top in zip(axes, ("t_had", "t_lep"), strict=True):
            for label, part in ((lab, p) for t, lab, p in parts if t == top):
                hep.histplot(part, ax=ax, density=True, label=label, flow="none", yerr=False)
            ax.set_ylabel("Normalised")
            ax.set_ylim(0, 1.3 * ax.get_ylim()[1])
            _legend(ax)
            label_axes(ax, f"SPANet, {top.replace('_', ' ')}")
        fig.tight_layout()
        return save_figure(fig, outdir, f"ttbar_{name}")


def _nu_eta(h: hist.Hist, outdir: Path) -> tuple[str, str]:
    """ν η residual plot (normalised, per method) and its bias/resolution table."""
    rows = []
    with plot_style():
        fig, ax = new_figure(figsize=(9, 7))
        for method in h.axes["method"]:
            part = hist_select(h, {"method": method})
            if not _nonempty(part):
                continue
            s = summarize_residual_hist(part)
            rows.append([_title(method), s.n, s.bias, s.median, s.resolution])
            label = f"{_title(method)}: bias {s.bias:.2f}, σ {s.resolution:.2f}"
            hep.histplot(part, ax=ax, density=True, flow="none", yerr=False, label=label)
        ax.set_ylabel("Normalised")
        ax.set_ylim(0, 1.3 * ax.get_ylim()[1])
        ax.legend(fontsize="x-small")
        label_axes(ax)
        image = save_figure(fig, outdir, "ttbar_nu_eta_residual")
    table = html_table(
        ["Method", "Events", "Bias (mean)", "Median", "Resolution"],
        rows,
        caption="Neutrino η residual, reco − gen (resolution = (P84 − P16)/2)",
    )
    return image, table


def _efficiency_hist(njets: list[int], rows: dict[str, AssignmentRow], attr: str) -> hist.Hist:
    h = hist.Hist(
        hist.axis.Integer(njets[0], njets[-1] + 1, name="njets", label="N_jets (last bin: at least)"),
        storage=hist.storage.Weight(),
    )
    for n, row in zip(njets, list(rows.values())[:-1], strict=True):
        eff: Efficiency = getattr(row, attr)
        if eff.total > 0:
            h.view().value[n - njets[0]], h.view().variance[n - njets[0]] = eff.value, eff.error**2
    return h


def _root_histograms(hists: dict[str, hist.Hist], tables: dict[str, dict[str, AssignmentRow]]) -> dict[str, hist.Hist]:
    out: dict[str, hist.Hist] = {}
    for method, rows in tables.items():
        njets, counts = _counts(hists["outcome"], method)
        codes: hist.Hist = hist.Hist(
            hist.axis.Integer(njets[0], njets[-1] + 1, name="njets", label="N_jets"),
            hist.axis.Integer(0, 16, name="outcome", label="8 thad_reco + 4 thad_ok + 2 tlep_reco + tlep_ok"),
        )
        codes.view()[[n - njets[0] for n in njets]] = counts.reshape(len(njets), 16)
        out[f"ttbar/{method}/outcome_vs_njets"] = codes
        for kind, attr in _EFFICIENCIES.items():
            out[f"ttbar/{method}/efficiency_{kind}"] = _efficiency_hist(njets, rows, attr)
    for name in _PROBABILITIES:
        for top, label, part in _probability_parts(hists[name], name) if name in hists else []:
            out[f"ttbar/spanet/{name}_{top}_{label.replace(' ', '_')}"] = part
    if "nu_eta_residual" in hists:
        for method in hists["nu_eta_residual"].axes["method"]:
            if _nonempty(part := hist_select(hists["nu_eta_residual"], {"method": method})):
                out[f"ttbar/{method}/nu_eta_residual"] = part
    if "mass" in hists:
        for method in hists["mass"].axes["method"]:
            for quantity in _MASSES:
                if _nonempty(part := hist_select(hists["mass"], {"method": method, "quantity": quantity})):
                    out[f"ttbar/{method}/mass_{quantity}"] = part
    return out


def _mass_distributions(
    mass: hist.Hist | None, outdir: Path, data: bool
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Per method with entries ``{"m_thad": summary, "m_whad": summary}`` and the HTML (table and plot per
    quantity) from the mass histogram; nothing when it is absent or empty."""
    summaries: dict[str, dict[str, Any]] = {}
    text: list[str] = []
    if mass is None:
        return summaries, text
    for quantity, (key, caption) in _MASSES.items():
        found, fragment = distributions(
            hist_select(mass, {"quantity": quantity}),
            _TITLES,
            outdir,
            f"ttbar_mass_{quantity}",
            caption=caption,
            data=data,
            rebin=5,
        )
        for method, summary in found.items():
            summaries.setdefault(method, {})[key] = summary
        if fragment:
            text.append(fragment)
    return summaries, text


def _data_section(output: dict[str, Any], outdir: Path) -> TaskReport:
    """The section on collision data: selected events, mass distributions, throughput (module docstring)."""
    hists: dict[str, hist.Hist] = output.get("histograms", {})
    counts = output.get("events_per_method", {})
    methods = sorted(counts, key=lambda m: (*_ORDER, m).index(m))
    rates = event_rates(counts, output.get("seconds", {}), methods)
    selected = int(output.get("events_selected", 0))
    invalid = int(output.get("events_invalid", 0))
    summaries, fragments = _mass_distributions(hists.get("mass"), outdir, data=True)
    metrics: dict[str, dict[str, Any]] = {}
    for method in methods:
        metrics[method] = {"n": int(counts.get(method, 0))}
        if method in summaries:
            metrics[method]["distributions"] = summaries[method]
    text = [
        COLLISION_DATA_NOTE,
        (
            f'<p class="note">{selected} events selected (one lepton, ≥ 4 jets); '
            f"{invalid} event{'' if invalid == 1 else 's'} with NaN/inf inputs left out. Masses of the jets each "
            "method assigns to the hadronic top (b, q1, q2) and W (q1, q2).</p>"
        ),
    ]
    text += fragments or ["<p>No event passed the selection: no mass distribution.</p>"]
    if rates:
        text.append(throughput_table(rates, _TITLES, "Assignment throughput (selected events per second, per process)"))
    return TaskReport(
        metrics=metrics,
        throughput={f"ttbar/{m}": v for m, v in rates.items()},
        html="\n".join(text),
        root_histograms=_root_histograms(hists, {}),
        histograms={f"ttbar/{name}": h for name, h in hists.items()},
    )


def ttbar_section(output: dict[str, Any], outdir: Path) -> TaskReport:
    """Metrics (metrics.json ``ttbar``), throughput, HTML and histograms from the ttbar processor output.

    Only methods that processed at least one selected event appear (on collision data: every method that ran);
    optional histograms that are absent or empty are skipped (no plot, no table, no ROOT entry).
    """
    hists: dict[str, hist.Hist] = output.get("histograms", {})
    counts = output.get("events_per_method", {})
    if from_collision_data(output):
        return _data_section(output, outdir)
    outcome = hists.get("outcome")
    known = list(outcome.axes["method"]) if outcome is not None else []
    methods = [m for m in sorted(known, key=lambda m: (*_ORDER, m).index(m)) if counts.get(m, 0) > 0]
    metrics = assignment_efficiencies(outcome, methods) if outcome is not None else {}
    tables = {m: assignment_table(outcome, m) for m in metrics} if outcome is not None else {}
    seconds = output.get("seconds", {})
    rates = event_rates(counts, seconds, methods)
    invalid = int(output.get("events_invalid", 0))
    text = [
        (
            f'<p class="note">{int(output.get("events_selected", 0))} events selected (one lepton, ≥ 4 jets); '
            f"{invalid} event{'' if invalid == 1 else 's'} with NaN/inf inputs left out. "
            "A top is reconstructable when its partons match distinct jets (ΔR &lt; 0.4). “All events”: events "
            "with at least one reconstructable top, correct when every reconstructable top is; uncertainties "
            "binomial.</p>"
        )
    ]
    images = []
    if not tables:
        text.append("<p>No events were processed by an assignment method.</p>")
    else:
        text += [_method_table(m, rows) for m, rows in tables.items()]
        text.append(_comparison(tables))
        images.append(_plot_efficiency_vs_njets(tables, outdir))
    images += [_plot_probability(hists[name], name, outdir) for name in _PROBABILITIES if _nonempty(hists.get(name))]
    if _nonempty(hists.get("nu_eta_residual")):
        image, table = _nu_eta(hists["nu_eta_residual"], outdir)
        text.append(table)
        images.append(image)
    text += [f'<img src="{name}" alt="{name}">' for name in images]
    text += _mass_distributions(hists.get("mass"), outdir, data=False)[1]
    if rates:
        text.append(throughput_table(rates, _TITLES, "Assignment throughput (selected events per second, per process)"))
    return TaskReport(
        metrics=metrics,
        throughput={f"ttbar/{m}": v for m, v in rates.items()},
        html="\n".join(text),
        root_histograms=_root_histograms(hists, tables) if outcome is not None else {},
        histograms={f"ttbar/{name}": h for name, h in hists.items()},
    )
