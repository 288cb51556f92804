"""``coffea_mlreco.met.reconstruct``: MET columns appended to NanoEvents with PF candidates.

Columns (GeV, rad; each a ``MissingET`` record with ``pt``, ``phi``, the event's ``valid`` flag, and the
per-event covariance ``covXX``, ``covXY``, ``covYY`` (GeV²) with the scalar sum ``sumEt`` it is computed from:
:mod:`coffea_mlreco.met.resolution`, calibrated per method on simulated events):

| method | column | what |
|---|---|---|
| ``pf`` | ``PFMETReco`` | −Σ p_T over all ``PFCands`` |
| ``puppi`` | ``PuppiMETReco``, ``PFCands.puppiWeightReco`` | numba PUPPI (CMS ``PuppiContainer``), weights in [0, 1] |
| ``deepmet`` | ``DeepMETReco`` | the DeepMET-style per-candidate weights model |
| ``perceiver`` | ``MLMET`` | the Perceiver (cross-attention from latents to every candidate) |

Inputs (:func:`input_columns`, what dask-awkward reads): ``PFCands`` ``pt``, ``phi`` for PF MET; PUPPI and the
networks add ``eta``, ``charge``, the vertex association (``fromPV``, with ``dz`` when present, or
``pvAssocQuality`` and ``dz``: :func:`coffea_mlreco.core.nanoaod.pf_vertex_fields`) and ``PV_npvsGood``; the
networks add ``pdgId``, and ``Pileup_nTrueInt`` when the file has it and the shipped model is chosen by pileup. No
jets, leptons or generator branches are read.

By default each network is the shipped model trained at the pileup closest to the chunk's mean
``Pileup_nTrueInt``, or on collision data its mean number of good vertices ``PV_npvsGood``
(:func:`~coffea_mlreco.inference.model_cards.chunk_pileup`); ``models=`` takes, per
method, a shipped name (``"perceiver_pu200"``), a model directory written by ``coffea-mlreco train met --output
DIR``, or a wrapper instance.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from coffea_mlreco.core.columns import (
    MET_COLUMNS,
    Events,
    InputColumns,
    check_columns,
    has_column,
    is_dask,
    reconstruct_columns,
    to_numpy,
)
from coffea_mlreco.core.methods import choose_methods
from coffea_mlreco.core.nanoaod import pf_vertex_fields
from coffea_mlreco.core.timing import timed
from coffea_mlreco.inference import ModelWrapper
from coffea_mlreco.inference.model_cards import closest_pileup
from coffea_mlreco.met.methods import MET_METHODS
from coffea_mlreco.met.pf_met import missing_transverse_momentum
from coffea_mlreco.met.puppi import PuppiTune, load_tune, puppi_weights
from coffea_mlreco.met.resolution import METResolution, load_resolutions, met_covariance
from coffea_mlreco.met.wrappers import MET_MODELS

__all__ = ["COLUMNS", "METHODS", "METReconstruction", "input_columns", "met_models", "reconstruct", "supported_methods"]

METHODS: tuple[str, ...] = MET_METHODS.names
"""The MET reconstructions, in the order of the report (:data:`coffea_mlreco.met.methods.MET_METHODS`)."""
COLUMNS: dict[str, str] = dict(MET_COLUMNS)
"""Column each method appends (a ``MissingET`` record; :data:`coffea_mlreco.core.columns.MET_COLUMNS`)."""
ML_METHODS: tuple[str, ...] = tuple(MET_METHODS.networks)
"""The methods that run a network (they take ``models=``)."""


_NO_CANDIDATES = (
    "MET: every MET reconstruction reads PF candidates (PFNano's PFCands), which plain CMS NanoAOD does not store; "
    "the MET processor and evaluate compare CMS's own MET columns there"
)


def _needs_puppi(methods: Sequence[str]) -> bool:
    return any(m != "pf" for m in methods)


def input_columns(events: Events, methods: Sequence[str] = METHODS, by_pileup: bool = True) -> InputColumns:
    """The columns the ``methods`` read on these events (see the module docstring); ``by_pileup`` adds
    ``Pileup_nTrueInt`` (when the file has it) for choosing a network by the chunk's pileup."""
    if not has_column(events, "PFCands", "pt"):
        return {"PFCands": ("pt", "phi")}  # reported as missing by the check
    if not _needs_puppi(methods):
        return {"PFCands": ("pt", "phi")}
    vertex = pf_vertex_fields(events) or ("pvAssocQuality", "dz")  # neither: the check names what is missing
    cands = ("pt", "eta", "phi", "charge", *vertex)
    columns: dict[str, tuple[str, ...] | None] = {"PFCands": cands, "PV": ("npvsGood",)}
    if any(m in ML_METHODS for m in methods):
        columns["PFCands"] = (*cands, "pdgId")
        if by_pileup and has_column(events, "Pileup", "nTrueInt"):
            columns["Pileup"] = ("nTrueInt",)
    return columns


