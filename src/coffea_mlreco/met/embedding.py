"""Candidate embedding shared by the MET models: normalised continuous features + categorical embeddings.

Input ``cands [B, L, 9]`` in the order of `coffea_mlreco.met.features.CANDIDATE_FEATURES`.
"""

from __future__ import annotations

import torch
from torch import nn

from coffea_mlreco.met.features import N_CHARGE, N_PV, N_TYPE

__all__ = ["PT_SCALE_GEV", "CandidateEmbedding"]

PT_SCALE_GEV = 20.0
"""px, py are divided by this before entering a network."""


class CandidateEmbedding(nn.Module):
    """[B, L, 9] → [B, L, dim]: (px, py)/20 GeV, η/3, log pT, PUPPI weight, dz and three embeddings."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.charge = nn.Embedding(N_CHARGE, 4)
        self.pf_type = nn.Embedding(N_TYPE, 8)
        self.pv = nn.Embedding(N_PV, 4)
        self.project = nn.Sequential(nn.Linear(6 + 16, dim), nn.GELU(), nn.Linear(dim, dim))

    def forward(self, cands: torch.Tensor) -> torch.Tensor:
        scale = cands.new_tensor([1 / PT_SCALE_GEV, 1 / PT_SCALE_GEV, 1 / 3.0, 1.0, 1.0, 1.0])
        continuous = cands[..., :6] * scale
        categorical = cands[..., 6:].long().clamp(min=0)
        x = torch.cat(
            [
                continuous,
                self.charge(categorical[..., 0].clamp(max=N_CHARGE - 1)),
                self.pf_type(categorical[..., 1].clamp(max=N_TYPE - 1)),
                self.pv(categorical[..., 2].clamp(max=N_PV - 1)),
            ],
            dim=-1,
        )
        return self.project(x)
