"""``coffea_mlreco.ditau.reconstruct``: the di-tau mass m_ττ appended to NanoEvents as ``DiTauReco``.

Each event gets one visible di-tau pair (:func:`coffea_mlreco.ditau.inputs.ditau_candidates`: eμ, μτh, eτh,
τhτh, μμ, ee, in that priority) and one ``DiTauReco`` record (GeV, rad):

| field | method | what |
|---|---|---|
| ``mass_vis`` | always | visible mass m(leg1 + leg2) |
| ``channel`` | always | :class:`~coffea_mlreco.ditau.inputs.Channel` code of the pair, −1 without a pair |
| ``mass_collinear`` | ``collinear`` | collinear approximation |
| ``collinear_status`` | ``collinear`` | its :class:`~coffea_mlreco.ditau.collinear_mass.CollinearStatus` bits |
| ``mass_fastmtt`` | ``fastmtt`` | FastMTT-style likelihood scan |
| ``fastmtt_status`` | ``fastmtt`` | its :class:`~coffea_mlreco.ditau.fastmtt.FastMTTStatus` bits |
| ``tau1_fastmtt``, ``tau2_fastmtt`` | ``fastmtt`` | its fitted taus (``pt``, ``eta``, ``phi``, ``mass``) |
| ``mass_fastmtt_mlmet`` | ``fastmtt_mlmet`` | the same fit with the ML MET (``MLMET``, the Perceiver) |
| ``fastmtt_mlmet_status`` | ``fastmtt_mlmet`` | its status bits |
| ``mass_ml`` | ``transformer`` | the shipped di-tau transformer's m_ττ |
| ``tau1_ml``, ``tau2_ml`` | ``transformer`` | its regressed taus (``pt``, ``eta``, ``phi``; mass = m_τ) |
| ``valid`` | always | False for an event whose inputs hold NaN/inf (every other field blanked) |

An event without a selected pair has NaN masses and taus, status 8 (``NO_PAIR``) and channel −1; ``valid``
stays True. The tau records are ``PtEtaPhiMLorentzVector``: ``(reco.tau1_ml + reco.tau2_ml).mass`` is
``mass_ml``.

MET (:func:`met_columns`; the ``met=`` option overrides it per method): the MET is what sets most of the m_ττ
resolution, so each method reads the best MET the events carry, with its per-event covariance (GeV²):

| method | MET |
|---|---|
| ``collinear``, ``fastmtt`` | ``PuppiMETReco`` (PUPPI, as analyses use it) when the events carry it, else the file's |
| ``fastmtt_mlmet`` | ``MLMET`` (the Perceiver); the method is supported only where the events carry it |
| ``transformer`` | the MET its model card names (``met_input``: ``file``, or a MET method such as ``perceiver``) |

The shipped ``transformer`` reads ``MLMET``; on events without it the shipped ``transformer_file_met`` (trained at
pileup 0 on the file's MET) runs instead (:func:`shipped_model`), so CMS NanoAOD with ``TauProd`` keeps a transformer.

``PuppiMETReco`` and ``MLMET`` are appended by ``coffea_mlreco.met.reconstruct`` (on files with PF candidates),
with the covariance calibrated per method (:mod:`coffea_mlreco.met.resolution`): call it first, or let
``coffea_mlreco.reconstruct(events, ["met", "ditau"])`` and the di-tau processor do so. The file's MET is ``MET``
(``PFMET`` on NanoAODv15) with ``MET_covXX``, ``MET_covXY``, ``MET_covYY`` when the file has all three (real
NanoAOD; our simulation writes its detector-model covariance there), otherwise the stochastic parametrisation
from ``MET_sumEt`` (:func:`coffea_mlreco.ditau.inputs.met_with_covariance`). The collinear approximation uses
only the MET vector; FastMTT weighs it with the covariance; the transformer reads both, rotated into the frame of
leg 1, and the FastMTT fit of the pair with the same MET as input features.

Inputs (:func:`input_columns`, what dask-awkward reads; no generator branch):

- ``Tau``: ``pt``, ``eta``, ``phi``, ``mass``, ``charge``, and where the file has them ``decayMode`` and the
  DeepTau working points ``idDeepTau2018v2p5VS{jet,e,mu}`` (else ``idDeepTau2017v2p1VS*``);
- ``Electron``: ``pt``, ``eta``, ``phi``, ``mass``, ``charge``, ``pfRelIso03_all`` and ``mvaNoIso_WP90``
  (else ``mvaFall17V2noIso_WP90``) where present;
- ``Muon``: ``pt``, ``eta``, ``phi``, ``mass``, ``charge``, ``pfRelIso04_all`` and ``mediumId`` where present;
- the MET each method reads: ``pt``, ``phi``, ``covXX``, ``covXY``, ``covYY`` of ``PuppiMETReco``/``MLMET``, or
  of the file's ``MET`` (``PFMET`` on NanoAODv15; ``sumEt`` instead of the covariance where the file lacks it);
- transformer only: ``Jet`` ``pt``, ``eta``, ``phi``, ``mass`` (and ``btagDeepFlavB`` where present) and
  ``TauProd`` ``tauIdx``, ``pt``, ``eta``, ``phi``, ``pdgId`` (the decay products of each hadronic tau; our
  simulation writes them, CMS NanoAOD does not, so there the transformer is not among
  :func:`supported_methods`).

Selection cuts (:class:`~coffea_mlreco.ditau.inputs.DiTauSelection`) are the ``selection=`` option; a DeepTau
working point of 0 leaves that branch unread.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import awkward as ak
import numpy as np

from coffea_mlreco.core.columns import (
    MET_COLUMNS,
    Events,
    InputColumns,
    event_validity,
    reconstruct_columns,
    to_numpy,
)
from coffea_mlreco.core.methods import choose_methods
from coffea_mlreco.core.nanoaod import met_collection, tau_id_branches
from coffea_mlreco.core.timing import timed
from coffea_mlreco.ditau.collinear_mass import collinear_mass
from coffea_mlreco.ditau.fastmtt import fastmtt_mass
from coffea_mlreco.ditau.inputs import (
    DEFAULT_SELECTION,
    FILE_MET,
    MET_COVARIANCE,
    DiTauSelection,
    ditau_candidates,
    has_pair,
    met_with_covariance,
    require_met_column,
)
from coffea_mlreco.ditau.methods import DITAU_METHODS
from coffea_mlreco.ditau.wrappers import DITAU_MODELS
from coffea_mlreco.inference import ModelWrapper

__all__ = [
    "COLUMN",
    "MASS_FIELDS",
    "METHODS",
    "DiTauReconstruction",
    "PairOrInvalid",
    "append_ditau",
    "default_methods",
    "ditau_model",
    "input_columns",
    "met_columns",
    "pair_columns",
    "reconstruct",
    "shipped_met_input",
    "shipped_model",
    "supported_methods",
    "visible_mass",
]

METHODS: tuple[str, ...] = DITAU_METHODS.names
"""The m_ττ reconstructions, in the order of the report (:data:`coffea_mlreco.ditau.methods.DITAU_METHODS`)."""
COLUMN = "DiTauReco"
"""The column ``reconstruct`` appends (one record per event)."""
MASS_FIELDS: dict[str, str] = {
    "collinear": "mass_collinear",
    "fastmtt": "mass_fastmtt",
    "fastmtt_mlmet": "mass_fastmtt_mlmet",
    "transformer": "mass_ml",
}
"""``DiTauReco`` field holding each method's m_ττ."""
DEFAULT_MODEL = "transformer"
"""Shipped transformer used when ``models`` names none, where the events carry the MET it reads
(:func:`shipped_model`)."""
FILE_MET_MODEL = "transformer_file_met"
"""Shipped transformer trained on the file's MET, used instead where the events lack the MET :data:`DEFAULT_MODEL`
reads (CMS NanoAOD, or our files before ``met.reconstruct``)."""

