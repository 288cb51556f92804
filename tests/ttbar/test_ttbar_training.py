"""Training on generated events: the permutation DNN learns, SPANet trains, the wrappers reproduce the
training-time predictions, and the model card records how to retrain."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest

from coffea_mlreco.cli import main
from coffea_mlreco.core.columns import to_numpy
from coffea_mlreco.inference import TorchModule
from coffea_mlreco.ttbar.inputs import semileptonic_inputs
from coffea_mlreco.ttbar.outcomes import event_efficiency, top_outcomes
from coffea_mlreco.ttbar.permutations import n_permutations
from coffea_mlreco.ttbar.training import assignment_arrays, pdnn_predict, spanet_predict, train_pdnn, train_spanet
from coffea_mlreco.ttbar.wrappers import PermutationDNNWrapper, SPANetWrapper


@pytest.fixture(scope="module")
def split(semilep_events: Any) -> tuple[dict, dict, Any]:
    data = assignment_arrays(semilep_events)
    n = len(data["n_jets"])
    cut = int(0.7 * n)
    train = {k: v[:cut] for k, v in data.items()}
    val = {k: v[cut:] for k, v in data.items()}
    inputs = semileptonic_inputs(semilep_events)
    chosen = inputs[to_numpy(inputs.selected, bool)][cut:]
    return train, val, chosen


def test_permutation_dnn_learns_the_assignment(split: tuple[dict, dict, Any], tmp_path: Path) -> None:
    train, val, chosen = split
    model, history, metrics = train_pdnn(
        train, val, {"hidden": 32, "layers": 2, "max_jets": 6}, epochs=15, lr=5e-3, batch=32, seed=1, progress=False
    )
    # random guessing among ~n(n-1)(n-2)(n-3)/2 permutations is right for ≲ 10 % of events; a trained network is
    # right for most of the fully reconstructable ones
    outcomes = top_outcomes(pdnn_predict(model, val), val["target"])
    chance = np.mean([1 / n_permutations(min(n, 6)) for n in val["n_jets"]])
    assert event_efficiency(outcomes, full_only=True) > max(0.3, 6 * chance)
    assert metrics["event_efficiency"] == max(h["event_efficiency"] for h in history)
    # the coffea wrapper gives the same assignments as the training-time prediction
    from safetensors.torch import save_file

    save_file(model.state_dict(), str(tmp_path / "pdnn.safetensors"))
    wrapper = PermutationDNNWrapper(
        TorchModule(
            "coffea_mlreco.ttbar.permutation_dnn:PermutationDNN",
            tmp_path / "pdnn.safetensors",
            {"hidden": 32, "layers": 2},
        ),
        device="cpu",
        max_jets=6,
    )
    out = wrapper(chosen)
    wrapped = np.stack([ak.to_numpy(out[f]) for f in ("had_b", "had_q1", "had_q2", "lep_b")], axis=1)
    assert np.array_equal(wrapped, pdnn_predict(model, val))
    assert np.all((ak.to_numpy(out.probability) > 0) & (ak.to_numpy(out.probability) <= 1))


def test_spanet_trains_and_wrapper_agrees(split: tuple[dict, dict, Any], tmp_path: Path) -> None:
    train, val, chosen = split
    config = {"max_jets": 10, "dim": 16, "heads": 2, "encoder_layers": 1}
    model, history, _ = train_spanet(train, val, config, epochs=2, lr=3e-3, batch=64, seed=2, progress=False)
    assert history[-1]["tlep_efficiency"] > 0.15  # chance is 1/N_jets ≈ 0.17 at best; it is a sanity bound
    from safetensors.torch import save_file

    save_file(model.state_dict(), str(tmp_path / "spanet.safetensors"))
    wrapper = SPANetWrapper(
        TorchModule("coffea_mlreco.ttbar.spanet:SPANet", tmp_path / "spanet.safetensors", config),
        device="cpu",
        max_jets=10,
    )
    out = wrapper(chosen)
    wrapped = np.stack([ak.to_numpy(out[f]) for f in ("had_b", "had_q1", "had_q2", "lep_b")], axis=1)
    # equal up to near-ties of an almost untrained model (batches are padded differently)
    assert np.mean(np.all(wrapped == spanet_predict(model, val), axis=1)) > 0.95
    assert all(len(set(row)) == 4 for row in wrapped) and np.all(wrapped[:, 1] < wrapped[:, 2])
    assert ak.all(out.marginal_prob.t_had <= out.assignment_prob.t_had + 1e-9)


def test_train_command_writes_weights_and_model_card(semilep_file: Path, tmp_path: Path) -> None:
    output = tmp_path / "pdnn_test"
    validation = Path(shutil.copy(semilep_file, tmp_path / "val.root"))  # train refuses validation == training
    code = main(
        [
            "train",
            "ttbar",
            "--model",
            "pdnn",
            "--train",
            str(semilep_file),
            "--validation",
            str(validation),
            "--output",
            str(output),
            "--epochs",
            "1",
            "--dim",
            "16",
            "--quiet",
        ]
    )
    assert code == 0
    card = json.loads((output / "pdnn.json").read_text())
    assert card["command"].startswith("coffea-mlreco ") and card["training_events"] > 100
    assert card["training_files"][0]["generator"]["seed"] == "61"
    assert (output / "pdnn.safetensors").stat().st_size < 5e6
    assert (
        main(
            [
                "train",
                "ttbar",
                "--model",
                "pdnn",
                "--train",
                str(tmp_path / "missing.root"),
                "--validation",
                str(semilep_file),
                "--output",
                str(output),
                "--quiet",
            ]
        )
        == 2
    )
