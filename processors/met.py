"""MET processor: the MET columns of :func:`coffea_mlreco.met.reconstruct` and CMS's own MET columns, against
GenMET in simulation, as distributions on collision data.

For each chunk it

- appends the MET columns with :func:`coffea_mlreco.met.reconstruct` (``PFMETReco``, ``PuppiMETReco`` and
  ``PFCands.puppiWeightReco``, ``DeepMETReco``, ``MLMET``; every method the file supports, or those asked for:
  they need PFNano's ``PFCands``, so on plain CMS NanoAOD none runs) and takes the MET columns CMS stored in the
  file (the references of :data:`coffea_mlreco.met.methods.MET_METHODS`: ``file_met`` = ``MET``/``PFMET``, and
  where present ``RawMET``/``RawPFMET``, ``PuppiMET``, ``RawPuppiMET``, ``DeepMETResolutionTune``,
  ``DeepMETResponseTune``; :data:`coffea_mlreco.core.nanoaod.CMS_MET`);
- fills, for every method and reference, the distributions ``"met_pt"`` (GeV, 2 GeV bins up to ``met_range``),
  ``"met_phi"`` (rad, 64 bins) and, where the collection stores one (CMS's ``MET_significance``, from the MET
  covariance), ``"met_significance"`` (0.25 bins in [0, 50]);
- where the file has ``GenMET`` (simulation), fills residual histograms Δ = p_miss,reco − p_miss,gen split into
  ``upar``, ``uperp``, ``dpx``, ``dpy`` (GeV; see :func:`coffea_mlreco.core.metrics.met_residuals`) with a
  ``method`` axis, a gen-MET axis (bins of ``MET_BINS_GEV``, the overflow bin being the open top bin) and a fine
  residual axis; a 2-D gen-MET vs reco-MET histogram per method; and ``"response"``: per method and gen-MET bin,
  the sums (GeV) of the reco MET projected on the gen-MET direction (``quantity="reco_par"``) and of gen MET
  (``quantity="gen"``), from which the response R = Σ p_miss,reco·ê_gen / Σ |p_miss,gen| follows exactly
  (:func:`coffea_mlreco.core.metrics.met_response_from_hist`);
- where one of our methods and its CMS counterpart both ran (:data:`coffea_mlreco.met.methods.CMS_COUNTERPARTS`,
  PFNano), fills ``"vs_cms"``: per our method, the event-by-event difference to CMS's, ``quantity="dpt"``
  (p_T,ours − p_T,CMS) and ``"dvec"`` (|p⃗_ours − p⃗_CMS|), GeV, 0.5 GeV bins;
- when PUPPI runs and the file carries CMS's own ``PFCands_puppiWeight`` (PFNano), compares our
  ``PFCands.puppiWeightReco`` with it per candidate, split ``charged``/``neutral``: ``"puppi_weight"`` (2-D,
  50×50 in [0, 1]), ``"puppi_weight_absdiff"`` (|Δw| in 0.001 bins) and ``"puppi_weight_absdiff_pt"`` (the same
  weighted by candidate p_T, GeV). Weights equal to 1 count in the top bin.

``"events_collision_data"`` counts the events read from collision data (no simulation-only branch), which the
report shows as data; ``"events_per_method"`` counts the events each method entered the distributions with and
``"events_truth"`` those with GenMET. Events whose inputs hold NaN/inf (``valid`` False in our MET columns) are
counted in ``"events_invalid"`` and left out of every histogram of our methods.

The processor works on eager events under ``processor.Runner`` (iterative, futures, dask executors) and on
dask-awkward events (``coffea.dataset_tools.apply_to_fileset``; the histograms are ``hist.dask`` objects computed
with the graph), with identical histograms: they hold integer counts in fixed category order, and the weighted
fills use weights rounded to multiples of 2⁻¹⁰ GeV, whose float64 sums do not depend on the merge order. Eagerly,
``"seconds"`` holds each method's wall time (a network's on the PUPPI weights already computed; see
:class:`coffea_mlreco.met.columns.METReconstruction`); a dask graph has no per-method timing, so there it is absent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import awkward as ak
import hist
import numpy as np
from coffea import processor

from coffea_mlreco import met
from coffea_mlreco.core import (
    MissingBranchError,
    check_columns,
    choose_methods,
    collision_data_events,
    count_true,
    event_count,
    has_column,
    is_dask,
    map_events,
    new_hist,
)
from coffea_mlreco.core.columns import to_numpy
from coffea_mlreco.core.constants import MET_BINS_GEV
from coffea_mlreco.core.metrics import met_residuals
from coffea_mlreco.core.nanoaod import CMS_MET, cms_met_collection, met_collection
from coffea_mlreco.met.methods import CMS_COUNTERPARTS, MET_METHODS
from coffea_mlreco.met.pf_met import missing_transverse_momentum

__all__ = [
    "FILE_PUPPI_WEIGHT",
    "METHODS",
    "PUPPI_CLASSES",
    "REFERENCES",
    "RESIDUALS",
    "METProcessor",
    "MissingBranchError",
    "add_pfmet_reco",
    "pf_met",
]

REFERENCES: tuple[str, ...] = tuple(m.name for m in MET_METHODS.references)
"""CMS's MET columns compared where the file has them (``file_met``, ``cms_raw_pf``, ``cms_puppi``, ...)."""
METHODS: tuple[str, ...] = (*met.METHODS, *REFERENCES)
"""The ``method`` axis: the reconstructions of :mod:`coffea_mlreco.met`, then CMS's columns."""

