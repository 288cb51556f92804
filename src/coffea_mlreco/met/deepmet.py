"""DeepMET-style MET: a per-candidate weight network, MET = −Σ wᵢ pT,ᵢ.

After CMS's DeepMET (Y. Feng et al., CMS-DP-2021/033): every PF candidate gets a weight w ∈ [0, 1] from
its own features (continuous + embeddings of charge, PF type and vertex association); the MET is the
weighted vector sum. Trained with a Huber loss on (px, py) plus the response-balancing term (see
`coffea_mlreco.met.training`). ``neighbourhood=True`` adds what surrounds each candidate to its inputs
(`coffea_mlreco.met.neighbourhood`); the shipped DeepMET, like CMS's, reads each candidate alone.
"""

from __future__ import annotations

import torch
from torch import nn

from coffea_mlreco.met.embedding import CandidateEmbedding

__all__ = ["DeepMET"]


class DeepMET(nn.Module):
    """cands [B, L, 9] (16 with ``neighbourhood``), cands_mask [B, L] → weight [B, L], met_xy [B, 2] (GeV)."""

    def __init__(self, dim: int = 64, n_layers: int = 2, neighbourhood: bool = False) -> None:
        super().__init__()
        self.embed = CandidateEmbedding(dim, neighbourhood)
        layers: list[nn.Module] = []
        for _ in range(n_layers):
            layers += [nn.GELU(), nn.Linear(dim, dim)]
        self.body = nn.Sequential(*layers, nn.GELU(), nn.Linear(dim, 1))

    def forward(self, cands: torch.Tensor, cands_mask: torch.Tensor, event: torch.Tensor) -> dict[str, torch.Tensor]:
        weight = torch.sigmoid(self.body(self.embed(cands)).squeeze(-1)) * cands_mask.to(cands.dtype)
        met_xy = -(weight.unsqueeze(-1) * cands[..., :2]).sum(dim=1)
        return {"weight": weight, "met_xy": met_xy}
