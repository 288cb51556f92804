"""Selection and truth targets on generated semileptonic tt̄ events: the matched jets rebuild W and top."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest

from coffea_mlreco import ttbar
from coffea_mlreco.core.columns import input_branches, to_numpy
from coffea_mlreco.core.constants import M_TOP, M_W
from coffea_mlreco.ttbar.columns import input_columns
from coffea_mlreco.ttbar.inputs import MissingInputError, assignment_targets, select_jets, semileptonic_inputs
from coffea_mlreco.ttbar.outcomes import top_outcomes


def _invariant_mass(jets: ak.Array, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Invariant mass (GeV) of jets ``columns`` [n, k] of events ``rows``."""
    padded = {f: to_numpy(ak.fill_none(ak.pad_none(jets[f], 30, clip=True), 0.0)) for f in ("pt", "eta", "phi", "mass")}
    e = px = py = pz = 0.0
    for k in range(columns.shape[1]):
        pt, eta, phi, m = (padded[f][rows, columns[:, k]] for f in ("pt", "eta", "phi", "mass"))
        px, py, pz = px + pt * np.cos(phi), py + pt * np.sin(phi), pz + pt * np.sinh(eta)
        e = e + np.sqrt((pt * np.cosh(eta)) ** 2 + m**2)
    return np.sqrt(np.maximum(e**2 - px**2 - py**2 - pz**2, 0.0))


def _fraction_near_top(masses: np.ndarray) -> float:
    """Fraction of ``masses`` (GeV) within 25 GeV of the top mass."""
    return float(np.mean(np.abs(masses - M_TOP) < 25.0))


def test_selection_and_matched_jets_rebuild_w_and_top(semilep_events: Any) -> None:
    inputs = semileptonic_inputs(semilep_events)
    selected = to_numpy(inputs.selected, bool)
    assert 0.2 < selected.mean() < 0.6  # one e/μ (not τ) in acceptance and ≥ 4 jets
    chosen = inputs[selected]
    assert ak.all(chosen.n_jets >= 4) and not ak.any(ak.is_none(chosen.lepton.pt))
    assert ak.all(chosen.jets.pt[:, :-1] >= chosen.jets.pt[:, 1:])  # pT ordered
    target = to_numpy(assignment_targets(semilep_events[selected], chosen.jets))
    outcomes = top_outcomes(target, target)
    assert outcomes.thad_reco.mean() > 0.35 and outcomes.tlep_reco.mean() > 0.7
    full = outcomes.full_reco
    assert all(len(set(row)) == 4 for row in target[full])
    rows = np.flatnonzero(outcomes.thad_reco)
    m_w = _invariant_mass(chosen.jets, rows, target[rows][:, 1:3])
    m_top = _invariant_mass(chosen.jets, rows, target[rows][:, :3])
    assert abs(np.median(m_w) - M_W) < 8.0
    assert abs(np.median(m_top) - M_TOP) < 15.0
    # a wrong assignment (b_had swapped with b_lep) gives a much broader top mass
    both = np.flatnonzero(full)
    swapped = _invariant_mass(chosen.jets, both, target[both][:, [3, 1, 2]])
    right = _invariant_mass(chosen.jets, both, target[both][:, :3])
    assert _fraction_near_top(right) > _fraction_near_top(swapped) + 0.2


def test_real_cms_ttbar_file(real_nano_tt: Any, open_events: Any) -> None:
    events = open_events(real_nano_tt)
    inputs = semileptonic_inputs(events)
    assert ak.sum(inputs.selected) > 10
    target = assignment_targets(events, inputs.jets)
    assert ak.all(ak.num(target, axis=1) == 4)


def test_missing_branch_is_named(semilep_events: Any) -> None:
    without_btag = ak.with_field(semilep_events, semilep_events.Jet[["pt", "eta", "phi", "mass"]], "Jet")
    with pytest.raises(MissingInputError, match="Jet_btagDeepFlavB"):
        semileptonic_inputs(without_btag)


def _nano_tt_v15() -> Path:
    path = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "nano_tt_v15.root"
    if not path.is_file():
        pytest.skip(f"real NanoAOD test file {path} is absent")
    return path


def test_v12_jet_selection_is_the_stored_tight_bit(real_nano_tt: Any, open_events: Any) -> None:
    """On NanoAODv12 the selection keeps exactly the jets the earlier ``jetId >= 2`` cut kept (|η| < 2.5 holds no
    jet with v12's flawed value 4)."""
    events = open_events(real_nano_tt)
    jets = select_jets(events)
    jet = events.Jet
    before = (jet.pt > 25.0) & (abs(jet.eta) < 2.5) & (jet.jetId >= 2)
    assert ak.all(ak.num(jets) == ak.sum(before, axis=1))
    assert ak.all(ak.flatten(jets.index) == ak.flatten(ak.local_index(jet.pt)[before]))


def test_v15_jets_get_the_computed_jet_id(open_events: Any) -> None:
    """NanoAODv15 has no ``Jet_jetId``: the Run-3 recipe computed from the energy fractions removes jets that the
    kinematic cuts alone keep (before, the cut was silently skipped)."""
    events = open_events(_nano_tt_v15())
    jets = select_jets(events)
    kinematic = ak.sum((events.Jet.pt > 25.0) & (abs(events.Jet.eta) < 2.5), axis=1)
    assert int(ak.sum(ak.num(jets))) < int(ak.sum(kinematic))
    assert ak.all(ak.num(jets) <= kinematic)
    inputs = semileptonic_inputs(events)  # the MET is read from PFMET
    assert ak.all(inputs.met.pt == events.PFMET.pt)


def test_v15_reconstruct_appends_ttbarreco(open_events: Any) -> None:
    events = open_events(_nano_tt_v15())
    out = ttbar.reconstruct(events, methods=("chi2", "klfitter"))
    assert len(out.TTbarReco) == len(events)
    assert set(out.TTbarReco.fields) >= {"chi2", "klfitter", "valid"}
    assert "Jet_chMultiplicity" in input_branches(events, input_columns(events))
    assert "Jet_jetId" not in input_branches(events, input_columns(events))


def test_missing_jet_id_is_named(semilep_events: Any) -> None:
    without_id = ak.with_field(semilep_events, semilep_events.Jet[["pt", "eta", "phi", "mass", "btagDeepFlavB"]], "Jet")
    with pytest.raises(MissingInputError, match="Jet_jetId"):
        semileptonic_inputs(without_id)
