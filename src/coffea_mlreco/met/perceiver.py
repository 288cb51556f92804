"""Perceiver MET regression: k learned latents cross-attend to the N PF candidates (O(kN), not O(N²)).

After the seed talk (transformer/Perceiver MET at PU 200, KSHEP 2024), Jaegle et al., ICML 2021
(Perceiver) and ICLR 2022 (Perceiver IO):

1. candidate embeddings (`CandidateEmbedding`); a learned null token keeps events without candidates finite.
   With ``neighbourhood=True`` they include what surrounds each candidate within ΔR < 0.4
   (`coffea_mlreco.met.neighbourhood`): the latents summarise the whole event, but k = 64 of them cannot resolve
   the few particles around each of ~10⁴ candidates, which is where a neutral's origin shows;
2. encoder: ``n_latents`` learned latents cross-attend to the candidates (padding masked), then
   ``n_blocks`` latent self-attention blocks — the latents summarise the event (pileup density, recoil);
3. decoder (Perceiver IO): every candidate queries the latents and gets a weight w ∈ [0, 1] from its own
   embedding plus the event context; MET = −Σ wᵢ pT,ᵢ, plus a small pooled correction (latent mean and
   PUPPI MET → (px, py)) for what no candidate carries.

Cost and memory are O((k + N)·k) per event. ``target`` selects the training target (the loss in
`coffea_mlreco.met.training`): ``"seed"`` — v* = (p_miss,GEN − p_miss,PUPPI)/max(|p_miss,PUPPI|, 10 GeV),
the seed's target; ``"direct"`` — (px, py) in units of 20 GeV. The forward pass returns ``met_xy`` in GeV
either way (and the per-candidate ``weight``).
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from coffea_mlreco.met.embedding import PT_SCALE_GEV, CandidateEmbedding
from coffea_mlreco.nn.attention import attend

__all__ = ["SEED_REFERENCE_FLOOR_GEV", "TARGET_MODES", "PerceiverMET"]

TARGET_MODES = ("seed", "direct")
SEED_REFERENCE_FLOOR_GEV = 10.0


def _latent_block(block: nn.TransformerEncoderLayer, x: torch.Tensor) -> torch.Tensor:
    """A pre-norm ``TransformerEncoderLayer`` (dropout 0) written with `attend`, for the same reason."""
    x = x + attend(block.self_attn, block.norm1(x), block.norm1(x))
    return x + block.linear2(block.activation(block.linear1(block.norm2(x))))


class PerceiverMET(nn.Module):
    """cands [B, L, 9] (16 with ``neighbourhood``), cands_mask [B, L], event [B, 2] (PUPPI MET px, py in GeV)
    → met_xy [B, 2], weight [B, L]."""

    def __init__(
        self,
        dim: int = 64,
        n_latents: int = 64,
        n_heads: int = 4,
        n_blocks: int = 2,
        target: str = "seed",
        neighbourhood: bool = False,
    ) -> None:
        super().__init__()
        if target not in TARGET_MODES:
            raise ValueError(f"target must be one of {TARGET_MODES}, not {target!r}")
        self.target = target
        self.embed = CandidateEmbedding(dim, neighbourhood)
        self.latents = nn.Parameter(torch.randn(n_latents, dim) * 0.02)
        self.null = nn.Parameter(torch.zeros(1, 1, dim))
        self.encode = nn.MultiheadAttention(dim, n_heads, batch_first=True)
        self.encode_norm = nn.LayerNorm(dim)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(dim, n_heads, 2 * dim, dropout=0.0, batch_first=True, norm_first=True)
            for _ in range(n_blocks)
        )
        self.decode = nn.MultiheadAttention(dim, n_heads, batch_first=True)
        self.decode_norm = nn.LayerNorm(dim)
        self.weight_head = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, 1))
        self.correction = nn.Sequential(nn.Linear(dim + 2, dim), nn.GELU(), nn.Linear(dim, 2))

    def forward(self, cands: torch.Tensor, cands_mask: torch.Tensor, event: torch.Tensor) -> dict[str, torch.Tensor]:
        b = cands.shape[0]
        h = self.embed(cands)
        keys = torch.cat([self.null.expand(b, 1, -1), h], dim=1)
        pad = torch.cat([torch.zeros(b, 1, dtype=torch.bool, device=cands.device), ~cands_mask.bool()], dim=1)
        latents = self.latents.unsqueeze(0).expand(b, -1, -1)
        x = self.encode_norm(latents + attend(self.encode, latents, keys, pad))
        for block in self.blocks:
            x = _latent_block(cast("nn.TransformerEncoderLayer", block), x)
        context = attend(self.decode, h, x)
        weight = torch.sigmoid(self.weight_head(self.decode_norm(h + context)).squeeze(-1))
        weight = weight * cands_mask.to(weight.dtype)
        met_xy = -(weight.unsqueeze(-1) * cands[..., :2]).sum(dim=1)
        met_xy = met_xy + PT_SCALE_GEV * self.correction(torch.cat([x.mean(dim=1), event / PT_SCALE_GEV], dim=-1))
        return {"met_xy": met_xy, "weight": weight}