_P4_FIELDS = ("pt", "eta", "phi", "mass")
_TAU = ("pt", "eta", "phi", "mass", "charge")
_ELECTRON = ("pt", "eta", "phi", "mass", "charge", "pfRelIso03_all")
_MUON = ("pt", "eta", "phi", "mass", "charge", "pfRelIso04_all")
_FITS = ("fastmtt", "fastmtt_mlmet")
_JET = ("pt", "eta", "phi", "mass")
_TAU_PRODUCTS = ("tauIdx", "pt", "eta", "phi", "pdgId")
_ELECTRON_ID = ("mvaNoIso_WP90", "mvaFall17V2noIso_WP90")


def _fields(events: Events, collection: str) -> set[str]:
    return set(events[collection].fields) if collection in events.fields else set()


def _tau_columns(events: Events, selection: DiTauSelection) -> tuple[str, ...]:
    have = _fields(events, "Tau")
    extra = ["decayMode"] if "decayMode" in have else []
    deeptau = tau_id_branches(events)
    for target, wp in (("jet", selection.tau_vs_jet_wp), ("e", selection.tau_vs_e_wp), ("mu", selection.tau_vs_mu_wp)):
        if wp > 0 and target in deeptau:
            extra.append(deeptau[target])
    return (*_TAU, *extra)


