"""The φ-rotation augmentation: angles and (x, y) vectors turn together, per event."""

from __future__ import annotations

import math

import torch

from coffea_mlreco.training.augment import random_angles, rotate_phi, rotate_xy


def test_angles_and_vectors_turn_alike() -> None:
    torch.manual_seed(0)
    pt, phi = torch.rand(4, 7) * 50 + 1, (torch.rand(4, 7) * 2 - 1) * math.pi  # 4 events of 7 objects
    angle = random_angles(4)
    assert angle.shape == (4,) and bool(((angle >= 0) & (angle < 2 * math.pi)).all())
    turned = rotate_phi(phi, angle)
    assert bool(((turned >= -math.pi) & (turned < math.pi)).all())
    xy = torch.stack([pt * torch.cos(phi), pt * torch.sin(phi)], dim=-1)
    moved = rotate_xy(xy, angle)
    torch.testing.assert_close(torch.atan2(moved[..., 1], moved[..., 0]), turned, atol=1e-4, rtol=0)
    torch.testing.assert_close(moved.norm(dim=-1), pt)  # a rotation keeps the length
    # one angle per event, the same for all of its objects and for a per-event quantity
    torch.testing.assert_close(rotate_phi(phi[:, 0], angle), turned[:, 0])
    torch.testing.assert_close(rotate_xy(xy[:, 0], angle), moved[:, 0])


def test_rotation_by_a_full_turn_or_back_is_the_identity() -> None:
    phi = torch.tensor([[-3.0, -0.5, 0.0, 1.0, 3.1]])
    torch.testing.assert_close(rotate_phi(phi, torch.tensor([2 * math.pi])), phi, atol=1e-5, rtol=0)
    angle = torch.tensor([1.3])
    torch.testing.assert_close(rotate_phi(rotate_phi(phi, angle), -angle), phi, atol=1e-5, rtol=0)
    xy = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])
    torch.testing.assert_close(rotate_xy(xy, torch.tensor([math.pi / 2])), torch.tensor([[[0.0, 1.0], [-2.0, 0.0]]]))
