"""``coffea_mlreco.ttbar.reconstruct``: the same TTbarReco in every coffea mode, on generated and real NanoAOD;
the caller's events untouched; only the documented branches read; per-event fault isolation; model directories;
and the physics (indices point at distinct selected jets, SPANet above the χ²)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import awkward as ak
import dask_awkward as dak
import numpy as np
import pytest
import torch
from column_modes import MODES, assert_same_columns, columns_in_mode, open_events
from safetensors.torch import load_file, save_file

from coffea_mlreco.core import MissingBranchError, NonFiniteInputError, input_branches
from coffea_mlreco.core.columns import to_numpy
from coffea_mlreco.inference.model_cards import ModelCardError
from coffea_mlreco.ttbar import COLUMN, METHODS, input_columns, reconstruct, supported_methods
from coffea_mlreco.ttbar.columns import jet_indices, ttbar_models
from coffea_mlreco.ttbar.inputs import assignment_targets, semileptonic_inputs
from coffea_mlreco.ttbar.outcomes import event_efficiency, top_outcomes
from coffea_mlreco.ttbar.permutations import PERMUTATION_FIELDS
from coffea_mlreco.ttbar.wrappers import TTBAR_MODELS

pytestmark = [
    pytest.mark.filterwarnings("ignore:Missing cross-reference index:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:Branch .* already exists but:RuntimeWarning"),
]

SAMPLES = ("small_semilep_file", "real_nano_tt")
INDEX_FIELDS = PERMUTATION_FIELDS


def indices(record: ak.Array) -> np.ndarray:
    """[N, 4] jet indices (had_b, had_q1, had_q2, lep_b) of one method's sub-record."""
    return np.stack([to_numpy(record[f], np.int64) for f in INDEX_FIELDS], axis=1)


@pytest.fixture(scope="module")
def eager_columns() -> dict[Path, ak.Array]:
    """TTbarReco of each file on eager events, computed once (the reference of the mode matrix)."""
    return {}


def eager_reference(path: Path, cache: dict[Path, ak.Array]) -> ak.Array:
    if path not in cache:
        cache[path] = columns_in_mode(reconstruct, path, "eager", [COLUMN])
    return cache[path]


@pytest.fixture(scope="module")
def small_events(small_semilep_file: Path) -> Any:
    return open_events(small_semilep_file, "eager")


@pytest.fixture(scope="module")
def small_reco(small_events: Any) -> ak.Array:
    return reconstruct(small_events)[COLUMN]


@pytest.fixture(scope="module")
def semilep_reco(semilep_events: Any) -> ak.Array:
    return reconstruct(semilep_events)[COLUMN]


@pytest.mark.parametrize("sample", SAMPLES)
@pytest.mark.parametrize("mode", [m for m in MODES if m != "eager"])
def test_every_mode_gives_the_eager_columns(
    sample: str, mode: str, eager_columns: dict[Path, ak.Array], request: pytest.FixtureRequest
) -> None:
    path = request.getfixturevalue(sample)
    expected = eager_reference(path, eager_columns)
    client = request.getfixturevalue("dask_client") if mode == "apply_to_fileset" else None
    actual = columns_in_mode(reconstruct, path, mode, [COLUMN], client=client)
    assert_same_columns(actual, expected)
    reco = expected[COLUMN]
    assert ak.fields(reco) == [*METHODS, "valid"] and ak.all(reco.valid)
    assert ak.sum(reco.spanet.had_b >= 0) > 20  # tt̄ samples: many selected events


def test_caller_events_are_not_changed(small_semilep_file: Path) -> None:
    for mode in ("eager", "dask"):
        events = open_events(small_semilep_file, mode)
        fields = {name: list(events[name].fields) for name in events.fields if events[name].fields}
        out = reconstruct(events, methods=("chi2",))
        assert COLUMN in out.fields and COLUMN not in events.fields
        assert {name: list(events[name].fields) for name in events.fields if events[name].fields} == fields


@pytest.mark.parametrize("sample", SAMPLES)
@pytest.mark.parametrize("methods", [None, ("chi2",), ("klfitter", "spanet")])
def test_dask_reads_only_the_documented_branches(
    sample: str, methods: tuple[str, ...] | None, request: pytest.FixtureRequest
) -> None:
    events = open_events(request.getfixturevalue(sample), "dask")
    out = reconstruct(events, methods=methods)
    (read,) = dak.report_necessary_columns(out[COLUMN]).values()
    expected = input_branches(events, input_columns(events, methods or METHODS))
    assert sorted(read) == expected
    assert not any(name.startswith(("Gen", "nGen")) for name in read)
    assert {"Jet_pt", "Jet_btagDeepFlavB", "Electron_pfRelIso03_all", "Muon_pfRelIso04_all", "MET_phi"} <= set(read)
    # the MET covariance is the KLFitter-style fit's alone
    assert ("MET_covXX" in read) == ("klfitter" in (methods or METHODS))