def _met_columns(events: Events) -> tuple[str, ...]:
    have = _fields(events, met_collection(events))
    if set(MET_COVARIANCE) <= have or "sumEt" not in have:
        return ("pt", "phi", *MET_COVARIANCE)  # without either, the check names MET_covXX
    return ("pt", "phi", "sumEt")


def _has_met(events: Events, column: str) -> bool:
    return {"pt", "phi", *MET_COVARIANCE} <= _fields(events, column)


def met_columns(
    events: Events,
    methods: Sequence[str] = METHODS,
    model: ModelWrapper | None = None,
    met: Mapping[str, str] | None = None,
) -> dict[str, str | None]:
    """Per method of ``methods``, the MET column it reads (None: the file's MET); module docstring.

    ``model``: the transformer's wrapper (its card's ``met_input``); ``met``: overrides per method, a column of
    the events (``"DeepMETReco"``) or ``"file"``.
    """
    puppi = MET_COLUMNS["puppi"] if _has_met(events, MET_COLUMNS["puppi"]) else None
    default: dict[str, str | None] = {
        "collinear": puppi,
        "fastmtt": puppi,
        "fastmtt_mlmet": MET_COLUMNS["perceiver"],
        "transformer": getattr(model, "met_column", None),
    }
    chosen = {m: default.get(m) for m in methods}
    for method, column in (met or {}).items():
        if method not in METHODS:
            raise ValueError(f"met= keys must be among {METHODS}, not {method!r}")
        if method in chosen:
            chosen[method] = None if column == FILE_MET else column
    return chosen


def _met_input(events: Events, column: str | None) -> InputColumns:
    if column is None:
        return {met_collection(events): _met_columns(events)}
    return {column: ("pt", "phi", *MET_COVARIANCE)}


def pair_columns(events: Events, selection: DiTauSelection = DEFAULT_SELECTION) -> InputColumns:
    """The ``Tau``, ``Electron`` and ``Muon`` columns the pair selection reads (see the module docstring)."""
    electron_id = [name for name in _ELECTRON_ID if name in _fields(events, "Electron")][:1]
    muon_id = ["mediumId"] if "mediumId" in _fields(events, "Muon") else []
    return {
        "Tau": _tau_columns(events, selection),
        "Electron": (*_ELECTRON, *electron_id),
        "Muon": (*_MUON, *muon_id),
    }


class PairOrInvalid:
    """Per-chunk kernel: True for an event with a selected di-tau pair or with NaN/inf in the selection's inputs
    (kept so that it is counted as invalid downstream); what the processor keeps before reconstructing MET."""

    def __init__(self, columns: InputColumns, selection: DiTauSelection = DEFAULT_SELECTION) -> None:
        self.columns = columns
        self.selection = selection

    def __call__(self, events: Events) -> Any:
        keep = to_numpy(has_pair(events, self.selection), bool) | ~event_validity(events, self.columns)
        return ak.Array(keep)


def input_columns(
    events: Events,
    methods: Sequence[str] = METHODS,
    selection: DiTauSelection = DEFAULT_SELECTION,
    met: Mapping[str, str | None] | None = None,
) -> InputColumns:
    """The columns ``methods`` read on these events (see the module docstring): the pair selection, the MET
    of every method (``met``: per method its column, None the file's; default :func:`met_columns` with the
    shipped transformer's MET), plus ``Jet`` and ``TauProd`` for the transformer."""
    columns = dict(pair_columns(events, selection))
    met = met_columns(events, methods) if met is None else met
    for method in methods:
        columns.update(_met_input(events, met.get(method)))
    if "transformer" in methods:
        btag = ("btagDeepFlavB",) if "btagDeepFlavB" in _fields(events, "Jet") else ()
        columns["Jet"] = (*_JET, *btag)
        columns["TauProd"] = _TAU_PRODUCTS
    return columns


