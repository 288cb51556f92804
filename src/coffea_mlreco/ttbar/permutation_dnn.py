"""Permutation DNN: an MLP that scores each jet permutation of a tt̄ event (after Erdmann et al., JINST 14
(2019) P11015).

Input: the per-permutation features of :mod:`coffea_mlreco.ttbar.permutation_features`, standardised with the
training-set mean and standard deviation (stored as buffers, so they ship with the weights). Output: a logit
per permutation; the event's assignment is the permutation with the highest logit (trained with a softmax
over each event's permutations).
"""

from __future__ import annotations

import torch
from torch import nn

from coffea_mlreco.ttbar.permutation_features import FEATURE_NAMES

__all__ = ["PermutationDNN"]


class PermutationDNN(nn.Module):
    """MLP ``n_features → hidden × layers → 1`` with standardised inputs."""

    mean: torch.Tensor  # buffers [F]: the training features' mean and standard deviation
    std: torch.Tensor

    def __init__(
        self, hidden: int = 128, layers: int = 3, n_features: int = len(FEATURE_NAMES), max_jets: int = 6
    ) -> None:
        super().__init__()
        self.max_jets = int(max_jets)
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))
        blocks: list[nn.Module] = []
        width = n_features
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.GELU()]
            width = hidden
        blocks.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*blocks)

    def set_standardisation(self, features: torch.Tensor) -> None:
        """Store the mean and standard deviation of the training features [P, F]."""
        self.mean.copy_(features.mean(0))
        self.std.copy_(features.std(0).clamp(min=1e-3))

    def forward(self, perms: torch.Tensor, perms_mask: torch.Tensor | None = None) -> torch.Tensor:
        """perms [..., F] → logits [...]. (``perms_mask`` is accepted for the wrapper's calling convention.)"""
        return self.mlp((perms - self.mean) / self.std)[..., 0]
