"""Report section of the ``mlpf`` task: MLPF vs rule-based PF per particle class, jets and MET.

Reads the histograms of `coffea_mlreco.processors.mlpf.MLPFProcessor`. Definitions
(`coffea_mlreco.mlpf.performance`): efficiency and fake rate are element-level against the truth targets;
the summary numbers count targets (efficiency) or candidates (fake rate) in |η| < 3 (ECAL and HCAL, where CMS
PF has its photon 22 and neutral hadron 130 classes) with pT > 1 GeV (``efficiency``, ``fake_rate``) and
without pT cut (``efficiency_all``, ``fake_rate_all``), and in HF, 3 < |η| < 5, with pT > 1 GeV
(``efficiency_hf``, ``fake_rate_hf``: neutral hadron and photon stand for CMS's HF hadronic and HF EM
candidates, pdgId 1 and 2, which the MLPF classes do not separate; in HF both algorithms only tell the two
apart by the electromagnetic share of the tower). pT response per class: median and inter-quartile range
(P75 − P25) of pT_reco/pT_true of matched elements, all η.

Jets: median response pT_jet/pT_genjet and resolution (P84 − P16)/2 of that ratio divided by the median,
over generator jets with pT > 20 GeV, |η| < 2.5 matched within ΔR < 0.2 (``n``); ``jet`` from CHS candidates,
``jet_puppi`` from PUPPI-weighted candidates.

MET (DESIGN.md): bias = mean of u∥, resolution = (P84 − P16)/2 of u∥ and u⊥; ``met`` without, ``met_puppi``
with PUPPI weights. Tails: with σ_ref the resolution of the pooled Δp_x, Δp_y residuals of rule-based PF with
the same pileup treatment, ``tail_fraction`` is the fraction of those residuals (two per event) with
|Δ| > 3σ_ref — so both methods are measured against the same yardstick — and ``tail_fraction_own`` uses the
method's own σ. Read from 0.5 GeV bins by linear interpolation inside the edge bins; flow bins count as tail.

metrics.json ``mlpf``: ``{METHOD: {"efficiency", "fake_rate", "efficiency_all", "fake_rate_all", "efficiency_hf",
"fake_rate_hf": {CLASS: x}, "pt_response": {CLASS: {"median", "iqr", "n"}}, "jet", "jet_puppi": {"response",
"resolution", "n"}, "met", "met_puppi":
{"bias_upar", "resolution_upar", "resolution_uperp", "tail_fraction", "tail_fraction_own", "n"}}}`` for METHOD
``pf`` (rule-based) and ``mlpf``; throughput ``{"mlpf/mlpf": events per second}`` of the model, only when the
output has ``seconds`` (eager/virtual processing; a dask-awkward graph has no per-method timing). The HTML
states the events processed (``events``: ``{dataset: n}`` summed) and how many were left out as invalid
(``events_invalid``: NaN/inf in the MLPF inputs).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import hist
import mplhep as hep
import numpy as np

from coffea_mlreco.core.columns import Events
from coffea_mlreco.core.metrics import hist_quantile, hist_select, summarize_residual_hist
from coffea_mlreco.evaluation.report import (
    html_table,
    label_axes,
    new_figure,
    plot_style,
    save_figure,
    throughput_table,
)
from coffea_mlreco.evaluation.tasks import TaskReport
from coffea_mlreco.mlpf.methods import MLPF_METHODS
from coffea_mlreco.mlpf.performance import CLASS_NAMES, SUMMARY_PT_MIN

__all__ = ["class_summary", "event_total", "mlpf_section", "tail_fraction"]

_TITLES = MLPF_METHODS.titles
_PLOT_CLASSES = ("charged_hadron", "neutral_hadron", "photon")
HF_ETA = 3.0
"""|η| beyond which clusters are HF towers (CMS PF: HF hadronic / EM candidates, pdgId 1 / 2)."""


def _ratio(passed: float, total: float) -> float | None:
    return round(passed / total, 5) if total > 0 else None


def class_summary(h: hist.Hist, method: str, flag: str, pt_min: float, hf: bool = False) -> dict[str, float | None]:
    """Per class, the fraction of entries with ``flag`` = 1 (matched or fake) among those with pT > ``pt_min``
    (a bin edge of the pT axis) in |η| < 3 (ECAL/HCAL), or in 3 < |η| < 5 (HF) with ``hf``."""
    out: dict[str, float | None] = {}
    edges = np.asarray(h.axes["pt"].edges)
    start = int(np.searchsorted(edges, pt_min)) if pt_min > edges[0] else 0
    eta_edges = np.asarray(h.axes["eta"].edges)
    centres = np.abs(0.5 * (eta_edges[1:] + eta_edges[:-1]))
    in_range = (centres > HF_ETA) if hf else (centres < HF_ETA)
    for c in h.axes["cls"]:
        values = np.asarray(hist_select(h, {"method": method, "cls": hist.loc(c)}).values(flow=True))
        # [pt (flow), eta (flow), flag (+ category overflow)]: pT ≥ pt_min incl. overflow; inner η bins in range
        kept = values[start + 1 if start else 0 :, 1:-1][:, in_range].sum(axis=(0, 1))
        out[CLASS_NAMES[c]] = _ratio(float(kept[1]), float(kept.sum()))
    return out


def tail_fraction(h: hist.Hist, sigma: float) -> float:
    """Fraction of a 1-D residual histogram's entries with |Δ| > 3σ (flow bins included)."""
    total = float(np.sum(h.values(flow=True)))
    if total <= 0 or not math.isfinite(sigma) or sigma <= 0:
        return math.nan
    edges = np.asarray(h.axes[0].edges)
    values = np.asarray(h.values())
    lo, hi = edges[:-1], edges[1:]
    cut = 3 * sigma
    inside = np.clip((np.minimum(hi, cut) - np.maximum(lo, -cut)) / (hi - lo), 0.0, 1.0)
    return float(1.0 - np.dot(values, inside) / total)


