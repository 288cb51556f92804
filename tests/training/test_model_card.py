"""The one model-card writer: the fields every task's card has, written with the weights and read back."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from coffea_mlreco.core.version import __version__
from coffea_mlreco.inference.model_cards import CARD_VERSION, read_model_card
from coffea_mlreco.training.model_dir import model_card, write_model


def test_card_fields_and_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["coffea-mlreco", "train", "toy", "--epochs", "2"])
    model = torch.nn.Linear(3, 2)
    card = model_card(
        "torch.nn:Linear",
        {"in_features": 3, "out_features": 2},
        "toy",
        sum(p.numel() for p in model.parameters()),
        data={"training_events": 10, "validation_events": 5},
        settings={"epochs": 2, "learning_rate": 1e-3, "seed": 1},
        history=[{"epoch": 1, "val_loss": 0.5}, {"epoch": 2, "val_loss": 0.4}],
        metrics={"val_loss": 0.4},
        seconds=1.234,
        calibration={"scale": 1.02},
    )
    assert card["weights"] == "toy.safetensors" and card["card_version"] == CARD_VERSION
    assert card["package_version"] == __version__ and card["command"] == "coffea-mlreco train toy --epochs 2"
    assert card["parameters"] == 8 and card["training_seconds"] == 1.2 and card["validation_metrics"]["val_loss"] == 0.4
    assert card["epochs"] == 2 and card["training_events"] == 10 and card["calibration"] == {"scale": 1.02}
    assert list(card)[:6] == ["model", "config", "weights", "card_version", "package_version", "command"]
    write_model(tmp_path / "toy", "toy", model.state_dict(), card)
    read = read_model_card(tmp_path / "toy", tmp_path / "toy", "toy")
    assert read["config"] == card["config"] and Path(read["weights"]).name == "toy.safetensors"
