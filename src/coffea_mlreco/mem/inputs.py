"""Dilepton events for the MEM from NanoAOD: the leading e⁺e⁻ or μ⁺μ⁻ pair, the two leading jets and the MET.

Conventions: GeV and radians; vectorised over events with awkward (no Python loop over events); works on eager or
virtual NanoEvents (``NanoAODSchema``) and on plain awkward records with the same fields.

Leptons (cuts in :class:`DileptonSelection`; the kinematic ones default to the MEM normalisation region
:class:`~coffea_mlreco.mem.cross_section.FiducialRegion`, so selected events are those the weights are normalised
in)
    electrons and muons with pT > 15 GeV and |η| < 2.5; where the file has the branch, relative isolation
    ``Electron_pfRelIso03_all`` / ``Muon_pfRelIso04_all`` < 0.15, electron ID ``mvaIso_WP90`` (else
    ``mvaFall17V2Iso_WP90``) and muon ``mediumId``. A file without an isolation or ID branch (our simulation has
    no ID branches) is selected without that cut.
Pair
    every opposite-charge same-flavour pair (e⁺e⁻ or μ⁺μ⁻) of selected leptons with m_ℓℓ inside the fiducial
    window (50–1000 GeV); the *leading pair* is the one with the largest scalar sum pT1 + pT2 (across both
    flavours). ``lep1`` is its higher-pT lepton (the φ reference of the DeepMEM inputs), ``lep2`` the other. The
    PDG id is −11·charge for electrons, −13·charge for muons (so no ``pdgId`` branch is needed).
Jets
    ``Jet`` with pT > 30 GeV, |η| < 4.7, ΔR > 0.4 to both selected leptons and the tight jet ID
    (:func:`coffea_mlreco.core.nanoaod.jet_id`: the stored ``Jet_jetId`` bit, or on NanoAODv15 the Run-3 recipe
    from the energy fractions; a file with neither is an error); the two highest-pT ones are kept (``jets``: 0–2
    per event, pT-ordered).
MET
    ``MET_pt``, ``MET_phi`` and, when present, ``MET_sumEt`` (``PFMET_*`` on NanoAODv15:
    :func:`coffea_mlreco.core.nanoaod.met_collection`).

Missing collections or branches raise a ValueError naming them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import awkward as ak
import numpy as np

from coffea_mlreco.core.columns import Events
from coffea_mlreco.core.nanoaod import JET_ID_LEVELS, JetIDError, jet_id, met_collection
from coffea_mlreco.core.truth import delta_r
from coffea_mlreco.mem.cross_section import FiducialRegion

__all__ = [
    "DEFAULT_DILEPTON_SELECTION",
    "LEPTON_FIELDS",
    "DileptonSelection",
    "charge_ordered",
    "dilepton_candidates",
    "integration_inputs",
    "network_features",
]

_FIDUCIAL = FiducialRegion()
LEPTON_FIELDS: tuple[str, ...] = ("pt", "eta", "phi", "mass", "pdgId", "charge")
"""Fields of ``lep1``/``lep2`` in :func:`dilepton_candidates`' output (plus ``index`` in its collection)."""
_KINEMATICS = ("pt", "eta", "phi", "mass", "charge")
_JET_FIELDS = ("pt", "eta", "phi")


