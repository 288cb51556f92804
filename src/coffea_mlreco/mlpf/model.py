"""Machine-learned particle flow (MLPF): detector elements (tracks, calorimeter clusters) → particles, in O(N).

After Pata et al., "Machine learning for particle flow reconstruction at CMS", J. Phys. Conf. Ser. 2438 (2023)
012100 (arXiv:2203.00330), and Pata et al., Eur. Phys. J. C 81 (2021) 381 (arXiv:2101.08578):

1. each element (one row of `ELEMENT_FEATURES`) is turned into normalised features inside the model
   (`element_features`: log-energies, sin/cos φ, the EM fraction) plus a learned embedding of its type;
2. ``n_layers`` binned graph layers (`BinnedGraphLayer`, after MLPF's ``CombinedGraphLayer``): a learned
   projection of each element is hashed with cross-polytope LSH (a fixed random codebook, argmax over ±
   projections); elements are sorted by (hash code, projection) and cut into consecutive bins of
   ``bin_size``; multi-head attention with a learned Gaussian distance kernel and a ΔR² kernel at the
   calorimeter surface (the track–cluster link of rule-based PF, learned scale per head) runs inside each
   bin only.
   The largest tensor is [B, N/bin, heads, bin, bin], i.e. O(N · bin) — there is no N × N tensor;
3. per element heads: class logits over `PARTICLE_CLASSES`, the momentum as residuals relative to the
   element's own kinematics (`REGRESSION_TARGETS`, see `regression_targets`), and a charge logit.

Padding: ``elements_mask`` (True = real) decides everything. Padded rows are zeroed on entry, sort after
every real element, and enter attention only as keys with weight exactly 0, so they never change a real
element's outputs; the number of hash codes depends on the event's number of real elements only. Real
elements are ordered by a continuous key, so permuting them permutes the outputs (exactly, barring ties).

``forward`` returns ``class_logits`` [B, N, 6], ``momentum`` [B, N, 5] and ``charge_logit`` [B, N]
(zeros on padded rows); `decode_candidates` turns them into a PF-candidate-like collection.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from coffea_mlreco.mlpf.inputs import FEATURES

__all__ = [
    "BINNINGS",
    "CHARGED_CLASSES",
    "CLASS_MASS_GEV",
    "CLASS_PDGID",
    "CLUSTER",
    "ELEMENT_FEATURES",
    "ELEMENT_TYPES",
    "MLPF",
    "PARTICLE_CLASSES",
    "REGRESSION_TARGETS",
    "TRACK",
    "BinnedGraphLayer",
    "decode_candidates",
    "element_features",
    "element_reference",
    "expand_link_inputs",
    "link_features",
    "lsh_order",
    "regression_targets",
    "validate_elements",
]

ELEMENT_FEATURES = FEATURES
"""Columns of the ``elements`` input [B, N, 15]: `coffea_mlreco.mlpf.inputs.FEATURES` (units and meaning there)."""

ELEMENT_TYPES = ("track", "cluster")
"""Element type codes in column ``type``: 1 = track, 2 = cluster (0 only on padded rows)."""
TRACK, CLUSTER = 1, 2

PARTICLE_CLASSES = ("none", "charged_hadron", "neutral_hadron", "photon", "electron", "muon")
"""Output classes, in order of ``class_logits``; "none" = the element gives no particle of its own."""
CLASS_PDGID = (0, 211, 130, 22, -11, -13)
"""pdgId of each class for charge +1 (charged classes are multiplied by the charge: e⁻ → 11, π⁻ → −211)."""
CLASS_MASS_GEV = (0.0, 0.13957, 0.0, 0.0, 0.000511, 0.10566)
"""Candidate mass per class, as CMS PF candidates carry it (π± mass for charged hadrons, neutrals massless)."""
CHARGED_CLASSES = (1, 4, 5)

REGRESSION_TARGETS = ("log_pt_ratio", "deta", "sin_dphi", "cos_dphi_minus_1", "log_e_ratio")
"""``momentum`` components: log(pT/pT_ref), η − η_ref, sin Δφ, cos Δφ − 1, log(E/E_ref), relative to
`element_reference`. All zero ⇔ the candidate has exactly the element's kinematics."""

