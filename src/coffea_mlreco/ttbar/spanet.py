"""SPANet-style symmetry-preserving attention network for jet-parton assignment.

After Shmakov, Fenton et al., SciPost Phys. 12 (2022) 178 and Fenton et al., arXiv:2309.01886 (Spa-Net with
leptons, MET, detection and regression outputs). The event topology (:mod:`coffea_mlreco.ttbar.topology`)
decides the heads, so the same class serves any topology of that form:

1. embeddings: jets (pT, η, φ, m, b-tag), the lepton (pT, η, φ, m, is-muon) and MET (pT, φ), each type
   through its own MLP into ``dim`` (angles enter as sin φ, cos φ; momenta as log pT and as the Cartesian
   four-momentum in units of 100 GeV, in which invariant masses are bilinear);
2. a transformer encoder over all tokens [jets…, lepton, MET] (padding masked);
3. per resonance, a branch encoder block and a **symmetric tensor attention** head: for a resonance with k
   jet daughters the assignment logits are T[i₁…i_k] = Σ_r Π_m (x_{i_m} · U^{g(m)}_r), where daughters in the
   same symmetry group g share one projection U^g — so T is exactly invariant under swapping them (q ↔ q′
   for the hadronic top); entries with a padded or repeated jet are masked; a softmax over all k-tuples gives
   the assignment distribution;
4. per resonance a detection head (is it reconstructable in this event?), and a regression head for the
   neutrino η.

``forward`` returns, per particle ``p``: ``{p}_logp`` [B, J^k] (log-probabilities over the k-tuples of the
first ``max_jets`` jet slots, flattened in row-major order, impossible entries exactly ``MASKED_LOGIT``) and
``{p}_detection`` [B] (probability); and ``nu_eta`` [B]. Assignment extraction (distinct jets across
particles) is :func:`coffea_mlreco.ttbar.assignment.extract_assignments`.
"""

from __future__ import annotations

import math
from typing import cast

import torch
from torch import nn

from coffea_mlreco.nn.attention import attend
from coffea_mlreco.ttbar.topology import load_topology

__all__ = ["MASKED_LOGIT", "SPANet", "jet_token_features", "lepton_token_features", "met_token_features"]

MASKED_LOGIT = -1.0e4
"""Logit of an impossible assignment (finite, so an event with too few jets stays NaN-free)."""


_MOMENTUM_SCALE_GEV = 100.0


def _four_momentum(pt: torch.Tensor, eta: torch.Tensor, phi: torch.Tensor, mass: torch.Tensor) -> list[torch.Tensor]:
    """(px, py, pz, E) in units of 100 GeV: invariant masses are bilinear in these, which attention can use."""
    px, py = pt * torch.cos(phi), pt * torch.sin(phi)
    pz = 0.5 * pt * (torch.exp(eta) - torch.exp(-eta))  # pT sinh η (ONNX has no sinh)
    energy = torch.sqrt(px * px + py * py + pz * pz + mass * mass)
    return [c / _MOMENTUM_SCALE_GEV for c in (px, py, pz, energy)]


def jet_token_features(jets: torch.Tensor) -> torch.Tensor:
    """[.., 5] raw (pT GeV, η, φ, m GeV, b-tag) → [.., 10]
    (log pT, η, sin φ, cos φ, log(1 + m), b-tag, px, py, pz, E / 100 GeV)."""
    pt, eta, phi, mass, btag = jets.unbind(-1)
    mass = mass.clamp(min=0.0)
    return torch.stack(
        [
            torch.log(pt.clamp(min=1.0)),
            eta,
            torch.sin(phi),
            torch.cos(phi),
            torch.log1p(mass),
            btag,
            *_four_momentum(pt, eta, phi, mass),
        ],
        dim=-1,
    )


def lepton_token_features(lepton: torch.Tensor) -> torch.Tensor:
    """[B, 5] raw (pT, η, φ, m, is-muon) → [B, 9] (log pT, η, sin φ, cos φ, is-muon, px, py, pz, E / 100 GeV)."""
    pt, eta, phi, mass, is_muon = lepton.unbind(-1)
    return torch.stack(
        [
            torch.log(pt.clamp(min=1.0)),
            eta,
            torch.sin(phi),
            torch.cos(phi),
            is_muon,
            *_four_momentum(pt, eta, phi, mass.clamp(min=0.0)),
        ],
        dim=-1,
    )


def met_token_features(met: torch.Tensor) -> torch.Tensor:
    """[B, 2] raw (pT, φ) → [B, 5] (log(1 + pT), sin φ, cos φ, px, py / 100 GeV)."""
    pt, phi = met.unbind(-1)
    return torch.stack(
        [
            torch.log1p(pt.clamp(min=0.0)),
            torch.sin(phi),
            torch.cos(phi),
            pt * torch.cos(phi) / _MOMENTUM_SCALE_GEV,
            pt * torch.sin(phi) / _MOMENTUM_SCALE_GEV,
        ],
        dim=-1,
    )


def _mlp(n_in: int, dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, dim), nn.GELU(), nn.Linear(dim, dim))