@dataclass(frozen=True)
class DileptonSelection:
    """Object and pair cuts (GeV); see the module docstring. Defaults follow :class:`FiducialRegion`."""

    lepton_pt_min: float = _FIDUCIAL.lepton_pt_min
    lepton_abs_eta_max: float = _FIDUCIAL.lepton_abs_eta_max
    mll_min: float = _FIDUCIAL.mll_min
    mll_max: float = _FIDUCIAL.mll_max
    electron_iso_max: float = 0.15
    muon_iso_max: float = 0.15
    electron_id: tuple[str, ...] = ("mvaIso_WP90", "mvaFall17V2Iso_WP90")
    muon_id: tuple[str, ...] = ("mediumId",)
    jet_pt_min: float = 30.0
    jet_abs_eta_max: float = 4.7
    jet_lepton_dr: float = 0.4
    jet_id: str = "tight"
    """The jet-ID level required, ``"tight"`` or ``"tightLepVeto"``."""
    flavours: tuple[int, ...] = field(default=(11, 13))

    def __post_init__(self) -> None:
        if not (self.lepton_pt_min >= 0 and self.lepton_abs_eta_max > 0 and 0 <= self.mll_min < self.mll_max):
            raise ValueError(f"invalid dilepton cuts {self}")
        if not set(self.flavours) <= {11, 13} or not self.flavours:
            raise ValueError(f"flavours must be a non-empty subset of (11, 13), got {self.flavours}")
        if self.jet_pt_min < 0 or self.jet_lepton_dr < 0:
            raise ValueError("jet_pt_min and jet_lepton_dr must be ≥ 0")
        if self.jet_id not in JET_ID_LEVELS:
            raise ValueError(f"jet_id must be one of {JET_ID_LEVELS}, got {self.jet_id!r}")


DEFAULT_DILEPTON_SELECTION = DileptonSelection()


def _collection(events: Events, name: str, fields: tuple[str, ...]) -> Any:
    if name not in ak.fields(events):
        raise ValueError(
            f"MEM inputs need the {name} collection (branches {', '.join(f'{name}_{f}' for f in fields)}"
            "); the file has none"
        )
    coll = events[name]
    missing = [f"{name}_{f}" for f in fields if f not in ak.fields(coll)]
    if missing:
        raise ValueError(f"MEM inputs need the branch(es) {', '.join(missing)}, absent from the file")
    return coll


def _f64(array: Any) -> Any:
    return ak.without_parameters(ak.values_astype(array, np.float64))


def _leptons(
    events: Events, name: str, pdg: int, iso: str, iso_max: float, ids: tuple[str, ...], cuts: DileptonSelection
) -> ak.Array:
    coll = _collection(events, name, _KINEMATICS)
    fields = ak.fields(coll)
    mask = (coll.pt > cuts.lepton_pt_min) & (abs(coll.eta) < cuts.lepton_abs_eta_max)
    if iso in fields:
        mask = mask & (coll[iso] < iso_max)
    for branch in ids:
        if branch in fields:
            mask = mask & (coll[branch] > 0)
            break
    charge = ak.without_parameters(ak.values_astype(coll.charge, np.int64))
    rec = {f: _f64(coll[f]) for f in ("pt", "eta", "phi", "mass")}
    rec["mass"] = np.maximum(rec["mass"], 0.0)  # real NanoAOD stores slightly negative electron masses
    rec["pdgId"] = -pdg * charge
    rec["charge"] = charge
    rec["index"] = ak.local_index(coll.pt, axis=1)
    leptons = ak.zip(rec)
    return leptons[mask]


def _pair_mass(a: Any, b: Any) -> Any:
    """m(a + b) of two massless leptons (GeV)."""
    return np.sqrt(np.maximum(2 * a.pt * b.pt * (np.cosh(a.eta - b.eta) - np.cos(a.phi - b.phi)), 0.0))


def _best_pair(leptons: ak.Array, cuts: DileptonSelection) -> ak.Array:
    pairs = ak.combinations(leptons, 2, fields=["a", "b"])
    mll = _pair_mass(pairs.a, pairs.b)
    ok = (pairs.a.charge * pairs.b.charge < 0) & (mll > cuts.mll_min) & (mll < cuts.mll_max)
    pairs = pairs[ok]
    best = pairs[ak.argmax(pairs.a.pt + pairs.b.pt, axis=1, keepdims=True)]
    return ak.from_regular(best, axis=1)


