"""Report section of the ``met`` task: metrics, tables and plots from :class:`METProcessor` output.

Numbers are computed from the residual histograms (0.5 GeV bins by default), so they carry the small
binning error described in :mod:`coffea_mlreco.metrics`. Throughput is events per second of the
reconstruction step of each method (reading its inputs and computing the MET) summed over chunks.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import hist
import mplhep as hep
import numpy as np

from coffea_mlreco.evaluation.report import html_table, label_axes, new_figure, plot_style, save_figure
from coffea_mlreco.evaluation.tasks import TaskReport
from coffea_mlreco.metrics import (
    hist_select,
    met_bin_label,
    met_method_summary_from_hists,
    summarize_residual_hist,
)

__all__ = ["METHOD_TITLES", "met_section"]

METHOD_TITLES = {
    "pf": "PF MET (from PF candidates)",
    "file_met": "MET stored in the file",
    "puppi": "PUPPI MET",
    "deepmet": "DeepMET",
    "perceiver": "Perceiver MET",
}
METHOD_SHORT = {
    "pf": "PF MET",
    "file_met": "MET in file",
    "puppi": "PUPPI MET",
    "deepmet": "DeepMET",
    "perceiver": "Perceiver",
}
_DISPLAY_TOP_GEV = 250.0  # where the open top gen-MET bin ends in plots


def _short(method: str) -> str:
    return METHOD_SHORT.get(method, method)


def _methods(output: dict[str, Any]) -> list[str]:
    counts = output.get("events_per_method", {})
    return [m for m in output["histograms"]["upar"].axes["method"] if counts.get(m, 0) > 0]


def _edge_name(edge: float) -> str:
    return "inf" if math.isinf(edge) else f"{edge:g}"


def _root_histograms(hists: dict[str, hist.Hist], methods: list[str]) -> dict[str, hist.Hist]:
    out: dict[str, hist.Hist] = {}
    for method in methods:
        for name in ("upar", "uperp", "dpx", "dpy"):
            h = hist_select(hists[name], {"method": method})
            out[f"met/{method}/{name}"] = hist_select(h, {"genmet": sum})
            edges = list(h.axes["genmet"].edges)
            bins: list[tuple[float, float, Any]] = [
                (edges[i], edges[i + 1], i) for i in range(len(edges) - 1)
            ]
            if h.axes["genmet"].traits.overflow:
                bins.append((edges[-1], math.inf, hist.overflow))
            for lo, hi, index in bins:
                out[f"met/{method}/{name}_genmet_{_edge_name(lo)}to{_edge_name(hi)}"] = hist_select(
                    h, {"genmet": index}
                )
        out[f"met/{method}/reco_vs_gen"] = hist_select(hists["reco_vs_gen"], {"method": method})
    return out


def _plot_residuals(hists: dict[str, hist.Hist], methods: list[str], name: str, outdir: Path) -> str:
    with plot_style():
        fig, ax = new_figure(figsize=(9, 7))
        for method in methods:
            h = hist_select(hists[name], {"method": method, "genmet": sum, "residual": hist.rebin(8)})
            hep.histplot(h, ax=ax, label=_short(method), flow="none", yerr=False)
        ax.set_xlim(-150, 150)
        ax.set_ylabel("Events / 4 GeV")
        ax.legend(fontsize="small", title="all gen MET", title_fontsize="small")
        label_axes(ax)
        return save_figure(fig, outdir, f"met_{name}")


def _bin_points(bins: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    lo = np.array([b["lo"] for b in bins], dtype=float)
    hi = np.array([_DISPLAY_TOP_GEV if b["hi"] is None else b["hi"] for b in bins], dtype=float)
    return (lo + hi) / 2, (hi - lo) / 2


def _plot_vs_genmet(metrics: dict[str, Any], outdir: Path) -> str:
    panels = [
        ("bias_upar", r"Bias of $u_{\parallel}$ [GeV]"),
        ("resolution_upar", r"Resolution of $u_{\parallel}$ [GeV]"),
        ("resolution_uperp", r"Resolution of $u_{\perp}$ [GeV]"),
    ]
    with plot_style():
        fig, axes = new_figure(1, 3, figsize=(24, 7.5))
        for ax, (key, ylabel) in zip(axes, panels, strict=True):
            for method, summary in metrics.items():
                x, xerr = _bin_points(summary["bins"])
                y = np.array([np.nan if b[key] is None else b[key] for b in summary["bins"]], dtype=float)
                ax.errorbar(x, y, xerr=xerr, fmt="o", label=_short(method))
            if key.startswith("bias"):
                ax.axhline(0.0, color="grey", lw=1, ls="--")
            ax.set_xlabel("Gen MET [GeV]")
            ax.set_ylabel(ylabel)
            ax.set_xlim(0, _DISPLAY_TOP_GEV)
            label_axes(ax)
        axes[0].legend(
            fontsize="small", title=f"last bin: > {summary_top(metrics):g} GeV", title_fontsize="small"
        )
        fig.tight_layout()
        return save_figure(fig, outdir, "met_vs_genmet")


def summary_top(metrics: dict[str, Any]) -> float:
    """Lower edge (GeV) of the last gen-MET bin in a met metrics dict (for plot labels)."""
    for summary in metrics.values():
        if summary["bins"]:
            return float(summary["bins"][-1]["lo"])
    return math.nan


def _plot_reco_vs_gen(hists: dict[str, hist.Hist], method: str, outdir: Path) -> str:
    with plot_style():
        fig, ax = new_figure(figsize=(9, 8))
        h = hist_select(hists["reco_vs_gen"], {"method": method, "gen": hist.rebin(5), "reco": hist.rebin(5)})
        artists = hep.hist2dplot(h, ax=ax, cmin=1, flow="none", cbar=False)
        fig.colorbar(artists.pcolormesh, ax=ax, label="Events")
        top = h.axes["gen"].edges[-1]
        ax.plot([0, top], [0, top], color="red", lw=1, ls="--")
        ax.set_xlabel("Gen MET [GeV]")
        ax.set_ylabel(f"{_short(method)} [GeV]")
        label_axes(ax, _short(method))
        return save_figure(fig, outdir, f"met_reco_vs_gen_{method}")


def _tables(hists: dict[str, hist.Hist], metrics: dict[str, Any]) -> str:
    rows = []
    for method, s in metrics.items():
        med_upar = summarize_residual_hist(
            hist_select(hists["upar"], {"method": method, "genmet": sum})
        ).median
        med_uperp = summarize_residual_hist(
            hist_select(hists["uperp"], {"method": method, "genmet": sum})
        ).median
        rows.append(
            [
                METHOD_TITLES.get(method, method),
                s["n"],
                s["bias_upar"],
                med_upar,
                s["resolution_upar"],
                s["bias_uperp"],
                med_uperp,
                s["resolution_uperp"],
            ]
        )
    parts = [
        html_table(
            [
                "Method",
                "Events",
                "Bias u∥",
                "Median u∥",
                "Resolution u∥",
                "Bias u⊥",
                "Median u⊥",
                "Resolution u⊥",
            ],
            rows,
            caption="All events (GeV)",
        )
    ]
    for method, s in metrics.items():
        bin_rows = [
            [
                met_bin_label(b["lo"], math.inf if b["hi"] is None else b["hi"]),
                b["n"],
                b["bias_upar"],
                b["resolution_upar"],
                b["resolution_uperp"],
            ]
            for b in s["bins"]
        ]
        parts.append(
            html_table(
                ["Gen MET", "Events", "Bias u∥", "Resolution u∥", "Resolution u⊥"],
                bin_rows,
                caption=f"{METHOD_TITLES.get(method, method)}: in bins of gen MET (GeV)",
            )
        )
    return "\n".join(parts)


JSON_METHODS = ("pf", "puppi", "deepmet", "perceiver")
"""The MET method keys of metrics.json (DESIGN.md); the HTML report also shows the file's own MET."""


