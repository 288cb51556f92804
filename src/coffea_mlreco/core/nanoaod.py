"""What a task reads from NanoAOD, by version: one place that knows how CMS NanoAOD v9 to v15 (and our own
simulation, which writes the v9–v12 names) spell the objects the tasks use.

| object | v9–v12 (and our simulation) | v15 | function |
|---|---|---|---|
| PF MET | ``MET_pt``, ``MET_phi``, ``MET_cov*``, ``MET_sumEt`` | ``PFMET_*`` | :func:`met_collection` |
| jet ID | ``Jet_jetId`` bits (1: tight, 2: tight lepton veto) | from the energy fractions | :func:`jet_id` |
| b tag | ``Jet_btagDeepFlavB`` | DeepJet, ``btagPNetB``, ``btagUParTAK4B`` | :func:`btag_choice` |
| tau ID | ``Tau_idDeepTau2017v2p1VS*`` | ``Tau_idDeepTau2018v2p5VS*`` | :func:`tau_id_branches` |
| other METs | ``RawMET``, ``PuppiMET``, ``RawPuppiMET``, ``DeepMET*`` | ``RawPFMET``, others alike | :data:`CMS_MET` |
| PF candidates | ``PFCands_*`` (PFNano only) | ``PFCands_*`` (PFNano only) | see below |
| simulation only | ``Gen*``, ``genWeight``, ``LHE*``, ``Pileup_*`` | the same | :func:`is_collision_data` |

PF candidates: the MET task reads PFNano's ``PFCands`` (``pt``, ``eta``, ``phi``, ``charge``, ``pdgId`` and the
vertex association, :func:`pf_vertex_fields`: ``fromPV``, or ``pvAssocQuality`` with ``dz``). NanoAODv15's own
``PFCand`` collection is not a substitute and is not read: it holds ``pt``, ``eta``, ``phi``, ``mass`` and ``pdgId``
only (no charge field, no vertex association, so no PUPPI), and only the candidates of the few stored objects that
keep their constituents. On the v15 test file (``nano_tt_v15``, 200 tt̄ events), 159 events have no ``PFCand`` at
all; in the other 41 (18–155 candidates), |−Σ p_T| of them (median 174 GeV) is uncorrelated with the event's
``RawPFMET`` (median 45 GeV; correlation 0.01).

Every function reads only the structure of the events (which fields exist), except :func:`jet_id`, which computes
per-jet booleans from the columns :func:`jet_id_fields` names. They take eager, virtual or dask-awkward NanoEvents
and plain awkward record arrays with the same fields (a task's declared view of its inputs).

The registry of tasks (``coffea_mlreco.tasks``) states the branches a task needs as groups of alternatives
(``"MET_pt|PFMET_pt"``): :data:`MET_BRANCHES` and :data:`JET_ID_BRANCHES` are those groups.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import awkward as ak

from coffea_mlreco.core.columns import Events, has_column

__all__ = [
    "BTAG_ALGORITHMS",
    "CMS_MET",
    "DEEPTAU_VERSIONS",
    "JET_ID_BRANCHES",
    "JET_ID_FRACTIONS",
    "JET_ID_LEVELS",
    "MET_BRANCHES",
    "MET_COLLECTIONS",
    "SIMULATION_PREFIXES",
    "BTagChoice",
    "JetIDError",
    "btag_choice",
    "cms_met_collection",
    "computed_jet_id",
    "is_collision_data",
    "jet_id",
    "jet_id_fields",
    "met_collection",
    "pf_vertex_fields",
    "tau_id_branches",
]

MET_COLLECTIONS: tuple[str, ...] = ("MET", "PFMET")
"""The PF MET collection's name: ``MET`` up to NanoAODv14 (and in our simulation), ``PFMET`` from v15 on."""
MET_BRANCHES: tuple[str, ...] = ("MET_pt|PFMET_pt", "MET_phi|PFMET_phi")
"""The PF MET branches a task needs, as groups of alternatives (any one of each group will do)."""

