"""The φ-rotation augmentation shared by the trainers: every event turned by its own random azimuthal angle.

The physics of a collision does not depend on the detector's φ origin, so a trainer rotates each training event
by a random angle — all of its φ-dependent inputs and targets by the same angle. Two representations of the same
rotation:

- :func:`rotate_phi` for angles φ (rad), wrapped back into [−π, π);
- :func:`rotate_xy` for transverse vectors (x, y) (any unit: GeV for momenta).

``angle`` holds one angle per event [B] and applies to everything of that event: to a tensor whose leading axis
is the event axis (``[B]``, ``[B, N]``, ``[B, N, ...]``; for :func:`rotate_xy` the last axis is (x, y)).
"""

from __future__ import annotations

import math

import torch

__all__ = ["random_angles", "rotate_phi", "rotate_xy"]


def random_angles(n_events: int, device: torch.device | str | None = None) -> torch.Tensor:
    """One angle per event, uniform in [0, 2π) rad, from torch's (seeded) default generator of ``device``."""
    return torch.rand(n_events, device=device) * (2 * math.pi)


def _per_event(angle: torch.Tensor, dims: int) -> torch.Tensor:
    """``angle`` [B] with trailing unit axes, to broadcast over a tensor with ``dims`` axes led by the event axis."""
    return angle.reshape(angle.shape + (1,) * (dims - angle.dim()))


def rotate_phi(phi: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """φ + angle, wrapped into [−π, π) rad; ``phi`` [B, ...], ``angle`` [B] (module docstring)."""
    return torch.remainder(phi + _per_event(angle, phi.dim()) + math.pi, 2 * math.pi) - math.pi


def rotate_xy(xy: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Transverse vectors ``xy`` [B, ..., 2] turned by ``angle`` [B] rad (counter-clockwise: φ → φ + angle)."""
    c, s = (_per_event(f(angle), xy.dim() - 1) for f in (torch.cos, torch.sin))
    x, y = xy[..., 0], xy[..., 1]
    return torch.stack([c * x - s * y, s * x + c * y], dim=-1)
