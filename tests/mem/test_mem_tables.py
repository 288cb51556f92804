"""MEM weight tables from ROOT files (``coffea_mlreco.mem.tables`` and ``coffea-mlreco mem-weights``): the weights are
those of ``mem_log_weights`` on the selected events, the kinematics those of the selection, the provenance names
the file and its generator seed, and the table survives a write/read round trip."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from coffea_mlreco.cli import main
from coffea_mlreco.mem import mem_log_weights
from coffea_mlreco.mem.inputs import dilepton_candidates, integration_inputs
from coffea_mlreco.mem.table_schema import read_mem_table
from coffea_mlreco.mem.tables import mem_table_from_file


def test_table_holds_the_selected_events_and_their_weights(
    mem_files: dict[str, Path], mem_events: dict[str, Any], mem_tables: dict[str, Any], shipped_sum_et: bool
) -> None:
    for name, table in mem_tables.items():
        events = mem_events[name]
        cand = dilepton_candidates(events)
        selected = ak.to_numpy(cand.selected)
        sel = cand[selected]
        assert len(table) == int(selected.sum()) > 40  # nothing dropped: every weight is finite
        assert table.hypotheses == ("dy_sm", "zprime")
        np.testing.assert_array_equal(table.event, ak.to_numpy(events.event)[selected])
        # lepton 1 of the table is the ℓ⁻ (PDG +11/+13), whatever its pT
        minus = ak.to_numpy(sel.lep1.pdgId) > 0
        np.testing.assert_array_equal(
            table.kinematics["lep1_pt"], np.where(minus, ak.to_numpy(sel.lep1.pt), ak.to_numpy(sel.lep2.pt))
        )
        assert np.all(table.kinematics["lep1_pdgId"] > 0) and np.all(table.kinematics["lep2_pdgId"] < 0)
        assert 0.3 < minus.mean() < 0.7
        np.testing.assert_allclose(table.kinematics["met_phi"], ak.to_numpy(sel.met.phi), rtol=1e-6)
        jets = ak.to_numpy(ak.fill_none(ak.pad_none(sel.jets.pt, 2, clip=True), 0.0))
        np.testing.assert_allclose(table.kinematics["jet2_pt"], jets[:, 1], rtol=1e-6)
        # the same seed and settings reproduce the weights event by event (first 10 events)
        lep1, lep2, met = integration_inputs(sel[:10], use_sum_et=shipped_sum_et)
        direct = mem_log_weights(lep1, lep2, met, "zprime", precision=0.003, seed=5)
        np.testing.assert_allclose(table.log10_weight[:10, 1], direct.log10_weight, rtol=0, atol=1e-12)
        assert np.all(table.log10_weight_err < 0.003)  # 0.3 % relative ≈ 0.0013 in log10
        prov = table.provenance
        assert prov["file"] == mem_files[name].name and prov["vegas_seed"] == 5 and prov["precision"] == 0.003
        assert prov["generator_seed"] == {"dy_ll": 9301, "zprime_ll": 9302}[name]
        resolution = "per-event MET_sumEt" if shipped_sum_et else "fixed at the default sum ET (160 GeV)"
        assert prov["met_resolution"] == resolution and prov["dropped_nonfinite"] == 0
        assert table.per_event_met_resolution == shipped_sum_et
    # the Z′ hypothesis prefers the Z′ events, the SM one the Drell-Yan events
    llr = {name: t.log10_weight[:, 1] - t.log10_weight[:, 0] for name, t in mem_tables.items()}
    assert np.median(llr["zprime_ll"]) > np.median(llr["dy_ll"]) + 2


def test_cli_writes_a_table_that_reads_back(mem_files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "t.npz"
    files = [str(mem_files["dy_ll"]), str(mem_files["zprime_ll"])]
    argv = [
        "mem-weights",
        *files,
        "--output",
        str(out),
        "--precision",
        "0.01",
        "--max-events",
        "8",
        "--hypotheses",
        "dy_sm",
        "zprime",
        "--seed",
        "3",
        "--jobs",
        "2",
    ]
    assert main(argv) == 0
    table = read_mem_table(out)
    assert len(table) == 16 and table.hypotheses == ("dy_sm", "zprime")
    assert table.provenance["generator_seed"] == [9301, 9302]
    assert [p["integrated_events"] for p in table.provenance["parts"]] == [8, 8]
    json.dumps(table.provenance)  # plain JSON
    single = mem_table_from_file(mem_files["zprime_ll"], ("dy_sm", "zprime"), precision=0.01, seed=3, max_events=8)
    np.testing.assert_allclose(table.log10_weight[8:], single.log10_weight, rtol=0, atol=1e-12)
    assert table.features().shape == (16, 14) and table.features(flavour=True).shape == (16, 15)
    assert not table.per_event_met_resolution


def test_use_sum_et_writes_the_sum_et_its_weights_were_integrated_with(
    mem_files: dict[str, Path], mem_events: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "s.npz"
    argv = ["mem-weights", str(mem_files["dy_ll"]), "--output", str(out), "--precision", "0.01"]
    assert main([*argv, "--max-events", "6", "--seed", "3", "--use-sum-et"]) == 0
    table = read_mem_table(out)
    assert table.per_event_met_resolution and table.provenance["met_resolution"] == "per-event MET_sumEt"
    sel = dilepton_candidates(mem_events["dy_ll"])
    sel = sel[ak.to_numpy(sel.selected)][:6]
    met = integration_inputs(sel, use_sum_et=True)[2]
    np.testing.assert_array_equal(table.kinematics["met_sumEt"], met["sumEt"])
    assert table.features(flavour=True, sum_et=True).shape == (6, 16)
    # the weights are those of each event's own MET resolution, not of the default ΣE_T
    fixed = mem_table_from_file(mem_files["dy_ll"], ("dy_sm", "zprime"), precision=0.01, seed=3, max_events=6)
    np.testing.assert_array_equal(fixed.kinematics["met_pt"], table.kinematics["met_pt"])
    assert np.abs(table.log10_weight - fixed.log10_weight).max() > 0.02


def test_cli_errors(tmp_path: Path, mem_files: dict[str, Path], capsys: Any) -> None:
    assert main(["mem-weights", str(tmp_path / "missing.root"), "--output", str(tmp_path / "t.npz")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["mem-weights", str(mem_files["dy_ll"]), "--output", str(tmp_path / "t.txt")]) == 2
    assert ".npz" in capsys.readouterr().err
    assert (
        main(["mem-weights", str(mem_files["dy_ll"]), "--output", str(tmp_path / "t.npz"), "--hypotheses", "nonsense"])
        == 2
    )
    assert "no shipped MEM hypothesis" in capsys.readouterr().err
