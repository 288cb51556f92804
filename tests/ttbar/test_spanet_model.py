"""The attention model's symmetries hold exactly: q ↔ q′ swap, jet reordering, padding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from coffea_mlreco.ttbar.spanet import SPANet


@pytest.fixture(scope="module")
def model() -> SPANet:
    torch.manual_seed(0)
    return SPANet(max_jets=8, dim=32, heads=4, encoder_layers=2).eval()


def _event(batch: int = 3, n: int = 6, seed: int = 1) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    jets = torch.stack(
        [
            30 + 100 * torch.rand(batch, n, generator=g),
            4 * torch.rand(batch, n, generator=g) - 2,
            6.2 * torch.rand(batch, n, generator=g) - 3.1,
            15 * torch.rand(batch, n, generator=g),
            torch.rand(batch, n, generator=g),
        ],
        dim=-1,
    )
    lepton = torch.tensor([[40.0, 0.3, 1.0, 0.1, 1.0]]).repeat(batch, 1)
    met = torch.tensor([[55.0, -2.0]]).repeat(batch, 1)
    return jets, torch.ones(batch, n, dtype=torch.bool), lepton, met


def test_hadronic_head_is_symmetric_in_the_light_quarks(model: SPANet) -> None:
    with torch.inference_mode():
        out = model(*_event())
    t = out["t_had_logp"].reshape(-1, 8, 8, 8)
    assert torch.allclose(t, t.transpose(2, 3))
    assert torch.allclose(out["t_had_logp"].exp().sum(1), torch.ones(3), atol=1e-5)
    assert torch.allclose(out["t_lep_logp"].exp().sum(1), torch.ones(3), atol=1e-5)


def test_padded_and_missing_slots_get_no_probability(model: SPANet) -> None:
    jets, mask, lepton, met = _event(n=6)
    mask[0, 4:] = False
    with torch.inference_mode():
        out = model(jets, mask, lepton, met)
    t_lep = out["t_lep_logp"][0].exp()
    assert float(t_lep[4:].sum()) < 1e-6
    t_had = out["t_had_logp"][0].exp().reshape(8, 8, 8)
    assert float(t_had[4:].sum() + t_had[:, 4:].sum() + t_had[:, :, 4:].sum()) < 1e-6
    diagonal = t_had[torch.arange(8), torch.arange(8)]
    assert float(diagonal.sum()) < 1e-6  # a jet cannot be two partons


def test_jet_order_and_padding_do_not_change_the_physics(model: SPANet) -> None:
    jets, mask, lepton, met = _event(n=6)
    order = torch.tensor([3, 0, 5, 1, 4, 2])
    padded = torch.cat([jets, torch.zeros(3, 2, 5)], dim=1)
    padded_mask = torch.cat([mask, torch.zeros(3, 2, dtype=torch.bool)], dim=1)
    with torch.inference_mode():
        ref = model(jets, mask, lepton, met)
        perm = model(jets[:, order], mask[:, order], lepton, met)
        pad = model(padded, padded_mask, lepton, met)
    t_ref = ref["t_had_logp"].reshape(-1, 8, 8, 8)[:, :6, :6, :6]
    t_perm = perm["t_had_logp"].reshape(-1, 8, 8, 8)[:, :6, :6, :6]
    assert torch.allclose(t_perm, t_ref[:, order][:, :, order][:, :, :, order], atol=1e-4)
    assert torch.allclose(pad["t_had_logp"], ref["t_had_logp"], atol=1e-4)
    assert torch.allclose(perm["nu_eta"], ref["nu_eta"], atol=1e-4)
    assert np.allclose(pad["t_lep_detection"].numpy(), ref["t_lep_detection"].numpy(), atol=1e-5)


def test_onnx_export_with_dynamic_batch_and_jet_count(model: SPANet, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    from coffea_mlreco.inference.backends import export_onnx

    names = ["t_had_logp", "t_had_detection", "t_lep_logp", "t_lep_detection", "nu_eta"]
    jets, mask, lepton, met = _event(batch=4, n=7)
    path = export_onnx(
        model, {"jets": jets, "jets_mask": mask, "lepton": lepton, "met": met}, names, tmp_path / "spanet.onnx"
    )
    jets, mask, lepton, met = _event(batch=5, n=5, seed=7)
    mask[1, 4] = False
    session = ort.InferenceSession(str(path))
    got = session.run(
        None, {"jets": jets.numpy(), "jets_mask": mask.numpy(), "lepton": lepton.numpy(), "met": met.numpy()}
    )
    with torch.inference_mode():
        ref = model(jets, mask, lepton, met)
    for name, value in zip(names, got, strict=True):
        np.testing.assert_allclose(value, ref[name].numpy(), atol=1e-4, err_msg=name)