def supported_methods(events: Events) -> tuple[str, ...]:
    """The methods the file's columns allow: ``collinear`` and ``fastmtt`` with the ``Tau``, ``Electron``,
    ``Muon`` branches of the selection and a MET (``PuppiMETReco``, or the file's with its covariance or
    ``sumEt``); ``fastmtt_mlmet`` where the events carry ``MLMET``; the transformer also needs ``Jet`` and
    ``TauProd`` (absent from CMS NanoAOD)."""

    def has(columns: InputColumns) -> bool:
        return all(
            collection in events.fields and set(fields or ()) <= _fields(events, collection)
            for collection, fields in columns.items()
        )

    base = {"Tau": _TAU, "Electron": _ELECTRON, "Muon": _MUON}
    if not has(base) or not (has(_met_input(events, None)) or _has_met(events, MET_COLUMNS["puppi"])):
        return ()
    supported = ["collinear", "fastmtt"]
    if _has_met(events, MET_COLUMNS["perceiver"]):
        supported.append("fastmtt_mlmet")
    if has({"Jet": _JET, "TauProd": _TAU_PRODUCTS}):
        supported.append("transformer")
    return tuple(supported)


def default_methods(events: Events, model: ModelWrapper | None = None) -> tuple[str, ...]:
    """The methods run when none is asked for: every method the file supports (:func:`supported_methods`; without
    a branch of the pair selection the collinear and FastMTT ones, and the input check names the branch), the
    transformer only with a ``model`` (given or shipped) and where the events carry the MET it reads (its
    ``met_column``: a model trained on ``MLMET`` is left out of the defaults on events without it, while asking
    for it explicitly names the missing column)."""
    supported = supported_methods(events) or ("collinear", "fastmtt")
    met_column = getattr(model, "met_column", None)
    if model is None or (met_column is not None and not _has_met(events, met_column)):
        return tuple(m for m in supported if m != "transformer")
    return supported


def shipped_model(events: Events, required: bool = False) -> str | None:
    """The shipped transformer for ``events``: :data:`DEFAULT_MODEL` where the events carry the MET its card
    names (``met_input``), else :data:`FILE_MET_MODEL`. Where neither fits or ships: None, or with ``required``
    (the transformer asked for explicitly) :data:`DEFAULT_MODEL`, whose loading or missing MET column is then the
    error. The choice follows the events' columns, as the MET networks follow the chunk's pileup: a file without
    PF candidates cannot give the ML MET, and a model must read the MET it was trained with."""
    met_input = shipped_met_input()
    if met_input is not None and (met_input == FILE_MET or _has_met(events, MET_COLUMNS[met_input])):
        return DEFAULT_MODEL
    if FILE_MET_MODEL in DITAU_MODELS.names():
        return FILE_MET_MODEL
    return DEFAULT_MODEL if required else None


def shipped_met_input() -> str | None:
    """The ``met_input`` of :data:`DEFAULT_MODEL`'s card (``"file"`` or a MET method); None where it does not ship."""
    if DEFAULT_MODEL not in DITAU_MODELS.names():
        return None
    return str(DITAU_MODELS.card(DEFAULT_MODEL).get("met_input", FILE_MET))


def ditau_model(spec: Any = None, device: str = "auto") -> ModelWrapper:
    """The transformer wrapper for ``spec``: a wrapper instance (returned as is), a shipped name or a model
    directory / card written by ``coffea-mlreco train ditau --output DIR`` (None: :data:`DEFAULT_MODEL`)."""
    if isinstance(spec, ModelWrapper):
        return spec
    return DITAU_MODELS.load(DEFAULT_MODEL if spec is None else spec, device=device)


def _p4(leg: ak.Array) -> np.ndarray:
    """(n, 4) px, py, pz, E of option records (zeros where None)."""
    pt, eta, phi, mass = (to_numpy(ak.fill_none(leg[f], 0.0), np.float64) for f in _P4_FIELDS)
    return np.stack(
        [pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), np.sqrt((pt * np.cosh(eta)) ** 2 + mass**2)], axis=1
    )


