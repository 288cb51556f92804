"""The one training loop (`coffea_mlreco.training.trainer`): a real small network on a learnable toy regression."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np
import pytest
import torch

from coffea_mlreco.training.trainer import EpochEnd, FitResult, Trainer, one_cycle_lr, shuffled_batches

N_TRAIN, N_VAL, BATCH = 512, 128, 32


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny networks train fastest, and reproducibly, on one intra-op thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def toy(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x ∈ [−1, 1]³ and y = sin(2 x₀) + x₁ x₂ (+ 1 % noise): smooth, nonlinear, learnable by a small MLP."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, 3)).astype(np.float32)
    y = np.sin(2 * x[:, 0]) + x[:, 1] * x[:, 2] + rng.normal(0, 0.01, n).astype(np.float32)
    return torch.from_numpy(x), torch.from_numpy(y[:, None])


X, Y = toy(N_TRAIN, 1)
XV, YV = toy(N_VAL, 2)


def mlp() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(3, 32), torch.nn.SiLU(), torch.nn.Linear(32, 1))


def mse(model: torch.nn.Module, events: np.ndarray) -> torch.Tensor:
    idx = torch.from_numpy(events)
    return torch.nn.functional.mse_loss(model(X[idx]), Y[idx])


def val_mse(model: torch.nn.Module) -> dict[str, float]:
    model.eval()
    with torch.no_grad():
        return {"val_mse": float(torch.nn.functional.mse_loss(model(XV), YV))}


def fit(trainer: Trainer, model: torch.nn.Module, **kwargs: Any) -> FitResult:
    return trainer.fit(
        model,
        lambda epoch: shuffled_batches(N_TRAIN, BATCH, trainer.rng),
        mse,
        val_mse,
        monitor="val_mse",
        **kwargs,
    )


def test_loss_decreases_on_a_learnable_regression() -> None:
    trainer = Trainer(seed=1, epochs=15, lr=1e-2, progress=False)
    model = mlp()
    untrained = val_mse(model)["val_mse"]
    result = fit(trainer, model)
    assert [h["epoch"] for h in result.history] == list(range(1, 16)) and result.stop == "epochs"
    assert result.steps == 15 * (N_TRAIN // BATCH) == result.history[-1]["steps"]
    assert result.history[-1]["train_loss"] < 0.1 * result.history[0]["train_loss"]
    assert result.best_metrics["val_mse"] < 0.05 * untrained
    assert result.best_metrics["val_mse"] == min(h["val_mse"] for h in result.history)
    assert val_mse(model)["val_mse"] == pytest.approx(result.best_metrics["val_mse"], rel=1e-6)  # best restored
    lrs = [h["lr"] for h in result.history]
    assert max(lrs) <= 1e-2 and lrs[-1] < 1e-4  # one cycle, annealed at the end


@pytest.mark.parametrize("mode", ["min", "max"])
def test_the_best_epoch_is_kept_and_restored(mode: Literal["min", "max"]) -> None:
    """A validation score that is best at epoch 3 of 5 (lowest, or highest): its weights come back."""
    scores = iter([5.0, 4.0, 1.0, 3.0, 2.0] if mode == "min" else [1.0, 2.0, 5.0, 3.0, 4.0])
    snapshots: dict[int, dict[str, torch.Tensor]] = {}

    def remember(end: EpochEnd) -> None:
        snapshots[end.epoch] = {k: v.clone() for k, v in model.state_dict().items()}
        assert end.improved == (end.epoch <= 3)
        assert end.history[-1] is end.record

    trainer = Trainer(seed=2, epochs=5, lr=1e-2, progress=False)
    model = mlp()
    result = trainer.fit(
        model,
        lambda epoch: shuffled_batches(N_TRAIN, BATCH, trainer.rng),
        mse,
        lambda model: {"score": next(scores)},
        monitor="score",
        mode=mode,
        on_epoch=remember,
    )
    assert result.best_epoch == 3 and result.best_record["score"] == result.best_metrics["score"]
    assert all(torch.equal(v, snapshots[3][k]) for k, v in model.state_dict().items())
    assert all(torch.equal(v, snapshots[3][k]) for k, v in result.state.items())
    assert not all(torch.equal(v, snapshots[5][k]) for k, v in model.state_dict().items())


def test_time_budget_is_honoured_and_ends_annealed() -> None:
    def slow_mse(model: torch.nn.Module, events: np.ndarray) -> torch.Tensor:
        time.sleep(0.005)
        return mse(model, events)

    trainer = Trainer(seed=3, epochs=1000, lr=1e-2, max_seconds=0.5, progress=False)
    model = mlp()
    tic = time.perf_counter()
    result = trainer.fit(
        model, lambda epoch: shuffled_batches(N_TRAIN, BATCH, trainer.rng), slow_mse, val_mse, monitor="val_mse"
    )
    assert result.stop == "time" and time.perf_counter() - tic < 1.5
    assert 1 <= len(result.history) < 1000 and result.steps >= 10
    assert result.history[-1]["lr"] < 0.05 * 1e-2  # the schedule followed the clock to its end


def test_same_seed_same_weights() -> None:
    def weights(seed: int) -> dict[str, torch.Tensor]:
        trainer = Trainer(seed=seed, epochs=2, lr=1e-2, progress=False)
        model = mlp()  # after the trainer: the initial weights follow the seed
        fit(trainer, model)
        return model.state_dict()

    first, again, other = weights(7), weights(7), weights(8)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_patience_stops_and_epoch_zero_validates_the_start(capsys: pytest.CaptureFixture[str]) -> None:
    """Epoch 0 (``validate_first``) is the best when nothing improves; ``patience`` 2 stops at epoch 2."""
    trainer = Trainer(seed=4, epochs=10, lr=1e-2, patience=2, name="toy")
    model = mlp()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    scores = iter(range(10))
    result = trainer.fit(
        model,
        lambda epoch: shuffled_batches(N_TRAIN, BATCH, trainer.rng),
        mse,
        lambda model: {"score": float(next(scores))},
        monitor="score",
        validate_first=True,
    )
    assert [h["epoch"] for h in result.history] == [0, 1, 2] and result.stop == "patience"
    assert result.best_epoch == 0 and "train_loss" not in result.history[0]
    assert all(torch.equal(v, start[k]) for k, v in model.state_dict().items())
    out = capsys.readouterr().out
    assert "toy epoch 2/10: train loss" in out and "(best 0 @ epoch 0)" in out


def test_one_cycle_lr_shape() -> None:
    assert one_cycle_lr(0.0, 1.0) == pytest.approx(1 / 25)
    assert one_cycle_lr(0.3, 1.0) == pytest.approx(1.0)
    assert one_cycle_lr(1.0, 1.0) == pytest.approx(1 / 25 / 1e4)
    assert one_cycle_lr(0.05, 1.0, warmup=0.1) == pytest.approx((1 / 25 + 1) / 2)
    rise, fall = np.linspace(0, 0.3, 10), np.linspace(0.3, 1, 10)
    assert np.all(np.diff([one_cycle_lr(p, 1.0) for p in rise]) > 0)
    assert np.all(np.diff([one_cycle_lr(p, 1.0) for p in fall]) < 0)


def test_shuffled_batches_cover_every_event_once() -> None:
    rng = np.random.default_rng(0)
    batches = shuffled_batches(10, 4, rng)
    assert [len(b) for b in batches] == [4, 4, 2] and sorted(np.concatenate(batches)) == list(range(10))
    chosen = shuffled_batches(np.array([3, 5, 9]), 2, rng)
    assert sorted(np.concatenate(chosen)) == [3, 5, 9]