def test_assignments_point_at_distinct_selected_jets(semilep_events: Any, semilep_reco: ak.Array) -> None:
    inputs = semileptonic_inputs(semilep_events)
    selected = to_numpy(inputs.selected, bool)
    n_jets = to_numpy(ak.num(semilep_events.Jet, axis=1))
    assert ak.all(semilep_reco.valid) and 300 < selected.sum() < len(selected)
    for method in METHODS:
        index = indices(semilep_reco[method])
        assigned = index[:, 0] >= 0
        np.testing.assert_array_equal(assigned, selected, err_msg=method)
        assert np.all(index[~assigned] == -1)
        assert np.all(index[assigned] < n_jets[assigned, None])
        assert all(len(set(row)) == 4 for row in index[assigned]), method
        jets = semilep_events.Jet[assigned][ak.Array(index[assigned].tolist())]
        assert ak.all(jets.pt > 25.0) and ak.all(abs(jets.eta) < 2.5), method  # selected jets only
    spanet = semilep_reco.spanet[selected]
    for top in ("t_had", "t_lep"):
        for name in ("assignment_prob", "detection_prob"):
            assert ak.all((spanet[name][top] >= 0) & (spanet[name][top] <= 1))
        np.testing.assert_allclose(
            ak.to_numpy(spanet.marginal_prob[top]),
            ak.to_numpy(spanet.assignment_prob[top] * spanet.detection_prob[top]),
            rtol=1e-12,
        )
    klfitter = semilep_reco.klfitter
    assert ak.all((klfitter.event_probability[selected] > 0) & (klfitter.event_probability[selected] <= 1))
    for nu_eta in (klfitter.nu_eta, semilep_reco.spanet.nu_eta):
        values = to_numpy(nu_eta)
        assert np.isfinite(values[selected]).all() and np.isnan(values[~selected]).all()


def test_spanet_is_more_efficient_than_chi2(semilep_events: Any, semilep_reco: ak.Array) -> None:
    inputs = semileptonic_inputs(semilep_events)
    selected = to_numpy(inputs.selected, bool)
    chosen = inputs[selected]
    target = jet_indices(to_numpy(assignment_targets(semilep_events[selected], chosen.jets)), chosen.jets)
    outcomes = {m: top_outcomes(indices(semilep_reco[m])[selected], target) for m in METHODS}
    any_reco = {m: event_efficiency(o) for m, o in outcomes.items()}
    full_reco = {m: event_efficiency(o, full_only=True) for m, o in outcomes.items()}
    assert outcomes["chi2"].full_reco.sum() > 100
    # benchmarks/RESULTS.md at pileup 60: SPANet 73 %, χ² 56 % (full: 75 %, 60 %); this sample (pileup 0,
    # ~400 events with a reconstructable top, ~170 with both): 72 % and 55 % (full: 68 %, 57 %)
    assert any_reco["spanet"] > any_reco["chi2"] + 0.10, any_reco
    assert full_reco["spanet"] > full_reco["chi2"] + 0.05, full_reco
    assert any_reco["klfitter"] > any_reco["chi2"] - 0.02 and min(any_reco.values()) > 0.4, any_reco


def test_methods_and_missing_branches(small_events: Any, small_reco: ak.Array) -> None:
    assert supported_methods(small_events) == METHODS
    chi2 = reconstruct(small_events, methods="chi2")[COLUMN]
    assert ak.fields(chi2) == ["chi2", "valid"]
    np.testing.assert_array_equal(indices(chi2.chi2), indices(small_reco.chi2))
    with pytest.raises(ValueError, match="unknown"):
        reconstruct(small_events, methods=("chi3",))
    no_muons = ak.without_field(small_events, "Muon")
    assert supported_methods(no_muons) == ()
    for methods in (None, ("chi2",)):
        with pytest.raises(MissingBranchError, match="Muon_pt"):
            reconstruct(no_muons, methods=methods)
    no_iso = ak.with_field(small_events, small_events.Muon[["pt", "eta", "phi", "mass", "charge"]], "Muon")
    with pytest.raises(MissingBranchError, match="Muon_pfRelIso04_all"):
        reconstruct(no_iso, methods=("spanet",))


def with_nan(events: Any, collection: str, field: str, event: int, item: int | None = None) -> Any:
    """``events`` with ``collection.field`` of one event (its object ``item``, for a jagged collection) NaN."""
    values = events[collection][field]
    if item is None:
        flat = np.array(ak.to_numpy(values), np.float64)
        flat[event] = np.nan
        return ak.with_field(events, ak.values_astype(flat, ak.to_numpy(values).dtype), where=(collection, field))
    counts = ak.to_numpy(ak.num(values, axis=1))
    flat = np.array(ak.to_numpy(ak.flatten(values)), np.float64)
    flat[int(counts[:event].sum()) + item] = np.nan
    dtype = ak.to_numpy(ak.flatten(values)).dtype
    return ak.with_field(events, ak.unflatten(flat.astype(dtype), counts), where=(collection, field))


