"""Di-tau transformer: each tau's momentum before decay from its visible decay products, the jets and the MET.

Seed: the Tau Pair Mass Transformer (AI-INFN 2024). Tokens (features from
:mod:`coffea_mlreco.ditau.transformer_inputs`, azimuths relative to leg 1):

    [leg1 summary, leg1 products …, leg2 summary, leg2 products …, jets …, MET]

in four groups (leg 1, leg 2, jets, MET); a leg's summary token is its visible four-momentum, kind and decay
mode. Multi-scale attention: each block is a self-attention layer *within* groups (a tau's products see
each other and their summary) followed by a cross-attention layer *between* groups (every token sees only
the other groups' tokens, so the legs exchange information with each other, the jets and the MET); padded
tokens are masked as keys. A head on each summary token regresses that tau's

    (log(pT_τ / pT_vis), η_τ − η_vis, φ_τ − φ_vis),

With ``fastmtt_prior`` the log-pT output is a residual on the FastMTT-style fit's log(1/x) of that leg (an input
feature of the MET token), so an untrained head starts from the likelihood's answer and learns corrections.
The tau momenta are ``pT_vis · exp(out0)``, ``η_vis + out1``, ``φ_vis + out2`` (GeV, rad) and m_ττ is the
mass of their sum with m_τ each (:func:`tau_momenta`, :func:`ditau_mass`). Those are the natural coordinates:
the visible part points along the tau and carries a fraction x of its momentum.

Calling convention (the package's ``ModelWrapper``): ``products1 [B, L1, F]``, ``products1_mask [B, L1]``,
``products2 …``, ``jets [B, Lj, Fj]``, ``jets_mask``, ``legs [B, 2·Fl]``, ``met [B, Fm]`` →
``{"tau": [B, 2, 3]}``.
"""

from __future__ import annotations

import torch
from torch import nn

from coffea_mlreco.core.constants import M_TAU
from coffea_mlreco.ditau.transformer_inputs import (
    JET_FEATURES,
    LEG_FEATURES,
    MET_FEATURES,
    N_MET_BASE,
    PRODUCT_FEATURES,
)

__all__ = ["DiTauTransformer", "ditau_mass", "tau_momenta"]

_N_LEG = len(LEG_FEATURES) // 2


def _mlp(n_in: int, dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, dim), nn.GELU(), nn.Linear(dim, dim))


