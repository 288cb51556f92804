"""``coffea_mlreco.ttbar.reconstruct``: semileptonic tt̄ jet-parton assignment appended to NanoEvents.

One column, ``TTbarReco``: per event a record with one sub-record per method and the event's ``valid`` flag
(False when an input of the event holds NaN/inf; its outputs are then blanked).

| method | sub-record | what |
|---|---|---|
| ``chi2`` | ``TTbarReco.chi2`` | χ² of the W and top masses, b-tag rule (:mod:`coffea_mlreco.ttbar.chi2`) |
| ``klfitter`` | ``TTbarReco.klfitter`` | KLFitter-style likelihood fit (:mod:`coffea_mlreco.ttbar.klfitter`) |
| ``pdnn`` | ``TTbarReco.pdnn`` | permutation DNN (:class:`coffea_mlreco.ttbar.wrappers.PermutationDNNWrapper`) |
| ``spanet`` | ``TTbarReco.spanet`` | SPANet-style attention (:class:`~coffea_mlreco.ttbar.wrappers.SPANetWrapper`) |

Every sub-record has ``had_b``, ``had_q1``, ``had_q2``, ``lep_b`` (int64): indices into the event's ``Jet``
collection (``events.Jet[i]``), −1 when the event is not selected (exactly one isolated e/μ and at least four
jets, :func:`coffea_mlreco.ttbar.inputs.semileptonic_inputs`), not assigned, or invalid. ``had_q1``/``had_q2``
are the hadronic W's quarks (interchangeable). ``spanet`` adds ``assignment_prob``, ``detection_prob`` and
``marginal_prob`` (records with ``t_had`` and ``t_lep``, in [0, 1]; marginal = assignment × detection) and
``nu_eta``, the regressed neutrino pseudorapidity; ``klfitter`` adds ``event_probability`` (the chosen
permutation's likelihood over the sum of all permutations', in [0, 1]) and ``nu_eta`` (the fitted neutrino's η).
Floats are float64 and NaN where the indices are −1.

Inputs (:func:`input_columns`, what dask-awkward reads): ``Jet`` ``pt``, ``eta``, ``phi``, ``mass``,
``btagDeepFlavB`` and the jet ID (``jetId``, or on NanoAODv15 the energy fractions and multiplicities it is
computed from: :func:`coffea_mlreco.core.nanoaod.jet_id_fields`); ``Electron`` ``pt``, ``eta``, ``phi``, ``mass``,
``charge``, ``pfRelIso03_all`` (and ``cutBased``); ``Muon`` ``pt``, ``eta``, ``phi``, ``mass``, ``charge``,
``pfRelIso04_all`` (and ``tightId``); ``MET`` (``PFMET`` on NanoAODv15) ``pt``, ``phi``, plus ``covXX``,
``covXY``, ``covYY`` for ``klfitter`` when the file has them (its MET transfer function). Momenta in GeV, angles
in rad. No generator branch is read.

``models=`` takes, per network method (``pdnn``, ``spanet``), a shipped name (``"spanet_pu60"``), a model
directory written by ``coffea-mlreco train ttbar --output DIR`` (or a model card file), or a wrapper instance;
the default is the shipped model of the method (the highest-pileup one if several ship).
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

import awkward as ak
import numpy as np

from coffea_mlreco.core.columns import Events, InputColumns, is_dask, reconstruct_columns, to_numpy
from coffea_mlreco.core.methods import choose_methods
from coffea_mlreco.core.nanoaod import jet_id_fields, met_collection
from coffea_mlreco.core.timing import timed
from coffea_mlreco.inference import ModelWrapper
from coffea_mlreco.ttbar.inputs import semileptonic_inputs
from coffea_mlreco.ttbar.methods import TTBAR_METHODS
from coffea_mlreco.ttbar.permutations import PERMUTATION_FIELDS
from coffea_mlreco.ttbar.wrappers import TTBAR_MODELS

__all__ = [
    "COLUMN",
    "METHODS",
    "ML_METHODS",
    "TTbarReconstruction",
    "declared_view",
    "default_models",
    "input_columns",
    "jet_indices",
    "reconstruct",
    "supported_methods",
    "ttbar_models",
]

METHODS: tuple[str, ...] = TTBAR_METHODS.names
"""The assignment methods, in the order of the report (:data:`coffea_mlreco.ttbar.methods.TTBAR_METHODS`)."""
ML_METHODS: tuple[str, ...] = tuple(TTBAR_METHODS.networks)
"""The methods that run a network (they take ``models=``)."""
COLUMN = "TTbarReco"
"""The column :func:`reconstruct` appends."""

JET_FIELDS: tuple[str, ...] = ("pt", "eta", "phi", "mass", "btagDeepFlavB")
ELECTRON_FIELDS: tuple[str, ...] = ("pt", "eta", "phi", "mass", "charge", "pfRelIso03_all")
MUON_FIELDS: tuple[str, ...] = ("pt", "eta", "phi", "mass", "charge", "pfRelIso04_all")
MET_FIELDS: tuple[str, ...] = ("pt", "phi")
MET_COVARIANCE: tuple[str, ...] = ("covXX", "covXY", "covYY")
_OPTIONAL = {"Electron": ("cutBased",), "Muon": ("tightId",)}
"""Identification fields the selection applies when the file has them."""
_PROB_FIELDS = ("assignment_prob", "detection_prob", "marginal_prob")
_EXTRA_FIELDS = {"spanet": (*_PROB_FIELDS, "nu_eta"), "klfitter": ("event_probability", "nu_eta")}
"""Outputs besides the four jet indices that each method's sub-record carries."""


