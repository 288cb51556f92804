"""``coffea_mlreco.mlpf.reconstruct``: machine-learned particle flow (MLPF) candidates appended to NanoEvents
that carry the detector elements (files written by ``coffea-mlreco generate --elements``).

Columns:

| column | what |
|---|---|
| ``MLPFCands`` | jagged, one per element the model did not class "none", in element order (tracks then clusters) |
| ``MLPFReco`` | per event: ``n_cands`` (number of ``MLPFCands``) and ``valid`` |

``MLPFCands`` fields are those of ``PFCands`` that PUPPI and the MET models read, so
``puppi_weights(events.MLPFCands, npv=events.PV.npvsGood)`` and PF MET run on them unchanged: ``pt``, ``eta``,
``phi``, ``mass`` (GeV, rad), ``charge``, ``pdgId``, ``fromPV``, ``pvAssocQuality``, ``dz``, ``dzErr`` (cm;
charged candidates carry their track's vertex association, neutral ones fromPV = 3, pvAssocQuality = 0, dz = 0,
as ``PFCands``), plus ``trackIdx`` / ``clusterIdx`` (source element within the event, −1 for the other type)
and ``cls`` (index into `coffea_mlreco.mlpf.model.PARTICLE_CLASSES`). The records carry the
``PtEtaPhiMCandidate`` behaviour (``delta_r``, four-vector sums). Decoding: `coffea_mlreco.mlpf.candidates`.

Inputs (:func:`input_columns`, what dask-awkward reads): the element fields the model inputs are built from
(`coffea_mlreco.mlpf.inputs`) — ``PFTrack`` ``pt``, ``eta``, ``phi``, ``etaCalo``, ``phiCalo``, ``charge``,
``dz``, ``quality``, ``clusterIdx`` and, for the candidates' vertex association, ``fromPV``,
``pvAssocQuality``, ``dzErr``; ``PFCluster`` ``energy``, ``eEm``, ``eHad``, ``eta``, ``phi``, ``width`` — and
``Pileup_nTrueInt`` (else ``PV_npvsGood``) when the shipped model is chosen by pileup. Neither the truth targets
(``PFTarget``), the elements' generator links (``genPartIdx``, ``genVertex``, ``genPdgId``, ``genPUFraction``),
rule-based ``PFCands`` nor any ``Gen*`` branch is read. CMS NanoAOD has no detector elements: there
:func:`reconstruct` raises ``MissingBranchError`` naming ``PFTrack_pt``.

By default the model is the shipped ``mlpf_pu<N>`` trained at the pileup closest to the chunk's mean
``Pileup_nTrueInt`` (on collision data, the mean ``PV_npvsGood``: :func:`~coffea_mlreco.inference.model_cards.
chunk_pileup`; the highest-pileup model with neither); ``models={"mlpf": ...}`` takes a shipped
name (``"mlpf_pu60"``), a model directory written by ``coffea-mlreco train mlpf --output DIR`` (card JSON +
safetensors) or an `MLPFWrapper`. Events are independent: the kernel never needs the chunk's (or a dask
partition's) length in advance, so it runs on selections whose partition sizes are unknown.

Invalid events (NaN/inf in a declared floating-point input): with ``on_invalid="flag"`` every number in the
event's candidate list is blanked (NaN, −1 for integers; the list's length, from a run with the bad values set
to 0, carries no meaning), ``MLPFReco.n_cands`` is −1 and ``MLPFReco.valid`` False; the other events are as in
a clean run. Select ``events[events.MLPFReco.valid]`` before using the candidates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import awkward as ak
import numpy as np

from coffea_mlreco.core.columns import (
    Events,
    InputColumns,
    MissingBranchError,
    check_columns,
    has_column,
    reconstruct_columns,
    to_numpy,
)
from coffea_mlreco.core.methods import choose_methods
from coffea_mlreco.inference.model_cards import closest_pileup
from coffea_mlreco.mlpf.inputs import CLUSTER_SOURCES, TRACK_SOURCES
from coffea_mlreco.mlpf.methods import MLPF_METHODS
from coffea_mlreco.mlpf.wrapper import MLPF_MODELS, MLPFWrapper

__all__ = [
    "CANDIDATE_FIELDS",
    "COLUMNS",
    "METHODS",
    "MLPFReconstruction",
    "input_columns",
    "mlpf_models",
    "reconstruct",
    "supported_methods",
]

METHODS: tuple[str, ...] = MLPF_METHODS.names
"""The reconstructions this task appends (one: the MLPF network; :data:`coffea_mlreco.mlpf.methods.MLPF_METHODS`)."""
COLUMNS: dict[str, str] = {"mlpf": "MLPFCands"}
"""Column each method appends (besides the per-event ``MLPFReco`` record)."""
CANDIDATE_FIELDS: tuple[str, ...] = (
    "pt",
    "eta",
    "phi",
    "mass",
    "charge",
    "pdgId",
    "fromPV",
    "pvAssocQuality",
    "dz",
    "dzErr",
    "trackIdx",
    "clusterIdx",
    "cls",
)
"""Fields of ``MLPFCands`` (module docstring)."""
TRACK_FIELDS: tuple[str, ...] = (*TRACK_SOURCES.values(), "clusterIdx", "fromPV", "pvAssocQuality", "dzErr")
"""``PFTrack`` fields read: the model inputs, the track–cluster link and the charged candidates' vertex fields."""
CLUSTER_FIELDS: tuple[str, ...] = tuple(CLUSTER_SOURCES.values())
"""``PFCluster`` fields read (the model inputs)."""
CANDIDATE_RECORD = "PtEtaPhiMCandidate"
"""coffea behaviour of the ``MLPFCands`` records."""