def visible_mass(leg1: ak.Array, leg2: ak.Array) -> np.ndarray:
    """m(leg1 + leg2) in GeV; NaN where a leg is None (no pair)."""
    missing = to_numpy(ak.is_none(leg1.pt) | ak.is_none(leg2.pt), bool)
    total = _p4(leg1) + _p4(leg2)
    return np.where(missing, np.nan, np.sqrt(np.maximum(total[:, 3] ** 2 - (total[:, :3] ** 2).sum(axis=1), 0.0)))


def _tau_column(fields: Mapping[str, Any]) -> ak.Array:
    """A ``PtEtaPhiMLorentzVector`` record array of float64 numpy columns."""
    return ak.zip({f: to_numpy(fields[f], np.float64) for f in _P4_FIELDS}, with_name="PtEtaPhiMLorentzVector")


class DiTauReconstruction:
    """The per-chunk di-tau kernel: ``kernel(events) -> {DiTauReco: record}`` (see the module docstring).

    ``met`` gives per method the MET column it reads (None: the file's MET; :func:`met_columns`). ``seconds``
    holds, after each call, the time (s) each method took on that chunk (the pair selection not included; the
    transformer's includes its input features, and its FastMTT inputs where no fit read the same MET).
    """

    def __init__(
        self,
        methods: Sequence[str],
        model: ModelWrapper | None = None,
        selection: DiTauSelection = DEFAULT_SELECTION,
        met: Mapping[str, str | None] | None = None,
    ) -> None:
        self.methods = choose_methods(methods, DITAU_METHODS, allow_empty=True)
        if "transformer" in self.methods and model is None:
            raise ValueError("the transformer method needs a model (ditau_model())")
        self.model = model
        self.selection = selection
        self.met = {m: (met or {}).get(m) for m in self.methods}
        self.seconds: dict[str, float] = {}

    def _transformer(self, events: Events, candidates: ak.Array, selected: np.ndarray) -> dict[str, Any]:
        n = len(selected)
        mass = np.full(n, np.nan)
        taus = [{f: np.full(n, np.nan) for f in _P4_FIELDS} for _ in range(2)]
        if selected.any():
            products = events.TauProd
            # a product without momentum (pT ≤ 0, e.g. a NaN replaced by 0 in an invalid event) has no log pT
            inputs = ak.zip(
                {"Jet": events.Jet[selected], "TauProd": products[products.pt > 0][selected]}, depth_limit=1
            )
            model: Any = self.model  # a DiTauTransformerWrapper, called as model(events, candidates)
            out = model(inputs, candidates[selected])
            mass[selected] = to_numpy(out.mass, np.float64)
            for k in range(2):
                for f in _P4_FIELDS:
                    taus[k][f][selected] = to_numpy(out[f"tau{k + 1}"][f], np.float64)
        return {"mass_ml": mass, "tau1_ml": _tau_column(taus[0]), "tau2_ml": _tau_column(taus[1])}

    def __call__(self, events: Events) -> ak.Array:
        seconds: dict[str, float] = {}
        first = next(iter(self.met.values()), None)
        candidates = ditau_candidates(events, self.selection, first)
        selected = to_numpy(candidates.selected, bool)
        with_met: dict[str | None, ak.Array] = {first: candidates}

        def read(method: str) -> ak.Array:  # the candidates with the MET ``method`` reads
            column = self.met[method]
            if column not in with_met:
                with_met[column] = ak.with_field(candidates, met_with_covariance(events, column), "met")
            return with_met[column]

        fits: dict[str | None, ak.Array] = {}
        fields: dict[str, Any] = {"mass_vis": visible_mass(candidates.leg1, candidates.leg2)}
        if "collinear" in self.methods:
            with timed(seconds, "collinear"):
                cand = read("collinear")
                result = collinear_mass(cand.leg1, cand.leg2, cand.met)
            fields["mass_collinear"] = to_numpy(result.mass, np.float64)
            fields["collinear_status"] = to_numpy(result.status, np.int64)
        for method in (m for m in _FITS if m in self.methods):
            with timed(seconds, method):
                cand = read(method)
                result = fits[self.met[method]] = fastmtt_mass(cand.leg1, cand.leg2, cand.met)
            suffix = "" if method == "fastmtt" else "_mlmet"
            fields[f"mass_fastmtt{suffix}"] = to_numpy(result.mass, np.float64)
            fields[f"fastmtt{suffix}_status"] = to_numpy(result.status, np.int64)
            if method == "fastmtt":
                fields["tau1_fastmtt"], fields["tau2_fastmtt"] = _tau_column(result.tau1), _tau_column(result.tau2)
        if "transformer" in self.methods:
            with timed(seconds, "transformer"):
                cand = read("transformer")
                fit = fits.get(self.met["transformer"])
                if fit is None:
                    fit = fastmtt_mass(cand.leg1, cand.leg2, cand.met)
                cand = ak.with_field(cand, fit, "fastmtt")  # the transformer's inputs hold the fit with its MET
                fields.update(self._transformer(events, cand, selected))
        fields["channel"] = to_numpy(candidates.channel, np.int64)
        self.seconds = seconds
        return ak.zip({COLUMN: ak.zip(fields, depth_limit=1)}, depth_limit=1)


