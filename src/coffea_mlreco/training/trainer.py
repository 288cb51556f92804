"""The one training loop of every task's trainer (``coffea-mlreco train <task>``).

A task supplies what is its own — the model, its mini-batches, its loss and its validation metrics — and
:class:`Trainer` does the rest, the same way for every task:

- seeding: constructing a :class:`Trainer` seeds torch (CPU and every CUDA device) and gives a numpy generator
  (:attr:`Trainer.rng`) for the task's shuffling; construct it *before* the model, so the initial weights follow
  the seed too. The same seed, data and device give the same weights;
- the optimiser: AdamW (``weight_decay``; one fused kernel per step on a GPU), gradients clipped to a total norm of
  ``clip_grad_norm`` (None: not clipped);
- the learning rate: one cycle (:func:`one_cycle_lr`) over all steps of all epochs; with a time budget
  ``max_seconds`` its progress is the larger of the step fraction and the elapsed fraction of the budget, and the
  run stops (after validating the epoch in progress) when the time is up, so a budget still ends annealed;
- the epoch loop: ``batches(epoch)`` gives the epoch's mini-batches (any objects; the task's ``loss(model, batch)``
  turns one into a scalar loss tensor). The per-step loss stays on the device: one host synchronisation per epoch;
- validation after every epoch (``validate(model)`` → a dict of metrics, recorded in the history); the state of
  the best epoch by ``monitor`` (one of the metrics) and ``mode`` (``min``/``max``) is
  kept, restored into the model at the end and returned; ``patience``: stop after that many epochs without a
  better one; ``validate_first``: validate the starting weights as epoch 0 (fine-tuning: the result is never
  worse on the validation sample than the weights it started from);
- progress: a per-step bar (stderr) and one line per epoch (stdout), both off with ``progress=False``.

History entries: ``epoch``, ``steps`` (optimiser steps so far), ``train_loss`` (mean over the epoch's steps) and
``train_seconds`` (the training pass; both absent for epoch 0), the validation metrics, ``lr`` (the last step's),
``seconds`` (this epoch: training pass and validation), ``elapsed`` (since :meth:`Trainer.fit` started) and, on a
GPU where NVML answers, ``gpu_utilisation`` (fraction, sampled at the end of the training pass).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np
import torch
from tqdm import tqdm

__all__ = ["EpochEnd", "FitResult", "Trainer", "one_cycle_lr", "seed_everything", "shuffled_batches"]

Batch = TypeVar("Batch")
"""A task's mini-batch: whatever its ``batches`` gives and its ``loss`` takes."""
Model = TypeVar("Model", bound=torch.nn.Module)
"""The task's network (its ``loss`` and ``validate`` take it as the architecture it is)."""


def one_cycle_lr(
    progress: float, max_lr: float, warmup: float = 0.3, div: float = 25.0, final_div: float = 1e4
) -> float:
    """Learning rate at ``progress`` ∈ [0, 1] of a one-cycle schedule (torch's ``OneCycleLR`` shape: cosine
    rise from max_lr/div over the first ``warmup`` fraction, cosine fall to max_lr/(div·final_div))."""
    start = max_lr / div
    if progress < warmup:
        return start + (max_lr - start) * (1 - math.cos(math.pi * progress / warmup)) / 2
    end = start / final_div
    t = min((progress - warmup) / (1 - warmup), 1.0)
    return end + (max_lr - end) * (1 + math.cos(math.pi * t)) / 2


