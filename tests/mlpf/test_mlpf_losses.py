"""MLPF losses: focal loss against cross-entropy and its closed form; masks of the Huber and charge terms."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from coffea_mlreco.mlpf.losses import (
    DEFAULT_LOSS_WEIGHTS,
    REGRESSION_SCALES,
    focal_loss,
    mlpf_loss,
    momentum_loss,
)


def _logits(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return 3 * torch.randn(4, 50, 6, generator=g), torch.randint(0, 6, (4, 50), generator=g)


def test_focal_loss_at_gamma_zero_is_cross_entropy() -> None:
    logits, target = _logits()
    torch.testing.assert_close(
        focal_loss(logits, target, gamma=0.0), F.cross_entropy(logits.reshape(-1, 6), target.reshape(-1))
    )
    weights = torch.tensor([0.2, 1.0, 2.0, 1.5, 3.0, 3.0])
    mask = torch.rand(4, 50, generator=torch.Generator().manual_seed(1)) < 0.7
    torch.testing.assert_close(
        focal_loss(logits, target, mask, gamma=0.0, class_weights=weights),
        F.cross_entropy(logits[mask], target[mask], weight=weights),
    )


def test_focal_loss_matches_its_closed_form_and_spares_easy_elements() -> None:
    logits = torch.tensor([[4.0, 0.0], [0.0, 0.5]])
    target = torch.tensor([0, 1])
    p = torch.softmax(logits, -1)[torch.arange(2), target]
    expected = (-((1 - p) ** 2) * torch.log(p)).mean()
    torch.testing.assert_close(focal_loss(logits, target, gamma=2.0), expected)
    easy, hard = (
        focal_loss(logits[i : i + 1], target[i : i + 1], gamma=2.0)
        / F.cross_entropy(logits[i : i + 1], target[i : i + 1])
        for i in range(2)
    )
    assert easy < 0.001  # (1 − p)² ≈ 3e-4 for the confident element
    assert hard > 0.1


def test_momentum_loss_counts_only_real_particles() -> None:
    momentum = torch.zeros(1, 3, 5)
    target = torch.zeros(1, 3, 5)
    target[0, :, 0] = torch.tensor([0.5, 100.0, 100.0])  # only the first is a real particle on a real element
    cls = torch.tensor([[1, 0, 2]])
    mask = torch.tensor([[True, True, False]])
    expected = 0.5 * (0.5 / REGRESSION_SCALES[0]) ** 2  # quadratic part of the Huber loss (δ = 1)
    assert math.isclose(float(momentum_loss(momentum, target, cls, mask)), expected, rel_tol=1e-6)


def test_total_loss_is_the_documented_weighted_sum() -> None:
    logits, target = _logits(2)
    g = torch.Generator().manual_seed(3)
    outputs = {
        "class_logits": logits,
        "momentum": torch.randn(4, 50, 5, generator=g),
        "charge_logit": torch.randn(4, 50, generator=g),
    }
    target_momentum = torch.randn(4, 50, 5, generator=g)
    charge = torch.where(torch.rand(4, 50, generator=g) < 0.5, -1.0, 1.0)
    mask = torch.ones(4, 50, dtype=torch.bool)
    parts = mlpf_loss(outputs, target, target_momentum, charge, mask, weights={"charge": 0.5})
    weights = dict(DEFAULT_LOSS_WEIGHTS, charge=0.5)
    torch.testing.assert_close(parts["total"], sum(weights[k] * parts[k] for k in weights))
    assert all(float(parts[k]) > 0 for k in weights)
    with pytest.raises(ValueError, match="unknown loss weights"):
        mlpf_loss(outputs, target, target_momentum, charge, mask, weights={"regression": 1.0})