def assert_blanked(reco: ak.Array, event: int) -> None:
    row = reco[event]
    assert not row.valid
    for method in METHODS:
        assert all(row[method][f] == -1 for f in INDEX_FIELDS), method
    for value in (row.spanet.nu_eta, row.spanet.assignment_prob.t_had, row.klfitter.event_probability):
        assert np.isnan(value)


def test_nan_input_blanks_only_its_event(small_events: Any, small_reco: ak.Array) -> None:
    selected = np.flatnonzero(indices(small_reco.chi2)[:, 0] >= 0)
    others = np.ones(len(small_events), bool)
    # NaN MET φ: the event stays where it was in every batch, so the others are bit-for-bit the clean run
    event = int(selected[1])
    others[event] = False
    flagged = reconstruct(with_nan(small_events, "MET", "phi", event))[COLUMN]
    assert_blanked(flagged, event)
    assert_same_columns(flagged[others], small_reco[others])
    with pytest.raises(NonFiniteInputError, match=r"MET\.phi"):
        reconstruct(with_nan(small_events, "MET", "phi", event), on_invalid="raise")


def test_nan_jet_momentum_blanks_only_its_event(small_events: Any, small_reco: ak.Array) -> None:
    event = int(np.flatnonzero(indices(small_reco.chi2)[:, 0] >= 0)[0])
    others = np.arange(len(small_events)) != event
    flagged = reconstruct(with_nan(small_events, "Jet", "pt", event, item=0))[COLUMN]
    assert_blanked(flagged, event)
    # the permutation fits run event by event: identical; the networks batch events sorted by jet count,
    # and the blanked event (its jet replaced by pT = 0, so one jet fewer) moves in that order, which may
    # change float32 results of its neighbours in the last bit
    for method in METHODS:
        np.testing.assert_array_equal(indices(flagged[method])[others], indices(small_reco[method])[others])
    assert_same_columns(flagged.klfitter[others], small_reco.klfitter[others])
    for name in ("assignment_prob", "detection_prob"):
        for top in ("t_had", "t_lep"):
            np.testing.assert_allclose(
                ak.to_numpy(flagged.spanet[name][top][others]),
                ak.to_numpy(small_reco.spanet[name][top][others]),
                rtol=1e-5,
                atol=1e-6,
            )
    with pytest.raises(NonFiniteInputError, match=r"Jet\.pt"):
        reconstruct(with_nan(small_events, "Jet", "pt", event, item=0), methods=("chi2",), on_invalid="raise")


def copy_model(name: str, directory: Path, perturb: bool = False) -> Path:
    """Copy shipped model ``name`` (card + safetensors) into ``directory``; ``perturb`` scales every weight
    by a random factor around 1 so that the copy's outputs differ from the shipped model's."""
    directory.mkdir()
    card = json.loads((TTBAR_MODELS.directory / f"{name}.json").read_text())
    weights = directory / Path(card["weights"]).name
    if perturb:
        generator = torch.Generator().manual_seed(3)
        state = {
            k: v * (1 + 0.2 * torch.randn(v.shape, generator=generator)) if v.is_floating_point() else v
            for k, v in load_file(str(TTBAR_MODELS.directory / card["weights"])).items()
        }
        save_file(state, str(weights))
    else:
        shutil.copy(TTBAR_MODELS.directory / card["weights"], weights)
    (directory / f"{name}.json").write_text(json.dumps(card))
    return directory


def test_model_directory_is_used(small_events: Any, small_reco: ak.Array, tmp_path: Path) -> None:
    same = reconstruct(small_events, methods=("spanet",), models={"spanet": copy_model("spanet_pu60", tmp_path / "a")})
    assert_same_columns(same[COLUMN].spanet, small_reco.spanet)
    perturbed = copy_model("spanet_pu60", tmp_path / "b", perturb=True)
    weights = ttbar_models(("spanet",), {"spanet": perturbed})["spanet"].backend.weights
    assert Path(weights) == (perturbed / "spanet_pu60.safetensors").resolve()
    other = reconstruct(small_events, methods=("spanet",), models={"spanet": perturbed})[COLUMN].spanet
    selected = to_numpy(small_reco.spanet.had_b) >= 0
    changed = (
        ak.to_numpy(other.detection_prob.t_had)[selected]
        != ak.to_numpy(small_reco.spanet.detection_prob.t_had)[selected]
    )
    assert changed.mean() > 0.9
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelCardError, match="exactly one model card"):
        reconstruct(small_events, methods=("pdnn",), models={"pdnn": tmp_path / "empty"})
    with pytest.raises(ValueError, match="models= keys"):
        reconstruct(small_events, methods=("chi2",), models={"chi2": "spanet_pu60"})