def _missing_et(pt: Any, phi: Any, sum_pt: Any, resolution: METResolution, npv: Any) -> ak.Array:
    """A ``MissingET`` record: ``pt``, ``phi``, the scalar sum ``sumEt`` its covariance is a function of, and
    ``covXX``, ``covXY``, ``covYY`` (GeV, rad, GeV²; :mod:`coffea_mlreco.met.resolution`)."""
    sum_pt = to_numpy(sum_pt, np.float64)
    cov = met_covariance(resolution, sum_pt, npv)
    return ak.zip(
        {"pt": ak.values_astype(pt, np.float64), "phi": ak.values_astype(phi, np.float64), "sumEt": sum_pt, **cov},
        with_name="MissingET",
    )


def _scalar_sum(cands: ak.Array, weights: ak.Array | None = None) -> np.ndarray:
    pt = ak.values_astype(cands.pt, np.float64)
    return to_numpy(ak.sum(pt if weights is None else pt * weights, axis=1), np.float64)


def met_models(
    methods: Sequence[str], models: Mapping[str, Any] | None = None, device: str = "auto"
) -> dict[str, dict[int, ModelWrapper]]:
    """Per network method of ``methods``: ``{pileup: wrapper}`` (several shipped models to choose from by the
    chunk's pileup, or ``{0: wrapper}`` for the one given in ``models``)."""
    models = dict(models or {})
    unknown = set(models) - set(ML_METHODS)
    if unknown:
        raise ValueError(f"models= keys must be among {ML_METHODS}, not {sorted(unknown)}")
    chosen: dict[str, dict[int, ModelWrapper]] = {}
    for method in (m for m in methods if m in ML_METHODS):
        spec = models.get(method)
        if isinstance(spec, ModelWrapper):
            chosen[method] = {0: spec}
        elif spec is not None:
            chosen[method] = {0: MET_MODELS.load(spec, device=device)}
        else:
            by_pu = MET_MODELS.by_pileup(method)
            if not by_pu:
                raise ValueError(f"no shipped model for MET method {method!r}; give one with models=")
            chosen[method] = {pu: MET_MODELS.load(name, device=device) for pu, name in by_pu.items()}
    return chosen


class METReconstruction:
    """The per-chunk MET kernel: ``kernel(events) -> record`` with one field per column (see the module).

    ``timings``, when given, receives per method the seconds it took on every call: ``pf`` the candidate sum,
    ``puppi`` the weights and their sum, each network its inference (on the PUPPI weights already computed).
    """

    def __init__(
        self,
        methods: Sequence[str],
        models: Mapping[str, Mapping[int, ModelWrapper]],
        tune: PuppiTune,
        timings: MutableMapping[str, float] | None = None,
        resolutions: Mapping[str, METResolution] | None = None,
    ) -> None:
        self.methods = tuple(methods)
        self.models = {method: dict(by_pu) for method, by_pu in models.items()}
        self.tune = tune
        self.timings = timings
        self.resolutions = dict(load_resolutions() if resolutions is None else resolutions)
        missing = [m for m in self.methods if m not in self.resolutions]
        if missing:
            raise ValueError(f"the MET resolution table has no entry for {missing}")

    def __call__(self, events: Events) -> ak.Array:
        cands = events.PFCands
        out: dict[str, ak.Array] = {}
        if "pf" in self.methods:
            with timed(self.timings, "pf"):
                pt, phi = missing_transverse_momentum(cands)
                out[COLUMNS["pf"]] = _missing_et(pt, phi, _scalar_sum(cands), self.resolutions["pf"], 0.0)
        if _needs_puppi(self.methods):
            npv = to_numpy(events.PV.npvsGood, np.float64)
            with timed(self.timings if "puppi" in self.methods else None, "puppi"):
                weights = puppi_weights(cands, self.tune, npv=events.PV.npvsGood)
                puppi_sum = _scalar_sum(cands, weights)
                if "puppi" in self.methods:
                    pt, phi = missing_transverse_momentum(cands, weights)
                    out[COLUMNS["puppi"]] = _missing_et(pt, phi, puppi_sum, self.resolutions["puppi"], npv)
                    out["puppiWeightReco"] = weights
            with_weights = ak.with_field(events, weights, where=("PFCands", "puppiWeightReco"))
            for method in (m for m in self.methods if m in ML_METHODS):
                with timed(self.timings, method):
                    met = closest_pileup(self.models[method], events)(with_weights)
                    out[COLUMNS[method]] = _missing_et(met.pt, met.phi, puppi_sum, self.resolutions[method], npv)
        return ak.zip(out, depth_limit=1)


