"""``coffea_mlreco.mem.reconstruct``: the same ``MEMReco`` in every coffea mode (generated Z′ events and real CMS
Drell-Yan NanoAOD), only the documented branches read in dask mode, the caller's events untouched, per-event VEGAS
seeds (an event's weights do not depend on its chunk), one bad input costing one event, a model directory used, and
the physics: network and integrated weights agree event by event at the model card's MAPE scale, and d separates Z′
from Drell-Yan."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path
from typing import Any

import awkward as ak
import dask_awkward as dak
import numpy as np
import pytest
from column_modes import MODES, assert_same_columns, columns_in_mode, open_events

from coffea_mlreco import mem
from coffea_mlreco.core import MissingBranchError, NonFiniteInputError, input_branches
from coffea_mlreco.mem.columns import integration_seeds
from coffea_mlreco.mem.inputs import dilepton_candidates, integration_inputs
from coffea_mlreco.mem.wrappers import DEFAULT_MEM_MODEL, MEM_MODELS

HYPS = ("dy_sm", "zprime")
N_INTEGRATED = 8
"""Selected events integrated per chunk in the mode matrix (the integration is the slow part)."""


def _in_mode(reconstruct: Any, path: Path, mode: str, request: pytest.FixtureRequest) -> ak.Array:
    """``MEMReco`` of ``path`` in ``mode``. Once the session's distributed client is up, the threaded scheduler of
    the plain dask mode warns that a client is active; the columns are the same, so the warning is silenced."""
    client = request.getfixturevalue("dask_client") if mode == "apply_to_fileset" else None
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Running on a single-machine scheduler", UserWarning)
        return columns_in_mode(reconstruct, path, mode, ["MEMReco"], client=client).MEMReco


def reconstruct_few(events: Any) -> Any:
    return mem.reconstruct(events, device="cpu", max_integrated_events=N_INTEGRATED)


def reconstruct_all(events: Any) -> Any:
    return mem.reconstruct(events, device="cpu", max_integrated_events=None)


@pytest.fixture(scope="module")
def eager_zprime(mem_files: dict[str, Path]) -> ak.Array:
    return columns_in_mode(reconstruct_few, mem_files["zprime_ll"], "eager", ["MEMReco"]).MEMReco


@pytest.fixture(scope="module")
def eager_real(real_nano_dy: Path) -> ak.Array:
    return columns_in_mode(reconstruct_all, real_nano_dy, "eager", ["MEMReco"]).MEMReco


@pytest.mark.parametrize("mode", [m for m in MODES if m != "eager"])
def test_every_mode_gives_the_eager_columns(
    mem_files: dict[str, Path], eager_zprime: ak.Array, mode: str, request: pytest.FixtureRequest
) -> None:
    assert_same_columns(_in_mode(reconstruct_few, mem_files["zprime_ll"], mode, request), eager_zprime)


@pytest.mark.parametrize("mode", [m for m in MODES if m != "eager"])
def test_real_nanoaod_in_every_mode(
    real_nano_dy: Path, eager_real: ak.Array, mode: str, request: pytest.FixtureRequest
) -> None:
    assert_same_columns(_in_mode(reconstruct_all, real_nano_dy, mode, request), eager_real)


def test_real_drell_yan_prefers_the_standard_model(eager_real: ak.Array) -> None:
    selected = ak.to_numpy(eager_real.selected)
    assert 1 <= selected.sum() < len(selected) and ak.all(eager_real.valid)
    assert np.array_equal(ak.to_numpy(eager_real.integrated), selected)  # max_integrated_events=None: all of them
    for method in ("integrated", "network"):
        d = ak.to_numpy(eager_real[f"d_{method}"])
        assert np.all(np.isfinite(d[selected])) and np.all(np.isnan(d[~selected]))
        assert np.all(d[selected] < 0.5), method  # Drell-Yan events at the Z peak: the SM hypothesis wins
    assert set(ak.to_numpy(eager_real.flavour)[selected]) <= {11, 13}


def test_columns_hold_the_selection_and_the_weights(
    mem_events: dict[str, Any], eager_zprime: ak.Array, shipped_sum_et: bool
) -> None:
    events = mem_events["zprime_ll"]
    reco = eager_zprime
    assert set(ak.fields(reco)) == {
        *(f"logw_{h}_{s}" for h in HYPS for s in ("integrated", "integrated_err", "network")),
        "d_integrated",
        "d_network",
        "integrated",
        "flavour",
        "selected",
        "valid",
    }
    cand = dilepton_candidates(events)
    selected = ak.to_numpy(cand.selected)
    np.testing.assert_array_equal(ak.to_numpy(reco.selected), selected)
    np.testing.assert_array_equal(ak.to_numpy(reco.flavour), ak.to_numpy(cand.flavour))
    assert np.array_equal(np.isfinite(ak.to_numpy(reco.logw_zprime_network)), selected)  # network: every selected
    done = ak.to_numpy(reco.integrated)
    assert np.flatnonzero(done).tolist() == np.flatnonzero(selected)[:N_INTEGRATED].tolist()  # first N of the chunk
    assert np.array_equal(np.isfinite(ak.to_numpy(reco.logw_dy_sm_integrated)), done)
    err = ak.to_numpy(reco.logw_dy_sm_integrated_err)[done]
    assert np.all(err > 0) and np.median(err) < 0.01 / np.log(10)  # 1 % precision
    # each integrated event is mem_log_weights on that event alone, seeded by a hash of its inputs, with the MET
    # resolution the shipped network learned (by default)
    lep1, lep2, met = integration_inputs(cand[cand.selected][:N_INTEGRATED], use_sum_et=shipped_sum_et)
    seeds = integration_seeds(lep1, lep2, met)
    assert len(set(seeds)) == N_INTEGRATED
    for i, k in enumerate(np.flatnonzero(done)[:3]):
        one = tuple({f: v[i : i + 1] for f, v in part.items()} for part in (lep1, lep2, met))
        direct = mem.mem_log_weights(*one, "zprime", precision=0.01, seed=seeds[i])
        assert reco.logw_zprime_integrated[k] == direct.log10_weight[0]
    d = ak.to_numpy(reco.d_network)
    expected = 1 / (1 + 10 ** (ak.to_numpy(reco.logw_dy_sm_network) - ak.to_numpy(reco.logw_zprime_network)))
    np.testing.assert_allclose(d[selected], expected[selected], rtol=1e-12)
    assert np.all(np.isnan(d[~selected]))


def test_weights_do_not_depend_on_the_chunk(mem_events: dict[str, Any], eager_zprime: ak.Array) -> None:
    events = mem_events["zprime_ll"]
    selected = np.flatnonzero(ak.to_numpy(eager_zprime.selected))
    start = int(selected[3])  # a chunk starting at the 4th selected event: it integrates selected[3:3 + N]
    later = reconstruct_few(events[start:]).MEMReco
    both = selected[3:N_INTEGRATED] - start
    assert ak.all(later.integrated[both])
    for h in HYPS:
        np.testing.assert_array_equal(
            ak.to_numpy(later[f"logw_{h}_integrated"])[both],
            ak.to_numpy(eager_zprime[f"logw_{h}_integrated"])[selected[3:N_INTEGRATED]],
        )
    in_parallel = mem.reconstruct(
        events[: int(selected[4]) + 1], device="cpu", methods=("integrated",), n_workers=2
    ).MEMReco  # the events spread over two processes
    for h in HYPS:
        np.testing.assert_array_equal(
            ak.to_numpy(in_parallel[f"logw_{h}_integrated"])[selected[:5]],
            ak.to_numpy(eager_zprime[f"logw_{h}_integrated"])[selected[:5]],
        )
    other_seed = mem.reconstruct(events[: int(selected[1]) + 1], device="cpu", methods=("integrated",), seed=1).MEMReco
    first = int(selected[0])
    assert other_seed.logw_zprime_integrated[first] != eager_zprime.logw_zprime_integrated[first]
    assert abs(other_seed.logw_zprime_integrated[first] - eager_zprime.logw_zprime_integrated[first]) < 0.02


def test_callers_events_are_unchanged(mem_events: dict[str, Any]) -> None:
    events = mem_events["dy_ll"][:40]
    fields, muon_fields = list(events.fields), list(events.Muon.fields)
    out = mem.reconstruct(events, methods=("network",), device="cpu")
    assert events.fields == fields and events.Muon.fields == muon_fields and "MEMReco" not in events.fields
    assert "MEMReco" in out.fields and "logw_dy_sm_integrated" not in out.MEMReco.fields
    assert out.Muon.pt.tolist() == events.Muon.pt.tolist()


def test_dask_reads_only_the_documented_branches(
    mem_files: dict[str, Path], real_nano_dy: Path, shipped_sum_et: bool
) -> None:
    for path in (mem_files["dy_ll"], real_nano_dy):
        events = open_events(path, "dask")
        (read,) = dak.report_necessary_columns(reconstruct_few(events).MEMReco).values()
        documented = input_branches(events, mem.input_columns(events, mem.METHODS, use_sum_et=shipped_sum_et))
        assert sorted(read) == documented
        assert not any(name.startswith(("Gen", "nGen", "PFCands", "Tau")) for name in read)
        assert {"Muon_pt", "Electron_charge", "Jet_phi", "MET_phi", "nMuon"} <= set(read)
        (network_only,) = dak.report_necessary_columns(mem.reconstruct(events, methods=("network",)).MEMReco).values()
        assert sorted(network_only) == documented
    # real NanoAOD: the selection's isolation and ID branches; our simulation has no ID branches
    assert {"Electron_mvaFall17V2Iso_WP90", "Muon_mediumId", "Muon_pfRelIso04_all", "Jet_jetId"} <= set(read)
    with_sum_et = mem.reconstruct(events, methods=("integrated",), use_sum_et=True)
    (read_sum_et,) = dak.report_necessary_columns(with_sum_et.MEMReco).values()
    assert set(read_sum_et) == set(read) | {"MET_sumEt"}


def test_one_nan_input_costs_one_event(mem_events: dict[str, Any]) -> None:
    events = mem_events["zprime_ll"][:60]
    clean = reconstruct_all(events).MEMReco
    muon_events = np.flatnonzero(ak.to_numpy(clean.selected & (clean.flavour == 13)))
    bad_event = int(muon_events[1])
    pt = ak.to_numpy(ak.flatten(events.Muon.pt)).copy()
    pt[int(np.sum(ak.to_numpy(ak.num(events.Muon, axis=1))[:bad_event]))] = np.nan  # its first muon
    bad = ak.with_field(events, ak.unflatten(pt, ak.num(events.Muon, axis=1)), where=("Muon", "pt"))
    reco = reconstruct_all(bad).MEMReco
    assert ak.to_list(reco.valid).count(False) == 1 and not reco.valid[bad_event]
    assert not reco.selected[bad_event] and not reco.integrated[bad_event] and reco.flavour[bad_event] == -1
    for h in HYPS:
        for suffix in ("integrated", "integrated_err", "network"):
            assert np.isnan(reco[f"logw_{h}_{suffix}"][bad_event])
    keep = np.arange(len(events)) != bad_event
    assert_same_columns(reco[keep], clean[keep])
    with pytest.raises(NonFiniteInputError, match=r"Muon\.pt"):
        mem.reconstruct(bad, methods=("network",), on_invalid="raise")


def test_a_model_directory_is_used(mem_events: dict[str, Any], tmp_path: Path) -> None:
    weights = Path(MEM_MODELS.card(DEFAULT_MEM_MODEL)["weights"])
    folder = tmp_path / "my_deepmem"
    folder.mkdir()
    shutil.copy(weights.with_suffix(".json"), folder / "mine.json")
    shutil.copy(weights, folder / weights.name)
    events = mem_events["dy_ll"][:80]
    mine = mem.reconstruct(events, methods=("network",), models={"network": str(folder)}, device="cpu")
    shipped = mem.reconstruct(events, methods=("network",), device="cpu")
    assert_same_columns(mine.MEMReco, shipped.MEMReco)
    assert ak.sum(np.isfinite(mine.MEMReco.logw_dy_sm_network)) > 5
    with pytest.raises(ValueError, match="exactly one model card"):
        mem.reconstruct(events, methods=("network",), models={"network": str(tmp_path)})


def test_missing_branches_and_unknown_methods(mem_events: dict[str, Any]) -> None:
    events = mem_events["dy_ll"][:20]
    no_met = ak.without_field(events, "MET")
    assert mem.supported_methods(no_met) == () and mem.supported_methods(events) == mem.METHODS
    with pytest.raises(MissingBranchError, match="MET_pt"):
        mem.reconstruct(no_met, methods=("integrated",))
    with pytest.raises(MissingBranchError, match="MET_pt"):
        mem.reconstruct(no_met)
    with pytest.raises(ValueError, match="unknown MEM method"):
        mem.reconstruct(events, methods=("vegas",))
    with pytest.raises(ValueError, match="models= keys"):
        mem.reconstruct(events, models={"integrated": "deepmem"})


def test_network_agrees_with_the_integration_and_d_separates(mem_events: dict[str, Any]) -> None:
    """Physics: on 40 integrated events per sample (0.3 % precision) the network's weights agree with the integration
    at the scale of the model card's held-out MAPE (0.6–0.8 %), and d = P_Z′/(P_Z′ + P_DY) separates the samples."""
    card = MEM_MODELS.card(DEFAULT_MEM_MODEL)["test_metrics"]["mape"]
    reco = {
        name: mem.reconstruct(events, device="cpu", max_integrated_events=40, precision=0.003).MEMReco
        for name, events in mem_events.items()
    }
    for h in HYPS:
        rel = np.concatenate(
            [
                np.abs(
                    np.expm1(
                        np.log(10) * (ak.to_numpy(r[f"logw_{h}_network"]) - ak.to_numpy(r[f"logw_{h}_integrated"]))
                    )
                )[ak.to_numpy(r.integrated)]
                for r in reco.values()
            ]
        )
        assert len(rel) == 80
        assert np.mean(rel) < 2 * card[h], (h, np.mean(rel))  # MAPE on these events, vs the card's
        assert np.median(rel) < card[h], h
        assert np.quantile(rel, 0.9) < 4 * card[h] and np.max(rel) < 0.1, h  # event by event
    for method in ("integrated", "network"):
        ran = "integrated" if method == "integrated" else "selected"
        d = {name: ak.to_numpy(r[f"d_{method}"])[ak.to_numpy(r[ran])] for name, r in reco.items()}
        signal, background = d["zprime_ll"], d["dy_ll"]
        auc = np.mean(signal[:, None] > background[None, :]) + 0.5 * np.mean(signal[:, None] == background[None, :])
        assert auc > 0.9, (method, auc)
        assert np.median(signal) > 0.9 and np.median(background) < 0.1, method