RESIDUALS: dict[str, str] = {
    "upar": r"$u_{\parallel}$ (reco $-$ gen, along gen MET) [GeV]",
    "uperp": r"$u_{\perp}$ (reco $-$ gen, across gen MET) [GeV]",
    "dpx": r"$\Delta p_{x}^{miss}$ (reco $-$ gen) [GeV]",
    "dpy": r"$\Delta p_{y}^{miss}$ (reco $-$ gen) [GeV]",
}
"""Residual histogram names and their axis labels."""

PUPPI_CLASSES: tuple[str, ...] = ("charged", "neutral")
"""Candidate classes of the PUPPI-weight agreement histograms (charge ≠ 0, charge = 0)."""
FILE_PUPPI_WEIGHT = "puppiWeight"
"""CMS's own PUPPI weight in PFNano (``PFCands_puppiWeight``), compared with ``puppiWeightReco``."""

_MET_FIELDS = ("pt", "phi")
_SIGNIFICANCE = "significance"
_SUM_QUANTUM = 2.0**-10  # GeV; weighted fills are rounded to this so float64 sums are merge-order exact
_BELOW_ONE = float(np.nextafter(1.0, 0.0))


def pf_met(pfcands: ak.Array) -> tuple[ak.Array, ak.Array]:
    """PF MET (pt in GeV, phi in rad) as −Σ p_T over the candidates of each event (0 for no candidates)."""
    return missing_transverse_momentum(pfcands)


def add_pfmet_reco(events: Any) -> Any:
    """``events`` with ``PFMETReco`` appended (a new array; see :func:`coffea_mlreco.met.reconstruct`)."""
    return met.reconstruct(events, methods=("pf",))


def _exact(values: np.ndarray) -> np.ndarray:
    """``values`` (GeV) rounded to multiples of 2⁻¹⁰ GeV: their float64 sums do not depend on the order."""
    return np.round(values / _SUM_QUANTUM) * _SUM_QUANTUM