def _pooled(met: hist.Hist, method: str) -> hist.Hist:
    return hist_select(met, {"method": method, "component": "dpx"}) + hist_select(
        met, {"method": method, "component": "dpy"}
    )


def _met_metrics(met: hist.Hist, method: str, reference: str) -> dict[str, Any]:
    upar = summarize_residual_hist(hist_select(met, {"method": method, "component": "upar"}))
    uperp = summarize_residual_hist(hist_select(met, {"method": method, "component": "uperp"}))
    pooled = _pooled(met, method)
    own = summarize_residual_hist(pooled).resolution
    ref = summarize_residual_hist(_pooled(met, reference)).resolution
    return {
        "bias_upar": upar.bias,
        "resolution_upar": upar.resolution,
        "resolution_uperp": uperp.resolution,
        "tail_fraction": tail_fraction(pooled, ref),
        "tail_fraction_own": tail_fraction(pooled, own),
        "n": upar.n,
    }


def _jet_metrics(jets: hist.Hist, method: str) -> dict[str, Any]:
    part = hist_select(jets, {"method": method, "genpt": sum})
    n = round(float(np.sum(part.values(flow=True))))
    if n == 0:
        return {"n": 0}
    median = hist_quantile(part, 0.5)
    width = (hist_quantile(part, 0.8413447460685429) - hist_quantile(part, 0.15865525393145707)) / 2
    return {"response": median, "resolution": width / median if median > 0 else math.nan, "n": n}


def _response_metrics(response: hist.Hist, method: str) -> dict[str, Any]:
    out = {}
    for c in response.axes["cls"]:
        part = hist_select(response, {"method": method, "cls": hist.loc(c)})
        n = round(float(np.sum(part.values(flow=True))))
        if n:
            out[CLASS_NAMES[c]] = {
                "median": hist_quantile(part, 0.5),
                "iqr": hist_quantile(part, 0.75) - hist_quantile(part, 0.25),
                "n": n,
            }
    return out


def _finite(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _finite(v)
            for k, v in value.items()
            if v is not None and not (isinstance(v, float) and not math.isfinite(v))
        }
    return value


def _method_metrics(hists: dict[str, hist.Hist], method: str) -> dict[str, Any]:
    eff, fake = hists["efficiency"], hists["fake"]
    return {
        "efficiency": class_summary(eff, method, "matched", SUMMARY_PT_MIN),
        "fake_rate": class_summary(fake, method, "fake", SUMMARY_PT_MIN),
        "efficiency_all": class_summary(eff, method, "matched", -math.inf),
        "fake_rate_all": class_summary(fake, method, "fake", -math.inf),
        "efficiency_hf": {
            k: v
            for k, v in class_summary(eff, method, "matched", SUMMARY_PT_MIN, hf=True).items()
            if k in ("neutral_hadron", "photon")
        },
        "fake_rate_hf": {
            k: v
            for k, v in class_summary(fake, method, "fake", SUMMARY_PT_MIN, hf=True).items()
            if k in ("neutral_hadron", "photon")
        },
        "pt_response": _response_metrics(hists["response"], method),
        "jet": _jet_metrics(hists["jet_response"], method),
        "jet_puppi": _jet_metrics(hists["jet_response"], f"{method}_puppi"),
        "met": _met_metrics(hists["met"], method, "pf"),
        "met_puppi": _met_metrics(hists["met"], f"{method}_puppi", "pf_puppi"),
    }


