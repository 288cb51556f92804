"""Candidate embedding shared by the MET models: normalised continuous features + categorical embeddings.

Input ``cands [B, L, 9]`` in the order of `coffea_mlreco.met.features.CANDIDATE_FEATURES`, or ``[B, L, 16]`` with the
seven `coffea_mlreco.met.neighbourhood.NEIGHBOURHOOD_FEATURES` after them (``neighbourhood=True``).
"""

from __future__ import annotations

import torch
from torch import nn

from coffea_mlreco.met.features import CANDIDATE_FEATURES, N_CHARGE, N_PV, N_TYPE
from coffea_mlreco.met.neighbourhood import NEIGHBOURHOOD_FEATURES

__all__ = ["PT_SCALE_GEV", "CandidateEmbedding"]

PT_SCALE_GEV = 20.0
"""px, py are divided by this before entering a network."""


_N_OWN = len(CANDIDATE_FEATURES)
_LOG_NPV_SCALE = 0.25
"""log N_PV is multiplied by this (log 60 ≈ 4.1) before entering the network."""


class CandidateEmbedding(nn.Module):
    """[B, L, 9] → [B, L, dim]: (px, py)/20 GeV, η/3, log pT, PUPPI weight, dz and three embeddings.

    With ``neighbourhood``, a second branch reads the seven neighbourhood features ([B, L, 16] input) and is added
    to the first. Its last layer starts at zero, so a new neighbourhood model starts as the per-candidate one (and
    can be fine-tuned from a per-candidate model's weights, `coffea_mlreco.met.training`).
    """

    def __init__(self, dim: int, neighbourhood: bool = False) -> None:
        super().__init__()
        self.charge = nn.Embedding(N_CHARGE, 4)
        self.pf_type = nn.Embedding(N_TYPE, 8)
        self.pv = nn.Embedding(N_PV, 4)
        self.project = nn.Sequential(nn.Linear(6 + 16, dim), nn.GELU(), nn.Linear(dim, dim))
        self.neighbourhood: nn.Sequential | None = None
        if neighbourhood:
            last = nn.Linear(dim, dim)
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
            self.neighbourhood = nn.Sequential(nn.Linear(len(NEIGHBOURHOOD_FEATURES), dim), nn.GELU(), last)

    def forward(self, cands: torch.Tensor) -> torch.Tensor:
        scale = cands.new_tensor([1 / PT_SCALE_GEV, 1 / PT_SCALE_GEV, 1 / 3.0, 1.0, 1.0, 1.0])
        continuous = cands[..., :6] * scale
        categorical = cands[..., 6:_N_OWN].long().clamp(min=0)
        x = torch.cat(
            [
                continuous,
                self.charge(categorical[..., 0].clamp(max=N_CHARGE - 1)),
                self.pf_type(categorical[..., 1].clamp(max=N_TYPE - 1)),
                self.pv(categorical[..., 2].clamp(max=N_PV - 1)),
            ],
            dim=-1,
        )
        if self.neighbourhood is None:
            return self.project(x)
        around = cands[..., _N_OWN:] * cands.new_tensor([1.0] * (len(NEIGHBOURHOOD_FEATURES) - 1) + [_LOG_NPV_SCALE])
        return self.project(x) + self.neighbourhood(around)
