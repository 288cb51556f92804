"""DeepMEM training: the pipeline learns a known analytic weight to < 2 % MAPE, and `coffea-mlreco train mem`
writes weights and a model card that reload (through the inference backend) to the recorded validation MAPE."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from coffea_mlreco.cli import main
from coffea_mlreco.inference.model_cards import card_backend, read_model_card
from coffea_mlreco.mem.table_schema import MEMTable, read_mem_table, write_mem_table
from coffea_mlreco.mem.training import deepmem_predict, mape, train_deepmem

M_Z, GAMMA_Z, SQRT_S = 91.1876, 2.4952, 13600.0


def analytic_table(n: int, seed: int) -> MEMTable:
    """Lepton/jet/MET kinematics in realistic ranges (GeV, rad) with a known smooth log10 "weight":
    a Z Breit-Wigner in the dilepton mass times a PDF-like factor Π_i x_i^−1.2 (1 − x_i)³ of the momentum fractions
    x₁,₂ = (E ± p_z)_ℓℓ/√s — the structure of a Drell-Yan MEM weight, computed independently of the model."""
    rng = np.random.default_rng(seed)
    kin: dict[str, np.ndarray] = {}
    for lep in ("lep1", "lep2"):
        kin[f"{lep}_pt"] = 25 + rng.exponential(20, n)
        kin[f"{lep}_eta"] = rng.uniform(-2.4, 2.4, n)
        kin[f"{lep}_phi"] = rng.uniform(-math.pi, math.pi, n)
        kin[f"{lep}_pdgId"] = rng.choice([-13, 13], n)
    for jet in ("jet1", "jet2"):
        has = rng.random(n) < 0.5
        kin[f"{jet}_pt"] = np.where(has, 30 + rng.exponential(30, n), 0.0)
        kin[f"{jet}_eta"] = np.where(has, rng.uniform(-4.7, 4.7, n), 0.0)
        kin[f"{jet}_phi"] = np.where(has, rng.uniform(-math.pi, math.pi, n), 0.0)
    kin["met_pt"], kin["met_phi"] = rng.exponential(20, n), rng.uniform(-math.pi, math.pi, n)
    pt1, eta1, pt2, eta2 = kin["lep1_pt"], kin["lep1_eta"], kin["lep2_pt"], kin["lep2_eta"]
    m2 = 2 * pt1 * pt2 * (np.cosh(eta1 - eta2) - np.cos(kin["lep1_phi"] - kin["lep2_phi"]))
    x1 = (pt1 * np.exp(eta1) + pt2 * np.exp(eta2)) / SQRT_S
    x2 = (pt1 * np.exp(-eta1) + pt2 * np.exp(-eta2)) / SQRT_S
    log10_w = -np.log10((m2 - M_Z**2) ** 2 + (M_Z * GAMMA_Z) ** 2) + sum(
        -1.2 * np.log10(x) + 3 * np.log10(1 - x) for x in (x1, x2)
    )
    return MEMTable(
        kin, ("dy",), log10_w[:, None], np.full((n, 1), 1e-3), {"file": f"analytic-{seed}", "generator_seed": seed}
    )


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Small MLPs train several times faster on one intra-op thread on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_learns_an_analytic_weight_to_two_percent(one_thread: None) -> None:
    train, val = analytic_table(20_000, seed=1), analytic_table(4_000, seed=2)
    result = train_deepmem(
        train,
        val,
        {"hidden": 64, "blocks": 3},
        epochs=60,
        lr=3e-3,
        batch_size=256,
        seed=1,
        device="cpu",
        progress=False,
    )
    assert result.val_mape["dy"] < 0.02
    assert result.history[0]["val_mape_mean"] > 0.2  # it did have to learn
    # the kept weights are the best epoch's, and reproduce its validation MAPE
    assert result.val_mape["dy"] == pytest.approx(min(h["val_mape"]["dy"] for h in result.history), abs=1e-6)
    assert mape(deepmem_predict(result.model, val.features()), val.log10_weight) == pytest.approx(
        result.val_mape["dy"], rel=1e-4
    )
    assert result.gpu_utilisation is None and result.epochs_per_second > 0
    # events never seen (a third seed) are reproduced as well
    test = analytic_table(4_000, seed=3)
    assert mape(deepmem_predict(result.model, test.features()), test.log10_weight) < 0.025


def _write(path: Path, table: MEMTable) -> Path:
    return write_mem_table(
        path, table.kinematics, table.hypotheses, table.log10_weight, table.log10_weight_err, table.provenance
    )


def test_cli_writes_weights_and_card_that_reload(
    tmp_path: Path, one_thread: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    train, val = (
        _write(tmp_path / "train.npz", analytic_table(3000, 1)),
        _write(tmp_path / "val.npz", analytic_table(500, 2)),
    )
    out = tmp_path / "weights"
    argv = [
        "train",
        "mem",
        "--table",
        str(train),
        "--val-table",
        str(val),
        "--output",
        str(out),
        "--name",
        "toy",
        "--epochs",
        "3",
        "--hidden",
        "16",
        "--blocks",
        "1",
        "--batch-size",
        "512",
        "--device",
        "cpu",
        "--quiet",
    ]
    monkeypatch.setattr(sys, "argv", ["coffea-mlreco", *argv])  # as the console script sees it
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["best_epoch"] in (1, 2, 3)
    card = read_model_card(out, "toy", "MEM")
    assert Path(card["weights"]).name == "toy.safetensors" and (out / "toy.safetensors").exists()
    assert card["config"]["hypotheses"] == ["dy"] and card["config"]["hidden"] == 16
    assert card["training_events"] == 3000 and card["validation_events"] == 500 and card["seed"] == 1
    assert card["training_tables"][0]["provenance"]["generator_seed"] == 1
    assert card["validation_tables"][0]["provenance"]["generator_seed"] == 2
    assert card["command"] == "coffea-mlreco " + " ".join(argv)
    assert card["gpu_utilisation"] == "n/a" and card["epochs_per_second"] > 0
    assert card["outputs"] == ["neg_log10_weight_dy"] and len(card["history"]) == card["epochs_run"]
    model = card_backend(out, card).load(torch.device("cpu"))
    table = read_mem_table(val)
    recomputed = mape(deepmem_predict(model, table.features()), table.log10_weight)
    assert recomputed == pytest.approx(card["validation_metrics"]["mape"]["dy"], abs=2e-6)


def test_cli_split_validation_and_errors(tmp_path: Path, one_thread: None, capsys: pytest.CaptureFixture[str]) -> None:
    table = _write(tmp_path / "t.npz", analytic_table(1000, 4))
    args = [
        "train",
        "mem",
        "--table",
        str(table),
        "--output",
        str(tmp_path),
        "--name",
        "s",
        "--epochs",
        "1",
        "--hidden",
        "8",
        "--blocks",
        "1",
        "--device",
        "cpu",
        "--quiet",
    ]
    assert main([*args, "--val-fraction", "0.2"]) == 0
    card = json.loads((tmp_path / "s.json").read_text())
    assert card["training_events"] == 800 and card["validation_events"] == 200
    assert "random 20%" in card["validation_tables"]
    # a validation table that is a training table is refused; another file of the same generator seed is flagged
    assert main([*args, "--val-table", str(table)]) == 2
    assert "is also a training file" in capsys.readouterr().err
    same_seed = _write(tmp_path / "same_seed.npz", analytic_table(200, 4))
    assert main([*args, "--val-table", str(same_seed)]) == 0
    assert "shares generator seed(s) [4]" in capsys.readouterr().err
    assert main([*args[:3], str(tmp_path / "missing.npz"), *args[4:]]) == 2
    assert "error" in capsys.readouterr().err


def test_training_argument_errors() -> None:
    train = analytic_table(50, 1)
    with pytest.raises(ValueError, match="unknown loss"):
        train_deepmem(train, train, loss="mape", device="cpu", progress=False)
    other = MEMTable(train.kinematics, ("zprime",), train.log10_weight, train.log10_weight_err, train.provenance)
    with pytest.raises(ValueError, match="differ"):
        train_deepmem(train, other, device="cpu", progress=False)
    with pytest.raises(ValueError, match="config hypotheses"):
        train_deepmem(train, train, {"hypotheses": ["a"]}, device="cpu", progress=False)


def test_init_continues_from_a_trained_model(tmp_path: Path, one_thread: None) -> None:
    """``train mem --init DIR`` starts from DIR's weights and standardisation: before any update (the first
    epoch's validation) it is already far better than a fresh model, and the card records where it started."""
    train, val = (
        _write(tmp_path / "train.npz", analytic_table(3000, 1)),
        _write(tmp_path / "val.npz", analytic_table(500, 2)),
    )
    common = ["--table", str(train), "--val-table", str(val), "--name", "toy", "--device", "cpu", "--quiet"]
    common += ["--hidden", "32", "--blocks", "2", "--batch-size", "256", "--lr", "3e-3"]
    assert main(["train", "mem", *common, "--epochs", "30", "--output", str(tmp_path / "first")]) == 0
    first = read_model_card(tmp_path / "first", "toy", "MEM")
    assert (
        main(
            [
                "train",
                "mem",
                *common,
                "--epochs",
                "2",
                "--lr",
                "1e-4",
                "--output",
                str(tmp_path / "more"),
                "--init",
                str(tmp_path / "first"),
            ]
        )
        == 0
    )
    more = read_model_card(tmp_path / "more", "toy", "MEM")
    assert more["initialised_from"] == str(tmp_path / "first")
    assert more["config"] == first["config"]
    fresh_first_epoch = first["history"][0]["val_mape_mean"]
    assert more["history"][0]["val_mape_mean"] < 0.5 * fresh_first_epoch
    assert more["validation_metrics"]["mape"]["dy"] < 1.2 * first["validation_metrics"]["mape"]["dy"]


