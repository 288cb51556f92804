"""Report section of the ``met`` task: metrics, tables and plots from :class:`METProcessor` output.

What it shows depends on the input. In simulation (``GenMET`` present): the residual tables and plots of our
methods and of CMS's MET columns the file carries (``file_met`` = ``MET``/``PFMET``, ``PuppiMET``,
``RawPuppiMET``, the DeepMET tunes...; :data:`coffea_mlreco.met.methods.MET_METHODS` references). On collision
data (:func:`~coffea_mlreco.evaluation.report.from_collision_data`), no truth section: the distributions of MET,
φ and, where CMS stores it, the MET significance per method, marked as data. Both show the distributions, the
event-by-event difference between our PF/PUPPI/DeepMET and CMS's raw PF/raw PUPPI/DeepMET resolution tune where
the file carries both (PFNano), and the PUPPI-weight agreement.

metrics.json: ``met`` holds our methods (DESIGN.md's keys; absent when they did not run, as on plain NanoAOD
without PF candidates), ``met_references`` CMS's columns, by the same keys as the histograms. In simulation each
entry is the residual summary of DESIGN.md; on collision data ``{"n", "distributions": {"met_pt", "met_phi",
"met_significance"}}`` (each :func:`~coffea_mlreco.evaluation.report.distribution_summary`). Where our method and
its CMS counterpart both ran, its entry gets ``vs_cms``: the counterpart's key, ``n``, and the mean, median and
(P84 − P16)/2 of Δp_T = p_T,ours − p_T,CMS (``dpt_*``) and the median of |Δp⃗| (``dvec_median``), GeV.

Numbers are computed from the residual histograms (0.5 GeV bins by default), so they carry the small
binning error described in :mod:`coffea_mlreco.core.metrics`. The response R = Σ p_miss,reco·ê_gen / Σ |p_miss,gen|
per gen-MET bin and overall comes from the processor's exact sums (``response`` in each metrics.json
``met`` entry and its bins). A ratio with a small denominator is noise: R is given (else null, "—" in the tables)
only where its statistical uncertainty σ_R ≈ σ(u∥) / (√n ⟨gen MET⟩) is at most :data:`RESPONSE_MAX_UNCERTAINTY`
(on Drell-Yan → ℓℓ, whose gen MET is a few GeV, the lowest bin's R would otherwise read anything).

When the input carries CMS's own PUPPI weights (``PFCands_puppiWeight``, PFNano), the PUPPI entry also gets
``weight_agreement``: per candidate class (``charged``, ``neutral``)
the number of candidates ``n``, the mean |Δw| ``mean_abs_diff`` (from 0.001 bins), the fractions of
candidates and of Σ p_T with |Δw| < 0.1 (``fraction_within_0p1``, ``pt_fraction_within_0p1``) and the
Pearson correlation ``pearson`` (from the 50×50 2-D histogram), Δw = ours − file's. Throughput is events
per second of the reconstruction step of each method (reading its inputs and computing the MET) summed
over chunks.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import hist
import mplhep as hep
import numpy as np
from matplotlib.colors import LogNorm

from coffea_mlreco.core.metrics import (
    hist_mean,
    hist_pearson,
    hist_select,
    met_bin_label,
    met_method_summary_from_hists,
    met_response_from_hist,
    summarize_residual_hist,
)
from coffea_mlreco.evaluation.report import (
    COLLISION_DATA_NOTE,
    distributions,
    event_rates,
    format_number,
    from_collision_data,
    html_table,
    label_axes,
    new_figure,
    plot_style,
    save_figure,
    throughput_table,
)
from coffea_mlreco.evaluation.tasks import TaskReport
from coffea_mlreco.met.methods import CMS_COUNTERPARTS, MET_METHODS

__all__ = ["RESPONSE_MAX_UNCERTAINTY", "met_section", "puppi_weight_agreement", "vs_cms_summary"]

_TITLES = MET_METHODS.titles
_LEGENDS = MET_METHODS.legends
_DISPLAY_TOP_GEV = 250.0  # where the open top gen-MET bin ends in plots
RESPONSE_MAX_UNCERTAINTY = 0.25
"""Largest statistical uncertainty σ_R ≈ σ(u∥) / (√n ⟨gen MET⟩) with which a response ratio is reported."""
AGREEMENT_THRESHOLD = 0.1
"""|Δw| below which our PUPPI weight counts as agreeing with the file's."""
PUPPI_CLASS_TITLES = {"charged": "Charged (charge ≠ 0)", "neutral": "Neutral (charge = 0)"}