def _rate_curve(h: hist.Hist, method: str, cls: int, axis: str, pt_min: float = 0.0) -> tuple[np.ndarray, ...]:
    sel: dict[str, Any] = {"method": method, "cls": hist.loc(cls)}
    if axis == "pt":
        sel["eta"] = sum
        values = np.asarray(hist_select(h, sel).values())
    else:
        part = hist_select(h, {**sel, "pt": sum}) if pt_min <= 0 else None
        if part is None:
            full = hist_select(h, sel)
            start = int(np.searchsorted(np.asarray(full.axes["pt"].edges), pt_min))
            values = np.asarray(full.values())[start:].sum(axis=0)
        else:
            values = np.asarray(part.values())
    total = values.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(total > 0, values[..., 1] / total, np.nan)
        err = np.where(total > 0, np.sqrt(rate * (1 - rate) / total), np.nan)
    return np.asarray(h.axes[axis].edges), rate, err


def _plot_rates(hists: dict[str, hist.Hist], name: str, axis: str, outdir: Path) -> str:
    h = hists[name]
    with plot_style():
        fig, axes = new_figure(1, len(_PLOT_CLASSES), figsize=(6.5 * len(_PLOT_CLASSES), 6.5))
        for ax, cls_name in zip(axes, _PLOT_CLASSES, strict=True):
            cls = CLASS_NAMES.index(cls_name)
            for method in h.axes["method"]:
                edges, rate, err = _rate_curve(h, method, cls, axis, SUMMARY_PT_MIN if axis == "eta" else 0.0)
                centres = 0.5 * (edges[1:] + edges[:-1])
                ax.errorbar(centres, rate, yerr=err, xerr=0.5 * np.diff(edges), fmt="o", ms=4, label=_TITLES[method])
            if axis == "pt":
                ax.set_xscale("log")
                ax.set_xlim(0.1, 1000)
            ax.set_xlabel(r"$p_T$ [GeV]" if axis == "pt" else r"$\eta$ ($p_T$ > 1 GeV)", fontsize="small")
            ax.set_ylabel(
                f"{'Efficiency' if name == 'efficiency' else 'Fake rate'}: {cls_name.replace('_', ' ')}",
                fontsize="small",
            )
            ax.set_ylim(0, 1.05)
            ax.legend(fontsize="x-small")
        label_axes(axes[0])
        fig.tight_layout()
        return save_figure(fig, outdir, f"mlpf_{name}_{axis}")


def _plot_met(met: hist.Hist, outdir: Path) -> str:
    with plot_style():
        fig, ax = new_figure(figsize=(9, 7))
        for method in met.axes["method"]:
            part = hist_select(_pooled(met, method), {"residual": hist.rebin(8)})
            if float(np.sum(part.values())) > 0:
                hep.histplot(part, ax=ax, density=True, yerr=False, label=_TITLES[method])
        ax.set_yscale("log")
        ax.set_xlim(-200, 200)
        ax.set_xlabel(r"$\Delta p_{x,y}^{miss}$ (reco $-$ gen) [GeV]")
        ax.set_ylabel("Normalised")
        ax.legend(fontsize="small")
        label_axes(ax)
        return save_figure(fig, outdir, "mlpf_met_residuals")


def _plot_jets(jets: hist.Hist, outdir: Path) -> str:
    with plot_style():
        fig, ax = new_figure(figsize=(9, 7))
        for method in jets.axes["method"]:
            part = hist_select(jets, {"method": method, "genpt": sum, "ratio": hist.rebin(3)})
            if float(np.sum(part.values())) > 0:
                hep.histplot(part, ax=ax, density=True, yerr=False, label=_TITLES[method])
        ax.set_xlim(0, 2.5)
        ax.set_ylabel("Normalised")
        ax.legend(fontsize="small")
        label_axes(ax, r"$p_T^{gen}$ > 20 GeV")
        return save_figure(fig, outdir, "mlpf_jet_response")


def event_total(events: Events) -> int:
    """Events processed: the processor's ``{dataset: events}`` summed (a plain number is taken as it is)."""
    if isinstance(events, dict):
        return int(sum(int(n) for n in events.values()))
    return int(events)