def _fields_of(events: Events, collection: str) -> set[str]:
    return set(events[collection].fields) if collection in events.fields else set()


def _required(events: Events) -> dict[str, tuple[str, ...]]:
    """The columns the selection cannot run without, by collection (the MET and jet-ID names of the file's
    NanoAOD version)."""
    jet = (*JET_FIELDS, *(f for f in jet_id_fields(events) if f not in JET_FIELDS))
    return {"Jet": jet, "Electron": ELECTRON_FIELDS, "Muon": MUON_FIELDS, met_collection(events): MET_FIELDS}


def input_columns(events: Events, methods: Sequence[str] = METHODS) -> InputColumns:
    """The columns the selection and ``methods`` read on these events (see the module docstring)."""
    columns: dict[str, tuple[str, ...] | None] = {}
    for collection, required in _required(events).items():
        present = _fields_of(events, collection)
        optional = tuple(f for f in _OPTIONAL.get(collection, ()) if f in present)
        columns[collection] = (*required, *optional)
    if "klfitter" in methods:
        met = met_collection(events)
        present = _fields_of(events, met)
        columns[met] = (*MET_FIELDS, *(f for f in MET_COVARIANCE if f in present))
    return columns


def supported_methods(events: Events) -> tuple[str, ...]:
    """The methods the file's columns allow: all four when it has the jets (with their jet ID), leptons and MET
    of the module docstring (every method reads the same selection), else none."""
    ok = all(set(fields) <= _fields_of(events, collection) for collection, fields in _required(events).items())
    return METHODS if ok else ()


def declared_view(events: Events, columns: InputColumns) -> ak.Array:
    """A plain record array of ``events`` restricted to ``columns``: each collection projected on its
    declared fields (a ``None`` entry is kept whole). Code given this view cannot read an undeclared column,
    which in dask mode is not loaded, and sees the same fields in every mode."""
    return ak.zip(
        {
            collection: events[collection] if fields is None else events[collection][list(fields)]
            for collection, fields in columns.items()
        },
        depth_limit=1,
    )