def _short(method: str) -> str:
    return _LEGENDS.get(method, method)


def _methods(output: dict[str, Any]) -> list[str]:
    """The methods and references with events in the distributions, in the axis order."""
    counts = output.get("events_per_method", {})
    return [m for m in output["histograms"]["upar"].axes["method"] if counts.get(m, 0) > 0]


def _truth_methods(hists: dict[str, hist.Hist]) -> list[str]:
    """The methods and references with residuals against GenMET (none on collision data)."""
    upar = hists["upar"]
    return [m for m in upar.axes["method"] if float(hist_select(upar, {"method": m}).sum(flow=True)) > 0]


def _edge_name(edge: float) -> str:
    return "inf" if math.isinf(edge) else f"{edge:g}"


def _root_histograms(hists: dict[str, hist.Hist], truth_methods: list[str], methods: list[str]) -> dict[str, hist.Hist]:
    """1-D/2-D histograms for histograms.root: per method its distributions (``met/<method>/met_pt``...), the
    residuals of ``truth_methods``, the differences to CMS's MET and the PUPPI-weight agreement."""
    out: dict[str, hist.Hist] = {}
    for method in methods:
        for name in _DISTRIBUTIONS:
            if name in hists:
                out[f"met/{method}/{name}"] = hist_select(hists[name], {"method": method})
    if "vs_cms" in hists:
        for method in hists["vs_cms"].axes["method"]:
            if float(hist_select(hists["vs_cms"], {"method": method}).sum(flow=True)) > 0:
                for quantity in ("dpt", "dvec"):
                    out[f"met/{method}/vs_cms_{quantity}"] = hist_select(
                        hists["vs_cms"], {"method": method, "quantity": quantity}
                    )
    for method in truth_methods:
        for name in ("upar", "uperp", "dpx", "dpy"):
            h = hist_select(hists[name], {"method": method})
            out[f"met/{method}/{name}"] = hist_select(h, {"genmet": sum})
            edges = list(h.axes["genmet"].edges)
            bins: list[tuple[float, float, Any]] = [(edges[i], edges[i + 1], i) for i in range(len(edges) - 1)]
            if h.axes["genmet"].traits.overflow:
                bins.append((edges[-1], math.inf, hist.overflow))
            for lo, hi, index in bins:
                out[f"met/{method}/{name}_genmet_{_edge_name(lo)}to{_edge_name(hi)}"] = hist_select(
                    h, {"genmet": index}
                )
        out[f"met/{method}/reco_vs_gen"] = hist_select(hists["reco_vs_gen"], {"method": method})
        if "response" in hists:
            for quantity in ("reco_par", "gen"):
                out[f"met/{method}/response_sum_{quantity}"] = hist_select(
                    hists["response"], {"method": method, "quantity": quantity}
                )
    if _has_puppi_agreement(hists):
        for cls in hists["puppi_weight"].axes["charge"]:
            out[f"met/puppi_weight_{cls}"] = hist_select(hists["puppi_weight"], {"charge": cls})
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
        axes[0].legend(fontsize="small", title=f"last bin: > {summary_top(metrics):g} GeV", title_fontsize="small")
        fig.tight_layout()
        return save_figure(fig, outdir, "met_vs_genmet")


def summary_top(metrics: dict[str, Any]) -> float:
    """Lower edge (GeV) of the last gen-MET bin in a met metrics dict (for plot labels)."""
    for summary in metrics.values():
        if summary["bins"]:
            return float(summary["bins"][-1]["lo"])
    return math.nan