def supported_methods(events: Events) -> tuple[str, ...]:
    """The methods the file's columns allow: ``pf`` with ``PFCands``; PUPPI and the networks also need the
    candidates' vertex association (``fromPV``, or ``pvAssocQuality`` and ``dz``) and ``PV_npvsGood``."""
    if not has_column(events, "PFCands", "pt"):
        return ()
    fields = set(events.PFCands.fields)
    has_pv = has_column(events, "PV", "npvsGood")
    return METHODS if pf_vertex_fields(events) and has_pv and {"eta", "charge", "pdgId"} <= fields else ("pf",)


def reconstruct(
    events: Events,
    *,
    methods: Sequence[str] | None = None,
    models: Mapping[str, Any] | None = None,
    device: str = "auto",
    on_invalid: str = "flag",
    puppi_tune: str = "run3",
    timings: MutableMapping[str, float] | None = None,
    resolution: str | Path | Mapping[str, METResolution] | None = None,
) -> Any:
    """Return ``events`` with the MET columns of ``methods`` appended (default all four; see the module).

    Works on eager, virtual and dask-awkward NanoEvents (in dask mode nothing is computed: one
    ``map_partitions`` reads only :func:`input_columns`). The caller's array is not changed.

    Args:
        methods: among ``pf``, ``puppi``, ``deepmet``, ``perceiver``; default: every method the file supports
            (:func:`supported_methods`). A method asked for explicitly whose inputs are missing is an error.
        models: per network method, a shipped name, a model directory or a wrapper (default: the shipped
            model closest to each chunk's pileup).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` for the networks.
        on_invalid: ``"flag"``: an event with NaN/inf inputs gets NaN columns and ``valid`` False, the others
            are unaffected; ``"raise"``: raise ``NonFiniteInputError``.
        puppi_tune: PUPPI parameter set, ``run3`` or ``phase2``.
        timings: a dict that receives per method the seconds it took (eager and virtual events only; see
            :class:`METReconstruction`).
        resolution: a MET resolution table (JSON written by ``coffea-mlreco calibrate-met``, or per method a
            :class:`~coffea_mlreco.met.resolution.METResolution`) for the covariance fields; default the shipped
            one, calibrated for the shipped networks (:mod:`coffea_mlreco.met.resolution`).

    Raises:
        MissingBranchError: the file lacks a column a method needs; on plain CMS NanoAOD, which has no PF
            candidates, it names ``PFCands_pt`` and says so.
    """
    check_columns(events, {"PFCands": ("pt",)}, _NO_CANDIDATES)
    chosen = choose_methods(methods, MET_METHODS, default=supported_methods(events), allow_empty=True)
    networks = met_models(chosen, models, device)
    by_pileup = any(len(by_pu) > 1 for by_pu in networks.values())
    resolutions = resolution if isinstance(resolution, Mapping) else load_resolutions(resolution)
    kernel = METReconstruction(
        chosen, networks, load_tune(puppi_tune), None if is_dask(events) else timings, resolutions
    )
    return reconstruct_columns(
        events,
        kernel,
        input_columns(events, chosen, by_pileup),
        task="MET",
        where={"puppiWeightReco": ("PFCands", "puppiWeightReco")},
        on_invalid=on_invalid,
    )
