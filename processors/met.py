"""MET processor: PF MET recomputed from PF candidates and the file's own MET, against GenMET.

For each chunk it

- recomputes PF MET as −Σ p_T over all ``PFCands`` (when the file has that collection, as PFNano and
  ``coffea-mlreco generate`` files do) and appends it to the events as ``PFMETReco`` (pt, phi in GeV,
  rad);
- takes the file's ``MET`` (real CMS NanoAOD has no PF candidates, so only this method runs there);
- fills residual histograms Δ = p_miss,reco − p_miss,gen split into ``upar``, ``uperp``, ``dpx``, ``dpy``
  (GeV; see :func:`coffea_mlreco.metrics.met_residuals`) with a ``method`` axis ("pf", "file_met"),
  a gen-MET axis (bins of ``MET_BINS_GEV``, the overflow bin being the open top bin) and a fine
  residual axis; a 2-D gen-MET vs reco-MET histogram per method; and counters;
- fills ``"response"``: per method and gen-MET bin, the sums (GeV) of the reco MET projected on the
  gen-MET direction (``quantity="reco_par"``, p_miss,reco·ê_gen) and of gen MET (``quantity="gen"``),
  from which the response R = Σ p_miss,reco·ê_gen / Σ |p_miss,gen| = 1 + ⟨u∥⟩/⟨gen MET⟩ follows
  exactly (:func:`coffea_mlreco.metrics.met_response_from_hist`);
- when PUPPI runs and the file carries CMS's own ``PFCands_puppiWeight`` (PFNano), compares our
  ``PFCands.puppiWeightReco`` with it per candidate, split ``charged``/``neutral`` (``charge`` axis):
  ``"puppi_weight"`` (2-D, ours vs file's, 50×50 in [0, 1]), ``"puppi_weight_absdiff"`` (|Δw| in
  0.001 bins) and ``"puppi_weight_absdiff_pt"`` (the same weighted by candidate p_T, GeV). Weights
  (and |Δw|) equal to 1 are counted in the top bin, not in the overflow. Without the branch these
  stay empty.

The output is a plain dict (coffea accumulates dicts, ``hist.Hist`` and numbers), identical whatever
the executor: histograms hold integer counts in fixed category order, and the weighted fills
(momentum sums) use weights rounded to multiples of 2⁻¹⁰ GeV (< 0.5 MeV per entry), whose float64
sums are exact below 2⁴³ GeV, so the merge order does not matter. Timings live under ``"seconds"``
and are the only executor-dependent entries.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import awkward as ak
import hist
import numpy as np
from coffea import processor

from coffea_mlreco.baselines.pf_met import missing_transverse_momentum
from coffea_mlreco.baselines.puppi import PuppiTune, load_tune, puppi_weights
from coffea_mlreco.constants import MET_BINS_GEV
from coffea_mlreco.inference.model_cards import closest_pileup, names_by_pileup
from coffea_mlreco.met.wrappers import shipped_met_model, shipped_met_models
from coffea_mlreco.metrics import met_residuals

__all__ = [
    "FILE_PUPPI_WEIGHT",
    "METHODS",
    "PUPPI_CLASSES",
    "RESIDUALS",
    "METProcessor",
    "MissingBranchError",
    "add_pfmet_reco",
    "add_puppi_reco",
    "pf_met",
    "required_branches",
]

METHODS: tuple[str, ...] = ("pf", "puppi", "deepmet", "perceiver", "file_met")
"""MET reconstructions this processor compares: PF MET and PUPPI MET from the candidates, the
machine-learned methods, and the file's MET."""
ML_COLUMNS = {"deepmet": "DeepMETReco", "perceiver": "MLMET"}
"""Column each machine-learned MET method appends to the events."""

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

_REQUIRED = {"GenMET": ("pt", "phi"), "MET": ("pt", "phi")}
_SUM_QUANTUM = 2.0**-10  # GeV; weighted fills are rounded to this so float64 sums are merge-order exact
_BELOW_ONE = float(np.nextafter(1.0, 0.0))
_PF_FIELDS = ("pt", "phi")


class MissingBranchError(KeyError):
    """A branch the processor needs is absent from the input file."""

    def __init__(self, filename: str, branch: str) -> None:
        super().__init__(f"{filename}: branch {branch!r} is missing (needed by the MET processor)")
        self.filename = filename
        self.branch = branch

    def __str__(self) -> str:
        return str(self.args[0])