STORED_JET_ID = "jetId"
"""``Jet_jetId``: bit 1 (value 2) tight, bit 2 (value 4) tight lepton veto; absent from NanoAODv15."""
JET_ID_FRACTIONS: tuple[str, ...] = (
    "eta",
    "chHEF",
    "neHEF",
    "chEmEF",
    "neEmEF",
    "muEF",
    "chMultiplicity",
    "neMultiplicity",
)
"""The ``Jet`` fields the Run-3 jet ID is computed from (:func:`computed_jet_id`)."""
JET_ID_LEVELS: tuple[str, ...] = ("tight", "tightLepVeto")
"""The jet-ID levels :func:`jet_id` returns (the fields of its records)."""
JET_ID_BRANCHES: tuple[str, ...] = tuple(f"Jet_{STORED_JET_ID}|Jet_{name}" for name in JET_ID_FRACTIONS)
"""The jet-ID branches as groups of alternatives: ``Jet_jetId``, or every branch of :data:`JET_ID_FRACTIONS`
(``(A or b1) and (A or b2) ...`` is ``A or (b1 and b2 ...)``)."""


CMS_MET: dict[str, tuple[str, ...]] = {
    "file_met": MET_COLLECTIONS,
    "cms_raw_pf": ("RawMET", "RawPFMET"),
    "cms_puppi": ("PuppiMET",),
    "cms_raw_puppi": ("RawPuppiMET",),
    "cms_deepmet_resolution": ("DeepMETResolutionTune",),
    "cms_deepmet_response": ("DeepMETResponseTune",),
}
"""CMS's own MET columns, by the key the MET report gives them → their collection names by NanoAOD version (the
first one present is read; :func:`cms_met_collection`). ``file_met``: PF MET with the type-1 jet correction;
``cms_raw_pf``: PF MET without it (−Σ p_T of all PF candidates); ``cms_puppi``/``cms_raw_puppi``: PUPPI MET with
and without type-1; ``cms_deepmet_*``: DeepMET's resolution and response tunes (NanoAODv12 on)."""

SIMULATION_PREFIXES: tuple[str, ...] = ("Gen", "nGen", "genWeight", "LHE", "nLHE", "Pileup", "PSWeight", "nPSWeight")
"""Name prefixes of the branches (and NanoEvents fields) only simulation has: generator record, generator weights,
pileup truth. Collision data has none of them (:func:`is_collision_data`)."""


def is_collision_data(names: Iterable[str]) -> bool:
    """True when no name of ``names`` (a file's branch names, or the ``fields`` of NanoEvents) starts with one of
    :data:`SIMULATION_PREFIXES`: collision data, which carries no generator truth."""
    return not any(name.startswith(SIMULATION_PREFIXES) for name in names)


class JetIDError(KeyError):
    """The jets carry neither the stored jet ID nor the branches to compute it."""

    def __str__(self) -> str:
        return str(self.args[0])


def met_collection(events: Events) -> str:
    """``"MET"`` or ``"PFMET"``: the events' PF MET collection (:data:`MET_COLLECTIONS`, the first that has ``pt``).

    With neither, ``"MET"``, so that the input check of a task names ``MET_pt`` as missing.
    """
    for name in MET_COLLECTIONS:
        if has_column(events, name, "pt"):
            return name
    return MET_COLLECTIONS[0]


def cms_met_collection(events: Events, key: str) -> str | None:
    """The events' collection of the CMS MET ``key`` (:data:`CMS_MET`; the first name with ``pt`` and ``phi``),
    or None where the file does not carry it."""
    for name in CMS_MET[key]:
        if has_column(events, name, "pt") and has_column(events, name, "phi"):
            return name
    return None


PF_VERTEX_ASSOCIATIONS: tuple[tuple[str, ...], ...] = (("fromPV", "dz"), ("fromPV",), ("pvAssocQuality", "dz"))
"""The ``PFCands`` fields that tell a charged candidate's vertex, in order of preference: ``fromPV`` (0–3, CMS's
PV association; with the track's ``dz`` where stored: PFNano and our simulation), else ``pvAssocQuality`` with
``dz`` (PFNano versions without ``fromPV``)."""


def pf_vertex_fields(events: Events) -> tuple[str, ...]:
    """The ``PFCands`` vertex-association fields these events carry (the first complete entry of
    :data:`PF_VERTEX_ASSOCIATIONS`), or ``()`` where they carry none (no ``PFCands``, or candidates without
    vertex information): PUPPI and the MET networks cannot run there."""
    for fields in PF_VERTEX_ASSOCIATIONS:
        if all(has_column(events, "PFCands", name) for name in fields):
            return fields
    return ()