def _json_view(per_method: dict[str, Any]) -> dict[str, Any]:
    """metrics.json keys: DESIGN.md's methods only. Where PF MET could not be recomputed (real NanoAOD has
    no PF candidates), ``pf`` is the file's ``MET``, which in CMS NanoAOD is the PF MET."""
    out = {m: v for m, v in per_method.items() if m in JSON_METHODS}
    if "pf" not in out and "file_met" in per_method:
        out["pf"] = per_method["file_met"]
    return out


def met_section(output: dict[str, Any], outdir: Path) -> TaskReport:
    """Metrics (metrics.json ``met``), throughput, HTML and histograms from the MET processor output.

    Only methods that processed at least one event appear. metrics.json holds DESIGN.md's method keys
    (see `_json_view`); the HTML tables and the histograms also show the file's own MET (``file_met``).
    """
    hists: dict[str, hist.Hist] = output["histograms"]
    methods = _methods(output)
    per_method = {m: met_method_summary_from_hists(hists["upar"], hists["uperp"], m) for m in methods}
    seconds = output.get("seconds", {})
    counts = output.get("events_per_method", {})
    rates = {m: counts[m] / seconds[m] for m in methods if seconds.get(m, 0.0) > 0.0}
    throughput = {f"met/{m}": v for m, v in _json_view(rates).items()}
    text = [
        '<p class="note">Residuals Δ = p<sub>T</sub><sup>miss,reco</sup> − p<sub>T</sub><sup>miss,gen</sup>, '
        "u∥ along the gen-MET direction and u⊥ across it. Bias = mean, resolution = (P84 − P16)/2, "
        "from 0.5 GeV histograms.</p>"
    ]
    if not methods:
        text.append("<p>No events were processed.</p>")
    else:
        text.append(_tables(hists, per_method))
        images = [_plot_residuals(hists, methods, name, outdir) for name in ("upar", "uperp")]
        images.append(_plot_vs_genmet(per_method, outdir))
        images += [_plot_reco_vs_gen(hists, m, outdir) for m in methods]
        text += [f'<img src="{name}" alt="{name}">' for name in images]
    if rates:
        text.append(
            html_table(
                ["Method", "Events / s"],
                [[METHOD_TITLES.get(m, m), f"{v:,.0f}"] for m, v in rates.items()],
                caption="Reconstruction throughput (reading inputs and computing MET, per process)",
            )
        )
    return TaskReport(
        metrics=_json_view(per_method),
        throughput=throughput,
        html="\n".join(text),
        root_histograms=_root_histograms(hists, methods),
        histograms={f"met/{name}": h for name, h in hists.items()},
    )