def _check_models(models: Mapping[str, Any] | None) -> dict[str, Any]:
    models = dict(models or {})
    unknown = set(models) - {"transformer"}
    if unknown:
        raise ValueError(f"models= keys must be among ('transformer',), not {sorted(unknown)}")
    return models


def reconstruct(
    events: Events,
    *,
    methods: Sequence[str] | None = None,
    models: Mapping[str, Any] | None = None,
    device: str = "auto",
    on_invalid: str = "flag",
    selection: DiTauSelection = DEFAULT_SELECTION,
    met: Mapping[str, str] | None = None,
) -> Any:
    """Return ``events`` with ``DiTauReco`` appended: the visible, collinear, FastMTT-style and transformer m_ττ
    (GeV) of one selected di-tau pair per event (fields and inputs in the module docstring).

    Works on eager, virtual and dask-awkward NanoEvents (in dask mode nothing is computed: one
    ``map_partitions`` reads only :func:`input_columns`). The caller's array is not changed. No generator
    branch is read.

    MET: ``collinear`` and ``fastmtt`` read ``PuppiMETReco`` where the events carry it (append it first with
    ``coffea_mlreco.met.reconstruct``), else the file's ``MET`` with its covariance; ``fastmtt_mlmet`` reads
    ``MLMET``; the transformer the MET its model card names (:func:`met_columns`).

    Args:
        methods: among ``collinear``, ``fastmtt``, ``transformer``; default: every method the file supports
            (:func:`supported_methods`: the transformer needs ``TauProd``, which CMS NanoAOD lacks). A
            method asked for explicitly whose inputs are missing is an error.
        models: ``{"transformer": spec}``, spec a shipped name, a model directory (weights + model card
            JSON) or a wrapper; default :func:`shipped_model`: ``transformer`` (trained across pileup on
            ``MLMET``) where the events carry ``MLMET``, else ``transformer_file_met``.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` for the transformer.
        on_invalid: ``"flag"``: an event with NaN/inf inputs gets NaN masses, −1 status and channel, and
            ``valid`` False, the others are unaffected; ``"raise"``: raise ``NonFiniteInputError``.
        selection: the object and pair cuts (:class:`~coffea_mlreco.ditau.inputs.DiTauSelection`).
        met: per method, the MET column to read instead of the default (``{"fastmtt": "DeepMETReco"}``), or
            ``"file"`` for the file's MET.

    Raises:
        MissingBranchError: the file lacks a column a method needs (e.g. ``TauProd_tauIdx`` for the
            transformer on CMS NanoAOD).
    """
    models = _check_models(models)
    spec = models.get("transformer") or shipped_model(events, required=methods is not None)
    wanted = "transformer" in (supported_methods(events) if methods is None else methods)
    model = ditau_model(spec, device) if wanted and spec is not None else None
    chosen = choose_methods(methods, DITAU_METHODS, default=default_methods(events, model), allow_empty=True)
    model = model if "transformer" in chosen else None
    kernel = DiTauReconstruction(chosen, model, selection, met_columns(events, chosen, model, met))
    return append_ditau(events, kernel, on_invalid=on_invalid)


def append_ditau(events: Events, kernel: DiTauReconstruction, *, on_invalid: str = "flag") -> Any:
    """``events`` with the ``DiTauReco`` column of an already built ``kernel`` (what :func:`reconstruct` and
    the processor, which keeps one kernel and its loaded model across chunks, both call)."""
    for method, column in kernel.met.items():
        if column is not None:
            require_met_column(events, column, method)
    columns = input_columns(events, kernel.methods, kernel.selection, kernel.met)
    return reconstruct_columns(events, kernel, columns, task="di-tau", on_invalid=on_invalid)