def _guarded_response(response: float, resolution_upar: float | None, n: int, mean_gen: float) -> float | None:
    """``response``, or None where its statistical uncertainty σ(u∥)/(√n ⟨gen MET⟩) exceeds
    :data:`RESPONSE_MAX_UNCERTAINTY` (or cannot be told: no events, undefined resolution)."""
    if n <= 0 or resolution_upar is None or not math.isfinite(resolution_upar) or not mean_gen > 0:
        return None
    uncertainty = resolution_upar / (math.sqrt(n) * mean_gen)
    return response if uncertainty <= RESPONSE_MAX_UNCERTAINTY else None


def _add_response(hists: dict[str, hist.Hist], per_method: dict[str, Any]) -> None:
    """Add ``response`` to each method's summary and to each of its gen-MET bins (None where the ratio's
    uncertainty is too large: :func:`_guarded_response`)."""
    if "response" not in hists:
        return
    for method, summary in per_method.items():
        overall, per_bin = met_response_from_hist(hists["response"], method)
        mean_gen = _mean_genmet(hists, method, summary["bins"])
        total_gen = float(np.nansum(mean_gen * np.array([b["n"] for b in summary["bins"]], dtype=float)))
        summary["response"] = _guarded_response(
            overall, summary["resolution_upar"], summary["n"], total_gen / summary["n"] if summary["n"] else math.nan
        )
        for entry, value, mean in zip(summary["bins"], per_bin, mean_gen, strict=True):
            entry["response"] = _guarded_response(value, entry["resolution_upar"], entry["n"], float(mean))


def _mean_genmet(hists: dict[str, hist.Hist], method: str, bins: list[dict[str, Any]]) -> np.ndarray:
    """Mean gen MET (GeV) in each gen-MET bin, from the exact sums (NaN in empty bins)."""
    # the gen-MET axis has no underflow, so the flow view is the bins then the open top bin (if any)
    sums = np.asarray(
        hist_select(hists["response"], {"method": method, "quantity": "gen"}).values(flow=True), dtype=float
    )
    counts = np.array([b["n"] for b in bins], dtype=float)
    return np.divide(sums, counts, out=np.full_like(sums, np.nan), where=counts > 0)


def _plot_response(hists: dict[str, hist.Hist], metrics: dict[str, Any], outdir: Path) -> str:
    top = _DISPLAY_TOP_GEV
    with plot_style():
        fig, ax = new_figure(figsize=(10, 7.5))
        for method, summary in metrics.items():
            bins = summary["bins"]
            x = _mean_genmet(hists, method, bins)
            lo = np.array([b["lo"] for b in bins], dtype=float)
            hi = np.array([np.nan if b["hi"] is None else b["hi"] for b in bins], dtype=float)
            hi = np.where(np.isnan(hi), np.fmax(x, _DISPLAY_TOP_GEV), hi)
            y = np.array([b["response"] for b in bins], dtype=float)
            xerr = np.nan_to_num(np.clip(np.stack([x - lo, hi - x]), 0.0, None))
            ax.errorbar(x, y, xerr=xerr, fmt="o", label=_short(method))
            top = max(top, float(np.nanmax(hi, initial=0.0)))
        ax.axhline(1.0, color="grey", lw=1, ls="--")
        ax.set_xlim(0, top)
        ax.set_xlabel("Gen MET [GeV] (marker at the bin's mean)")
        ax.set_ylabel(
            r"Response $\langle \vec{p}_{T}^{miss} \cdot \hat{e}_{gen} \rangle / \langle p_{T}^{miss,gen} \rangle$"
        )
        ax.legend(fontsize="small", title=f"last bin: > {summary_top(metrics):g} GeV", title_fontsize="small")
        label_axes(ax)
        return save_figure(fig, outdir, "met_response_vs_genmet")


def _has_puppi_agreement(hists: dict[str, hist.Hist]) -> bool:
    return "puppi_weight" in hists and float(hists["puppi_weight"].sum(flow=True)) > 0


