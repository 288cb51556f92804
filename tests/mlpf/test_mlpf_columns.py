"""``coffea_mlreco.mlpf.reconstruct``: the same ``MLPFCands``/``MLPFReco`` in every coffea mode, the declared
input branches, per-event NaN isolation, model directories, CMS NanoAOD without elements, and physics."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import awkward as ak
import dask_awkward as dak
import numpy as np
import pytest
from coffea_mlreco.processors.mlpf import element_classes, mlpf_element_classes
from column_modes import MODES, assert_same_columns, columns_in_mode, open_events

from coffea_mlreco.core import MissingBranchError, NonFiniteInputError, input_branches
from coffea_mlreco.core.columns import to_numpy
from coffea_mlreco.mlpf import METHODS, input_columns, reconstruct, supported_methods
from coffea_mlreco.mlpf.columns import CANDIDATE_FIELDS, mlpf_models
from coffea_mlreco.mlpf.performance import class_rates
from coffea_mlreco.mlpf.wrapper import MLPF_MODELS

NAMES = ("MLPFCands", "MLPFReco")


def _reconstruct(events: Any) -> Any:
    return reconstruct(events, device="cpu")


@pytest.fixture(scope="module")
def small_eager(small_elements_file: Path) -> Any:
    return open_events(small_elements_file, "eager")


@pytest.fixture(scope="module")
def small_reco(small_eager: Any) -> Any:
    """The small sample with the MLPF columns appended (eager, default model choice)."""
    return _reconstruct(small_eager)


@pytest.fixture(scope="module")
def small_columns(small_reco: Any) -> ak.Array:
    return ak.Array(ak.to_packed(ak.zip({name: small_reco[name] for name in NAMES}, depth_limit=1)))


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_gives_the_eager_columns(
    small_elements_file: Path, small_columns: ak.Array, mode: str, request: pytest.FixtureRequest
) -> None:
    client = request.getfixturevalue("dask_client") if mode == "apply_to_fileset" else None
    out = columns_in_mode(_reconstruct, small_elements_file, mode, NAMES, client=client)
    assert_same_columns(out, small_columns)
    assert ak.all(out.MLPFReco.valid)


def test_the_callers_events_are_not_changed(small_elements_file: Path) -> None:
    events = open_events(small_elements_file, "eager")
    before, tracks = list(events.fields), ak.to_packed(events.PFTrack)
    out = _reconstruct(events)
    assert list(events.fields) == before and "MLPFCands" not in events.fields
    assert ak.array_equal(events.PFTrack, tracks)
    assert set(NAMES) <= set(out.fields) and ak.fields(out.MLPFCands) == list(CANDIDATE_FIELDS)


def test_candidates_come_from_real_elements(small_reco: Any) -> None:
    cands, reco = small_reco.MLPFCands, small_reco.MLPFReco
    assert ak.all(reco.n_cands == ak.num(cands, axis=1)) and ak.all(reco.n_cands > 50)
    is_track = cands.trackIdx >= 0
    assert ak.all(is_track != (cands.clusterIdx >= 0))  # exactly one source element
    assert ak.all(cands.trackIdx < ak.num(small_reco.PFTrack, axis=1))
    assert ak.all(cands.clusterIdx < ak.num(small_reco.PFCluster, axis=1))
    charged = cands[cands.charge != 0]
    track = small_reco.PFTrack[charged.trackIdx]
    assert ak.all(charged.trackIdx >= 0) and ak.all(charged.pt == track.pt) and ak.all(charged.eta == track.eta)
    # a cluster's neutral candidate points near its cluster, with an energy of the cluster's order
    neutral = cands[cands.clusterIdx >= 0]
    cluster = small_reco.PFCluster[neutral.clusterIdx]
    assert ak.all(neutral.charge == 0) and ak.all(neutral.pt > 0)
    assert float(ak.mean(abs(neutral.eta - cluster.eta))) < 0.05
    ratio = np.asarray(ak.flatten(neutral.pt * np.cosh(neutral.eta) / cluster.energy))
    assert 0.3 < float(np.median(ratio)) < 3.0
    # the candidates carry the four-vector behaviour
    assert ak.all(abs(cands.delta_r(cands)) < 1e-6)


def test_dask_graph_reads_only_the_declared_element_branches(small_elements_file: Path) -> None:
    events = open_events(small_elements_file, "dask")
    out = reconstruct(events, device="cpu")
    report = dak.report_necessary_columns(dak.zip({name: out[name] for name in NAMES}, depth_limit=1))
    (columns,) = report.values()
    expected = input_branches(events, input_columns(events))
    assert sorted(columns) == expected
    assert "Pileup_nTrueInt" in expected and "PFTrack_etaCalo" in expected and "PFCluster_eEm" in expected
    assert not any(c.startswith(("Gen", "PFTarget", "PFCands", "nPFCands")) or "gen" in c for c in columns)


def test_dask_selection_of_unknown_partition_sizes(small_elements_file: Path, small_eager: Any) -> None:
    """A selection (unknown partition lengths) then reconstruct: the graph builds and equals eager."""
    events = open_events(small_elements_file, "dask")
    selected = events[events.PV.npvsGood % 2 == 0]
    assert not selected.known_divisions
    lazy = reconstruct(selected, device="cpu")
    out = dak.zip({name: lazy[name] for name in NAMES}, depth_limit=1).compute()  # the session's client if active
    eager = _reconstruct(small_eager[small_eager.PV.npvsGood % 2 == 0])
    assert 0 < len(out) < len(small_eager)
    assert_same_columns(out, ak.zip({name: eager[name] for name in NAMES}, depth_limit=1))


def test_nan_input_blanks_only_its_event(small_eager: Any, small_columns: ak.Array) -> None:
    bad_event = 3
    pt = ak.to_packed(small_eager.PFTrack.pt)
    flat = to_numpy(ak.flatten(pt)).copy()
    flat[int(ak.sum(ak.num(pt, axis=1)[:bad_event])) + 1] = np.nan  # second track of event 3
    broken = ak.with_field(small_eager, ak.unflatten(flat, ak.num(pt, axis=1)), where=("PFTrack", "pt"))
    out = _reconstruct(broken)
    valid = np.asarray(out.MLPFReco.valid)
    assert valid.sum() == len(valid) - 1 and not valid[bad_event]
    assert out.MLPFReco.n_cands[bad_event] == -1
    bad = out.MLPFCands[bad_event]
    assert len(bad) > 0 and np.all(np.isnan(np.asarray(bad.pt))) and np.all(np.isnan(np.asarray(bad.eta)))
    assert np.all(np.asarray(bad.trackIdx) == -1) and np.all(np.asarray(bad.pdgId) == -1)
    columns = ak.zip({name: out[name] for name in NAMES}, depth_limit=1)
    assert_same_columns(columns[valid], small_columns[valid])
    with pytest.raises(NonFiniteInputError, match=r"PFTrack\.pt"):
        reconstruct(broken, device="cpu", on_invalid="raise")


def test_model_directory_is_used(small_eager: Any, small_reco: Any, tmp_path: Path) -> None:
    assert sorted(mlpf_models()) == [60, 200]  # default: chosen per chunk by pileup
    card = MLPF_MODELS.card("mlpf_pu60")
    same, scaled = tmp_path / "same", tmp_path / "scaled"
    for directory in (same, scaled):
        directory.mkdir()
        shutil.copy(card["weights"], directory / "model.safetensors")
    card["weights"] = "model.safetensors"
    (same / "model.json").write_text(json.dumps(card))
    decision = dict(card["decision"])
    decision["neutral_pt_scale"] = (2 * np.asarray(decision["neutral_pt_scale"], np.float64)).tolist()
    (scaled / "model.json").write_text(json.dumps({**card, "decision": decision}))
    from_dir = reconstruct(small_eager, models={"mlpf": str(same)}, device="cpu")
    assert_same_columns(from_dir.MLPFCands, small_reco.MLPFCands)  # PU 20 sample: the default is mlpf_pu60
    doubled = reconstruct(small_eager, models={"mlpf": scaled}, device="cpu").MLPFCands
    assert ak.all(ak.num(doubled, axis=1) == ak.num(small_reco.MLPFCands, axis=1))
    from_cluster = small_reco.MLPFCands.clusterIdx >= 0
    assert ak.all(doubled.pt[from_cluster] == 2 * small_reco.MLPFCands.pt[from_cluster])
    assert ak.all(doubled.pt[~from_cluster] == small_reco.MLPFCands.pt[~from_cluster])
    with pytest.raises(ValueError, match="models= keys"):
        reconstruct(small_eager, models={"puppi": "mlpf_pu60"})
    with pytest.raises(ValueError, match="unknown MLPF method"):
        reconstruct(small_eager, methods=["pf"])


@pytest.mark.parametrize("mode", ["eager", "dask"])
def test_cms_nanoaod_has_no_elements(real_nano_tt: Path, mode: str) -> None:
    events = open_events(real_nano_tt, mode)
    assert supported_methods(events) == ()
    with pytest.raises(MissingBranchError, match="PFTrack_pt") as err:
        reconstruct(events, device="cpu")
    assert err.value.branch == "PFTrack_pt"


def test_supported_methods_with_elements(small_eager: Any) -> None:
    assert supported_methods(small_eager) == METHODS == ("mlpf",)


def test_mlpf_finds_more_neutral_hadrons_than_rule_based_pf(mlpf_events: Any) -> None:
    """On the 200-event tt̄ PU 20 sample: MLPF's neutral-hadron efficiency (element level, against PFTarget) is
    at least rule-based PF's, at a comparable fake rate, and every charged hadron is found."""
    pf = element_classes(mlpf_events)
    ml = mlpf_element_classes(mlpf_events, pf["counts"])
    target = to_numpy(ak.flatten(mlpf_events.PFTarget.cls), np.int64)
    target_pt = to_numpy(ak.flatten(mlpf_events.PFTarget.pt))
    central = np.abs(pf["eta"]) < 3
    rates = {
        name: class_rates(target[central], reco["cls"][central], target_pt[central], reco["pt"][central], 1.0)
        for name, reco in (("pf", pf), ("mlpf", ml))
    }
    eff = {name: r["efficiency"]["neutral_hadron"] for name, r in rates.items()}
    assert eff["mlpf"] >= eff["pf"] and eff["pf"] > 0.1
    assert rates["mlpf"]["fake_rate"]["neutral_hadron"] < 0.5
    assert rates["mlpf"]["efficiency"]["charged_hadron"] > 0.999
