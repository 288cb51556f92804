"""Event selection and inputs for semileptonic tt̄ jet-parton assignment, from NanoAOD.

Selection (one place, used by every method, by training and by the report):

- leptons: electrons with pT > 25 GeV, |η| < 2.5, ``pfRelIso03_all`` < 0.15 (and ``cutBased`` ≥ 3, medium, when
  the file has it); muons with pT > 25 GeV, |η| < 2.4, ``pfRelIso04_all`` < 0.15 (and ``tightId`` when
  present). The event needs exactly one such lepton.
- jets: pT > 25 GeV, |η| < 2.5, tight jet ID (:func:`coffea_mlreco.core.nanoaod.jet_id`: the stored
  ``Jet_jetId`` bit, or on NanoAODv15 the Run-3 recipe from the energy fractions; a file with neither is an
  error), ΔR > 0.4 from the selected lepton; kept in the file's (pT-descending) order. The event needs at least 4.
- b tagging: DeepJet, ``Jet_btagDeepFlavB`` (every CMS NanoAOD v9–v15 and our simulation write it), medium
  working point :data:`BTAG_MEDIUM_WP`. The networks were trained and the χ² working point set on DeepJet-like
  scores, so a file with only ParticleNet or UParT is refused (:func:`coffea_mlreco.core.nanoaod.btag_choice`).
- MET: the file's PF MET, ``MET`` (``PFMET`` on NanoAODv15; :func:`coffea_mlreco.core.nanoaod.met_collection`).

All momenta in GeV, angles in rad. Jet indices reported by the assignment methods are positions in the
selected-jet list; ``jets.index`` maps them back to the event's ``Jet`` collection.
"""

from __future__ import annotations

from typing import Any

import awkward as ak
import numpy as np

from coffea_mlreco.core.columns import Events
from coffea_mlreco.core.constants import PARTON_JET_DR
from coffea_mlreco.core.nanoaod import BTAG_ALGORITHMS, JetIDError, btag_choice, jet_id, met_collection
from coffea_mlreco.core.truth import delta_r, match_partons_to_jets, stack_partons, ttbar_partons

__all__ = [
    "BTAG_ALGORITHM",
    "BTAG_MEDIUM_WP",
    "JET_ETA_MAX",
    "JET_PT_MIN",
    "LEPTON_PT_MIN",
    "MIN_JETS",
    "MissingInputError",
    "assignment_targets",
    "select_jets",
    "select_leptons",
    "semileptonic_inputs",
]

JET_PT_MIN = 25.0
JET_ETA_MAX = 2.5
LEPTON_PT_MIN = 25.0
ELECTRON_ETA_MAX = 2.5
MUON_ETA_MAX = 2.4
LEPTON_ISO_MAX = 0.15
MIN_JETS = 4
BTAG_ALGORITHM = "DeepJet"
"""The b-tag discriminant the selection reads (:data:`coffea_mlreco.core.nanoaod.BTAG_ALGORITHMS`)."""
BTAG_MEDIUM_WP = next(c.medium_wp for c in BTAG_ALGORITHMS if c.algorithm == BTAG_ALGORITHM)
"""DeepJet-like medium working point, 0.3: 80 % b efficiency, ~1 % light mistag in our detector model
(``DetectorParameters.btag_medium_wp``); CMS's Run-3 DeepJet medium point is 0.25–0.31."""


class MissingInputError(KeyError):
    """A branch the tt̄ reconstruction needs is absent."""

    def __str__(self) -> str:
        return str(self.args[0])


def _require(events: Events, collection: str, fields: tuple[str, ...]) -> None:
    if collection not in events.fields:
        raise MissingInputError(
            f"collection {collection!r} is missing (the tt̄ reconstruction needs "
            f"{', '.join(f'{collection}_{f}' for f in fields)})"
        )
    missing = [f for f in fields if f not in events[collection].fields]
    if missing:
        raise MissingInputError(f"branch '{collection}_{missing[0]}' is missing (needed by the tt̄ reconstruction)")