def _lepton_column(leptons: ak.Array, selected: Any) -> ak.Array:
    """Option records (None where ``selected`` is False) with non-optional fields."""
    fields = {f: ak.fill_none(leptons[f], 0) for f in (*LEPTON_FIELDS, "index")}
    return ak.mask(ak.zip(fields), selected)


def dilepton_candidates(events: Events, cuts: DileptonSelection = DEFAULT_DILEPTON_SELECTION) -> ak.Array:
    """The leading opposite-sign same-flavour lepton pair of every event, its jets and MET (module docstring).

    Args:
        events: NanoEvents (or an awkward record array) with ``Electron``, ``Muon`` (``pt``, ``eta``, ``phi``,
            ``mass``, ``charge``), ``Jet`` (``pt``, ``eta``, ``phi``) and ``MET`` (``pt``, ``phi``).
        cuts: object and pair cuts.

    Returns:
        One record per event: ``lep1``, ``lep2`` (option records, None without a pair: ``pt``, ``eta``,
        ``phi``, ``mass`` in GeV/rad, ``pdgId``, ``charge``, ``index`` in its collection; lep1 the higher-pT
        one), ``jets`` (the 0–2 leading clean jets: ``pt``, ``eta``, ``phi``), ``met`` (``pt``, ``phi`` and
        ``sumEt`` when the file has it), ``mll`` (GeV, NaN without a pair), ``flavour`` (11, 13 or 0) and
        ``selected`` (bool).

    Raises:
        ValueError: a needed collection or branch is missing, the jet-ID branches included (the message names it).
    """
    met_coll = _collection(events, met_collection(events), ("pt", "phi"))
    jets_coll = _collection(events, "Jet", _JET_FIELDS)
    try:
        jet_passes_id = jet_id(events)[cuts.jet_id]
    except JetIDError as err:
        raise ValueError(f"MEM inputs: {err}") from None
    groups = []
    if 11 in cuts.flavours:
        groups.append(
            _best_pair(
                _leptons(events, "Electron", 11, "pfRelIso03_all", cuts.electron_iso_max, cuts.electron_id, cuts), cuts
            )
        )
    if 13 in cuts.flavours:
        groups.append(
            _best_pair(_leptons(events, "Muon", 13, "pfRelIso04_all", cuts.muon_iso_max, cuts.muon_id, cuts), cuts)
        )
    candidates = ak.concatenate(groups, axis=1) if len(groups) > 1 else groups[0]
    best = ak.firsts(candidates[ak.argmax(candidates.a.pt + candidates.b.pt, axis=1, keepdims=True)], axis=1)
    a_leads = best.a.pt >= best.b.pt
    lep1 = ak.where(a_leads, best.a, best.b)
    lep2 = ak.where(a_leads, best.b, best.a)
    selected = ~ak.is_none(best, axis=0)
    mll = ak.fill_none(_pair_mass(lep1, lep2), np.nan)
    flavour = ak.fill_none(abs(lep1.pdgId), 0)

    jpt, jeta, jphi = (_f64(jets_coll[f]) for f in _JET_FIELDS)
    keep = (jpt > cuts.jet_pt_min) & (abs(jeta) < cuts.jet_abs_eta_max) & jet_passes_id
    for lep in (lep1, lep2):
        keep = keep & ak.fill_none(delta_r(jeta, jphi, lep.eta, lep.phi) > cuts.jet_lepton_dr, True, axis=None)
    jets = ak.zip({"pt": jpt, "eta": jeta, "phi": jphi})[keep]
    jets = jets[ak.argsort(jets.pt, axis=1, ascending=False)][:, :2]

    met = {"pt": _f64(met_coll.pt), "phi": _f64(met_coll.phi)}
    if "sumEt" in ak.fields(met_coll):
        met["sumEt"] = _f64(met_coll.sumEt)
    return ak.zip(
        {
            "lep1": _lepton_column(lep1, selected),
            "lep2": _lepton_column(lep2, selected),
            "jets": jets,
            "met": ak.zip(met),
            "mll": mll,
            "flavour": ak.values_astype(flavour, np.int64),
            "selected": selected,
        },
        depth_limit=1,
    )


