"""MLPF training losses: focal loss for the class, Huber for the momentum, binary cross-entropy for the charge.

As the MLPF seed (Pata et al., arXiv:2203.00330): the class uses the focal loss of Lin et al., ICCV 2017
(arXiv:1708.02002), FL = −α_y (1 − p_y)^γ log p_y, which down-weights the many easy "none" elements; the
momentum is a Huber loss on the residual targets of `coffea_mlreco.mlpf.model.regression_targets`, only on
elements whose true class is not "none".
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from coffea_mlreco.mlpf.model import CHARGED_CLASSES, REGRESSION_TARGETS

__all__ = ["DEFAULT_LOSS_WEIGHTS", "REGRESSION_SCALES", "charge_loss", "focal_loss", "mlpf_loss", "momentum_loss"]

REGRESSION_SCALES = (1.0, 0.1, 0.1, 0.1, 1.0)
"""Each `REGRESSION_TARGETS` component is divided by this before the Huber loss (δ = 1), so log-ratios and
angle residuals (typically ~0.01–0.1) weigh alike."""

DEFAULT_LOSS_WEIGHTS = {"classification": 1.0, "momentum": 1.0, "charge": 0.1}
"""total = classification · focal + momentum · Huber + charge · BCE."""


def _weighted_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return (values * weights).sum() / weights.sum().clamp(min=1e-12)


def focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None = None,
    gamma: float = 2.0,
    class_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean focal loss. logits [.., C], target [..] (class index), mask [..] (True = count it).

    With class weights α the mean is Σ α_y FL / Σ α_y (as ``F.cross_entropy(weight=α)``), so γ = 0 gives
    exactly the (weighted) cross-entropy.
    """
    log_p = torch.log_softmax(logits.float(), dim=-1).gather(-1, target.long()[..., None])[..., 0]
    loss = -((1.0 - log_p.exp()) ** gamma) * log_p if gamma else -log_p
    weight = torch.ones_like(loss) if class_weights is None else class_weights.to(loss)[target.long()]
    if mask is not None:
        weight = weight * mask.to(weight.dtype)
    return _weighted_mean(loss, weight)


def momentum_loss(
    momentum: torch.Tensor,
    target: torch.Tensor,
    target_class: torch.Tensor,
    mask: torch.Tensor | None = None,
    delta: float = 1.0,
) -> torch.Tensor:
    """Huber loss (δ = ``delta`` after `REGRESSION_SCALES`), summed over the 5 components and averaged over
    real elements whose true class is not "none". momentum, target [.., 5]; target_class [..]."""
    scale = momentum.new_tensor(REGRESSION_SCALES).float()
    per_element = F.huber_loss(momentum.float() / scale, target.float() / scale, delta=delta, reduction="none").sum(-1)
    weight = (target_class != 0).float() if mask is None else ((target_class != 0) & mask.bool()).float()
    return _weighted_mean(per_element, weight)


def charge_loss(
    charge_logit: torch.Tensor,
    target_charge: torch.Tensor,
    target_class: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Binary cross-entropy of the charge sign on real elements whose true class is charged."""
    charged = torch.zeros_like(target_class, dtype=torch.bool)
    for c in CHARGED_CLASSES:
        charged |= target_class == c
    if mask is not None:
        charged &= mask.bool()
    bce = F.binary_cross_entropy_with_logits(charge_logit.float(), (target_charge > 0).float(), reduction="none")
    return _weighted_mean(bce, charged.float())


def mlpf_loss(
    outputs: dict[str, torch.Tensor],
    target_class: torch.Tensor,
    target_momentum: torch.Tensor,
    target_charge: torch.Tensor,
    mask: torch.Tensor,
    gamma: float = 2.0,
    class_weights: torch.Tensor | None = None,
    weights: dict[str, float] | None = None,
) -> dict[str, torch.Tensor]:
    """Total MLPF loss and its parts, as a dict ``total``, ``classification``, ``momentum``, ``charge``.

    outputs: `MLPF` outputs; target_class [B, N] (index into `PARTICLE_CLASSES`); target_momentum [B, N, 5]
    (`regression_targets` of the true particle); target_charge [B, N] (±1, ignored for neutral classes);
    mask [B, N] (True = real element). ``weights``: keys of `DEFAULT_LOSS_WEIGHTS` (unknown keys are errors).
    """
    w = dict(DEFAULT_LOSS_WEIGHTS)
    unknown = set(weights or {}) - set(w)
    if unknown:
        raise ValueError(f"unknown loss weights {sorted(unknown)}; known: {sorted(w)}")
    w.update(weights or {})
    if target_momentum.shape[-1] != len(REGRESSION_TARGETS):
        raise ValueError(f"target_momentum must have {len(REGRESSION_TARGETS)} components {REGRESSION_TARGETS}")
    parts = {
        "classification": focal_loss(outputs["class_logits"], target_class, mask, gamma, class_weights),
        "momentum": momentum_loss(outputs["momentum"], target_momentum, target_class, mask),
        "charge": charge_loss(outputs["charge_logit"], target_charge, target_class, mask),
    }
    parts["total"] = sum((w[k] * v for k, v in parts.items()), torch.zeros((), device=target_class.device))
    return parts
