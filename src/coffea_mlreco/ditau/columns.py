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
| ``mass_ml`` | ``transformer`` | the shipped di-tau transformer's m_ττ |
| ``tau1_ml``, ``tau2_ml`` | ``transformer`` | its regressed taus (``pt``, ``eta``, ``phi``; mass = m_τ) |
| ``valid`` | always | False for an event whose inputs hold NaN/inf (every other field blanked) |

An event without a selected pair has NaN masses and taus, status 8 (``NO_PAIR``) and channel −1; ``valid``
stays True. The tau records are ``PtEtaPhiMLorentzVector``: ``(reco.tau1_ml + reco.tau2_ml).mass`` is
``mass_ml``.

MET: every method reads the file's ``MET`` (``PFMET`` on NanoAODv15; both written ``MET`` here) (``pt``,
``phi``) with its covariance ``MET_covXX``, ``MET_covXY``, ``MET_covYY`` (GeV²) when the file has all three
(real NanoAOD; our simulation writes its detector-model covariance there), otherwise the stochastic
parametrisation from ``MET_sumEt`` (:func:`coffea_mlreco.ditau.inputs.met_with_covariance`). The collinear
approximation uses only the MET vector; FastMTT weighs it with the covariance; the transformer reads both,
rotated into the frame of leg 1, and the FastMTT fit of the pair as input features.

Inputs (:func:`input_columns`, what dask-awkward reads; no generator branch):

- ``Tau``: ``pt``, ``eta``, ``phi``, ``mass``, ``charge``, and where the file has them ``decayMode`` and the
  DeepTau working points ``idDeepTau2018v2p5VS{jet,e,mu}`` (else ``idDeepTau2017v2p1VS*``);
- ``Electron``: ``pt``, ``eta``, ``phi``, ``mass``, ``charge``, ``pfRelIso03_all`` and ``mvaNoIso_WP90``
  (else ``mvaFall17V2noIso_WP90``) where present;
- ``Muon``: ``pt``, ``eta``, ``phi``, ``mass``, ``charge``, ``pfRelIso04_all`` and ``mediumId`` where present;
- ``MET`` (``PFMET`` on NanoAODv15): ``pt``, ``phi`` and ``covXX``, ``covXY``, ``covYY`` (or ``sumEt`` without
  them);
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

from coffea_mlreco.core.columns import Events, InputColumns, reconstruct_columns, to_numpy
from coffea_mlreco.core.methods import choose_methods
from coffea_mlreco.core.nanoaod import met_collection, tau_id_branches
from coffea_mlreco.core.timing import timed
from coffea_mlreco.ditau.collinear_mass import collinear_mass
from coffea_mlreco.ditau.fastmtt import fastmtt_mass
from coffea_mlreco.ditau.inputs import DEFAULT_SELECTION, DiTauSelection, ditau_candidates
from coffea_mlreco.ditau.methods import DITAU_METHODS
from coffea_mlreco.ditau.wrappers import DITAU_MODELS
from coffea_mlreco.inference import ModelWrapper

__all__ = [
    "COLUMN",
    "MASS_FIELDS",
    "METHODS",
    "DiTauReconstruction",
    "append_ditau",
    "default_methods",
    "ditau_model",
    "input_columns",
    "reconstruct",
    "supported_methods",
    "visible_mass",
]

METHODS: tuple[str, ...] = DITAU_METHODS.names
"""The m_ττ reconstructions, in the order of the report (:data:`coffea_mlreco.ditau.methods.DITAU_METHODS`)."""
COLUMN = "DiTauReco"
"""The column ``reconstruct`` appends (one record per event)."""
MASS_FIELDS: dict[str, str] = {"collinear": "mass_collinear", "fastmtt": "mass_fastmtt", "transformer": "mass_ml"}
"""``DiTauReco`` field holding each method's m_ττ."""
DEFAULT_MODEL = "transformer"
"""Shipped transformer used when ``models`` names none."""

_P4_FIELDS = ("pt", "eta", "phi", "mass")
_TAU = ("pt", "eta", "phi", "mass", "charge")
_ELECTRON = ("pt", "eta", "phi", "mass", "charge", "pfRelIso03_all")
_MUON = ("pt", "eta", "phi", "mass", "charge", "pfRelIso04_all")
_MET_COV = ("covXX", "covXY", "covYY")
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
    if set(_MET_COV) <= have or "sumEt" not in have:
        return ("pt", "phi", *_MET_COV)  # without either, the check names MET_covXX
    return ("pt", "phi", "sumEt")


def input_columns(
    events: Events, methods: Sequence[str] = METHODS, selection: DiTauSelection = DEFAULT_SELECTION
) -> InputColumns:
    """The columns ``methods`` read on these events (see the module docstring): the pair selection and the
    MET for every method, plus ``Jet`` and ``TauProd`` for the transformer."""
    electron_id = [name for name in _ELECTRON_ID if name in _fields(events, "Electron")][:1]
    muon_id = ["mediumId"] if "mediumId" in _fields(events, "Muon") else []
    columns: dict[str, tuple[str, ...] | None] = {
        "Tau": _tau_columns(events, selection),
        "Electron": (*_ELECTRON, *electron_id),
        "Muon": (*_MUON, *muon_id),
        met_collection(events): _met_columns(events),
    }
    if "transformer" in methods:
        btag = ("btagDeepFlavB",) if "btagDeepFlavB" in _fields(events, "Jet") else ()
        columns["Jet"] = (*_JET, *btag)
        columns["TauProd"] = _TAU_PRODUCTS
    return columns


