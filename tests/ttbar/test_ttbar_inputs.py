"""Selection and truth targets on generated semileptonic tt̄ events: the matched jets rebuild W and top."""

from __future__ import annotations

from typing import Any

import awkward as ak
import numpy as np
import pytest

from coffea_mlreco.core.columns import to_numpy
from coffea_mlreco.core.constants import M_TOP, M_W
from coffea_mlreco.ttbar.inputs import MissingInputError, assignment_targets, semileptonic_inputs
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