def jet_id_fields(events: Events) -> tuple[str, ...]:
    """The ``Jet`` fields :func:`jet_id` reads on these events: ``("jetId",)`` where the file stores it, else
    :data:`JET_ID_FRACTIONS` (what a task declares as its inputs; dask-awkward reads exactly these)."""
    if has_column(events, "Jet", STORED_JET_ID):
        return (STORED_JET_ID,)
    return JET_ID_FRACTIONS


def computed_jet_id(jets: ak.Array) -> ak.Array:
    """Run-3 tight and tight-lepton-veto jet ID of AK4 PUPPI jets from their energy fractions and multiplicities.

    Source: the CMS JetMET recommendation for 13.6 TeV, twiki ``JetID13p6TeV`` ("Recommendations for the 13.6 TeV
    data analysis", NanoAOD recipe), the recipe the ``jetid.json.gz`` of jsonPOG-integration (``POG/JME/<era>``,
    corrections ``AK4PUPPI_Tight`` and ``AK4PUPPI_TightLeptonVeto``) evaluates for NanoAODv15, where
    ``Jet_jetId`` is no longer stored. NHF = ``neHEF``, NEMF = ``neEmEF``, CHF = ``chHEF``, CEMF = ``chEmEF``,
    MUF = ``muEF``, CHM = ``chMultiplicity``, NEM = ``neMultiplicity``, NumConst = CHM + NEM. Tight:

    - |η| ≤ 2.6: NHF < 0.99, NEMF < 0.9, NumConst > 1, CHF > 0.01, CHM > 0;
    - 2.6 < |η| ≤ 2.7: NHF < 0.9, NEMF < 0.99;
    - 2.7 < |η| ≤ 3.0: NHF < 0.99;
    - |η| > 3.0: NEM ≥ 2, NEMF < 0.4.

    Tight lepton veto: tight and, for |η| ≤ 2.7, MUF < 0.8 and CEMF < 0.8.

    Uncertain: the 2.7–3.0 and > 3.0 cuts were revised between eras (the 2022 recommendation had NHF < 0.9999 for
    2.7–3.0; NEMF < 0.4 above 3.0 is the 2023–2024 value, also the one JME's NanoAODv12 fix applies); the central
    |η| ≤ 2.6 cuts and the lepton veto are the same in every Run-3 era. Era-exact values: the jsonPOG file.

    Args:
        jets: per-event lists of jets with the fields :data:`JET_ID_FRACTIONS`.

    Returns:
        Per-event lists of records ``tight``, ``tightLepVeto`` (bool), one per jet.
    """
    abs_eta = abs(jets.eta)
    n_constituents = jets.chMultiplicity + jets.neMultiplicity
    central = (
        (abs_eta <= 2.6)
        & (jets.neHEF < 0.99)
        & (jets.neEmEF < 0.9)
        & (n_constituents > 1)
        & (jets.chHEF > 0.01)
        & (jets.chMultiplicity > 0)
    )
    endcap_edge = (abs_eta > 2.6) & (abs_eta <= 2.7) & (jets.neHEF < 0.9) & (jets.neEmEF < 0.99)
    transition = (abs_eta > 2.7) & (abs_eta <= 3.0) & (jets.neHEF < 0.99)
    forward = (abs_eta > 3.0) & (jets.neMultiplicity >= 2) & (jets.neEmEF < 0.4)
    tight = central | endcap_edge | transition | forward
    lepton_veto = tight & ((abs_eta > 2.7) | ((jets.muEF < 0.8) & (jets.chEmEF < 0.8)))
    return ak.zip({"tight": tight, "tightLepVeto": lepton_veto})


