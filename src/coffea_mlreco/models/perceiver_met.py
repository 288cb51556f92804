"""Perceiver MET regression: k learned latents cross-attend to the N PF candidates (O(kN), not O(N²)).

After the seed talk (transformer/Perceiver MET at PU 200, KSHEP 2024) and Jaegle et al., ICML 2021:
candidate embeddings → one cross-attention from ``n_latents`` learned latents (keys/values: candidates,
padding masked; a learned null token keeps events without candidates finite) → ``n_blocks`` latent
self-attention blocks → mean over latents, concatenated with the PUPPI MET → MLP → 2 numbers.

Target modes: ``"seed"``: the output is v* = (p_miss,GEN − p_miss,PUPPI)/max(|p_miss,PUPPI|, 10 GeV), so
MET = PUPPI + |PUPPI|·v*; ``"direct"``: the output is (px, py)/50 GeV. Both return ``met_xy`` in GeV.
"""

from __future__ import annotations

import torch
from torch import nn

from .met_embedding import PT_SCALE_GEV, CandidateEmbedding

__all__ = ["PerceiverMET", "TARGET_MODES", "SEED_REFERENCE_FLOOR_GEV", "DIRECT_SCALE_GEV"]

TARGET_MODES = ("seed", "direct")
SEED_REFERENCE_FLOOR_GEV = 10.0
DIRECT_SCALE_GEV = 50.0


class PerceiverMET(nn.Module):
    """cands [B, L, 9], cands_mask [B, L], event [B, 2] (PUPPI MET px, py) → met_xy [B, 2] (GeV)."""

    def __init__(self, dim: int = 64, n_latents: int = 64, n_heads: int = 4, n_blocks: int = 2,
                 target: str = "seed") -> None:
        super().__init__()
        if target not in TARGET_MODES:
            raise ValueError(f"target must be one of {TARGET_MODES}, not {target!r}")
        self.target = target
        self.embed = CandidateEmbedding(dim)
        self.latents = nn.Parameter(torch.randn(n_latents, dim) * 0.02)
        self.null = nn.Parameter(torch.zeros(1, 1, dim))
        self.cross = nn.MultiheadAttention(dim, n_heads, batch_first=True)
        self.cross_norm = nn.LayerNorm(dim)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(dim, n_heads, 2 * dim, dropout=0.0, batch_first=True, norm_first=True)
            for _ in range(n_blocks))
        self.head = nn.Sequential(nn.Linear(dim + 2, dim), nn.GELU(), nn.Linear(dim, 2))

    def forward(self, cands: torch.Tensor, cands_mask: torch.Tensor, event: torch.Tensor) -> dict[str, torch.Tensor]:
        b = cands.shape[0]
        keys = torch.cat([self.null.expand(b, 1, -1), self.embed(cands)], dim=1)
        pad = torch.cat([torch.zeros(b, 1, dtype=torch.bool, device=cands.device), ~cands_mask.bool()], dim=1)
        latents = self.latents.unsqueeze(0).expand(b, -1, -1)
        attended, _ = self.cross(latents, keys, keys, key_padding_mask=pad, need_weights=False)
        x = self.cross_norm(latents + attended)
        for block in self.blocks:
            x = block(x)
        out = self.head(torch.cat([x.mean(dim=1), event / PT_SCALE_GEV], dim=-1))
        if self.target == "seed":
            scale = event.norm(dim=-1, keepdim=True).clamp(min=SEED_REFERENCE_FLOOR_GEV)
            met_xy = event + scale * out
        else:
            met_xy = out * DIRECT_SCALE_GEV
        return {"met_xy": met_xy}