def input_columns(events: Events, methods: Sequence[str] = METHODS, by_pileup: bool = True) -> InputColumns:
    """The columns MLPF reads on these events (module docstring); ``by_pileup`` adds ``Pileup_nTrueInt`` (when
    the file has it, else ``PV_npvsGood``) for choosing the shipped model by the chunk's pileup."""
    columns: dict[str, tuple[str, ...] | None] = {"PFTrack": TRACK_FIELDS, "PFCluster": CLUSTER_FIELDS}
    if by_pileup and has_column(events, "Pileup", "nTrueInt"):
        columns["Pileup"] = ("nTrueInt",)
    elif by_pileup and has_column(events, "PV", "npvsGood"):
        columns["PV"] = ("npvsGood",)
    return columns


def supported_methods(events: Events) -> tuple[str, ...]:
    """``("mlpf",)`` when the events carry every detector-element field MLPF reads, else ``()`` (CMS NanoAOD)."""
    try:
        check_columns(events, input_columns(events, METHODS, by_pileup=False), "MLPF")
    except MissingBranchError:
        return ()
    return METHODS


def mlpf_models(
    models: Mapping[str, Any] | None = None, device: str = "auto", precision: str = "fp32"
) -> dict[int, MLPFWrapper]:
    """``{pileup: wrapper}``: every shipped ``mlpf_pu<N>`` (chosen per chunk by pileup), or ``{0: wrapper}`` for
    the model given as ``models["mlpf"]`` (a shipped name, a model directory or card, or an `MLPFWrapper`)."""
    models = dict(models or {})
    unknown = set(models) - set(METHODS)
    if unknown:
        raise ValueError(f"models= keys must be among {METHODS}, not {sorted(unknown)}")
    spec = models.get("mlpf")
    if isinstance(spec, MLPFWrapper):
        return {0: spec}
    if spec is not None:
        return {0: MLPF_MODELS.load(spec, device=device, precision=precision)}
    by_pu = MLPF_MODELS.by_pileup("mlpf")
    if not by_pu:
        raise ValueError(
            f"no shipped mlpf_pu<N> model to choose from (shipped: {', '.join(MLPF_MODELS.names()) or 'none'}); "
            "give one with models={'mlpf': NAME_OR_DIR}"
        )
    return {pu: MLPF_MODELS.load(name, device=device, precision=precision) for pu, name in by_pu.items()}


class MLPFReconstruction:
    """The per-chunk kernel: ``kernel(events) -> {MLPFCands, MLPFReco}`` (one entry per event).

    ``models``: ``{pileup: wrapper}`` (see :func:`mlpf_models`); the chunk's model is the one trained closest to
    its mean ``Pileup_nTrueInt``. Eager code on eager events; reads only :func:`input_columns`.
    """

    def __init__(self, models: Mapping[int, MLPFWrapper]) -> None:
        if not models:
            raise ValueError("no MLPF model to run")
        self.models = dict(models)

    def model_for(self, events: Events) -> MLPFWrapper:
        """The wrapper for this chunk (pileup choice only when there are several)."""
        if len(self.models) == 1:
            return next(iter(self.models.values()))
        return closest_pileup(self.models, events)

    def __call__(self, events: Events) -> ak.Array:
        cands = self.model_for(events)(events)
        n_cands = to_numpy(ak.num(cands, axis=1), np.int32)
        cands = ak.with_name(cands[list(CANDIDATE_FIELDS)], CANDIDATE_RECORD)
        return ak.zip({COLUMNS["mlpf"]: cands, "MLPFReco": ak.zip({"n_cands": n_cands})}, depth_limit=1)


def reconstruct(
    events: Events,
    *,
    methods: Sequence[str] | None = None,
    models: Mapping[str, Any] | None = None,
    device: str = "auto",
    on_invalid: str = "flag",
    precision: str = "fp32",
) -> Any:
    """Return ``events`` with ``MLPFCands`` (jagged candidates) and ``MLPFReco`` (``n_cands``, ``valid``) appended.

    Works on eager, virtual and dask-awkward NanoEvents (in dask mode nothing is computed: one
    ``map_partitions`` reads only :func:`input_columns`; the partitions' lengths need not be known). The
    caller's array is not changed. Units: GeV, rad, cm (module docstring).

    Args:
        methods: ``("mlpf",)`` or None (the same: MLPF is the task's only method).
        models: ``{"mlpf": NAME_OR_DIR_OR_WRAPPER}``; default: the shipped ``mlpf_pu<N>`` closest to each chunk's
            mean ``Pileup_nTrueInt``.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        on_invalid: ``"flag"``: an event with NaN/inf inputs gets blanked candidates and ``valid`` False, the
            others are unaffected; ``"raise"``: raise ``NonFiniteInputError``.
        precision: ``fp32`` (default; the shipped cards' decisions were chosen in fp32), ``bf16``, ``fp16`` or
            ``auto``.

    Raises:
        MissingBranchError: the file has no detector elements (``PFTrack_pt`` on CMS NanoAOD) or lacks one of
            their fields.
    """
    choose_methods(methods, MLPF_METHODS)  # checks the request: MLPF is the task's only method
    networks = mlpf_models(models, device, precision)
    columns = input_columns(events, METHODS, by_pileup=len(networks) > 1)
    return reconstruct_columns(events, MLPFReconstruction(networks), columns, task="MLPF", on_invalid=on_invalid)