def jet_id(events: Events) -> ak.Array:
    """Per jet of ``events.Jet``, records ``tight`` and ``tightLepVeto`` (bool).

    Where the file stores ``Jet_jetId`` (NanoAOD up to v14, our simulation: always 6) its bits are used as they
    are: tight = bit 1, tight lepton veto = bit 2 (NanoAODv12's known flaw at |η| > 2.7, JME's "jetId fix", is
    not corrected: the stored value is the file's own). Otherwise (NanoAODv15) the ID is computed from the energy
    fractions with the Run-3 recipe, :func:`computed_jet_id`.

    Raises:
        JetIDError: the jets have neither ``Jet_jetId`` nor every branch of :data:`JET_ID_FRACTIONS` (the message
            names the missing ones); a jet-ID cut is never silently skipped.
    """
    if has_column(events, "Jet", STORED_JET_ID):
        bits = events.Jet[STORED_JET_ID]
        return ak.zip({"tight": (bits & 2) != 0, "tightLepVeto": (bits & 4) != 0})
    missing = [f"Jet_{name}" for name in JET_ID_FRACTIONS if not has_column(events, "Jet", name)]
    if missing:
        raise JetIDError(
            f"the jet ID needs Jet_{STORED_JET_ID} or, to compute it (NanoAODv15), "
            f"{', '.join(f'Jet_{name}' for name in JET_ID_FRACTIONS)}; the file lacks {', '.join(missing)}"
        )
    return computed_jet_id(events.Jet)


class BTagChoice(NamedTuple):
    """A b-tagging discriminant: ``Jet`` field, algorithm and the medium working point (fraction in [0, 1])."""

    field: str
    algorithm: str
    medium_wp: float


BTAG_ALGORITHMS: tuple[BTagChoice, ...] = (
    BTagChoice("btagDeepFlavB", "DeepJet", 0.3),
    BTagChoice("btagPNetB", "ParticleNet", 0.245),
    BTagChoice("btagUParTAK4B", "UParT", 0.128),
)
"""The b-tag discriminants in order of preference. DeepJet's medium point 0.3 is the one of our detector model
(``DetectorParameters.btag_medium_wp``; CMS's Run-3 DeepJet medium points are 0.25–0.31, 2022: 0.3086) and is
kept for real files so that every file is cut alike. ParticleNet: BTV's 2022 medium point 0.245; UParT: BTV's
2024 medium point ≈ 0.128 (approximate; era-exact values are in BTV's jsonPOG ``btagging.json``)."""


def btag_choice(events: Events, algorithms: tuple[str, ...] | None = None) -> BTagChoice:
    """The b-tag discriminant to use: the first of :data:`BTAG_ALGORITHMS` (DeepJet, else ParticleNet, else
    UParT) whose ``Jet`` field the events have, among ``algorithms`` (names; None: all).

    Raises:
        KeyError: none of them is present (the message names the branches looked for).
    """
    allowed = [c for c in BTAG_ALGORITHMS if algorithms is None or c.algorithm in algorithms]
    for choice in allowed:
        if has_column(events, "Jet", choice.field):
            return choice
    others = [c.field for c in BTAG_ALGORITHMS if c not in allowed and has_column(events, "Jet", c.field)]
    extra = f" (the file has {', '.join(f'Jet_{f}' for f in others)}, not usable here)" if others else ""
    raise KeyError(f"no b-tag discriminant: looked for {', '.join(f'Jet_{c.field}' for c in allowed)}{extra}")


DEEPTAU_VERSIONS: tuple[str, ...] = ("2018v2p5", "2017v2p1")
"""DeepTau versions in order of preference: v2.5 (NanoAODv12 on, the only one in v15), v2.1 (v9–v11)."""
TAU_ID_TARGETS: tuple[str, ...] = ("jet", "e", "mu")


def tau_id_branches(events: Events) -> dict[str, str]:
    """The DeepTau ``Tau`` fields, by discriminated object (``"jet"``, ``"e"``, ``"mu"``), of the newest
    version of :data:`DEEPTAU_VERSIONS` the file has (``{"jet": "idDeepTau2018v2p5VSjet", ...}``); those of the
    version the file lacks are absent (empty: no DeepTau, as in our simulation).

    Encoding: v2.5 always, and v2.1 from NanoAODv10, store the working point as an integer (1 = VVVLoose … 8 =
    VVTight); v2.1 before v10 as a cumulative bitmask (bit k−1 for working point k).
    """
    for version in DEEPTAU_VERSIONS:
        names = {target: f"idDeepTau{version}VS{target}" for target in TAU_ID_TARGETS}
        present = {target: name for target, name in names.items() if has_column(events, "Tau", name)}
        if present:
            return present
    return {}
