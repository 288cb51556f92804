"""Writing the report directory: ``index.html``, ``metrics.json``, ``histograms.root``, ``histograms.pkl``.

Task-specific content (tables, plots) comes from each task's report section as an HTML fragment and
PNG files; this module holds the page frame, the shared plot style and the file writers.

metrics.json follows DESIGN.md's schema. JSON has no NaN or infinity, so an undefined number (an empty
gen-MET bin's bias, say) is written as ``null``, as is the open upper edge of the last gen-MET bin.

The writers write into the folder they are given: ``evaluate`` gives them a temporary folder and renames it to
the requested name once every file is written (`coffea_mlreco.core.outputs`), so a report folder is complete or
absent. :func:`is_report_folder` says whether an existing folder is such a report, which ``evaluate`` may replace.
"""

from __future__ import annotations

import contextlib
import html
import json
import math
import pickle
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import hist
import matplotlib.style
import mplhep as hep
import uproot
from matplotlib.figure import Figure

from coffea_mlreco.core.metrics import hist_mean, hist_quantile, hist_select, json_ready

__all__ = [
    "COLLISION_DATA_NOTE",
    "REPORT_FILES",
    "distribution_summary",
    "distributions",
    "event_rates",
    "format_number",
    "from_collision_data",
    "html_table",
    "is_report_folder",
    "label_axes",
    "metrics_leaves",
    "new_figure",
    "plot_style",
    "save_figure",
    "throughput_table",
    "write_histograms",
    "write_index",
    "write_metrics_json",
]


REPORT_FILES = ("index.html", "metrics.json", "histograms.root", "histograms.pkl")
"""The files of every report folder; the task sections add ``.png`` plots."""


def is_report_folder(path: Path) -> bool:
    """Whether ``path`` is a report folder written by ``evaluate``: plain files only, each one of
    :data:`REPORT_FILES` or a ``.png`` plot, ``metrics.json`` or ``index.html`` among them."""
    if not path.is_dir():
        return False
    entries = list(path.iterdir())
    names = {entry.name for entry in entries}
    return bool(names & {"index.html", "metrics.json"}) and all(
        entry.is_file() and not entry.is_symlink() and (entry.name in REPORT_FILES or entry.suffix == ".png")
        for entry in entries
    )


@contextlib.contextmanager
def plot_style() -> Iterator[None]:
    """Matplotlib in the CMS-like mplhep style, for the duration of the block only."""
    with matplotlib.style.context(hep.style.CMS):
        yield


def new_figure(nrows: int = 1, ncols: int = 1, figsize: tuple[float, float] = (9.0, 7.0)) -> tuple[Figure, Any]:
    """A figure and its axes, made without pyplot (no global backend or figure registry is touched,
    so report writing is safe in notebooks and threads). Call inside :func:`plot_style`."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols)


def label_axes(ax: Any, rlabel: str = "", data: bool = False) -> None:
    """The experiment-style label: "coffea-mlreco Simulation" (``data``: "coffea-mlreco Data") on the left,
    ``rlabel`` (short) on the right."""
    hep.label.exp_label(
        exp="coffea-mlreco", data=data, llabel="Data" if data else None, rlabel=rlabel, ax=ax, loc=0, fontsize=18
    )


def save_figure(fig: Figure, outdir: Path, name: str) -> str:
    """Save ``fig`` as ``outdir/name.png`` and return the file name (relative to ``outdir``)."""
    filename = f"{name}.png"
    fig.savefig(outdir / filename, dpi=90)
    return filename


def format_number(value: Any, digits: int = 2) -> str:
    """A number for a table cell: fixed digits; "—" for None or NaN; integers as they are."""
    if value is None:
        return "—"
    if isinstance(value, int):
        return str(value)
    value = float(value)
    if math.isnan(value):
        return "—"
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    return f"{value:.{digits}f}"


def html_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], caption: str = "") -> str:
    """An HTML table; cells are escaped, numbers formatted with :func:`format_number`."""
    out = ["<table>"]
    if caption:
        out.append(f"<caption>{html.escape(caption)}</caption>")
    out.append("<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in headers) + "</tr>")
    for row in rows:
        cells = (c if isinstance(c, str) else format_number(c) for c in row)
        out.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


COLLISION_DATA_NOTE = (
    '<p class="note"><b>Collision data</b>: the input carries no generator branches, so this section shows the '
    "distributions of what each method reconstructs; there is no truth to measure bias, resolution or "
    "efficiency against.</p>"
)
"""The line a task section opens with on collision data."""


def from_collision_data(output: Mapping[str, Any]) -> bool:
    """Whether a processor ``output`` comes from collision data: its ``"events_collision_data"`` count (events
    read without any simulation-only branch, :func:`coffea_mlreco.core.collision_data_events`) is positive."""
    return int(output.get("events_collision_data", 0)) > 0


def distribution_summary(h: hist.Hist) -> dict[str, float | int]:
    """``n`` (entries, flow bins included), ``mean`` (from bin centres, flow left out), ``median``, ``p16`` and
    ``p84`` (quantiles interpolated in the bins) of a 1-D histogram, in its axis' unit; NaN where empty."""
    return {
        "n": round(float(sum(h.values(flow=True)))),
        "mean": hist_mean(h),
        "median": hist_quantile(h, 0.5),
        "p16": hist_quantile(h, 0.16),
        "p84": hist_quantile(h, 0.84),
    }