def select_leptons(events: Events) -> ak.Array:
    """The selected electrons and muons, merged per event into records ``pt, eta, phi, mass, charge, pdgId``."""
    _require(events, "Electron", ("pt", "eta", "phi", "mass", "charge", "pfRelIso03_all"))
    _require(events, "Muon", ("pt", "eta", "phi", "mass", "charge", "pfRelIso04_all"))
    ele, mu = events.Electron, events.Muon
    ele_ok = (ele.pt > LEPTON_PT_MIN) & (abs(ele.eta) < ELECTRON_ETA_MAX) & (ele.pfRelIso03_all < LEPTON_ISO_MAX)
    if "cutBased" in ele.fields:
        ele_ok = ele_ok & (ele.cutBased >= 3)
    mu_ok = (mu.pt > LEPTON_PT_MIN) & (abs(mu.eta) < MUON_ETA_MAX) & (mu.pfRelIso04_all < LEPTON_ISO_MAX)
    if "tightId" in mu.fields:
        mu_ok = mu_ok & mu.tightId

    def fields(coll: ak.Array, pdg: int) -> ak.Array:
        return ak.zip(
            {
                "pt": coll.pt,
                "eta": coll.eta,
                "phi": coll.phi,
                "mass": coll.mass,
                "charge": coll.charge,
                "pdgId": -pdg * coll.charge,
            }
        )

    merged = ak.concatenate([fields(ele[ele_ok], 11), fields(mu[mu_ok], 13)], axis=1)
    return merged[ak.argsort(merged.pt, axis=1, ascending=False)]


def select_jets(events: Events, lepton_eta: Any = None, lepton_phi: Any = None) -> ak.Array:
    """Selected jets as records ``pt, eta, phi, mass, btag, index`` (``index``: position in ``events.Jet``).

    With ``lepton_eta``/``lepton_phi`` (one lepton per event, None allowed), jets within ΔR < 0.4 are removed.

    Raises:
        MissingInputError: a kinematic, b-tag (DeepJet) or jet-ID branch is missing (the message names it).
    """
    _require(events, "Jet", ("pt", "eta", "phi", "mass"))
    try:
        btag_field = btag_choice(events, (BTAG_ALGORITHM,)).field
        tight = jet_id(events).tight
    except (JetIDError, KeyError) as err:
        raise MissingInputError(f"{err.args[0]} (needed by the tt̄ reconstruction)") from None
    jet = events.Jet
    ok = (jet.pt > JET_PT_MIN) & (abs(jet.eta) < JET_ETA_MAX) & tight
    if lepton_eta is not None:
        far = delta_r(jet.eta, jet.phi, ak.fill_none(lepton_eta, 999.0), ak.fill_none(lepton_phi, 0.0)) > PARTON_JET_DR
        ok = ok & far
    index = ak.local_index(jet.pt, axis=1)
    score = jet[btag_field]
    btag = ak.where(np.isfinite(score), score, -1.0)  # NanoAOD stores -1 for no tag info
    return ak.zip(
        {
            "pt": jet.pt[ok],
            "eta": jet.eta[ok],
            "phi": jet.phi[ok],
            "mass": jet.mass[ok],
            "btag": btag[ok],
            "index": index[ok],
        }
    )


def semileptonic_inputs(events: Events) -> ak.Array:
    """Per event: ``jets`` (selected), ``lepton`` (the one selected lepton, None otherwise), ``met``
    (``pt, phi, px, py`` and ``covXX, covXY, covYY`` in GeV² when the file has them; the ``MET`` or, on
    NanoAODv15, ``PFMET`` collection), ``n_jets`` and ``selected`` (exactly one lepton and at least
    :data:`MIN_JETS` jets).
    """
    met_name = met_collection(events)
    _require(events, met_name, ("pt", "phi"))
    met = events[met_name]
    leptons = select_leptons(events)
    n_leptons = ak.num(leptons, axis=1)
    lepton = ak.firsts(leptons)
    lepton = ak.mask(lepton, n_leptons == 1)
    jets = select_jets(events, lepton.eta, lepton.phi)
    met_fields = {
        "pt": met.pt,
        "phi": met.phi,
        "px": met.pt * np.cos(met.phi),
        "py": met.pt * np.sin(met.phi),
    }
    for cov in ("covXX", "covXY", "covYY"):
        if cov in met.fields:
            met_fields[cov] = met[cov]
    n_jets = ak.num(jets, axis=1)
    selected = (n_leptons == 1) & (n_jets >= MIN_JETS)
    return ak.zip(
        {"jets": jets, "lepton": lepton, "met": ak.zip(met_fields), "n_jets": n_jets, "selected": selected},
        depth_limit=1,
    )


def assignment_targets(events: Events, jets: ak.Array) -> ak.Array:
    """True jet of each semileptonic parton: ``N * 4 * int64`` (order ``had_b, had_q1, had_q2, lep_b``),
    positions in ``jets`` (the selected jets), −1 when the parton is absent (not a semileptonic event) or
    has no jet within ΔR < 0.4 (unique greedy matching, :func:`coffea_mlreco.core.truth.match_partons_to_jets`).
    """
    _require(events, "GenPart", ("pdgId", "genPartIdxMother", "statusFlags"))
    partons = stack_partons(ttbar_partons(events))
    return match_partons_to_jets(partons.eta, partons.phi, jets.eta, jets.phi)