def supported_methods(events: Events) -> tuple[str, ...]:
    """The methods the file's columns allow: ``collinear`` and ``fastmtt`` with the ``Tau``, ``Electron``,
    ``Muon`` and ``MET`` branches of the selection (MET with its covariance or ``sumEt``); the transformer
    also needs ``Jet`` and ``TauProd`` (absent from CMS NanoAOD)."""

    def has(columns: InputColumns) -> bool:
        return all(
            collection in events.fields and set(fields or ()) <= _fields(events, collection)
            for collection, fields in columns.items()
        )

    base = {"Tau": _TAU, "Electron": _ELECTRON, "Muon": _MUON, met_collection(events): _met_columns(events)}
    if not has(base):
        return ()
    if has({"Jet": _JET, "TauProd": _TAU_PRODUCTS}):
        return METHODS
    return ("collinear", "fastmtt")


def default_methods(events: Events, with_transformer: bool = True) -> tuple[str, ...]:
    """The methods run when none is asked for: every method the file supports (:func:`supported_methods`; without
    a branch of the pair selection the collinear and FastMTT ones, and the input check names the branch), the
    transformer only ``with_transformer`` (when a model is given or shipped)."""
    supported = supported_methods(events) or ("collinear", "fastmtt")
    return supported if with_transformer else tuple(m for m in supported if m != "transformer")


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

    ``seconds`` holds, after each call, the time (s) each method took on that chunk (the pair selection
    not included; the transformer's includes its input features).
    """

    def __init__(
        self, methods: Sequence[str], model: ModelWrapper | None = None, selection: DiTauSelection = DEFAULT_SELECTION
    ) -> None:
        self.methods = choose_methods(methods, DITAU_METHODS, allow_empty=True)
        if "transformer" in self.methods and model is None:
            raise ValueError("the transformer method needs a model (ditau_model())")
        self.model = model
        self.selection = selection
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
        candidates = ditau_candidates(events, self.selection)
        selected = to_numpy(candidates.selected, bool)
        fields: dict[str, Any] = {"mass_vis": visible_mass(candidates.leg1, candidates.leg2)}
        if "collinear" in self.methods:
            with timed(seconds, "collinear"):
                result = collinear_mass(candidates.leg1, candidates.leg2, candidates.met)
            fields["mass_collinear"] = to_numpy(result.mass, np.float64)
            fields["collinear_status"] = to_numpy(result.status, np.int64)
        if "fastmtt" in self.methods:
            with timed(seconds, "fastmtt"):
                result = fastmtt_mass(candidates.leg1, candidates.leg2, candidates.met)
            fields["mass_fastmtt"] = to_numpy(result.mass, np.float64)
            fields["fastmtt_status"] = to_numpy(result.status, np.int64)
            fields["tau1_fastmtt"], fields["tau2_fastmtt"] = _tau_column(result.tau1), _tau_column(result.tau2)
            candidates = ak.with_field(candidates, result, "fastmtt")  # the transformer's inputs reuse the fit
        if "transformer" in self.methods:
            with timed(seconds, "transformer"):
                fields.update(self._transformer(events, candidates, selected))
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
) -> Any:
    """Return ``events`` with ``DiTauReco`` appended: the visible, collinear, FastMTT-style and transformer m_ττ
    (GeV) of one selected di-tau pair per event (fields and inputs in the module docstring).

    Works on eager, virtual and dask-awkward NanoEvents (in dask mode nothing is computed: one
    ``map_partitions`` reads only :func:`input_columns`). The caller's array is not changed. No generator
    branch is read.

    MET: every method uses the file's ``MET`` (``pt``, ``phi``) with its covariance ``MET_cov{XX,XY,YY}``
    (or, without it, the parametrisation from ``MET_sumEt``); the collinear approximation reads the vector
    only, FastMTT and the transformer the vector and its covariance.

    Args:
        methods: among ``collinear``, ``fastmtt``, ``transformer``; default: every method the file supports
            (:func:`supported_methods`: the transformer needs ``TauProd``, which CMS NanoAOD lacks). A
            method asked for explicitly whose inputs are missing is an error.
        models: ``{"transformer": spec}``, spec a shipped name, a model directory (weights + model card
            JSON) or a wrapper; default the shipped ``transformer``.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` for the transformer.
        on_invalid: ``"flag"``: an event with NaN/inf inputs gets NaN masses, −1 status and channel, and
            ``valid`` False, the others are unaffected; ``"raise"``: raise ``NonFiniteInputError``.
        selection: the object and pair cuts (:class:`~coffea_mlreco.ditau.inputs.DiTauSelection`).

    Raises:
        MissingBranchError: the file lacks a column a method needs (e.g. ``TauProd_tauIdx`` for the
            transformer on CMS NanoAOD).
    """
    models = _check_models(models)
    has_model = "transformer" in models or DEFAULT_MODEL in DITAU_MODELS.names()
    chosen = choose_methods(methods, DITAU_METHODS, default=default_methods(events, has_model), allow_empty=True)
    model = ditau_model(models.get("transformer"), device) if "transformer" in chosen else None
    return append_ditau(events, DiTauReconstruction(chosen, model, selection), on_invalid=on_invalid)


def append_ditau(events: Events, kernel: DiTauReconstruction, *, on_invalid: str = "flag") -> Any:
    """``events`` with the ``DiTauReco`` column of an already built ``kernel`` (what :func:`reconstruct` and
    the processor, which keeps one kernel and its loaded model across chunks, both call)."""
    return reconstruct_columns(
        events, kernel, input_columns(events, kernel.methods, kernel.selection), task="di-tau", on_invalid=on_invalid
    )