def distributions(
    h: hist.Hist,
    titles: Mapping[str, str],
    outdir: Path,
    name: str,
    *,
    caption: str,
    data: bool,
    axis: str = "method",
    rebin: int = 1,
    logy: bool = False,
) -> tuple[dict[str, dict[str, float | int]], str]:
    """Per-method distributions of one quantity: summaries, and an HTML table with an overlay plot.

    Args:
        h: a 2-D histogram, a string category axis ``axis`` (the methods) and the quantity's axis (its label, with
            the unit, labels the plot).
        titles: method → title for the table and the legend (the method's name where it has none).
        outdir: where the plot ``<name>.png`` is written.
        caption: the table's caption (say the unit).
        data: label the plot as data rather than simulation.
        rebin: bins merged in the plot (the summaries use the fine bins).
        logy: log-scale counts.

    Returns:
        ``{method: distribution_summary}`` for the methods with entries (in the axis order), and the HTML.
    """
    summaries = {
        str(m): distribution_summary(hist_select(h, {axis: m}))
        for m in h.axes[axis]
        if float(sum(hist_select(h, {axis: m}).values(flow=True))) > 0
    }
    if not summaries:
        return {}, ""
    rows = [[titles.get(m, m), s["n"], s["mean"], s["median"], s["p16"], s["p84"]] for m, s in summaries.items()]
    table = html_table(["Method", "Events", "Mean", "Median", "P16", "P84"], rows, caption=caption)
    with plot_style():
        fig, ax = new_figure(figsize=(9, 7))
        (value_axis,) = (a.name for a in h.axes if a.name != axis)
        for method in summaries:
            hep.histplot(
                hist_select(h, {axis: method, value_axis: hist.rebin(rebin)}),
                ax=ax,
                label=titles.get(method, method),
                flow="none",
                yerr=False,
            )
        if logy:
            ax.set_yscale("log")
        ax.set_xlim(*_filled_range(hist_select(h, {axis: sum})))
        ax.set_ylabel("Events / bin")
        ax.legend(fontsize="small")
        label_axes(ax, data=data)
        fig.tight_layout()
        image = save_figure(fig, outdir, name)
    return summaries, f'{table}\n<img src="{image}" alt="{image}">'


def _filled_range(h: hist.Hist) -> tuple[float, float]:
    """The x range a 1-D histogram's plot shows: from the first to the last filled bin, widened by a tenth of that
    span on each side and kept inside the axis (the whole axis when nothing is filled)."""
    edges = h.axes[0].edges
    filled = [i for i, count in enumerate(h.values()) if count > 0]
    if not filled:
        return float(edges[0]), float(edges[-1])
    lo, hi = float(edges[filled[0]]), float(edges[filled[-1] + 1])
    margin = 0.1 * (hi - lo)
    return max(float(edges[0]), lo - margin), min(float(edges[-1]), hi + margin)


def event_rates(counts: Mapping[str, float], seconds: Mapping[str, float], methods: Iterable[str]) -> dict[str, float]:
    """Events per second of each of ``methods`` that processed events in a measured time: ``counts[m] /
    seconds[m]`` (events, s) where both are positive, in the order of ``methods``."""
    return {m: counts[m] / seconds[m] for m in methods if counts.get(m, 0) > 0 and seconds.get(m, 0.0) > 0.0}


def throughput_table(rates: Mapping[str, float], titles: Mapping[str, str], caption: str, digits: int = 0) -> str:
    """The "Method | Events / s" table of ``rates`` (method → events per second), each row titled by ``titles``
    (the method's name where it has none), rates with thousands separators and ``digits`` decimals."""
    rows = [[titles.get(m, m), f"{v:,.{digits}f}"] for m, v in rates.items()]
    return html_table(["Method", "Events / s"], rows, caption=caption)