def seed_everything(seed: int) -> np.random.Generator:
    """Seed torch's generators (CPU and every CUDA device) with ``seed``; return a numpy generator seeded alike."""
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def shuffled_batches(events: int | np.ndarray, batch: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Event indices in a random order cut into mini-batches of ``batch`` (the last one may be smaller):
    ``events`` is their number (indices 0 … n − 1) or the indices themselves."""
    order = rng.permutation(events)
    return [order[s : s + batch] for s in range(0, len(order), batch)]


@dataclass(frozen=True)
class EpochEnd:
    """What :meth:`Trainer.fit` tells its ``on_epoch`` hook after validating an epoch."""

    epoch: int
    record: dict[str, Any]
    """The epoch's history entry (module docstring)."""
    improved: bool
    """The best epoch so far: the model holds the state that :meth:`Trainer.fit` keeps."""
    history: list[dict[str, Any]]
    """All entries so far, this one last."""


@dataclass(frozen=True)
class FitResult:
    """What :meth:`Trainer.fit` returns; the model itself holds :attr:`state` again."""

    state: dict[str, torch.Tensor]
    """The best epoch's ``state_dict`` (tensors on the model's device)."""
    history: list[dict[str, Any]]
    best_epoch: int
    best_metrics: dict[str, Any]
    """``validate`` of the best epoch."""
    steps: int
    seconds: float
    stop: Literal["epochs", "time", "patience"]
    """Why the loop ended: all epochs run, the time budget spent, or ``patience`` epochs without improvement."""

    @property
    def best_record(self) -> dict[str, Any]:
        """The best epoch's history entry."""
        return next(h for h in self.history if h["epoch"] == self.best_epoch)


def _gpu_utilisation(device: torch.device) -> float | None:
    """The GPU's utilisation (fraction, NVML); None on the CPU or when NVML does not answer."""
    if device.type != "cuda":
        return None
    try:
        return float(torch.cuda.utilization(device)) / 100.0
    except Exception:  # no NVML (pynvml missing, or a driver without it)
        return None


def _synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _is_better(value: float, best: float | None, mode: Literal["min", "max"]) -> bool:
    """Whether ``value`` improves on ``best`` (None: nothing yet); NaN never improves on a number."""
    if best is None or math.isnan(best):
        return best is None or not math.isnan(value)
    return value < best if mode == "min" else value > best


class Trainer:
    """One training run's settings and randomness; :meth:`fit` trains a model (module docstring).

    Args:
        seed: seeds torch and :attr:`rng` now, at construction.
        epochs: passes over the training data (at most: ``max_seconds`` and ``patience`` may stop earlier).
        lr: peak learning rate of the one-cycle schedule; ``warmup``: the fraction of the run it rises over.
        weight_decay: AdamW's decoupled weight decay.
        clip_grad_norm: gradients clipped to this total norm before each step (None: not clipped).
        max_seconds: time budget of :meth:`fit` (None: none).
        patience: stop after this many epochs without a better validation score (None: never).
        progress: show the per-step bar and the per-epoch lines.
        name: what the bar and the lines call the run (e.g. ``spanet``).
    """

    def __init__(
        self,
        *,
        seed: int,
        epochs: int,
        lr: float,
        weight_decay: float = 1e-4,
        warmup: float = 0.3,
        clip_grad_norm: float | None = 1.0,
        max_seconds: float | None = None,
        patience: int | None = None,
        progress: bool = True,
        name: str = "train",
    ) -> None:
        if epochs < 1 or lr < 0 or not 0 < warmup < 1 or (patience is not None and patience < 1):
            raise ValueError("epochs and patience must be positive, lr ≥ 0 and the warm-up fraction in (0, 1)")
        if max_seconds is not None and max_seconds <= 0:
            raise ValueError("max_seconds must be positive")
        self.seed, self.epochs, self.lr, self.warmup = seed, epochs, lr, warmup
        self.weight_decay, self.clip_grad_norm = weight_decay, clip_grad_norm
        self.max_seconds, self.patience, self.progress, self.name = max_seconds, patience, progress, name
        self.rng = seed_everything(seed)
        """numpy generator for the task's shuffling (seeded with ``seed``)."""

    def fit(
        self,
        model: Model,
        batches: Callable[[int], Sequence[Batch]],
        loss: Callable[[Model, Batch], torch.Tensor],
        validate: Callable[[Model], Mapping[str, Any]],
        *,
        monitor: str,
        mode: Literal["min", "max"] = "min",
        validate_first: bool = False,
        on_epoch: Callable[[EpochEnd], None] | None = None,
    ) -> FitResult:
        """Train ``model`` (already on its device) and restore its best epoch's state.

        Args:
            batches: the mini-batches of epoch ``e`` (1, 2, ...), in the order they are trained on.
            loss: the scalar loss of one mini-batch (the model is in training mode).
            validate: the validation metrics of the model (switch it to eval mode yourself; no gradients needed).
            monitor: the metric (a key of ``validate``'s dict) that chooses the best epoch.
            mode: whether the best epoch has the lowest (``min``) or the highest (``max``) ``monitor``.
            validate_first: validate the starting weights as epoch 0 (they can be the best epoch).
            on_epoch: called after every validation (e.g. to write the best epoch so far as a checkpoint).
        """
        device = next(model.parameters()).device
        optimiser = torch.optim.AdamW(
            model.parameters(), lr=self.lr, weight_decay=self.weight_decay, fused=device.type == "cuda"
        )
        start = time.perf_counter()
        history: list[dict[str, Any]] = []
        best: tuple[float, int, dict[str, Any], dict[str, torch.Tensor]] | None = None
        steps, rate = 0, self.lr
        stop: Literal["epochs", "time", "patience"] = "epochs"
        for epoch in range(0 if validate_first else 1, self.epochs + 1):
            tic = time.perf_counter()
            record: dict[str, Any] = {"epoch": epoch}
            out_of_time = False
            if epoch:
                train_loss, done, rate, out_of_time = self._train_epoch(
                    model, optimiser, batches(epoch), loss, epoch, start
                )
                steps += done
                _synchronise(device)
                record.update(train_loss=train_loss, train_seconds=round(time.perf_counter() - tic, 3))
                utilisation = _gpu_utilisation(device)
                if utilisation is not None:
                    record["gpu_utilisation"] = utilisation
            with torch.no_grad():
                metrics = dict(validate(model))
            score = float(metrics[monitor])
            _synchronise(device)
            now = time.perf_counter()
            record = {"epoch": epoch, "steps": steps} | record | metrics
            record.update(lr=rate, seconds=round(now - tic, 3), elapsed=round(now - start, 1))
            history.append(record)
            improved = _is_better(score, None if best is None else best[0], mode)
            if improved:
                best = (score, epoch, metrics, {k: v.detach().clone() for k, v in model.state_dict().items()})
            assert best is not None
            self._log(record, monitor, score, best[:2])
            if on_epoch is not None:
                on_epoch(EpochEnd(epoch, record, improved, history))
            if out_of_time or (self.max_seconds is not None and now - start >= self.max_seconds):
                stop = "time"
                if self.progress:
                    print(f"{self.name}: stopped after {now - start:.0f} s (time budget {self.max_seconds:g} s)")
                break
            if self.patience is not None and epoch - best[1] >= self.patience:
                stop = "patience"
                break
        assert best is not None
        model.load_state_dict(best[3])
        return FitResult(best[3], history, best[1], best[2], steps, time.perf_counter() - start, stop)

    def _train_epoch(
        self,
        model: Model,
        optimiser: torch.optim.Optimizer,
        batches: Sequence[Batch],
        loss: Callable[[Model, Batch], torch.Tensor],
        epoch: int,
        start: float,
    ) -> tuple[float, int, float, bool]:
        """One pass over ``batches``: (mean loss, steps taken, last learning rate, whether the time ran out)."""
        model.train()
        n = len(batches)
        running: torch.Tensor | float = 0.0
        done, rate, out_of_time, shown = 0, self.lr, False, time.perf_counter()
        bar = tqdm(total=n, desc=f"{self.name} epoch {epoch}/{self.epochs}", disable=not self.progress, leave=False)
        with bar:  # closed (its line cleared) also when interrupted
            for i, batch in enumerate(batches):
                fraction = (epoch - 1 + i / n) / self.epochs
                if self.max_seconds is not None:
                    fraction = max(fraction, (time.perf_counter() - start) / self.max_seconds)
                if fraction >= 1.0:
                    out_of_time = True
                    break
                rate = one_cycle_lr(fraction, self.lr, self.warmup)
                for group in optimiser.param_groups:
                    group["lr"] = rate
                value = loss(model, batch)
                optimiser.zero_grad(set_to_none=True)
                value.backward()
                if self.clip_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), self.clip_grad_norm)
                optimiser.step()
                running = running + value.detach()
                done += 1
                bar.update(1)
                if self.progress and time.perf_counter() - shown > 1.0:  # a host synchronisation at most once a second
                    bar.set_postfix(loss=f"{value.item():.4g}")
                    shown = time.perf_counter()
        return (float(running) / done if done else math.nan), done, rate, out_of_time

    def _log(self, record: Mapping[str, Any], monitor: str, score: float, best: tuple[float, int]) -> None:
        """The epoch's line: its loss, the monitored score (and the best so far), the other scalar metrics."""
        if not self.progress:
            return
        skip = {"epoch", "steps", "lr", "seconds", "train_seconds", "elapsed", "train_loss", monitor}
        others = ", ".join(f"{k} {v:.4g}" for k, v in record.items() if k not in skip and isinstance(v, float | int))
        loss = f"train loss {record['train_loss']:.4g}, " if "train_loss" in record else ""
        print(
            f"{self.name} epoch {record['epoch']}/{self.epochs}: {loss}{monitor} {score:.5g} "
            f"(best {best[0]:.5g} @ epoch {best[1]}){', ' + others if others else ''}, {record['seconds']:.1f} s",
            flush=True,
        )