def mlpf_section(output: dict[str, Any], outdir: Path) -> TaskReport:
    """Metrics (metrics.json ``mlpf``), throughput, HTML and histograms from the MLPF processor output."""
    hists: dict[str, hist.Hist] = output.get("histograms", {})
    n_events = event_total(output.get("events", 0))
    if not hists or n_events == 0:
        return TaskReport({}, {}, "<p>No events with detector elements.</p>", {}, {})
    metrics = {m: _finite(_method_metrics(hists, m)) for m in ("pf", "mlpf")}
    seconds = output.get("seconds", {}).get("mlpf", 0.0)  # absent from a dask-awkward graph's output
    rates = {"mlpf": n_events / seconds} if seconds > 0 else {}
    invalid = int(output.get("events_invalid", 0))
    text = [
        (
            f'<p class="note">{n_events} events ({invalid} left out: NaN/inf in the MLPF inputs), '
            f"{int(output.get('elements', 0))} elements. Efficiency and fake rate per element against the truth "
            "targets (PFTarget); summary columns for p<sub>T</sub> &gt; 1 GeV.</p>"
        )
    ]
    rows = []
    for name in CLASS_NAMES[1:]:
        rows.append(
            [
                name.replace("_", " "),
                *(metrics[m][k].get(name, math.nan) for k in ("efficiency", "fake_rate") for m in ("pf", "mlpf")),
            ]
        )
    for name in ("neutral_hadron", "photon"):
        rows.append(
            [
                f"HF {name.replace('_', ' ')}",
                *(metrics[m][k].get(name, math.nan) for k in ("efficiency_hf", "fake_rate_hf") for m in ("pf", "mlpf")),
            ]
        )
    text.append(
        html_table(
            ["Class", "Eff. PF", "Eff. MLPF", "Fake PF", "Fake MLPF"],
            rows,
            caption="Efficiency and fake rate (pT > 1 GeV; |η| < 3, and HF)",
        )
    )
    rows = [
        [
            name.replace("_", " "),
            *(
                metrics[m]["pt_response"].get(name, {}).get(k, math.nan)
                for m in ("pf", "mlpf")
                for k in ("median", "iqr")
            ),
        ]
        for name in CLASS_NAMES[1:]
    ]
    text.append(
        html_table(
            ["Class", "PF median", "PF IQR", "MLPF median", "MLPF IQR"],
            rows,
            caption="pT response pT_reco/pT_true of matched elements",
        )
    )
    rows = [
        [
            _TITLES[m + s],
            v.get("bias_upar"),
            v.get("resolution_upar"),
            v.get("resolution_uperp"),
            v.get("tail_fraction"),
            v.get("tail_fraction_own"),
        ]
        for s, key in (("", "met"), ("_puppi", "met_puppi"))
        for m in ("pf", "mlpf")
        for v in [metrics[m].get(key, {})]
    ]
    text.append(
        html_table(
            ["Method", "Bias u∥", "σ(u∥)", "σ(u⊥)", "Tail (3σ PF)", "Tail (3σ own)"],
            rows,
            caption="MET residuals [GeV]; tail: fraction of Δpx, Δpy beyond 3σ",
        )
    )
    rows = [
        [
            _TITLES[m + s],
            metrics[m][key].get("response"),
            metrics[m][key].get("resolution"),
            metrics[m][key].get("n"),
        ]
        for s, key in (("", "jet"), ("_puppi", "jet_puppi"))
        for m in ("pf", "mlpf")
    ]
    text.append(
        html_table(
            ["Method", "Median response", "Resolution", "Jets"],
            rows,
            caption="anti-kT R=0.4 jets (CHS, or PUPPI-weighted) vs generator jets (pT > 20 GeV, |η| < 2.5)",
        )
    )
    images = [
        _plot_rates(hists, "efficiency", "pt", outdir),
        _plot_rates(hists, "fake", "pt", outdir),
        _plot_rates(hists, "efficiency", "eta", outdir),
        _plot_met(hists["met"], outdir),
        _plot_jets(hists["jet_response"], outdir),
    ]
    text += [f'<img src="{name}" alt="{name}">' for name in images]
    if rates:
        text.append(throughput_table(rates, _TITLES, "MLPF throughput (events per second, per process)"))
    root = {
        f"mlpf/{m}/met_{c}": hist_select(hists["met"], {"method": m, "component": c})
        for m in hists["met"].axes["method"]
        for c in ("upar", "uperp")
    }
    root.update(
        {
            f"mlpf/{m}/jet_response": hist_select(hists["jet_response"], {"method": m, "genpt": sum})
            for m in hists["jet_response"].axes["method"]
        }
    )
    return TaskReport(
        metrics=metrics,
        throughput={f"mlpf/{m}": v for m, v in rates.items()},
        html="\n".join(text),
        root_histograms=root,
        histograms={f"mlpf/{k}": h for k, h in hists.items()},
    )