def required_branches(with_pf: bool = False) -> list[str]:
    """Flat branch names the processor reads; with ``with_pf`` also the PF candidate branches."""
    names = [f"{coll}_{field}" for coll, fields in _REQUIRED.items() for field in fields]
    if with_pf:
        names += [f"PFCands_{field}" for field in _PF_FIELDS]
    return names


def pf_met(pfcands: ak.Array) -> tuple[ak.Array, ak.Array]:
    """PF MET (pt in GeV, phi in rad) as −Σ p_T over the candidates of each event (0 for no candidates)."""
    return missing_transverse_momentum(pfcands)


def add_pfmet_reco(events: ak.Array) -> ak.Array:
    """Append ``PFMETReco`` (pt GeV, phi rad; a ``MissingET`` record) to ``events`` and return them."""
    pt, phi = pf_met(events.PFCands)
    events["PFMETReco"] = ak.zip({"pt": pt, "phi": phi}, with_name="MissingET", behavior=events.behavior)
    return events


def shipped_by_pileup() -> dict[str, dict[int, str]]:
    """Per machine-learned MET method, the shipped models by the mean pileup they were trained at."""
    names = shipped_met_models()
    return {method: by_pu for method in ML_COLUMNS if (by_pu := names_by_pileup(names, method))}


def add_puppi_reco(events: ak.Array, tune: PuppiTune, npv: ak.Array) -> ak.Array:
    """Append ``PFCands.puppiWeightReco`` and ``PuppiMETReco`` (pt GeV, phi rad) to ``events``.

    ``npv`` is the number of good primary vertices per event (``PV_npvsGood``).
    """
    weights = puppi_weights(events.PFCands, tune, npv=npv)
    events["PFCands", "puppiWeightReco"] = weights
    pt, phi = missing_transverse_momentum(events.PFCands, weights)
    events["PuppiMETReco"] = ak.zip({"pt": pt, "phi": phi}, with_name="MissingET", behavior=events.behavior)
    return events


def _good_vertices(events: ak.Array) -> ak.Array | None:
    """``PV_npvsGood`` if the file has a usable PV collection, else None (then PUPPI does not run)."""
    try:
        return events.PV.npvsGood
    except (AttributeError, ValueError):  # no PV branches, or a PV collection coffea cannot build
        return None


def _has_puppi_inputs(events: ak.Array) -> bool:
    fields = set(events.PFCands.fields)
    return {"charge", "eta", "fromPV"} <= fields or {"charge", "eta", "pvAssocQuality", "dz"} <= fields


def _check_fields(events: ak.Array, filename: str) -> None:
    for coll, fields in _REQUIRED.items():
        if coll not in events.fields:
            raise MissingBranchError(filename, f"{coll}_{fields[0]}")
        for field in fields:
            if field not in events[coll].fields:
                raise MissingBranchError(filename, f"{coll}_{field}")


def _has_pfcands(events: ak.Array, filename: str) -> bool:
    if "PFCands" not in events.fields:
        return False
    for field in _PF_FIELDS:
        if field not in events.PFCands.fields:
            raise MissingBranchError(filename, f"PFCands_{field}")
    return True


def _numpy(array: Any) -> np.ndarray:
    return np.asarray(ak.to_numpy(array), dtype=np.float64)


def _exact(values: np.ndarray) -> np.ndarray:
    """``values`` (GeV) rounded to multiples of 2⁻¹⁰ GeV: their float64 sums do not depend on the order."""
    return np.round(values / _SUM_QUANTUM) * _SUM_QUANTUM


def _fill_puppi_agreement(hists: dict[str, hist.Hist], pfcands: ak.Array) -> None:
    """Fill the ``puppi_weight*`` histograms: our ``puppiWeightReco`` against the file's ``puppiWeight``."""
    ours = np.clip(_numpy(ak.flatten(pfcands.puppiWeightReco)), 0.0, _BELOW_ONE)
    theirs = np.clip(_numpy(ak.flatten(pfcands[FILE_PUPPI_WEIGHT])), 0.0, _BELOW_ONE)
    pt = _exact(_numpy(ak.flatten(pfcands.pt)))
    cls = np.where(_numpy(ak.flatten(pfcands.charge)) != 0, PUPPI_CLASSES[0], PUPPI_CLASSES[1])
    absdiff = np.abs(ours - theirs)
    hists["puppi_weight"].fill(charge=cls, ours=ours, file=theirs)
    hists["puppi_weight_absdiff"].fill(charge=cls, absdiff=absdiff)
    hists["puppi_weight_absdiff_pt"].fill(charge=cls, absdiff=absdiff, weight=pt)