def test_nanoaod_v15_reads_pfmet_and_the_jet_id_fractions(shipped_sum_et: bool) -> None:
    """NanoAODv15 has ``PFMET`` and no ``Jet_jetId``: the MEM runs there (eager) with the jet ID computed from the
    energy fractions, and dask reads exactly the declared branches, those among them."""
    path = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "nano_tt_v15.root"
    if not path.is_file():
        pytest.skip(f"real NanoAOD test file {path} is absent")
    eager = open_events(path, "eager")
    assert mem.supported_methods(eager) == mem.METHODS
    reco = mem.reconstruct(eager, methods=("network",)).MEMReco
    assert len(reco) == len(eager) and "d_network" in reco.fields
    events = open_events(path, "dask")
    (read,) = dak.report_necessary_columns(mem.reconstruct(events, methods=("network",)).MEMReco).values()
    assert sorted(read) == input_branches(events, mem.input_columns(events, ("network",), use_sum_et=shipped_sum_et))
    assert {"PFMET_pt", "Jet_chMultiplicity", "Jet_neHEF"} <= set(read)
    assert "Jet_jetId" not in read and not any(name.startswith("MET_") for name in read)


def test_a_file_without_any_jet_id_is_refused(real_nano_dy: Path) -> None:
    events = open_events(real_nano_dy, "eager")
    without_id = ak.with_field(events, events.Jet[["pt", "eta", "phi", "mass"]], "Jet")
    with pytest.raises(ValueError, match="Jet_jetId"):
        dilepton_candidates(without_id)


