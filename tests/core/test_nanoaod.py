"""The NanoAOD-version layer (:mod:`coffea_mlreco.core.nanoaod`) on the real CMS files of ../shared/data:
NanoAOD v9 (``nano_dy``), v12 (``nano_tt_v12``) and v15 (``nano_tt_v15``), and on hand-made jets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest
from column_modes import open_events

from coffea_mlreco.core import nanoaod

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _open(name: str, mode: str = "eager") -> Any:
    path = SHARED / name
    if not path.is_file():
        pytest.skip(f"real NanoAOD test file {path} is absent")
    return open_events(path, mode)  # quiet about cross-references a small file lacks


@pytest.fixture(scope="module")
def v9() -> Any:
    return _open("nano_dy.root")


@pytest.fixture(scope="module")
def v12() -> Any:
    return _open("nano_tt_v12.root")


@pytest.fixture(scope="module")
def v15() -> Any:
    return _open("nano_tt_v15.root")


def test_met_collection_by_version(v9: Any, v12: Any, v15: Any) -> None:
    assert nanoaod.met_collection(v9) == "MET"
    assert nanoaod.met_collection(v12) == "MET"
    assert nanoaod.met_collection(v15) == "PFMET"
    assert nanoaod.met_collection(ak.Array([{"Jet": [{"pt": 1.0}]}])) == "MET"  # neither: the check names MET_pt


def test_btag_and_tau_id_by_version(v9: Any, v12: Any, v15: Any) -> None:
    for events in (v9, v12, v15):
        assert nanoaod.btag_choice(events) == nanoaod.BTagChoice("btagDeepFlavB", "DeepJet", 0.3)
    without_deepjet = ak.Array([{"Jet": [{"pt": 30.0, "btagPNetB": 0.5, "btagUParTAK4B": 0.4}]}])
    assert nanoaod.btag_choice(without_deepjet).algorithm == "ParticleNet"
    with pytest.raises(KeyError, match=r"Jet_btagDeepFlavB.*Jet_btagPNetB"):
        nanoaod.btag_choice(without_deepjet, ("DeepJet",))
    assert nanoaod.tau_id_branches(v9) == {t: f"idDeepTau2017v2p1VS{t}" for t in ("jet", "e", "mu")}
    assert nanoaod.tau_id_branches(v15) == {t: f"idDeepTau2018v2p5VS{t}" for t in ("jet", "e", "mu")}
    assert nanoaod.tau_id_branches(v12) == {}  # no Tau collection


def test_jet_id_stored_bits(v12: Any) -> None:
    assert nanoaod.jet_id_fields(v12) == ("jetId",)
    ids = nanoaod.jet_id(v12)
    bits = ak.flatten(v12.Jet.jetId)
    assert ak.all(ak.flatten(ids.tight) == ((bits & 2) > 0))
    assert ak.all(ak.flatten(ids.tightLepVeto) == ((bits & 4) > 0))


def _with_multiplicities(jets: Any) -> ak.Array:
    """Jets of a v9–v12 file (no ``chMultiplicity``/``neMultiplicity``) with multiplicities from what it stores:
    NumConst = ``nConstituents`` exactly; CHM = 1 where the jet has charged energy inside the tracker's reach
    (|η| < 3), else 0 (CHM > 0 is implied by CHF > 0.01 for |η| ≤ 2.6; above |η| = 3 every constituent is
    neutral, so NEM = nConstituents there)."""
    charged = ak.values_astype((jets.chHEF + jets.chEmEF + jets.muEF > 0) & (abs(jets.eta) < 3.0), np.int32)
    fields = {name: jets[name] for name in nanoaod.JET_ID_FRACTIONS if name in jets.fields}
    return ak.zip({**fields, "chMultiplicity": charged, "neMultiplicity": jets.nConstituents - charged})


@pytest.mark.parametrize(("fixture", "level", "minimum"), [("v12", "tight", 0.99), ("v12", "tightLepVeto", 0.95)])
def test_computed_jet_id_agrees_with_the_stored_bits(
    fixture: str, level: str, minimum: float, request: pytest.FixtureRequest
) -> None:
    """The Run-3 recipe reproduces NanoAODv12's stored ID: 99.9 % of 1504 jets for tight, 97.6 % for the lepton
    veto (v12's stored veto bit is known to be wrong at |η| > 2.7, JME's "jetId fix")."""
    events = request.getfixturevalue(fixture)
    computed = nanoaod.computed_jet_id(_with_multiplicities(events.Jet))
    stored = nanoaod.jet_id(events)
    agree = ak.flatten(computed[level] == stored[level])
    assert len(agree) > 1000
    assert float(ak.mean(agree)) >= minimum


def test_computed_jet_id_on_run2_jets(v9: Any) -> None:
    """On Run-2 CHS jets (NanoAODv9, another recipe) the Run-3 cuts still agree for ≥ 95 % (96 % of 188 jets)."""
    computed = nanoaod.computed_jet_id(_with_multiplicities(v9.Jet))
    agree = ak.flatten(computed.tight == nanoaod.jet_id(v9).tight)
    assert float(ak.mean(agree)) >= 0.95


def test_v15_jet_id_is_computed_and_cuts_jets(v15: Any) -> None:
    assert nanoaod.jet_id_fields(v15) == nanoaod.JET_ID_FRACTIONS
    ids = nanoaod.jet_id(v15)
    assert ak.all(ak.num(ids.tight) == ak.num(v15.Jet.pt))
    tight = ak.flatten(ids.tight)
    assert 0 < int(ak.sum(~tight)) < len(tight) // 5  # some jets fail, most pass
    assert ak.all(~ak.flatten(ids.tightLepVeto) | tight)  # the lepton veto is tighter


def test_jet_id_cuts_by_eta_region() -> None:
    good = {"chHEF": 0.5, "neHEF": 0.2, "chEmEF": 0.1, "neEmEF": 0.2, "muEF": 0.0, "chMultiplicity": 5}
    jets = ak.Array(
        [
            [
                {**good, "eta": 0.5, "neMultiplicity": 5},  # central, passes
                {**good, "eta": -1.0, "neMultiplicity": 5, "chHEF": 0.005},  # CHF ≤ 0.01
                {**good, "eta": 2.65, "neMultiplicity": 5, "neHEF": 0.95},  # NHF ≥ 0.9 at 2.6–2.7
                {**good, "eta": 2.9, "neMultiplicity": 5, "neHEF": 0.95},  # passes at 2.7–3.0
                {**good, "eta": 3.5, "neMultiplicity": 1},  # NEM < 2 above 3.0
                {**good, "eta": -3.5, "neMultiplicity": 3},  # passes above 3.0
                {**good, "eta": 1.0, "neMultiplicity": 5, "muEF": 0.9},  # tight, fails the lepton veto
            ]
        ]
    )
    ids = nanoaod.computed_jet_id(jets)
    assert ids.tight.tolist() == [[True, False, False, True, False, True, True]]
    assert ids.tightLepVeto.tolist() == [[True, False, False, True, False, True, False]]


def test_missing_jet_id_is_an_error_naming_the_branches() -> None:
    events = ak.Array([{"Jet": [{"pt": 30.0, "eta": 0.0, "chHEF": 0.5}]}])
    with pytest.raises(nanoaod.JetIDError, match=r"Jet_jetId.*lacks Jet_neHEF"):
        nanoaod.jet_id(events)


def test_the_layer_reads_only_structure_in_dask_mode() -> None:
    events = _open("nano_tt_v15.root", mode="dask")
    assert nanoaod.met_collection(events) == "PFMET"
    assert nanoaod.jet_id_fields(events) == nanoaod.JET_ID_FRACTIONS
    assert nanoaod.tau_id_branches(events)["jet"] == "idDeepTau2018v2p5VSjet"


def test_cms_met_columns_by_version(v9: Any, v12: Any, v15: Any) -> None:
    assert nanoaod.cms_met_collection(v9, "cms_raw_pf") == "RawMET"
    assert nanoaod.cms_met_collection(v15, "cms_raw_pf") == "RawPFMET"
    assert nanoaod.cms_met_collection(v9, "cms_deepmet_resolution") is None  # DeepMET columns from v12 on
    assert nanoaod.cms_met_collection(v12, "cms_deepmet_resolution") == "DeepMETResolutionTune"
    assert nanoaod.cms_met_collection(v15, "file_met") == "PFMET"


def test_collision_data_is_told_by_the_simulation_only_names(v12: Any) -> None:
    assert not nanoaod.is_collision_data(v12.fields)
    data = _open("nano_dimuon.root", mode="virtual")
    assert nanoaod.is_collision_data(data.fields)
    assert nanoaod.is_collision_data(["Muon_pt", "MET_pt", "HLT_IsoMu24"])
    assert not nanoaod.is_collision_data(["Muon_pt", "genWeight"])


def test_pf_vertex_fields(v15: Any) -> None:
    """PFNano's vertex association: fromPV (with dz), else pvAssocQuality and dz; v15's PFCand carries none."""
    with_from_pv = ak.Array({"PFCands": [[{"pt": 1.0, "fromPV": 3, "dz": 0.0, "pvAssocQuality": 7}]]})
    with_quality = ak.Array({"PFCands": [[{"pt": 1.0, "dz": 0.0, "pvAssocQuality": 7}]]})
    assert nanoaod.pf_vertex_fields(with_from_pv) == ("fromPV", "dz")
    assert nanoaod.pf_vertex_fields(with_quality) == ("pvAssocQuality", "dz")
    assert nanoaod.pf_vertex_fields(ak.Array({"PFCands": [[{"pt": 1.0, "pvAssocQuality": 7}]]})) == ()
    assert "PFCand" in v15.fields and nanoaod.pf_vertex_fields(v15) == ()