def _fraction_below(h: hist.Hist, threshold: float) -> float:
    """Fraction of a 1-D |Δw| histogram's content in the bins below ``threshold`` (a bin edge)."""
    total = float(np.sum(h.values(flow=True)))
    if total <= 0:
        return math.nan
    below = np.asarray(h.axes[0].edges[1:]) <= threshold + 1e-9
    return float(np.sum(h.values()[below])) / total


def puppi_weight_agreement(hists: dict[str, hist.Hist]) -> dict[str, dict[str, Any]]:
    """Agreement of our PUPPI weights with the file's, per candidate class (keys: module docstring).

    Empty when the processor filled no ``puppi_weight`` histograms (the input has no
    ``PFCands_puppiWeight``, or PUPPI did not run); classes without candidates are left out.
    """
    if not _has_puppi_agreement(hists):
        return {}
    out: dict[str, dict[str, Any]] = {}
    for cls in hists["puppi_weight"].axes["charge"]:
        absdiff = hist_select(hists["puppi_weight_absdiff"], {"charge": cls})
        n = round(float(np.sum(absdiff.values(flow=True))))
        if n == 0:
            continue
        out[cls] = {
            "n": n,
            "mean_abs_diff": hist_mean(absdiff),
            "fraction_within_0p1": _fraction_below(absdiff, AGREEMENT_THRESHOLD),
            "pt_fraction_within_0p1": _fraction_below(
                hist_select(hists["puppi_weight_absdiff_pt"], {"charge": cls}), AGREEMENT_THRESHOLD
            ),
            "pearson": hist_pearson(hist_select(hists["puppi_weight"], {"charge": cls})),
        }
    return out


def _puppi_agreement_table(agreement: dict[str, dict[str, Any]]) -> str:
    rows = [
        [
            PUPPI_CLASS_TITLES.get(cls, cls),
            a["n"],
            format_number(a["mean_abs_diff"], 3),
            format_number(a["fraction_within_0p1"], 3),
            format_number(a["pt_fraction_within_0p1"], 3),
            format_number(a["pearson"], 3),
        ]
        for cls, a in agreement.items()
    ]
    return html_table(
        ["Candidates", "N", "Mean |Δw|", "Fraction |Δw| < 0.1", "p_T-weighted fraction |Δw| < 0.1", "Pearson r"],
        rows,
        caption="PUPPI weights: ours (puppiWeightReco) vs the file's (CMS PFCands_puppiWeight), Δw = ours − file's",
    )


def _plot_puppi_agreement(hists: dict[str, hist.Hist], classes: list[str], outdir: Path) -> str:
    with plot_style():
        fig, axes = new_figure(1, len(classes), figsize=(9 * len(classes), 8))
        for ax, cls in zip(np.atleast_1d(axes), classes, strict=True):
            h = hist_select(hists["puppi_weight"], {"charge": cls})
            artists = hep.hist2dplot(h, ax=ax, norm=LogNorm(), flow="none", cbar=False)
            fig.colorbar(artists.pcolormesh, ax=ax, label="Candidates")
            ax.plot([0, 1], [0, 1], color="red", lw=1, ls="--")
            ax.set_xlabel("PUPPI weight (ours)")
            ax.set_ylabel("PUPPI weight (file, CMS)")
            label_axes(ax, cls)
        fig.tight_layout()
        return save_figure(fig, outdir, "met_puppi_weight_agreement")


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
        med_upar = summarize_residual_hist(hist_select(hists["upar"], {"method": method, "genmet": sum})).median
        med_uperp = summarize_residual_hist(hist_select(hists["uperp"], {"method": method, "genmet": sum})).median
        rows.append(
            [
                _TITLES.get(method, method),
                s["n"],
                s["bias_upar"],
                med_upar,
                s["resolution_upar"],
                s["bias_uperp"],
                med_uperp,
                s["resolution_uperp"],
                s.get("response"),
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
                "Response",
            ],
            rows,
            caption="All events (GeV; the response is a ratio)",
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
                b.get("response"),
            ]
            for b in s["bins"]
        ]
        parts.append(
            html_table(
                ["Gen MET", "Events", "Bias u∥", "Resolution u∥", "Resolution u⊥", "Response"],
                bin_rows,
                caption=f"{_TITLES.get(method, method)}: in bins of gen MET (GeV)",
            )
        )
    return "\n".join(parts)