class METProcessor(processor.ProcessorABC):
    """Residual histograms of PF MET (from ``PFCands``) and the file's MET against ``GenMET``.

    Args:
        residual_range: (low, high) of the fine residual axes in GeV; entries outside go to the flow bins.
        residual_bin_width: width of the residual bins in GeV (bias and resolution from these histograms
            carry a binning error far below this width, see :mod:`coffea_mlreco.metrics`).
        met_range: upper edge (GeV) of the gen-MET vs reco-MET histogram axes (2 GeV bins).
        genmet_edges: gen-MET bin edges (GeV); a final ``inf`` becomes the overflow bin.
        puppi_tune: PUPPI parameter set (``"run3"`` or ``"phase2"``, see
            :mod:`coffea_mlreco.baselines.puppi`); PUPPI runs when the PF candidates carry a vertex
            association (``fromPV``, or ``pvAssocQuality`` and ``dz``) and the file has ``PV_npvsGood``.
        ml_models: shipped model per machine-learned method (``{"deepmet": "deepmet_pu60", ...}``). By
            default, per method and chunk, the shipped model trained at the pileup closest to the chunk's
            mean ``Pileup_nTrueInt`` (the highest-pileup one if the file has no pileup branch). They run
            where PUPPI runs (they read its weights).
        options: evaluate's task options (the ``device`` the models run on).
    """

    def __init__(
        self,
        residual_range: tuple[float, float] = (-300.0, 300.0),
        residual_bin_width: float = 0.5,
        met_range: float = 400.0,
        genmet_edges: Sequence[float] = MET_BINS_GEV,
        puppi_tune: str = "run3",
        ml_models: dict[str, str] | None = None,
        options: Any = None,
    ) -> None:
        self.puppi_tune = load_tune(puppi_tune)
        device = getattr(options, "device", "auto")
        if ml_models is None:
            choices = shipped_by_pileup()
        else:
            unknown = set(ml_models) - set(ML_COLUMNS)
            if unknown:
                raise ValueError(f"ml_models keys must be among {sorted(ML_COLUMNS)}, not {sorted(unknown)}")
            choices = {method: {0: name} for method, name in ml_models.items()}
        self.ml_models = {method: {pu: shipped_met_model(name, device=device) for pu, name in by_pu.items()}
                          for method, by_pu in choices.items()}
        lo, hi = residual_range
        if not hi > lo or residual_bin_width <= 0:
            raise ValueError("residual_range must be increasing and residual_bin_width positive")
        self.residual_range = (float(lo), float(hi))
        self.residual_bins = round((hi - lo) / residual_bin_width)
        self.met_range = float(met_range)
        self.genmet_edges = tuple(float(e) for e in genmet_edges)

    def _method_axis(self) -> hist.axis.StrCategory:
        return hist.axis.StrCategory(list(METHODS), name="method", label="MET reconstruction", overflow=False)

    def _empty_histograms(self) -> dict[str, hist.Hist]:
        finite = [e for e in self.genmet_edges if np.isfinite(e)]
        open_top = len(finite) < len(self.genmet_edges)
        hists: dict[str, hist.Hist] = {}
        for name, label in RESIDUALS.items():
            hists[name] = hist.Hist(
                self._method_axis(),
                hist.axis.Variable(
                    finite, name="genmet", label="Gen MET [GeV]", underflow=False, overflow=open_top
                ),
                hist.axis.Regular(self.residual_bins, *self.residual_range, name="residual", label=label),
                storage=hist.storage.Double(),
            )
        hists["response"] = hist.Hist(
            self._method_axis(),
            hist.axis.Variable(finite, name="genmet", label="Gen MET [GeV]", underflow=False, overflow=open_top),
            hist.axis.StrCategory(["reco_par", "gen"], name="quantity", label="summed quantity [GeV]"),
            storage=hist.storage.Double(),
        )
        hists.update(self._puppi_histograms())
        nbins = round(self.met_range / 2.0)
        hists["reco_vs_gen"] = hist.Hist(
            self._method_axis(),
            hist.axis.Regular(nbins, 0.0, self.met_range, name="gen", label="Gen MET [GeV]"),
            hist.axis.Regular(nbins, 0.0, self.met_range, name="reco", label="Reco MET [GeV]"),
            storage=hist.storage.Double(),
        )
        return hists

    @staticmethod
    def _puppi_histograms() -> dict[str, hist.Hist]:
        def charge_axis() -> hist.axis.StrCategory:
            return hist.axis.StrCategory(list(PUPPI_CLASSES), name="charge", label="PF candidates")

        def absdiff_axis() -> hist.axis.Regular:
            return hist.axis.Regular(1000, 0.0, 1.0, name="absdiff", label=r"$|w_{ours} - w_{file}|$")

        return {
            "puppi_weight": hist.Hist(
                charge_axis(),
                hist.axis.Regular(50, 0.0, 1.0, name="ours", label="PUPPI weight (ours)"),
                hist.axis.Regular(50, 0.0, 1.0, name="file", label="PUPPI weight (file, CMS)"),
                storage=hist.storage.Double(),
            ),
            "puppi_weight_absdiff": hist.Hist(charge_axis(), absdiff_axis(), storage=hist.storage.Double()),
            "puppi_weight_absdiff_pt": hist.Hist(charge_axis(), absdiff_axis(), storage=hist.storage.Double()),
        }

    def process(self, events: ak.Array) -> dict[str, Any]:
        """Fill the histograms for one chunk; see the module docstring for the output layout."""
        filename = str(events.metadata.get("filename", "<unknown file>"))
        dataset = str(events.metadata.get("dataset", "default"))
        _check_fields(events, filename)
        hists = self._empty_histograms()
        seconds: dict[str, float] = {}
        counts = {method: 0 for method in METHODS}

        gen_pt = _numpy(events.GenMET.pt)
        gen_phi = _numpy(events.GenMET.phi)
        reco: dict[str, tuple[np.ndarray, np.ndarray]] = {}

        if _has_pfcands(events, filename):
            tic = time.perf_counter()
            events = add_pfmet_reco(events)
            reco["pf"] = (_numpy(events.PFMETReco.pt), _numpy(events.PFMETReco.phi))
            seconds["pf"] = time.perf_counter() - tic
            npv = _good_vertices(events)
            if npv is not None and _has_puppi_inputs(events):
                tic = time.perf_counter()
                events = add_puppi_reco(events, self.puppi_tune, npv)
                reco["puppi"] = (_numpy(events.PuppiMETReco.pt), _numpy(events.PuppiMETReco.phi))
                seconds["puppi"] = time.perf_counter() - tic
                if FILE_PUPPI_WEIGHT in events.PFCands.fields:
                    _fill_puppi_agreement(hists, events.PFCands)
                for method, by_pileup in self.ml_models.items():
                    tic = time.perf_counter()
                    met = closest_pileup(by_pileup, events)(events)
                    events[ML_COLUMNS[method]] = ak.zip({"pt": met.pt, "phi": met.phi}, with_name="MissingET",
                                                        behavior=events.behavior)
                    reco[method] = (_numpy(met.pt), _numpy(met.phi))
                    seconds[method] = time.perf_counter() - tic
        tic = time.perf_counter()
        reco["file_met"] = (_numpy(events.MET.pt), _numpy(events.MET.phi))
        seconds["file_met"] = time.perf_counter() - tic

        for method, (pt, phi) in reco.items():
            residuals = met_residuals(pt, phi, gen_pt, gen_phi)._asdict()
            for name in RESIDUALS:
                hists[name].fill(method=method, genmet=gen_pt, residual=residuals[name])
            hists["reco_vs_gen"].fill(method=method, gen=gen_pt, reco=pt)
            reco_par = pt * np.cos(phi - gen_phi)
            hists["response"].fill(method=method, genmet=gen_pt, quantity="reco_par", weight=_exact(reco_par))
            hists["response"].fill(method=method, genmet=gen_pt, quantity="gen", weight=_exact(gen_pt))
            counts[method] = len(pt)

        return {
            "histograms": hists,
            "events": {dataset: len(events)},
            "events_per_method": counts,
            "seconds": seconds,
        }

    def postprocess(self, accumulator: dict[str, Any]) -> dict[str, Any]:
        """Nothing to do after merging; the accumulator is returned as is."""
        return accumulator