def jet_indices(positions: np.ndarray, jets: ak.Array) -> np.ndarray:
    """Map [N, k] positions in the selected-jet lists ``jets`` (records with ``index``) to indices in the
    events' ``Jet`` collection; −1 stays −1."""
    counts = to_numpy(ak.num(jets, axis=1), np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    flat = to_numpy(ak.flatten(jets.index), np.int64)
    out = np.full(positions.shape, -1, np.int64)
    ok = positions >= 0
    rows = np.broadcast_to(starts[:, None], positions.shape)
    out[ok] = flat[rows[ok] + positions[ok]]
    return out


def default_models() -> dict[str, str]:
    """Shipped model per network method: ``<method>_pu<N>`` with the highest N (``{"spanet": "spanet_pu60"}``)."""
    return {method: by_pu[max(by_pu)] for method in ML_METHODS if (by_pu := TTBAR_MODELS.by_pileup(method))}


def ttbar_models(
    methods: Sequence[str], models: Mapping[str, Any] | None = None, device: str = "auto"
) -> dict[str, ModelWrapper]:
    """The wrapper of each network method among ``methods``: from ``models`` (a shipped name, a model
    directory or card, or a wrapper) or the shipped default (:func:`default_models`)."""
    models = dict(models or {})
    unknown = set(models) - set(ML_METHODS)
    if unknown:
        raise ValueError(f"models= keys must be among {ML_METHODS}, not {sorted(unknown)}")
    defaults = default_models()
    chosen: dict[str, ModelWrapper] = {}
    for method in (m for m in methods if m in ML_METHODS):
        spec = models.get(method, defaults.get(method))
        if spec is None:
            raise ValueError(f"no shipped model for tt̄ method {method!r}; give one with models=")
        chosen[method] = spec if isinstance(spec, ModelWrapper) else TTBAR_MODELS.load(str(spec), device=device)
    return chosen


def _expand(values: Any, selected: np.ndarray) -> np.ndarray:
    """Per-selected-event ``values`` spread to every event (float64, NaN for the others)."""
    out = np.full(selected.shape, np.nan)
    out[selected] = to_numpy(values, np.float64)
    return out


def _method_record(method: str, result: ak.Array, selected: np.ndarray, jets: ak.Array) -> ak.Array:
    """One method's sub-record for every event of the chunk from its result on the selected events."""
    positions = np.stack([to_numpy(result[f], np.int64) for f in PERMUTATION_FIELDS], axis=1)
    index = np.full((len(selected), 4), -1, np.int64)
    index[selected] = jet_indices(positions, jets)
    fields: dict[str, Any] = {name: index[:, k] for k, name in enumerate(PERMUTATION_FIELDS)}
    for name in _EXTRA_FIELDS.get(method, ()):
        values = result[name]
        if values.fields:
            fields[name] = ak.zip({top: _expand(values[top], selected) for top in values.fields})
        else:
            fields[name] = _expand(values, selected)
    return ak.zip(fields, depth_limit=1)


class TTbarReconstruction:
    """The per-chunk kernel: ``kernel(events) -> record`` with the ``TTbarReco`` field (see the module).

    Args:
        methods: the methods to run, among :data:`METHODS`.
        models: the wrapper of each network method in ``methods``.
        columns: the declared inputs (:func:`input_columns`); the kernel reads nothing else.
        max_jets: the leading selected jets the χ² and KLFitter-style fits permute.
        timings: when given, each method's assignment time in seconds is added to it on every call.
    """

    def __init__(
        self,
        methods: Sequence[str],
        models: Mapping[str, ModelWrapper],
        columns: InputColumns,
        max_jets: int = 6,
        timings: MutableMapping[str, float] | None = None,
    ) -> None:
        self.methods = tuple(methods)
        self.models = dict(models)
        self.columns = dict(columns)
        self.max_jets = int(max_jets)
        self.timings = timings

    def _assign(self, method: str, chosen: ak.Array) -> ak.Array:
        # imported here: the baselines import coffea_mlreco.ttbar.inputs, whose package imports this module
        from coffea_mlreco.ttbar.chi2 import chi2_assignment
        from coffea_mlreco.ttbar.klfitter import klfitter_assignment

        if method == "chi2":
            return chi2_assignment(chosen, max_jets=self.max_jets)
        if method == "klfitter":
            return klfitter_assignment(chosen, max_jets=self.max_jets)
        return self.models[method](chosen)

    def __call__(self, events: Events) -> ak.Array:
        inputs = semileptonic_inputs(declared_view(events, self.columns))
        selected = to_numpy(inputs.selected, bool)
        chosen = inputs[selected]
        records: dict[str, ak.Array] = {}
        for method in self.methods:
            with timed(self.timings, method):
                result = self._assign(method, chosen)
            records[method] = _method_record(method, result, selected, chosen.jets)
        return ak.zip({COLUMN: ak.zip(records, depth_limit=1)}, depth_limit=1)


def reconstruct(
    events: Events,
    *,
    methods: Sequence[str] | None = None,
    models: Mapping[str, Any] | None = None,
    device: str = "auto",
    on_invalid: str = "flag",
    max_jets: int = 6,
    timings: MutableMapping[str, float] | None = None,
) -> Any:
    """Return ``events`` with ``TTbarReco`` appended: the jet-parton assignment of each method (see the module).

    Works on eager, virtual and dask-awkward NanoEvents (in dask mode nothing is computed: one
    ``map_partitions`` reads only :func:`input_columns`). The caller's array is not changed. Events are
    selected with :func:`coffea_mlreco.ttbar.inputs.semileptonic_inputs`; the others get −1 indices and NaN.

    Args:
        methods: among ``chi2``, ``klfitter``, ``pdnn``, ``spanet``; default: every method the file supports
            (:func:`supported_methods`: all four on NanoAOD with jets, electrons, muons and MET). A method asked
            for explicitly whose inputs are missing is an error.
        models: per network method (``pdnn``, ``spanet``), a shipped name, a model directory or card, or a
            wrapper (default: the shipped model).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` for the networks.
        on_invalid: ``"flag"``: an event with NaN/inf inputs gets −1 indices, NaN floats and ``valid`` False,
            the others are unaffected; ``"raise"``: raise ``NonFiniteInputError``.
        max_jets: the leading selected jets the χ² and KLFitter-style fits permute (≥ 4); the networks use
            their model's own limit (6 for the permutation DNN, 10 for SPANet).
        timings: a dict that receives, per method, the seconds its assignment step took (eager and virtual
            events only; on dask-awkward events the kernel runs later, elsewhere, and it stays empty).

    Raises:
        MissingBranchError: the file lacks a column the methods need (e.g. ``Muon_pfRelIso04_all``).
    """
    # inputs missing: all four, and the check names the branch
    chosen = choose_methods(methods, TTBAR_METHODS, default=supported_methods(events) or METHODS)
    if int(max_jets) < 4:
        raise ValueError(f"max_jets must be at least 4, got {max_jets}")
    columns = input_columns(events, chosen)
    kernel = TTbarReconstruction(
        chosen, ttbar_models(chosen, models, device), columns, max_jets, None if is_dask(events) else timings
    )
    return reconstruct_columns(events, kernel, columns, task="tt̄ assignment", on_invalid=on_invalid)