class _Block(nn.Module):
    """Pre-norm attention + feed-forward with residuals; ``allowed`` [B, L, L] says which keys a query sees."""

    def __init__(self, dim: int, heads: int, ff: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.ff = nn.Sequential(nn.Linear(dim, ff), nn.GELU(), nn.Dropout(dropout), nn.Linear(ff, dim))

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        blocked = (~allowed).repeat_interleave(self.heads, dim=0)
        h = self.norm1(x)
        x = x + self.attn(h, h, h, attn_mask=blocked, need_weights=False)[0]
        return x + self.ff(self.norm2(x))


class DiTauTransformer(nn.Module):
    """See the module docstring. ~1M parameters at the defaults (dim 128, 3 blocks of self + cross attention)."""

    def __init__(
        self,
        dim: int = 128,
        heads: int = 8,
        blocks: int = 3,
        ff: int = 256,
        dropout: float = 0.0,
        fastmtt_prior: bool = False,
    ) -> None:
        super().__init__()
        self.fastmtt_prior = fastmtt_prior
        self.n_met = len(MET_FEATURES) if fastmtt_prior else N_MET_BASE
        self.prior_index = [MET_FEATURES.index("fastmtt_log_inv_x1"), MET_FEATURES.index("fastmtt_log_inv_x2")]
        self.embed_product = _mlp(len(PRODUCT_FEATURES), dim)
        self.embed_leg = _mlp(_N_LEG, dim)
        self.embed_jet = _mlp(len(JET_FEATURES), dim)
        self.embed_met = _mlp(self.n_met, dim)
        self.group_embedding = nn.Embedding(4, dim)  # leg 1, leg 2, jets, MET
        self.summary_embedding = nn.Embedding(2, dim)  # product token, leg summary token
        self.intra = nn.ModuleList(_Block(dim, heads, ff, dropout) for _ in range(blocks))
        self.cross = nn.ModuleList(_Block(dim, heads, ff, dropout) for _ in range(blocks))
        self.norm = nn.LayerNorm(dim)
        hidden, output = nn.Linear(dim, dim), nn.Linear(dim, 3)
        self.head = nn.Sequential(hidden, nn.GELU(), output)
        if fastmtt_prior:  # start exactly at the FastMTT-style answer
            nn.init.zeros_(output.weight)
            nn.init.zeros_(output.bias)

    def forward(
        self,
        products1: torch.Tensor,
        products1_mask: torch.Tensor,
        products2: torch.Tensor,
        products2_mask: torch.Tensor,
        jets: torch.Tensor,
        jets_mask: torch.Tensor,
        legs: torch.Tensor,
        met: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        b = legs.shape[0]
        device = legs.device
        ones = torch.ones(b, 1, dtype=torch.bool, device=device)
        tokens = [
            self.embed_leg(legs[:, None, :_N_LEG]),
            self.embed_product(products1),
            self.embed_leg(legs[:, None, _N_LEG:]),
            self.embed_product(products2),
            self.embed_jet(jets),
            self.embed_met(met[:, None, : self.n_met]),
        ]
        valid = [ones, products1_mask, ones, products2_mask, jets_mask, ones]
        group_ids = [0, 0, 1, 1, 2, 3]
        summary = [1, 0, 1, 0, 0, 0]
        group = torch.cat(
            [
                torch.full((t.shape[1],), g, dtype=torch.long, device=device)
                for t, g in zip(tokens, group_ids, strict=True)
            ]
        )
        is_summary = torch.cat(
            [
                torch.full((t.shape[1],), s, dtype=torch.long, device=device)
                for t, s in zip(tokens, summary, strict=True)
            ]
        )
        x = torch.cat(tokens, dim=1) + self.group_embedding(group) + self.summary_embedding(is_summary)
        key_ok = torch.cat(valid, dim=1)  # [B, L]
        same = group[:, None] == group[None, :]
        diagonal = torch.eye(len(group), dtype=torch.bool, device=device)
        within = (same[None] & key_ok[:, None, :]) | diagonal
        across = (~same[None] & key_ok[:, None, :]) | diagonal
        for intra, cross in zip(self.intra, self.cross, strict=True):
            x = cross(intra(x, within), across)
        x = self.norm(x)
        summary_positions = [0, 1 + products1.shape[1]]
        out = self.head(x[:, summary_positions])
        if self.fastmtt_prior:
            prior = torch.zeros_like(out)
            prior[..., 0] = met[:, self.prior_index]
            out = out + prior
        return {"tau": out}


def tau_momenta(out: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """Tau (px, py, pz, E) [..., 2, 4] (GeV) from the head's output [..., 2, 3] and the visible legs'
    (pT, η, φ) [..., 2, 3] (GeV, rad); each tau gets the mass m_τ."""
    pt = visible[..., 0] * torch.exp(out[..., 0])
    eta = visible[..., 1] + out[..., 1]
    phi = visible[..., 2] + out[..., 2]
    px, py, pz = pt * torch.cos(phi), pt * torch.sin(phi), pt * torch.sinh(eta)
    energy = torch.sqrt(px**2 + py**2 + pz**2 + M_TAU**2)
    return torch.stack([px, py, pz, energy], dim=-1)


def ditau_mass(out: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """m_ττ (GeV) of the two regressed taus; see :func:`tau_momenta`."""
    total = tau_momenta(out, visible).sum(dim=-2)
    return torch.sqrt(torch.clamp(total[..., 3] ** 2 - (total[..., :3] ** 2).sum(-1), min=1e-6))