class _Block(nn.Module):
    """Pre-norm transformer encoder block (self-attention with a padding mask, GELU feed-forward)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.feed_forward = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + attend(self.attention, h, h, key_padding_mask=pad)
        return x + self.feed_forward(self.norm2(x))


class _SymmetricTensorHead(nn.Module):
    """Assignment logits over k-tuples of jets, invariant under swaps within each symmetry group."""

    def __init__(self, dim: int, groups: list[int], rank: int) -> None:
        super().__init__()
        self.groups = groups  # group id of each daughter slot
        self.projections = nn.ModuleList(nn.Linear(dim, rank, bias=False) for _ in range(max(groups) + 1))
        self.rank = rank
        letters = "ijklmnopq"[: len(groups)]
        self.equation = ",".join(f"b{c}r" for c in letters) + "->b" + letters

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x [B, J, D] → [B, J, …, J]
        factors = [self.projections[g](x) for g in self.groups]
        if len(factors) == 1:
            return factors[0].sum(-1) / math.sqrt(self.rank)
        return torch.einsum(self.equation, *factors) / math.sqrt(self.rank)


def _distinct_mask(max_jets: int, k: int) -> torch.Tensor:
    """[J, …, J] bool, True where all k indices differ."""
    index = torch.arange(max_jets)
    grids = torch.meshgrid(*([index] * k), indexing="ij")
    ok = torch.ones([max_jets] * k, dtype=torch.bool)
    for a in range(k):
        for b in range(a + 1, k):
            ok &= grids[a] != grids[b]
    return ok


class SPANet(nn.Module):
    """See the module docstring. ``topology``: a shipped topology name or YAML path."""

    def __init__(
        self,
        topology: str = "semileptonic_ttbar",
        max_jets: int = 10,
        dim: int = 64,
        heads: int = 4,
        encoder_layers: int = 3,
        branch_layers: int = 1,
        rank: int | None = None,
    ) -> None:
        super().__init__()
        self.topology = load_topology(topology)
        self.max_jets = int(max_jets)
        self.embed_jet = _mlp(10, dim)
        self.embed_lepton = _mlp(9, dim)
        self.embed_met = _mlp(5, dim)
        self.type_embedding = nn.Parameter(torch.zeros(3, dim))
        self.encoder = nn.ModuleList(_Block(dim, heads) for _ in range(encoder_layers))
        self.branches = nn.ModuleDict()
        self.heads = nn.ModuleDict()
        self.detectors = nn.ModuleDict()
        for particle in self.topology.particles:
            group_of = {name: g for g, group in enumerate(particle.symmetries) for name in group}
            next_id, groups = len(particle.symmetries), []
            for name in particle.jets:
                if name in group_of:
                    groups.append(group_of[name])
                else:
                    groups.append(next_id)
                    next_id += 1
            self.branches[particle.name] = nn.ModuleList(_Block(dim, heads) for _ in range(branch_layers))
            self.heads[particle.name] = _SymmetricTensorHead(dim, groups, rank or dim)
            self.detectors[particle.name] = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, 1))
            self.register_buffer(
                f"distinct_{particle.name}", _distinct_mask(self.max_jets, particle.n_jets), persistent=False
            )
        self.nu_eta = nn.Sequential(nn.Linear(3 * dim, dim), nn.GELU(), nn.Linear(dim, 1))

    def forward(
        self, jets: torch.Tensor, jets_mask: torch.Tensor, lepton: torch.Tensor, met: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """jets [B, L, 5] (pT, η, φ, m, b-tag; L ≤ max_jets), jets_mask [B, L], lepton [B, 5], met [B, 2]."""
        n_slots = jets.shape[1]
        tokens = torch.cat(
            [
                self.embed_jet(jet_token_features(jets)) + self.type_embedding[0],
                (self.embed_lepton(lepton_token_features(lepton)) + self.type_embedding[1])[:, None],
                (self.embed_met(met_token_features(met)) + self.type_embedding[2])[:, None],
            ],
            dim=1,
        )
        real = torch.cat([jets_mask, jets_mask.new_ones((jets_mask.shape[0], 2))], dim=1)
        pad = ~real
        x = tokens
        for block in self.encoder:
            x = block(x, pad)
        weight = real.to(x.dtype)[..., None]
        pooled = (x * weight).sum(1) / weight.sum(1)

        # heads on the batch's L jet slots; log-probabilities then padded to max_jets so every batch is [B, J^k]
        out: dict[str, torch.Tensor] = {}
        for particle in self.topology.particles:
            h = x
            for block in cast("nn.ModuleList", self.branches[particle.name]):
                h = block(h, pad)
            k = particle.n_jets
            logits = self.heads[particle.name](h[:, :n_slots]).float()
            allowed = getattr(self, f"distinct_{particle.name}")[(slice(None, n_slots),) * k][None]
            for axis in range(k):
                shape = [jets_mask.shape[0]] + [1] * k
                shape[axis + 1] = n_slots
                allowed = allowed & jets_mask.reshape(shape)
            logits = torch.where(allowed, logits, torch.full_like(logits, MASKED_LOGIT))
            logp = torch.log_softmax(logits.flatten(1), dim=1).reshape(logits.shape)
            logp = torch.where(allowed, logp, torch.full_like(logp, MASKED_LOGIT))
            logp = torch.nn.functional.pad(logp, [0, self.max_jets - n_slots] * k, value=MASKED_LOGIT)
            out[f"{particle.name}_logp"] = logp.flatten(1)
            branch_pooled = (h * weight).sum(1) / weight.sum(1)
            out[f"{particle.name}_detection"] = torch.sigmoid(
                self.detectors[particle.name](branch_pooled)[:, 0].float()
            )
        event = torch.cat([pooled, x[:, n_slots], x[:, n_slots + 1]], dim=1)
        out["nu_eta"] = self.nu_eta(event)[:, 0].float()
        return out