def _per_event_width_model(folder: Path) -> Path:
    """A small DeepMEM with a per-event MET width (``met_sum_et_resolution``), trained briefly on a synthetic table
    with ΣE_T: what ``train mem --met-sigma-from-sum-et`` writes (the weights' quality does not matter here)."""
    from coffea_mlreco.mem.table_schema import MEMTable
    from coffea_mlreco.mem.training import save_deepmem, train_deepmem

    rng = np.random.default_rng(5)
    n = 400
    kin = {f"{lep}_{f}": rng.uniform(-2, 2, n) for lep in ("lep1", "lep2") for f in ("eta", "phi")}
    kin |= {"lep1_pt": 30 + rng.exponential(20, n), "lep2_pt": 30 + rng.exponential(20, n)}
    kin |= {"lep1_pdgId": np.full(n, 13), "lep2_pdgId": np.full(n, -13)}
    kin |= {f"{j}_{f}": np.zeros(n) for j in ("jet1", "jet2") for f in ("pt", "eta", "phi")}
    kin |= {"met_pt": rng.exponential(20, n), "met_phi": rng.uniform(-3, 3, n), "met_sumEt": rng.uniform(100, 3000, n)}
    table = MEMTable(kin, HYPS, rng.normal(-10, 1, (n, 2)), np.full((n, 2), 1e-3), {"file": "t", "generator_seed": 1})
    config = {"hypotheses": HYPS, "hidden": 8, "blocks": 1, "flavour_input": True, "met_components": True}
    config["met_sum_et_resolution"] = (1.7, 0.5)
    result = train_deepmem(table, table, config, epochs=1, device="cpu", progress=False)
    save_deepmem(result, folder, "per_event", {"training_tables": [], "validation_tables": []})
    return folder


