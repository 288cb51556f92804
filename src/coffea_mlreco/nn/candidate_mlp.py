"""A per-candidate MLP with a masked weighted-sum head: the shell of DeepMET-style models.

Each candidate's features go through the same MLP to a weight w ∈ (0, 1); the event output is the
weighted vector sum −Σ w·(x₀, x₁) over the real candidates, i.e. a missing-momentum estimate when the
first two features are (px, py) in GeV. Also the reference model of the inference benchmarks.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["CandidateMLP"]


class CandidateMLP(nn.Module):
    """Args: n_features (F), hidden width, n_layers hidden layers (ReLU)."""

    def __init__(self, n_features: int = 6, hidden: int = 64, n_layers: int = 2) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = n_features
        for _ in range(n_layers):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, cands: torch.Tensor, cands_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """cands [B, L, F], cands_mask [B, L] (True = real) → weight [B, L], met_xy [B, 2] (GeV)."""
        weight = torch.sigmoid(self.net(cands).squeeze(-1)) * cands_mask.to(cands.dtype)
        met_xy = -(weight.unsqueeze(-1) * cands[..., :2]).sum(dim=1)
        return {"weight": weight, "met_xy": met_xy}