def _numpy(array: Any, dtype: type) -> np.ndarray:
    return np.ascontiguousarray(ak.to_numpy(array), dtype=dtype)


def integration_inputs(
    candidates: ak.Array, use_sum_et: bool = False
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``(lep1, lep2, met)`` numpy dicts for :func:`coffea_mlreco.mem.mem_log_weights` from *selected* candidates.

    ``met`` holds ``pt`` and ``phi``, and ``sumEt`` only with ``use_sum_et``: the integration then takes each
    event's recoil resolution σ_u(ΣE_T) (the right one at pileup, where σ_u grows from ≈ 7 GeV at PU 0 to ≈ 26 GeV
    at PU 60; a DeepMEM with ``met_sum_et_resolution`` reads the same ΣE_T), else the transfer functions' default
    ΣE_T (160 GeV, PU 0 Drell-Yan), a weight that is a function of the 14 DeepMEM inputs alone. The MET term is
    common to every hypothesis, so the discriminant barely depends on this choice.

    Raises:
        ValueError: an event without a pair (select ``candidates[candidates.selected]`` first).
    """
    if len(candidates) and not bool(ak.all(candidates.selected)):
        raise ValueError("integration_inputs needs selected candidates only (candidates[candidates.selected])")
    leps = tuple(
        {
            f: _numpy(candidates[lep][f], np.int64 if f == "pdgId" else np.float64)
            for f in ("pt", "eta", "phi", "mass", "pdgId")
        }
        for lep in ("lep1", "lep2")
    )
    fields = ("pt", "phi", "sumEt") if use_sum_et else ("pt", "phi")
    if use_sum_et and "sumEt" not in ak.fields(candidates.met):
        raise ValueError("use_sum_et needs the MET_sumEt branch, absent from the file")
    met = {f: _numpy(candidates.met[f], np.float64) for f in fields}
    return leps[0], leps[1], met


def charge_ordered(
    lep1: dict[str, np.ndarray], lep2: dict[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The two leptons as (ℓ⁻, ℓ⁺): the order of the DeepMEM inputs and of the MEM weight tables.

    The weight depends on which lepton is the ℓ⁻ (cos θ* changes sign with the charges: the forward-backward
    asymmetry, up to ~30 % of the Drell-Yan weight above the Z), and the 14 kinematic inputs carry no charge, so the
    order does: lepton 1 is the ℓ⁻ (PDG id +11/+13), lepton 2 the ℓ⁺.
    """
    first_is_minus = lep1["pdgId"] > 0
    minus = {f: np.where(first_is_minus, lep1[f], lep2[f]) for f in lep1}
    plus = {f: np.where(first_is_minus, lep2[f], lep1[f]) for f in lep1}
    return minus, plus


def network_features(candidates: ak.Array, flavour: bool = False, sum_et: bool = False) -> np.ndarray:
    """The DeepMEM inputs [N, 14] (plus the flavour with ``flavour``, then ΣE_T with ``sum_et``) of *selected*
    candidates (:func:`coffea_mlreco.mem.deepmem.deepmem_features`): the leptons in the order (ℓ⁻, ℓ⁺) of
    :func:`charge_ordered`, the two leading jets, MET (and its ``sumEt``, which the candidates then need)."""
    from coffea_mlreco.mem.deepmem import deepmem_features

    lep1, lep2, met = integration_inputs(candidates, use_sum_et=sum_et)
    lep1, lep2 = charge_ordered(lep1, lep2)
    jets = candidates.jets
    padded = {f: _numpy(ak.fill_none(ak.pad_none(jets[f], 2, axis=1, clip=True), 0.0), np.float64) for f in _JET_FIELDS}
    return deepmem_features(lep1, lep2, padded, met, flavour=flavour, sum_et=sum_et)