class _METValues:
    """Per event, for each compared MET: ``pt``, ``phi``, ``significance`` (NaN where not stored) and ``ok``
    (finite, and valid for our columns); with ``truth``, ``gen_pt``, ``gen_exact`` and per MET the residuals,
    ``reco_par`` (exact) and ``ok_truth``; per our method with a CMS counterpart, ``vs_cms`` (``dpt``, ``dvec``,
    ``ok``).

    Args:
        collections: each compared MET → the events' field holding it (our column, or CMS's collection).
        counterparts: our method → the CMS reference compared with it event by event.
        truth: whether the events have ``GenMET``.
    """

    def __init__(self, collections: Mapping[str, str], counterparts: Mapping[str, str], truth: bool) -> None:
        self.collections = dict(collections)
        self.counterparts = dict(counterparts)
        self.truth = truth

    def __call__(self, events: Any) -> ak.Array:
        fields: dict[str, Any] = {}
        if self.truth:
            gen_pt, gen_phi = to_numpy(events.GenMET.pt, np.float64), to_numpy(events.GenMET.phi, np.float64)
            fields.update(gen_pt=gen_pt, gen_exact=_exact(gen_pt))
        momenta: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
        for method, name in self.collections.items():
            column = events[name]
            pt, phi = to_numpy(column.pt, np.float64), to_numpy(column.phi, np.float64)
            ok = np.isfinite(pt) & np.isfinite(phi)
            if method in met.COLUMNS:
                ok &= to_numpy(column.valid, bool)
            significance = (
                to_numpy(column[_SIGNIFICANCE], np.float64)
                if _SIGNIFICANCE in column.fields
                else np.full(len(pt), np.nan)
            )
            record = {"pt": pt, "phi": phi, "significance": significance, "ok": ok}
            if self.truth:
                residuals = met_residuals(pt, phi, gen_pt, gen_phi)._asdict()
                record.update({name: residuals[name] for name in RESIDUALS})
                record["reco_par"] = _exact(pt * np.cos(phi - gen_phi))
                record["ok_truth"] = ok & np.isfinite(gen_pt) & np.isfinite(gen_phi)
            fields[method] = ak.zip(record)
            momenta[method] = (pt, pt * np.cos(phi), pt * np.sin(phi), ok)
        differences = {}
        for ours, cms in self.counterparts.items():
            (pt, px, py, ok), (cms_pt, cms_px, cms_py, cms_ok) = momenta[ours], momenta[cms]
            differences[ours] = ak.zip(
                {"dpt": pt - cms_pt, "dvec": np.hypot(px - cms_px, py - cms_py), "ok": ok & cms_ok}
            )
        if differences:
            fields["vs_cms"] = ak.zip(differences, depth_limit=1)
        return ak.zip(fields, depth_limit=1)


def _puppi_agreement_values(events: Any) -> ak.Array:
    """Per candidate of valid events: our and the file's PUPPI weight (clipped below 1), |Δw|, p_T and class."""
    cands = events.PFCands[to_numpy(events.PuppiMETReco.valid, bool)]
    counts = ak.num(cands, axis=1)
    ours = np.clip(to_numpy(ak.flatten(cands.puppiWeightReco), np.float64), 0.0, _BELOW_ONE)
    theirs = np.clip(to_numpy(ak.flatten(cands[FILE_PUPPI_WEIGHT]), np.float64), 0.0, _BELOW_ONE)
    charged = to_numpy(ak.flatten(cands.charge), np.float64) != 0
    flat = ak.zip(
        {
            "ours": ours,
            "file": theirs,
            "absdiff": np.abs(ours - theirs),
            "pt": _exact(to_numpy(ak.flatten(cands.pt), np.float64)),
            "charged": charged,
        }
    )
    return ak.unflatten(flat, counts)