BINNINGS = ("learned", "position")
"""What the LSH of `BinnedGraphLayer` hashes (constructor argument ``binning``)."""

_N_CONTINUOUS = 15
_N_LINK = 4
_N_RAW = 13  # raw columns `element_features` reads; the link columns follow
_PAD_KEY = 1.0e9
_MIN_GEV = 1.0e-3


def element_reference(elements: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Kinematics (pT, η, φ, E) each element proposes for its particle, [..] each; GeV, rad.

    Track: (pT, η, φ) at the vertex, E = pT cosh η (massless). Cluster: (η, φ) of the cluster, E = e,
    pT = E / cosh η. Momenta are floored at 1 MeV so log-ratios stay finite.
    """
    kind, pt, eta, phi, energy = (elements[..., i] for i in range(5))
    is_track = kind == TRACK
    cosh = torch.cosh(eta)
    pt_ref = torch.where(is_track, pt, energy / cosh).clamp(min=_MIN_GEV)
    e_ref = torch.where(is_track, pt * cosh, energy).clamp(min=_MIN_GEV)
    return pt_ref, eta, phi, e_ref


def _asinh(x: torch.Tensor) -> torch.Tensor:
    """asinh written with log and sqrt (ONNX has no asinh in the TorchScript exporter)."""
    return torch.sign(x) * torch.log(x.abs() + torch.sqrt(x * x + 1.0))


def element_features(elements: torch.Tensor) -> torch.Tensor:
    """[.., 13] raw `ELEMENT_FEATURES` → [.., 15] normalised: log(1+pT), η/3, sin φ, cos φ, log(1+E),
    log(1+E_em), log(1+E_had), E_em/E, η_calo/3, sin φ_calo, cos φ_calo, charge, asinh(dz/0.1 cm), quality,
    width. The angles of a cluster also enter the calorimeter slots, so tracks and clusters share a position."""
    (kind, pt, eta, phi, energy, e_em, e_had, eta_calo, phi_calo, charge, dz, quality, width) = elements[
        ..., :_N_RAW
    ].unbind(-1)
    is_cluster = (kind == CLUSTER).to(elements.dtype)
    eta_calo = eta_calo + is_cluster * (eta - eta_calo)
    phi_calo = phi_calo + is_cluster * (phi - phi_calo)
    em_fraction = e_em / energy.clamp(min=_MIN_GEV)
    return torch.stack(
        [
            torch.log1p(pt.clamp(min=0.0)),
            eta / 3.0,
            torch.sin(phi),
            torch.cos(phi),
            torch.log1p(energy.clamp(min=0.0)),
            torch.log1p(e_em.clamp(min=0.0)),
            torch.log1p(e_had.clamp(min=0.0)),
            em_fraction.clamp(0.0, 1.5),
            eta_calo / 3.0,
            torch.sin(phi_calo),
            torch.cos(phi_calo),
            charge,
            _asinh(dz / 0.1),
            quality,
            width,
        ],
        dim=-1,
    )


def link_features(elements: torch.Tensor) -> torch.Tensor:
    """[.., 15] raw elements → [.., 4] features of the track–cluster links: log(1+e_linked); the energy balance —
    for a cluster (E − e_linked)/E, the share of its energy its tracks do not explain, for a track
    e_linked/(pT cosh η), its cluster's energy over its own — clipped to [−2, 2]; log(1+max(E − e_linked, 0)),
    a cluster's neutral excess (0 for tracks); n_linked/5 (at most 1)."""
    kind, pt, eta, energy = elements[..., 0], elements[..., 1], elements[..., 2], elements[..., 4]
    e_linked, n_linked = elements[..., _N_RAW], elements[..., _N_RAW + 1]
    is_cluster = kind == CLUSTER
    own = torch.where(is_cluster, energy, pt * torch.cosh(eta)).clamp(min=_MIN_GEV)
    balance = torch.where(is_cluster, (energy - e_linked) / own, e_linked / own).clamp(-2.0, 2.0)
    excess = torch.where(is_cluster, (energy - e_linked).clamp(min=0.0), torch.zeros_like(energy))
    return torch.stack(
        [torch.log1p(e_linked.clamp(min=0.0)), balance, torch.log1p(excess), n_linked.clamp(0.0, 5.0) / 5.0], dim=-1
    )


def regression_targets(
    pt: torch.Tensor, eta: torch.Tensor, phi: torch.Tensor, energy: torch.Tensor, elements: torch.Tensor
) -> torch.Tensor:
    """Training targets [.., 5] (`REGRESSION_TARGETS`) of true particles (pT, η, φ, E in GeV, rad) attached to
    ``elements`` [.., 15]; the inverse of the decoding in `decode_candidates`."""
    pt_ref, eta_ref, phi_ref, e_ref = element_reference(elements)
    dphi = phi - phi_ref
    return torch.stack(
        [
            torch.log(pt.clamp(min=_MIN_GEV) / pt_ref),
            eta - eta_ref,
            torch.sin(dphi),
            torch.cos(dphi) - 1.0,
            torch.log(energy.clamp(min=_MIN_GEV) / e_ref),
        ],
        dim=-1,
    )


def validate_elements(elements: torch.Tensor, elements_mask: torch.Tensor) -> None:
    """Raise ``ValueError`` on a shape that is not [B, N, 15] or a real element whose type is not 1 or 2."""
    if elements.dim() != 3 or elements.shape[-1] != len(ELEMENT_FEATURES):
        raise ValueError(
            f"elements must be [B, N, {len(ELEMENT_FEATURES)}] ({', '.join(ELEMENT_FEATURES)}), "
            f"not {list(elements.shape)}"
        )
    if elements_mask.shape != elements.shape[:2]:
        raise ValueError(f"elements_mask {list(elements_mask.shape)} does not match elements {list(elements.shape)}")
    kind = elements[..., 0]
    bad = elements_mask & (kind != TRACK) & (kind != CLUSTER)
    if bool(bad.any()):
        raise ValueError(
            f"element types must be {TRACK} (track) or {CLUSTER} (cluster); found {sorted(set(kind[bad].tolist()))}"
        )


def lsh_order(x: torch.Tensor, mask: torch.Tensor, codebook: torch.Tensor, bin_size: int) -> torch.Tensor:
    """Order [B, N] that groups similar rows of x [B, N, D] (cross-polytope LSH, MLPF's binning).

    codebook [D, H] (fixed, random): an event with n real elements uses 2h codes, h = ceil(n / 2 bin_size)
    clipped to [1, H] (≈ one code per bin); code = argmax over (x·c₁…x·c_h, −x·c₁…−x·c_h). Rows sort by
    code, then by the winning projection (a continuous key, so the order is permutation-equivariant);
    padded rows (mask False) sort last. Cost O(N · H).
    """
    half = codebook.shape[1]
    n_real = mask.sum(dim=1)
    used = torch.div(n_real + 2 * bin_size - 1, 2 * bin_size, rounding_mode="floor").clamp(1, half)
    projection = x @ codebook.to(x.dtype)
    unused = torch.arange(half, device=x.device)[None, None, :] >= used[:, None, None]
    low = torch.finfo(projection.dtype).min
    pos_score, pos_code = projection.masked_fill(unused, low).max(dim=-1)
    neg_score, neg_code = (-projection).masked_fill(unused, low).max(dim=-1)
    negative = neg_score > pos_score
    code = torch.where(negative, neg_code + half, pos_code)
    score = torch.where(negative, neg_score, pos_score)
    key = code.double() + 0.5 * torch.sigmoid(score.double())
    key = key.masked_fill(~mask, _PAD_KEY)
    return torch.argsort(key, dim=1)


class BinnedGraphLayer(nn.Module):
    """One O(N) message-passing step: LSH binning of a learned projection, attention inside bins.

    h [B, N, dim] (N a multiple of ``bin_size``), mask [B, N] → h [B, N, dim]. Attention logits are
    q·k/√d − w_h ‖d_i − d_j‖² with d the learned ``dist_dim`` projection that also drives the binning, so
    gradients shape the hashing space (as MLPF's kernel on its binning embedding), minus β_h ΔR² with ΔR
    the distance at the calorimeter surface (`element_position`) — the geometric link of rule-based PF — and
    β_h learned per head, initialised from 1 to 10³. The hash input is (d, position) (``binning="learned"``) or
    the position alone (``binning="position"``). With the learned input the type embedding dominates d, so in
    practice tracks and clusters hash apart and a track never shares a bin with the cluster it deposits in
    (measured on PU 60 tt̄: 0 % after training, 6 % at initialisation; 96 % with ``"position"``): the ΔR²
    kernel can only link them when the binning is geometric, as rule-based PF's block building is.
    """

    def __init__(
        self, dim: int, n_heads: int, bin_size: int, dist_dim: int, max_codes: int, seed: int, binning: str = "learned"
    ) -> None:
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"dim ({dim}) must be a multiple of n_heads ({n_heads})")
        if binning not in BINNINGS:
            raise ValueError(f"binning must be one of {BINNINGS}, not {binning!r}")
        self.n_heads, self.bin_size, self.binning = n_heads, bin_size, binning
        self.norm1 = nn.LayerNorm(dim)
        self.distance = nn.Linear(dim, dist_dim)
        generator = torch.Generator().manual_seed(seed)
        self.codebook: torch.Tensor  # [dist_dim + 3, max_codes / 2], fixed, saved with the weights
        self.register_buffer("codebook", torch.randn(dist_dim + 3, max(max_codes // 2, 1), generator=generator))
        # the learned kernel starts weak (softplus(−4) ≈ 0.02): at full strength it would make each element
        # attend mostly to itself before the distance space has learned anything, which can stall training
        self.kernel_width = nn.Parameter(torch.full((n_heads,), -4.0))
        # per-head scale of ΔR² at the calorimeter surface, initialised from 1 to 10³ (broad to sharp heads)
        self.geometry_scale = nn.Parameter(torch.linspace(0.0, 3.0 * math.log(10.0), n_heads))
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.feed_forward = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, h: torch.Tensor, mask: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        b, dim = h.shape[0], h.shape[2]
        s, heads = self.bin_size, self.n_heads
        x = self.norm1(h)
        d = self.distance(x)
        if self.binning == "position":  # the codebook's last 3 rows are those of the position
            order = lsh_order(position, mask, self.codebook[-position.shape[-1] :], s)
        else:
            order = lsh_order(torch.cat([d.detach(), position], dim=-1), mask, self.codebook, s)

        def binned(t: torch.Tensor) -> torch.Tensor:  # [B, N, C] → [B, bins, S, C] in LSH order
            return t.gather(1, order[..., None].expand(-1, -1, t.shape[-1])).reshape(b, -1, s, t.shape[-1])

        xs = binned(x)
        keep = mask.gather(1, order).reshape(b, -1, 1, 1, s)
        q, k, v = self.qkv(xs).reshape(b, -1, s, 3, heads, dim // heads).permute(3, 0, 1, 4, 2, 5)
        logits = (q @ k.transpose(-1, -2)) / math.sqrt(dim // heads)  # [B, bins, H, S, S]
        logits = logits - F.softplus(self.kernel_width)[:, None, None] * _squared_distances(binned(d))[:, :, None]
        logits = logits - self.geometry_scale.exp()[:, None, None] * _squared_distances(binned(position))[:, :, None]
        logits = logits.masked_fill(~keep, torch.finfo(logits.dtype).min)
        message = (torch.softmax(logits, dim=-1) @ v).permute(0, 1, 3, 2, 4).reshape(b, -1, dim)
        message = torch.zeros_like(message).scatter(1, order[..., None].expand(-1, -1, dim), message)
        h = h + self.out(message)
        return h + self.feed_forward(self.norm2(h))


def _squared_distances(x: torch.Tensor) -> torch.Tensor:
    """[.., S, C] → [.., S, S] squared Euclidean distances (no cdist: it exports to ONNX and runs in half)."""
    sq = (x * x).sum(-1)
    return (sq[..., :, None] + sq[..., None, :] - 2.0 * x @ x.transpose(-1, -2)).clamp(min=0.0)


def element_position(features: torch.Tensor) -> torch.Tensor:
    """[.., 15] `element_features` → [.., 3] (η, cos φ, sin φ) at the calorimeter surface, in which squared
    distances are ΔR² for nearby elements: where a track meets a cluster it belongs to."""
    return torch.stack([3.0 * features[..., 8], features[..., 10], features[..., 9]], dim=-1)


def _head(n_in: int, dim: int, n_out: int, zero: bool = False) -> nn.Sequential:
    last = nn.Linear(dim, n_out)
    if zero:  # start from the element's own kinematics / charge
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
    return nn.Sequential(nn.Linear(n_in, dim), nn.GELU(), nn.Linear(dim, dim), nn.GELU(), last)


class MLPF(nn.Module):
    """elements [B, N, 15] (`ELEMENT_FEATURES`), elements_mask [B, N] (True = real) → dict of
    ``class_logits`` [B, N, 6] (`PARTICLE_CLASSES`), ``momentum`` [B, N, 5] (`REGRESSION_TARGETS`) and
    ``charge_logit`` [B, N] (> 0 ⇒ charge +1; it includes a prior 2·q of a track element).

    Args: dim — embedding width; n_layers — binned graph layers; n_heads — attention heads; bin_size —
    elements per bin (attention cost O(N · bin_size)); dist_dim — width of the hashed projection;
    max_codes — most LSH codes (beyond ≈ max_codes · bin_size elements, bins split codes by projection);
    lsh_seed — seed of the random codebooks (stored as buffers in the weights too); binning — what the LSH
    hashes: ``"learned"`` (the learned projection and the position) or ``"position"`` (the calorimeter-surface
    position only; see `BinnedGraphLayer`); link_features — also read the track–cluster links
    (`link_features`), appended as the last inputs of the embedding and of every head (so weights of a model
    without them load with zero columns there: `expand_link_inputs`).
    """

    def __init__(
        self,
        dim: int = 128,
        n_layers: int = 3,
        n_heads: int = 4,
        bin_size: int = 64,
        dist_dim: int = 16,
        max_codes: int = 256,
        lsh_seed: int = 0,
        binning: str = "learned",
        link_features: bool = False,
    ) -> None:
        super().__init__()
        if bin_size < 1 or max_codes < 2:
            raise ValueError(f"bin_size must be ≥ 1 and max_codes ≥ 2, not {bin_size}, {max_codes}")
        self.bin_size = int(bin_size)
        self.link_features = bool(link_features)
        n_link = _N_LINK if link_features else 0
        self.type_embedding = nn.Embedding(len(ELEMENT_TYPES) + 1, 8)
        self.embed = nn.Sequential(nn.Linear(_N_CONTINUOUS + 8 + n_link, dim), nn.GELU(), nn.Linear(dim, dim))
        self.layers = nn.ModuleList(
            BinnedGraphLayer(dim, n_heads, bin_size, dist_dim, max_codes, lsh_seed + i, binning)
            for i in range(n_layers)
        )
        self.norm = nn.LayerNorm(dim)
        n_in = dim + _N_CONTINUOUS
        self.classify = _head(n_in + n_link, dim, len(PARTICLE_CLASSES))
        self.regress = _head(n_in + len(PARTICLE_CLASSES) + n_link, dim, len(REGRESSION_TARGETS), zero=True)
        self.charge = _head(n_in + n_link, dim // 2, 1, zero=True)

    def forward(self, elements: torch.Tensor, elements_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        mask = elements_mask.bool()
        if not torch.jit.is_tracing() and not torch.jit.is_scripting():
            validate_elements(elements, mask)
        n = elements.shape[1]
        extra = (self.bin_size - n % self.bin_size) % self.bin_size  # pad N to a multiple of bin_size
        elements = F.pad(elements.masked_fill(~mask[..., None], 0.0), (0, 0, 0, extra))
        mask = F.pad(mask, (0, extra), value=False)
        features = element_features(elements)
        kind = elements[..., 0].long().clamp(0, len(ELEMENT_TYPES))
        links = [link_features(elements)] if self.link_features else []
        h = self.embed(torch.cat([features, self.type_embedding(kind), *links], dim=-1))
        position = element_position(features)
        for layer in self.layers:
            h = layer(h, mask, position)
        z = torch.cat([self.norm(h), features], dim=-1)[:, :n]
        links = [t[:, :n] for t in links]
        z_links = torch.cat([z, *links], dim=-1)  # the classification and charge heads' input
        real = mask[:, :n, None]
        class_logits = self.classify(z_links)
        momentum = self.regress(torch.cat([z, torch.softmax(class_logits, dim=-1), *links], dim=-1))
        charge = self.charge(z_links) + 2.0 * features[:, :n, 11:12]
        return {
            "class_logits": class_logits.masked_fill(~real, 0.0),
            "momentum": momentum.masked_fill(~real, 0.0),
            "charge_logit": charge.masked_fill(~real, 0.0)[..., 0],
        }


def _numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def decode_candidates(
    outputs: dict[str, Any], elements: Any, elements_mask: Any | None = None, drop_none: bool = False
) -> dict[str, np.ndarray]:
    """Particle candidates from `MLPF` outputs (tensors or arrays) and the input elements [B, N, 15].

    One candidate per real element, event-major (``counts`` [B] per event, for ``ak.unflatten``), or only
    those not classed "none" with ``drop_none``. Returns flat numpy arrays: ``pt``, ``eta``, ``phi``
    (wrapped to [−π, π)), ``e``, ``mass`` (GeV, rad; mass from `CLASS_MASS_GEV`), ``cls`` (index into
    `PARTICLE_CLASSES`), ``pdgId`` (signed, CMS convention), ``charge`` (±1 for charged classes, else 0),
    ``dz`` (cm, the track's; 0 for clusters), ``element_index`` (position in the event's element list),
    ``element_type``, and ``counts``. Decoding: pT = pT_ref·exp(m₀), η = η_ref + m₁,
    φ = φ_ref + atan2(m₂, 1 + m₃), E = E_ref·exp(m₄) (log-ratios clipped to ±10).
    """
    el = torch.as_tensor(_numpy(elements), dtype=torch.float64)
    mask = np.ones(el.shape[:2], bool) if elements_mask is None else _numpy(elements_mask).astype(bool)
    pt_ref, eta_ref, phi_ref, e_ref = element_reference(el)
    m = torch.as_tensor(_numpy(outputs["momentum"]), dtype=torch.float64)
    pt = pt_ref * torch.exp(m[..., 0].clamp(-10, 10))
    eta = eta_ref + m[..., 1]
    phi = torch.remainder(phi_ref + torch.atan2(m[..., 2], 1.0 + m[..., 3]) + math.pi, 2 * math.pi) - math.pi
    energy = e_ref * torch.exp(m[..., 4].clamp(-10, 10))
    cls = _numpy(outputs["class_logits"]).argmax(-1)
    charged = np.isin(cls, CHARGED_CLASSES)
    charge = np.where(charged, np.where(_numpy(outputs["charge_logit"]) >= 0, 1, -1), 0)
    pdg = np.asarray(CLASS_PDGID)[cls] * np.where(charged, charge, 1)
    keep = mask & (cls != 0) if drop_none else mask
    element_index = np.broadcast_to(np.arange(el.shape[1]), keep.shape)
    columns = {
        "pt": pt.numpy(),
        "eta": eta.numpy(),
        "phi": phi.numpy(),
        "e": energy.numpy(),
        "mass": np.asarray(CLASS_MASS_GEV)[cls],
        "cls": cls,
        "pdgId": pdg,
        "charge": charge,
        "dz": np.where(el[..., 0].numpy() == TRACK, el[..., 10].numpy(), 0.0),
        "element_index": element_index,
        "element_type": el[..., 0].numpy(),
    }
    out = {
        k: v[keep].astype(np.int32 if k in ("cls", "pdgId", "charge", "element_index", "element_type") else np.float32)
        for k, v in columns.items()
    }
    out["counts"] = keep.sum(axis=1).astype(np.int64)
    return out


def expand_link_inputs(state: dict[str, torch.Tensor], model: MLPF) -> dict[str, torch.Tensor]:
    """Weights of an `MLPF` without link features, made loadable into ``model`` (built with
    ``link_features=True``): the first layer of the embedding and of each head gets zero columns for the link
    inputs, which come last, so the expanded model computes exactly what the old one did until it is trained."""
    target = model.state_dict()
    out = dict(state)
    for name in ("embed.0.weight", "classify.0.weight", "regress.0.weight", "charge.0.weight"):
        old, new = state[name], target[name]
        if old.shape == new.shape:
            continue
        if old.shape[0] != new.shape[0] or new.shape[1] - old.shape[1] != _N_LINK:
            raise ValueError(f"{name}: cannot expand {list(old.shape)} to {list(new.shape)}")
        out[name] = torch.cat([old, old.new_zeros(old.shape[0], _N_LINK)], dim=1)
    return out
