"""Bias and resolution of reconstructed observables, and the MET residual decomposition.

Definitions follow DESIGN.md. For an observable O with residual ΔO = O_reco − O_gen:

- bias b = mean(ΔO); the median of ΔO is reported beside it;
- resolution σ = (P84(ΔO) − P16(ΔO)) / 2, the half-width of the central 68 % interval, which equals the
  standard deviation for a Gaussian and is robust against tails.

Every quantity is available from an array of residuals (exact, linear interpolation between order
statistics as in ``numpy.percentile``) and from a 1-D ``hist`` histogram of residuals.

Binning error of the histogram estimates: quantiles are read off the cumulative distribution,
interpolated linearly inside the bin that holds the quantile, i.e. the density is taken as flat within
each bin. The error on a quantile is therefore smaller than one bin width w, and for a smooth density f
it is at most about w² |f'| / (8 f) at the quantile: for a Gaussian of width σ at P16/P84 that is
w²/(8σ), e.g. 1.3·10⁻³ σ for w = σ/10 (a 12 GeV resolution in 0.5 GeV bins: 3 MeV). The resolution,
half a difference of two quantiles, has an error below w as well, and of the same w² order. The
histogram mean uses bin centres; its error is at most w/2, and for a smooth density that vanishes
inside the axis range the w² terms cancel between bins, so it is far smaller. Entries in the
under/overflow bins count in the total (so quantile ranks stay right), but they have no position:
they are left out of the mean, and a quantile that falls into a flow bin is returned as ±inf.
Statistical errors (≈ σ/√n for the bias, ≈ 0.96 σ/√n for the resolution of a Gaussian) usually
dominate.

Empty input gives NaN for every bias and resolution and ``n = 0``; nothing raises.

MET residuals are vectors, Δ = p_miss,reco − p_miss,gen, split along the gen-MET direction û = (cos φ_gen,
sin φ_gen) (``upar``) and along ẑ × û (``uperp``), plus the Cartesian components ``dpx``, ``dpy``.
All momenta are in GeV, angles in radians.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, cast

import hist
import numpy as np
from numpy.typing import ArrayLike, NDArray

from coffea_mlreco.core.constants import MET_BINS_GEV

__all__ = [
    "METResiduals",
    "ResidualSummary",
    "hist_mean",
    "hist_pearson",
    "hist_quantile",
    "hist_select",
    "histogram_roc",
    "json_ready",
    "met_bin_label",
    "met_method_summary",
    "met_method_summary_from_hists",
    "met_residuals",
    "met_response_from_hist",
    "residual_bias",
    "residual_median",
    "resolution",
    "roc_auc",
    "summarize_residual_hist",
    "summarize_residuals",
]

_P16 = 0.15865525393145707  # Φ(−1): the lower edge of the central 68.27 % interval
_P84 = 1.0 - _P16


class ResidualSummary(NamedTuple):
    """Bias, median and resolution of a residual distribution (units of the residual)."""

    bias: float
    median: float
    resolution: float
    n: int


class METResiduals(NamedTuple):
    """MET residual components (GeV), one entry per event."""

    upar: NDArray[np.float64]
    uperp: NDArray[np.float64]
    dpx: NDArray[np.float64]
    dpy: NDArray[np.float64]


def _as_float_array(values: ArrayLike) -> NDArray[np.float64]:
    arr = np.asarray(values, dtype=np.float64).ravel()
    return arr[np.isfinite(arr)]


def residual_bias(residuals: ArrayLike) -> float:
    """Mean of the residuals (same unit as the residuals); NaN when there are none.

    Non-finite entries are ignored.
    """
    arr = _as_float_array(residuals)
    return float(np.mean(arr)) if arr.size else math.nan


def residual_median(residuals: ArrayLike) -> float:
    """Median of the residuals (same unit as the residuals); NaN when there are none."""
    arr = _as_float_array(residuals)
    return float(np.median(arr)) if arr.size else math.nan


def resolution(residuals: ArrayLike) -> float:
    """Resolution σ = (P84 − P16)/2 of the residuals (same unit); NaN when there are none.

    P16 and P84 are the Φ(∓1) quantiles, so σ equals the standard deviation for a Gaussian.
    """
    arr = _as_float_array(residuals)
    if not arr.size:
        return math.nan
    p16, p84 = np.quantile(arr, [_P16, _P84])
    return float(p84 - p16) / 2.0


def summarize_residuals(residuals: ArrayLike) -> ResidualSummary:
    """Bias (mean), median, resolution and count of an array of residuals."""
    arr = _as_float_array(residuals)
    return ResidualSummary(residual_bias(arr), residual_median(arr), resolution(arr), int(arr.size))


def hist_select(h: hist.Hist, selection: Mapping[str, Any]) -> hist.Hist:
    """``h[selection]`` (UHI indexing by axis name: a bin index or label, ``sum``, ``hist.rebin(n)``,
    ``hist.overflow``...) that must still be a histogram, typed as one."""
    out = cast(Any, h)[dict(selection)]
    if not isinstance(out, hist.Hist):
        raise ValueError(f"selection {selection} reduces the histogram to a single value")
    return out


def _check_1d(h: hist.Hist) -> None:
    if h.ndim != 1:
        raise ValueError(f"expected a 1-D histogram of residuals, got {h.ndim} axes")


def hist_quantile(h: hist.Hist, q: float) -> float:
    """Quantile ``q`` in [0, 1] of a 1-D histogram, by linear interpolation of the cumulative.

    Flow bins count in the total; a quantile inside the underflow (overflow) bin is −inf (+inf).
    Returns NaN for an empty histogram. The binning error is discussed in the module docstring.
    """
    _check_1d(h)
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must lie in [0, 1], got {q}")
    axis = h.axes[0]
    counts = np.asarray(h.values(flow=True), dtype=np.float64)
    edges = np.asarray(axis.edges, dtype=np.float64)
    under = counts[0] if axis.traits.underflow else 0.0
    over = counts[-1] if axis.traits.overflow else 0.0
    inner = counts[int(axis.traits.underflow) : counts.size - int(axis.traits.overflow)]
    total = under + inner.sum() + over
    if total <= 0:
        return math.nan
    target = q * total
    if target < under or (under > 0 and target == under and q == 0.0):
        return -math.inf
    cumulative = under + np.concatenate([[0.0], np.cumsum(inner)])
    if target > cumulative[-1]:
        return math.inf
    # first edge index where the cumulative reaches the target; interpolate inside that bin
    i = int(np.searchsorted(cumulative, target, side="left"))
    if i == 0:
        return float(edges[0])
    lo_c, hi_c = cumulative[i - 1], cumulative[i]
    frac = (target - lo_c) / (hi_c - lo_c) if hi_c > lo_c else 0.0
    return float(edges[i - 1] + frac * (edges[i] - edges[i - 1]))


def hist_mean(h: hist.Hist) -> float:
    """Mean of a 1-D histogram from its bin centres (flow bins left out); NaN when empty."""
    _check_1d(h)
    counts = np.asarray(h.values(), dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        return math.nan
    return float(np.dot(counts, h.axes[0].centers) / total)


def summarize_residual_hist(h: hist.Hist) -> ResidualSummary:
    """Bias (bin-centre mean), median, resolution and entry count of a 1-D residual histogram.

    ``n`` counts all entries including flow bins (rounded sum of weights).
    """
    _check_1d(h)
    n = round(float(np.sum(h.values(flow=True))))
    if n == 0:
        return ResidualSummary(math.nan, math.nan, math.nan, 0)
    p16, p84 = hist_quantile(h, _P16), hist_quantile(h, _P84)
    return ResidualSummary(hist_mean(h), hist_quantile(h, 0.5), (p84 - p16) / 2.0, n)


def met_residuals(reco_pt: ArrayLike, reco_phi: ArrayLike, gen_pt: ArrayLike, gen_phi: ArrayLike) -> METResiduals:
    """Decompose Δ = p_miss,reco − p_miss,gen (GeV) along and across the gen-MET direction.

    Args:
        reco_pt, reco_phi: reconstructed MET magnitude (GeV) and azimuth (rad).
        gen_pt, gen_phi: generator MET magnitude (GeV) and azimuth (rad); the direction is taken from
            ``gen_phi`` so it stays defined when ``gen_pt`` is zero.

    Returns:
        ``upar`` = Δ·û, ``uperp`` = Δ·(ẑ × û), ``dpx``, ``dpy`` (GeV), with û = (cos φ_gen, sin φ_gen).
    """
    rpt = np.asarray(reco_pt, dtype=np.float64)
    rphi = np.asarray(reco_phi, dtype=np.float64)
    gpt = np.asarray(gen_pt, dtype=np.float64)
    gphi = np.asarray(gen_phi, dtype=np.float64)
    dphi = rphi - gphi
    upar = rpt * np.cos(dphi) - gpt
    uperp = rpt * np.sin(dphi)
    dpx = rpt * np.cos(rphi) - gpt * np.cos(gphi)
    dpy = rpt * np.sin(rphi) - gpt * np.sin(gphi)
    return METResiduals(upar, uperp, dpx, dpy)


def met_bin_label(lo: float, hi: float) -> str:
    """Readable label of a gen-MET bin, e.g. ``"45–70 GeV"`` or ``"> 150 GeV"``."""
    return f"> {lo:g} GeV" if math.isinf(hi) else f"{lo:g}–{hi:g} GeV"


def _json_edge(edge: float) -> float | None:
    return None if math.isinf(edge) else float(edge)


def _method_dict(upar: ResidualSummary, uperp: ResidualSummary, bins: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "bias_upar": upar.bias,
        "resolution_upar": upar.resolution,
        "bias_uperp": uperp.bias,
        "resolution_uperp": uperp.resolution,
        "n": upar.n,
        "bins": bins,
    }


def _bin_dict(lo: float, hi: float, upar: ResidualSummary, uperp: ResidualSummary) -> dict[str, Any]:
    return {
        "lo": float(lo),
        "hi": _json_edge(hi),
        "n": upar.n,
        "bias_upar": upar.bias,
        "resolution_upar": upar.resolution,
        "resolution_uperp": uperp.resolution,
    }


def met_method_summary(
    upar: ArrayLike,
    uperp: ArrayLike,
    gen_pt: ArrayLike,
    bin_edges: Sequence[float] = MET_BINS_GEV,
) -> dict[str, Any]:
    """The metrics.json ``met[METHOD]`` dictionary from per-event residual arrays (GeV).

    Bins are ``[lo, hi)`` in gen MET (GeV) from ``bin_edges``. An infinite top edge is written as
    ``hi = None`` (JSON ``null``: an open bin, "> lo"), since JSON has no infinity. Empty bins have
    ``n = 0`` and NaN biases and resolutions (see :func:`json_ready` for writing them).
    """
    upar_a = np.asarray(upar, dtype=np.float64).ravel()
    uperp_a = np.asarray(uperp, dtype=np.float64).ravel()
    gen_a = np.asarray(gen_pt, dtype=np.float64).ravel()
    if not upar_a.size == uperp_a.size == gen_a.size:
        raise ValueError("upar, uperp and gen_pt must have the same length")
    bins = []
    for lo, hi in itertools.pairwise(bin_edges):
        sel = (gen_a >= lo) & (gen_a < hi)
        bins.append(_bin_dict(lo, hi, summarize_residuals(upar_a[sel]), summarize_residuals(uperp_a[sel])))
    return _method_dict(summarize_residuals(upar_a), summarize_residuals(uperp_a), bins)


def _genmet_slices(h: hist.Hist, axis_name: str) -> list[tuple[float, float, Any]]:
    """(lo, hi, index) per gen-MET bin, the overflow bin (if any) standing for the open top bin."""
    axis = h.axes[axis_name]
    edges = list(axis.edges)
    out: list[tuple[float, float, Any]] = [(edges[i], edges[i + 1], i) for i in range(len(edges) - 1)]
    if axis.traits.overflow:
        out.append((edges[-1], math.inf, hist.overflow))
    return out


def met_method_summary_from_hists(
    h_upar: hist.Hist,
    h_uperp: hist.Hist,
    method: str,
    *,
    method_axis: str = "method",
    genmet_axis: str = "genmet",
) -> dict[str, Any]:
    """The metrics.json ``met[METHOD]`` dictionary from residual histograms.

    ``h_upar`` and ``h_uperp`` have a string category axis ``method_axis``, a gen-MET axis
    ``genmet_axis`` (GeV; its overflow bin, if present, is the open top bin with ``hi = None``) and one
    residual axis (GeV). Values carry the binning error described in the module docstring.
    """
    up = hist_select(h_upar, {method_axis: method})
    uq = hist_select(h_uperp, {method_axis: method})
    bins = []
    for lo, hi, index in _genmet_slices(up, genmet_axis):
        bins.append(
            _bin_dict(
                lo,
                hi,
                summarize_residual_hist(hist_select(up, {genmet_axis: index})),
                summarize_residual_hist(hist_select(uq, {genmet_axis: index})),
            )
        )
    total_up = summarize_residual_hist(hist_select(up, {genmet_axis: sum}))
    total_uq = summarize_residual_hist(hist_select(uq, {genmet_axis: sum}))
    return _method_dict(total_up, total_uq, bins)


def json_ready(obj: Any) -> Any:
    """Copy of ``obj`` (dicts, lists, numbers) with NaN and ±inf replaced by ``None`` (JSON null)."""
    if isinstance(obj, dict):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


def met_response_from_hist(
    h_sums: hist.Hist,
    method: str,
    *,
    method_axis: str = "method",
    genmet_axis: str = "genmet",
    quantity_axis: str = "quantity",
) -> tuple[float, list[float]]:
    """MET response R = Σ p_miss,reco·ê_gen / Σ |p_miss,gen| overall and per gen-MET bin.

    R = 1 + ⟨u∥⟩/⟨gen MET⟩, computed from sums (not from bin centres). ``h_sums`` has a string category
    axis ``method_axis``, a gen-MET axis ``genmet_axis`` (its overflow bin, if present, is the open top
    bin) and a string category axis ``quantity_axis`` whose bins ``"reco_par"`` and ``"gen"`` hold the
    sums (GeV) of the reconstructed MET projected on the gen-MET direction and of gen MET. Returns
    (overall response, responses in the bin order of :func:`met_method_summary_from_hists`); NaN where
    the gen-MET sum is zero.
    """
    h = hist_select(h_sums, {method_axis: method})

    def ratio(selected: hist.Hist) -> float:
        reco = float(selected[{quantity_axis: "reco_par"}])
        gen = float(selected[{quantity_axis: "gen"}])
        return reco / gen if gen > 0 else math.nan

    per_bin = [ratio(hist_select(h, {genmet_axis: index})) for _, _, index in _genmet_slices(h, genmet_axis)]
    return ratio(hist_select(h, {genmet_axis: sum})), per_bin


def hist_pearson(h: hist.Hist) -> float:
    """Pearson correlation of the two axes of a 2-D histogram, from bin centres and contents.

    Flow bins are left out. The binning acts like rounding each value to its bin centre; for a smooth
    density that adds about w²/12 to each variance (Sheppard) and leaves the covariance, lowering |r|
    by a relative w²/(24·var) per axis for bins of width w (5·10⁻⁵ for w = 0.02 and var = 0.3). NaN
    when the histogram is empty or one of the projections has zero variance.
    """
    if h.ndim != 2:
        raise ValueError(f"expected a 2-D histogram, got {h.ndim} axes")
    counts = np.asarray(h.values(), dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        return math.nan
    x = np.asarray(h.axes[0].centers, dtype=np.float64)
    y = np.asarray(h.axes[1].centers, dtype=np.float64)
    px, py = counts.sum(axis=1) / total, counts.sum(axis=0) / total
    mx, my = float(px @ x), float(py @ y)
    vx, vy = float(px @ (x - mx) ** 2), float(py @ (y - my) ** 2)
    cov = float((x - mx) @ counts @ (y - my)) / total
    return cov / math.sqrt(vx * vy) if vx > 0 and vy > 0 else math.nan


def roc_auc(signal: ArrayLike, background: ArrayLike) -> float:
    """ROC AUC of a score larger for ``signal``: the probability that a signal event scores above a background
    one, ties counted ½ (the Mann–Whitney U from ranks, ties averaged). NaN when either sample is empty."""
    from scipy.stats import rankdata

    s, b = np.asarray(signal, np.float64).ravel(), np.asarray(background, np.float64).ravel()
    if not s.size or not b.size:
        return math.nan
    ranks = rankdata(np.concatenate([s, b]))
    return float((ranks[: s.size].sum() - s.size * (s.size + 1) / 2) / (s.size * b.size))


def histogram_roc(signal: hist.Hist, background: hist.Hist) -> tuple[np.ndarray, np.ndarray, float]:
    """(background efficiency, signal efficiency, AUC) of a score larger for ``signal``, from two 1-D histograms
    with the same binning (flow bins included); the AUC counts same-bin pairs ½. NaN AUC when either is empty."""
    s = np.asarray(signal.values(flow=True), np.float64)
    b = np.asarray(background.values(flow=True), np.float64)
    if s.shape != b.shape:
        raise ValueError("the two score histograms have different binnings")
    total_s, total_b = s.sum(), b.sum()
    if total_s <= 0 or total_b <= 0:
        return np.array([0.0, 1.0]), np.array([0.0, 1.0]), math.nan
    below = np.concatenate([[0.0], np.cumsum(b)[:-1]])
    auc = float(np.dot(s, below + 0.5 * b) / (total_s * total_b))
    # efficiencies of "score above a bin's lower edge", from the highest bin down
    eff_s = np.concatenate([[0.0], np.cumsum(s[::-1]) / total_s])
    eff_b = np.concatenate([[0.0], np.cumsum(b[::-1]) / total_b])
    return eff_b, eff_s, auc