JSON_METHODS = MET_METHODS.names
"""The MET method keys of metrics.json's ``met`` (DESIGN.md); CMS's columns go to ``met_references``."""

_DISTRIBUTIONS = {
    "met_pt": ("MET (GeV)", 5, True),
    "met_phi": ("MET φ (rad)", 2, False),
    "met_significance": ("MET significance (CMS's, from the MET covariance; dimensionless)", 4, True),
}
"""Distribution histograms of the processor → (table caption, plot rebinning, log scale)."""


def vs_cms_summary(h: hist.Hist, method: str) -> dict[str, Any] | None:
    """Our ``method`` against its CMS counterpart (:data:`~coffea_mlreco.met.methods.CMS_COUNTERPARTS`) from the
    processor's ``vs_cms`` histogram: the counterpart, ``n``, ``dpt_mean``/``dpt_median``/``dpt_width`` (mean,
    median and (P84 − P16)/2 of p_T,ours − p_T,CMS) and ``dvec_median`` (median |p⃗_ours − p⃗_CMS|), GeV; None
    where no event had both."""
    dpt = summarize_residual_hist(hist_select(h, {"method": method, "quantity": "dpt"}))
    if dpt.n == 0:
        return None
    dvec = summarize_residual_hist(hist_select(h, {"method": method, "quantity": "dvec"}))
    return {
        "reference": CMS_COUNTERPARTS[method],
        "n": dpt.n,
        "dpt_mean": dpt.bias,
        "dpt_median": dpt.median,
        "dpt_width": dpt.resolution,
        "dvec_median": dvec.median,
    }


def _vs_cms_table(comparisons: dict[str, dict[str, Any]]) -> str:
    rows = [
        [
            f"{_TITLES[m]} − {_TITLES[c['reference']]}",
            c["n"],
            c["dpt_mean"],
            c["dpt_median"],
            c["dpt_width"],
            c["dvec_median"],
        ]
        for m, c in comparisons.items()
    ]
    return html_table(
        ["Ours − CMS's", "Events", "Mean Δp_T", "Median Δp_T", "(P84 − P16)/2 of Δp_T", "Median |Δp⃗|"],
        rows,
        caption="Our MET against CMS's computed the same way, event by event (GeV)",
    )