def pileup_table(n: int, seed: int) -> MEMTable:
    """:func:`analytic_table` at pileup: ΣE_T from PU 0 to PU 60 values (100–3000 GeV), the MET drawn from the recoil
    resolution σ_u(ΣE_T) of the MEM transfer functions, and the weight times that Gaussian MET transfer function —
    what ``mem-weights --use-sum-et`` integrates, with the ΣE_T in the table."""
    from coffea_mlreco.mem.transfer_functions import TransferFunctions

    base = analytic_table(n, seed)
    rng = np.random.default_rng(seed + 100)
    sum_et = rng.uniform(100.0, 3000.0, n)
    sigma = TransferFunctions.from_detector().met.sigma(sum_et, n)
    mx, my = rng.normal(0, sigma), rng.normal(0, sigma)
    kin = {**base.kinematics, "met_pt": np.hypot(mx, my), "met_phi": np.arctan2(my, mx), "met_sumEt": sum_et}
    log10_met = -(mx * mx + my * my) / (2 * sigma**2) * math.log10(math.e) - np.log10(2 * math.pi * sigma**2)
    weight = base.log10_weight + log10_met[:, None]
    return MEMTable(kin, base.hypotheses, weight, base.log10_weight_err, base.provenance)


def test_per_event_met_width_trains_on_tables_integrated_with_it(
    tmp_path: Path, one_thread: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--met-sigma-from-sum-et``: the card records the width's parameters and the ΣE_T input, the reloaded model's
    MET term is the table's Gaussian at each event's ΣE_T (what is left to learn is the PU-free weight), the wrapper
    reads ``met_sumEt``; tables of the other MET resolution are refused before training."""
    table = pileup_table(3000, 1)
    train, val = _write(tmp_path / "train.npz", table), _write(tmp_path / "val.npz", pileup_table(500, 2))
    common = ["--val-table", str(val), "--epochs", "3", "--hidden", "32", "--blocks", "1", "--batch-size", "256"]
    common += ["--device", "cpu", "--quiet", "--met-components", "--name", "m"]
    argv = ["train", "mem", "--table", str(train), *common, "--output", str(tmp_path / "per_event")]
    assert main([*argv, "--met-sigma-from-sum-et"]) == 0
    card = read_model_card(tmp_path / "per_event", "m", "MEM")
    assert card["config"]["met_sum_et_resolution"] == [pytest.approx(1.7), pytest.approx(0.5)]
    assert card["inputs"][-1] == "met_sumEt"
    model = card_backend(tmp_path / "per_event", card).load(torch.device("cpu"))
    with torch.no_grad():
        term = model.met_term(model.transform(torch.from_numpy(table.features(sum_et=True)))).ravel().numpy()
    base = analytic_table(3000, 1).log10_weight[:, 0]
    np.testing.assert_allclose(term, base - table.log10_weight[:, 0], rtol=1e-5, atol=2e-4)
    assert np.ptp(term) > 3  # the MET term spans several decades of the weight at these ΣE_T
    from coffea_mlreco.mem.wrappers import MEM_MODELS

    assert MEM_MODELS.load(str(tmp_path / "per_event"), device="cpu").sum_et_input
    # a per-event table with a fixed-width (or no) MET term, and a fixed-width table with the per-event one: refused
    assert main([*argv[:-1], str(tmp_path / "x"), "--met-sigma", "6.549"]) == 2
    assert "--met-sigma-from-sum-et" in capsys.readouterr().err
    plain = _write(tmp_path / "plain.npz", analytic_table(300, 3))
    refused = ["train", "mem", "--table", str(plain), *common, "--output", str(tmp_path / "y")]
    assert main([*refused, "--met-sigma-from-sum-et"]) == 2  # its validation table is per-event, its table not
    assert "mem-weights --use-sum-et" in capsys.readouterr().err