class METProcessor(processor.ProcessorABC):
    """Distributions of every MET reconstruction and CMS column, and their residuals against ``GenMET`` in
    simulation (see the module docstring).

    Args:
        methods: among ``pf``, ``puppi``, ``deepmet``, ``perceiver`` (default: every method the file supports);
            CMS's MET columns the file carries are always compared.
        models: per network method, a shipped name or a model directory (default: the shipped model closest to
            each chunk's pileup); ``options.models_for("met")`` adds to it.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` for the networks (``options.device`` wins).
        puppi_tune: PUPPI parameter set (``"run3"`` or ``"phase2"``).
        residual_range: (low, high) of the fine residual axes in GeV; entries outside go to the flow bins.
        residual_bin_width: width of the residual bins in GeV.
        met_range: upper edge (GeV) of the gen-MET vs reco-MET histogram axes (2 GeV bins).
        genmet_edges: gen-MET bin edges (GeV); a final ``inf`` becomes the overflow bin.
        options: evaluate's task options (``device``, ``models``).
    """

    def __init__(
        self,
        methods: Sequence[str] | None = None,
        models: Mapping[str, Any] | None = None,
        device: str = "auto",
        puppi_tune: str = "run3",
        residual_range: tuple[float, float] = (-300.0, 300.0),
        residual_bin_width: float = 0.5,
        met_range: float = 400.0,
        genmet_edges: Sequence[float] = MET_BINS_GEV,
        options: Any = None,
    ) -> None:
        self.methods = None if methods is None else choose_methods(methods, MET_METHODS, allow_empty=True)
        self.models = {**(models or {}), **(options.models_for("met") if options is not None else {})}
        self.device = getattr(options, "device", device)
        self.puppi_tune = puppi_tune
        met.columns.met_models(self.methods or met.METHODS, self.models, self.device)  # bad models fail here
        lo, hi = residual_range
        if not hi > lo or residual_bin_width <= 0:
            raise ValueError("residual_range must be increasing and residual_bin_width positive")
        self.residual_range = (float(lo), float(hi))
        self.residual_bins = round((hi - lo) / residual_bin_width)
        self.met_range = float(met_range)
        self.genmet_edges = tuple(float(e) for e in genmet_edges)

    def _method_axis(self) -> hist.axis.StrCategory:
        return hist.axis.StrCategory(list(METHODS), name="method", label="MET reconstruction", overflow=False)

    def _genmet_axis(self) -> hist.axis.Variable:
        finite = [e for e in self.genmet_edges if np.isfinite(e)]
        return hist.axis.Variable(
            finite, name="genmet", label="Gen MET [GeV]", underflow=False, overflow=len(finite) < len(self.genmet_edges)
        )

    def _empty_histograms(self, like: Any) -> dict[str, Any]:
        hists: dict[str, Any] = {}
        for name, label in RESIDUALS.items():
            hists[name] = new_hist(
                self._method_axis(),
                self._genmet_axis(),
                hist.axis.Regular(self.residual_bins, *self.residual_range, name="residual", label=label),
                like=like,
            )
        hists["response"] = new_hist(
            self._method_axis(),
            self._genmet_axis(),
            hist.axis.StrCategory(["reco_par", "gen"], name="quantity", label="summed quantity [GeV]"),
            like=like,
        )

        def charge_axis() -> hist.axis.StrCategory:
            return hist.axis.StrCategory(list(PUPPI_CLASSES), name="charge", label="PF candidates")

        def absdiff_axis() -> hist.axis.Regular:
            return hist.axis.Regular(1000, 0.0, 1.0, name="absdiff", label=r"$|w_{ours} - w_{file}|$")

        hists["puppi_weight"] = new_hist(
            charge_axis(),
            hist.axis.Regular(50, 0.0, 1.0, name="ours", label="PUPPI weight (ours)"),
            hist.axis.Regular(50, 0.0, 1.0, name="file", label="PUPPI weight (file, CMS)"),
            like=like,
        )
        hists["puppi_weight_absdiff"] = new_hist(charge_axis(), absdiff_axis(), like=like)
        hists["puppi_weight_absdiff_pt"] = new_hist(charge_axis(), absdiff_axis(), like=like)
        nbins = round(self.met_range / 2.0)
        hists["reco_vs_gen"] = new_hist(
            self._method_axis(),
            hist.axis.Regular(nbins, 0.0, self.met_range, name="gen", label="Gen MET [GeV]"),
            hist.axis.Regular(nbins, 0.0, self.met_range, name="reco", label="Reco MET [GeV]"),
            like=like,
        )
        hists["met_pt"] = new_hist(
            self._method_axis(),
            hist.axis.Regular(nbins, 0.0, self.met_range, name="pt", label=r"$p_{T}^{miss}$ [GeV]"),
            like=like,
        )
        hists["met_phi"] = new_hist(
            self._method_axis(), hist.axis.Regular(64, -np.pi, np.pi, name="phi", label=r"$\phi^{miss}$"), like=like
        )
        hists["met_significance"] = new_hist(
            self._method_axis(),
            hist.axis.Regular(200, 0.0, 50.0, name="significance", label="MET significance"),
            like=like,
        )
        hists["vs_cms"] = new_hist(
            hist.axis.StrCategory(list(CMS_COUNTERPARTS), name="method", label="our MET, against CMS's"),
            hist.axis.StrCategory(["dpt", "dvec"], name="quantity", label="difference"),
            hist.axis.Regular(
                800, -200.0, 200.0, name="difference", label=r"ours $-$ CMS: $\Delta p_{T}$ or $|\Delta\vec{p}|$ [GeV]"
            ),
            like=like,
        )
        return hists

    def _references(self, events: Any) -> dict[str, str]:
        """The CMS MET columns the events carry: reference key → collection (``file_met`` always: checked before)."""
        found = {key: cms_met_collection(events, key) for key in CMS_MET}
        return {key: name for key, name in found.items() if name is not None}

    def process(self, events: Any) -> dict[str, Any]:
        """Fill the histograms for one chunk; see the module docstring for the output layout."""
        file_met = met_collection(events)
        check_columns(events, {file_met: _MET_FIELDS}, "the MET processor")
        truth = has_column(events, "GenMET", "pt") and has_column(events, "GenMET", "phi")
        dataset = str(events.metadata.get("dataset", "default"))
        methods = self.methods if self.methods is not None else met.supported_methods(events)
        seconds: dict[str, float] = {}
        if methods:
            events = met.reconstruct(
                events,
                methods=methods,
                models=self.models,
                device=self.device,
                puppi_tune=self.puppi_tune,
                timings=seconds,
            )
        collections = {m: met.COLUMNS[m] for m in methods} | self._references(events)
        counterparts = {m: c for m, c in CMS_COUNTERPARTS.items() if m in methods and c in collections}
        columns: dict[str, tuple[str, ...] | None] = {met.COLUMNS[m]: None for m in methods}
        for key, name in collections.items():
            if key not in methods:
                stored = _SIGNIFICANCE if has_column(events, name, _SIGNIFICANCE) else None
                columns[name] = (*_MET_FIELDS, stored) if stored else _MET_FIELDS
        if truth:
            columns["GenMET"] = _MET_FIELDS
        values = map_events(_METValues(collections, counterparts, truth), events, columns, label="met-values")
        hists = self._empty_histograms(events)
        counts: dict[str, Any] = dict.fromkeys(METHODS, 0)
        for method in collections:
            entry = values[method]
            ok = entry.ok
            hists["met_pt"].fill(method=method, pt=entry.pt[ok])
            hists["met_phi"].fill(method=method, phi=entry.phi[ok])
            with_significance = ok & np.isfinite(entry.significance)
            hists["met_significance"].fill(method=method, significance=entry.significance[with_significance])
            counts[method] = count_true(ok)
            if not truth:
                continue
            ok = entry.ok_truth
            gen, reco = values.gen_pt[ok], entry[ok]
            for name in RESIDUALS:
                hists[name].fill(method=method, genmet=gen, residual=reco[name])
            hists["reco_vs_gen"].fill(method=method, gen=gen, reco=reco.pt)
            hists["response"].fill(method=method, genmet=gen, quantity="reco_par", weight=reco.reco_par)
            hists["response"].fill(method=method, genmet=gen, quantity="gen", weight=values.gen_exact[ok])
        for method in counterparts:
            difference = values.vs_cms[method]
            for quantity in ("dpt", "dvec"):
                hists["vs_cms"].fill(method=method, quantity=quantity, difference=difference[quantity][difference.ok])
        if "puppi" in methods and FILE_PUPPI_WEIGHT in events.PFCands.fields:
            cands = map_events(
                _puppi_agreement_values,
                events,
                {"PFCands": ("puppiWeightReco", FILE_PUPPI_WEIGHT, "pt", "charge"), "PuppiMETReco": ("valid",)},
                label="met-puppi-agreement",
            )
            for cls, charged in zip(PUPPI_CLASSES, (True, False), strict=True):
                flat = ak.flatten(cands[cands.charged == charged])
                hists["puppi_weight"].fill(charge=cls, ours=flat.ours, file=flat.file)
                hists["puppi_weight_absdiff"].fill(charge=cls, absdiff=flat.absdiff)
                hists["puppi_weight_absdiff_pt"].fill(charge=cls, absdiff=flat.absdiff, weight=flat.pt)
        invalid = count_true(~events[met.COLUMNS[methods[0]]].valid) if methods else 0
        out = {
            "histograms": hists,
            "events": {dataset: event_count(events)},
            "events_collision_data": collision_data_events(events),
            "events_truth": event_count(events) if truth else 0,
            "events_invalid": invalid,
            "events_per_method": counts,
        }
        if not is_dask(events):
            out["seconds"] = seconds
        return out

    def postprocess(self, accumulator: dict[str, Any]) -> dict[str, Any]:
        """Nothing to do after merging; the accumulator is returned as is."""
        return accumulator