def _split(per_method: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(metrics.json ``met``: DESIGN.md's method keys, ``met_references``: CMS's columns)."""
    ours = {m: v for m, v in per_method.items() if m in JSON_METHODS}
    return ours, {m: v for m, v in per_method.items() if m not in JSON_METHODS}


def _truth_part(hists: dict[str, hist.Hist], methods: list[str], outdir: Path) -> tuple[dict[str, Any], list[str]]:
    """Residual summaries (with the guarded response) and the truth tables and plots of ``methods``."""
    per_method = {m: met_method_summary_from_hists(hists["upar"], hists["uperp"], m) for m in methods}
    _add_response(hists, per_method)
    text = [
        (
            '<p class="note">Residuals Δ = p<sub>T</sub><sup>miss,reco</sup> − p<sub>T</sub><sup>miss,gen</sup>, '
            "u∥ along the gen-MET direction and u⊥ across it. Bias = mean, resolution = (P84 − P16)/2, "
            "from 0.5 GeV histograms. Response = ⟨p<sub>T</sub><sup>miss,reco</sup>·ê<sub>gen</sub>⟩ / "
            "⟨p<sub>T</sub><sup>miss,gen</sup>⟩ = 1 + ⟨u∥⟩/⟨gen MET⟩, from exact sums; “—” where its statistical "
            f"uncertainty σ(u∥)/(√n ⟨gen MET⟩) exceeds {RESPONSE_MAX_UNCERTAINTY:g} (a denominator near zero).</p>"
        ),
        _tables(hists, per_method),
    ]
    images = [_plot_residuals(hists, methods, name, outdir) for name in ("upar", "uperp")]
    images.append(_plot_vs_genmet(per_method, outdir))
    if "response" in hists:
        images.append(_plot_response(hists, per_method, outdir))
    images += [_plot_reco_vs_gen(hists, m, outdir) for m in methods]
    text += [f'<img src="{name}" alt="{name}">' for name in images]
    return per_method, text


def _distribution_part(
    hists: dict[str, hist.Hist], outdir: Path, data: bool
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Per method, ``{quantity: summary}`` of the distributions, and their tables and plots."""
    by_method: dict[str, dict[str, Any]] = {}
    text = []
    for name, (caption, rebin, logy) in _DISTRIBUTIONS.items():
        if name not in hists:
            continue
        summaries, fragment = distributions(
            hists[name], _LEGENDS, outdir, name, caption=caption, data=data, rebin=rebin, logy=logy
        )
        text.append(fragment)
        for method, summary in summaries.items():
            by_method.setdefault(method, {})[name] = summary
    return by_method, text


def met_section(output: dict[str, Any], outdir: Path) -> TaskReport:
    """Metrics (metrics.json ``met`` and ``met_references``), throughput, HTML and histograms from the MET
    processor output (see the module docstring)."""
    hists: dict[str, hist.Hist] = output["histograms"]
    data = from_collision_data(output)
    methods = _methods(output)
    truth_methods = _truth_methods(hists)
    text = [COLLISION_DATA_NOTE] if data else []
    invalid = int(output.get("events_invalid", 0))
    if invalid:
        text.append(
            f'<p class="note">{invalid} event(s) with NaN/inf inputs were flagged invalid (their MET '
            "columns are NaN, <code>valid</code> False) and left out of the figures below.</p>"
        )
    if not methods:
        text.append("<p>No events were processed.</p>")
    if not any(m in JSON_METHODS for m in methods) and methods:
        text.append(
            '<p class="note">Our MET reconstructions need PF candidates (PFNano\'s <code>PFCands</code>), which '
            "this input does not carry: only CMS's own MET columns are shown.</p>"
        )
    per_method: dict[str, Any]
    if truth_methods and not data:
        per_method, truth_text = _truth_part(hists, truth_methods, outdir)
        text += truth_text
    else:
        per_method = {}
    by_method, distribution_text = _distribution_part(hists, outdir, data)
    if distribution_text:
        text.append("<h3>Distributions</h3>")
        text += distribution_text
    if data or not truth_methods:
        per_method = {
            m: {"n": int(output.get("events_per_method", {}).get(m, 0)), "distributions": by_method.get(m, {})}
            for m in methods
        }
    comparisons = {
        m: c for m in CMS_COUNTERPARTS if "vs_cms" in hists and (c := vs_cms_summary(hists["vs_cms"], m)) is not None
    }
    for method, comparison in comparisons.items():
        if method in per_method:
            per_method[method]["vs_cms"] = comparison
    if comparisons:
        text.append(_vs_cms_table(comparisons))
    agreement = puppi_weight_agreement(hists)
    if agreement and "puppi" in per_method:
        per_method["puppi"]["weight_agreement"] = agreement
    if agreement:
        text.append(_puppi_agreement_table(agreement))
        image = _plot_puppi_agreement(hists, list(agreement), outdir)
        text.append(f'<img src="{image}" alt="{image}">')
    seconds = output.get("seconds", {})
    counts = output.get("events_per_method", {})
    rates = event_rates(counts, seconds, [m for m in methods if m in JSON_METHODS])
    if rates:
        text.append(
            throughput_table(
                rates, _TITLES, "Reconstruction throughput (reading inputs and computing MET, per process)"
            )
        )
    ours, references = _split(per_method)
    return TaskReport(
        metrics=ours,
        throughput={f"met/{m}": v for m, v in rates.items()},
        html="\n".join(text),
        root_histograms=_root_histograms(hists, truth_methods if not data else [], methods),
        histograms={f"met/{name}": h for name, h in hists.items()},
        more_metrics={"met_references": references} if references else {},
    )