def test_a_per_event_width_model_reads_sum_et_and_sets_the_integration(
    mem_events: dict[str, Any], mem_files: dict[str, Path], tmp_path: Path
) -> None:
    """A model trained on tables integrated with each event's MET resolution reads ``MET_sumEt``, and by default
    the integration beside it uses the same resolution (the weights it learned); asking for the other is refused."""
    folder = _per_event_width_model(tmp_path / "model")
    events = mem_events["dy_ll"][:60]
    settings = {"device": "cpu", "max_integrated_events": 4, "precision": 0.01}
    both = mem.reconstruct(events, models={"network": str(folder)}, **settings).MEMReco
    per_event = mem.reconstruct(events, methods=("integrated",), use_sum_et=True, **settings).MEMReco
    fixed = mem.reconstruct(events, methods=("integrated",), use_sum_et=False, **settings).MEMReco
    alone = mem.reconstruct(events, methods=("integrated",), models={"network": str(folder)}, **settings).MEMReco
    done = ak.to_numpy(both.integrated)
    assert done.sum() == 4 and ak.sum(np.isfinite(both.logw_zprime_network)) > 10
    expected = ak.to_numpy(per_event.logw_zprime_integrated)[done]
    np.testing.assert_array_equal(ak.to_numpy(both.logw_zprime_integrated)[done], expected)
    assert not np.array_equal(ak.to_numpy(fixed.logw_zprime_integrated)[done], expected)
    np.testing.assert_array_equal(ak.to_numpy(alone.logw_zprime_integrated)[done], expected)  # without the network
    with pytest.raises(ValueError, match="integrates another weight than the network learned"):
        mem.reconstruct(events, models={"network": str(folder)}, use_sum_et=False, **settings)
    dask_events = open_events(mem_files["dy_ll"], "dask")
    network_only = mem.reconstruct(dask_events, methods=("network",), models={"network": str(folder)})
    (read,) = dak.report_necessary_columns(network_only.MEMReco).values()
    assert "MET_sumEt" in read
    no_sum_et = ak.with_field(events, ak.without_field(events.MET, "sumEt"), "MET")
    with pytest.raises(MissingBranchError, match="MET_sumEt"):
        mem.reconstruct(no_sum_et, methods=("network",), models={"network": str(folder)}, device="cpu")