def metrics_leaves(document: Any, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """Every scalar of a JSON document (a parsed metrics.json) by its path of keys, list items by index as strings
    (``("met", "pf", "bins", "0", "n")``): what two reports are compared by."""
    if isinstance(document, dict):
        items: Iterable[tuple[Any, Any]] = document.items()
    elif isinstance(document, list):
        items = enumerate(document)
    else:
        return {path: document}
    out: dict[tuple[str, ...], Any] = {}
    for key, value in items:
        out.update(metrics_leaves(value, (*path, str(key))))
    return out


def write_metrics_json(outdir: Path, metrics: Mapping[str, Any]) -> Path:
    """Write ``metrics.json`` (NaN and ±inf as null) and return its path."""
    path = outdir / "metrics.json"
    path.write_text(json.dumps(json_ready(dict(metrics)), indent=2, allow_nan=False) + "\n")
    return path


def write_histograms(
    outdir: Path, root_histograms: Mapping[str, hist.Hist], histograms: Mapping[str, hist.Hist]
) -> tuple[Path, Path]:
    """Write ``histograms.root`` (TH1/TH2 via uproot, keys as directories) and ``histograms.pkl``
    (pickled dict of ``hist.Hist``); return both paths."""
    root_path, pkl_path = outdir / "histograms.root", outdir / "histograms.pkl"
    with uproot.recreate(root_path) as f:
        for name, h in root_histograms.items():
            f[name] = h
    with pkl_path.open("wb") as stream:
        pickle.dump(dict(histograms), stream, protocol=pickle.HIGHEST_PROTOCOL)
    return root_path, pkl_path


_CSS = """
body { font-family: Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 1em 0; font-size: .92em; }
caption { text-align: left; font-weight: bold; padding-bottom: .3em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; }
th { background: #f0f0f0; } td:first-child, th:first-child { text-align: left; }
img { max-width: 48%; margin: .5em 1%; vertical-align: top; }
.note { color: #555; font-size: .9em; } code { background: #f4f4f4; padding: 0 .2em; }
"""


def write_index(
    outdir: Path,
    meta: Mapping[str, Any],
    sections: Sequence[tuple[str, str]],
    notes: Sequence[str] = (),
) -> Path:
    """Write ``index.html`` from the run metadata, ``(title, html fragment)`` sections and notes.

    The run table shows the package version, events, executor, device, time and files, and, when ``meta`` has
    them, the invalid events per task (``invalid_events``: events whose inputs hold NaN/inf, left out of the
    histograms) and the models given with ``--model`` (``models``)."""
    files = meta.get("files", [])
    meta_rows = [
        ("Package version", str(meta.get("package_version", ""))),
        ("Sample", str(meta.get("sample", ""))),
        ("Events processed", str(meta.get("events", ""))),
        ("Executor", str(meta.get("executor", ""))),
        ("Device", str(meta.get("device", ""))),
        ("Processing time", f"{format_number(meta.get('seconds'))} s"),
        ("Input files", str(len(files))),
    ]
    invalid = meta.get("invalid_events") or {}
    if invalid:
        meta_rows.append(
            (
                "Invalid events (NaN/inf inputs; not in the histograms)",
                ", ".join(f"{task}: {n}" for task, n in invalid.items()),
            )
        )
    models = meta.get("models") or {}
    if models:
        meta_rows.append(
            (
                "Models given with --model",
                "; ".join(
                    f"{task}.{method} = {spec}"
                    for task, by_method in models.items()
                    for method, spec in by_method.items()
                ),
            )
        )
    body = [
        "<h1>coffea-mlreco evaluation report</h1>",
        html_table(["Run", ""], meta_rows),
        "<details><summary>Input files</summary><ul>"
        + "".join(f"<li><code>{html.escape(str(f))}</code></li>" for f in files)
        + "</ul></details>",
    ]
    body += [f'<p class="note">{html.escape(n)}</p>' for n in notes]
    for title, fragment in sections:
        body.append(f"<h2>{html.escape(title)}</h2>\n{fragment}")
    body.append(
        '<p class="note">Also in this directory: <a href="metrics.json">metrics.json</a>, '
        '<a href="histograms.root">histograms.root</a> (ROOT TH1/TH2), '
        '<a href="histograms.pkl">histograms.pkl</a> (pickled <code>hist.Hist</code>).</p>'
    )
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>coffea-mlreco report</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )
    path = outdir / "index.html"
    path.write_text(page, encoding="utf-8")
    return path
