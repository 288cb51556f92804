"""MLPF model: exact permutation equivariance and padding invariance, O(N) memory, decoding, input checks."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from coffea_mlreco.mlpf.model import (
    CLASS_PDGID,
    CLUSTER,
    ELEMENT_FEATURES,
    MLPF,
    PARTICLE_CLASSES,
    TRACK,
    decode_candidates,
    lsh_order,
)

F = {name: i for i, name in enumerate(ELEMENT_FEATURES)}


def random_elements(batch: int, n: int, seed: int = 0) -> torch.Tensor:
    """[B, N, 15] random tracks and clusters with every feature of their type filled (GeV, rad, cm)."""
    g = torch.Generator().manual_seed(seed)
    el = torch.zeros(batch, n, len(ELEMENT_FEATURES))
    track = torch.rand(batch, n, generator=g) < 0.5
    el[..., F["type"]] = torch.where(track, TRACK, CLUSTER)
    eta = 5 * torch.rand(batch, n, generator=g) - 2.5
    phi = 2 * math.pi * torch.rand(batch, n, generator=g) - math.pi
    el[..., F["eta"]], el[..., F["phi"]] = eta, phi
    pt = 1 + 20 * torch.rand(batch, n, generator=g)
    e = 1 + 50 * torch.rand(batch, n, generator=g)
    em = torch.rand(batch, n, generator=g)
    t, c = track.float(), (~track).float()
    el[..., F["pt"]] = t * pt
    el[..., F["eta_calo"]] = t * (eta + 0.01)
    el[..., F["phi_calo"]] = t * (phi + 0.1 / pt)
    el[..., F["charge"]] = t * torch.where(torch.rand(batch, n, generator=g) < 0.5, -1.0, 1.0)
    el[..., F["dz"]] = t * 0.1 * torch.randn(batch, n, generator=g)
    el[..., F["quality"]] = t * torch.rand(batch, n, generator=g)
    el[..., F["e"]], el[..., F["e_em"]], el[..., F["e_had"]] = c * e, c * em * e, c * (1 - em) * e
    el[..., F["width"]] = c * 0.05 * torch.rand(batch, n, generator=g)
    return el


@pytest.fixture(scope="module")
def model() -> MLPF:
    torch.manual_seed(0)
    return MLPF(dim=32, n_layers=2, n_heads=2, bin_size=16, dist_dim=8, max_codes=16).eval()


def _run(model: MLPF, elements: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    with torch.inference_mode():
        return model(elements, mask)


@pytest.mark.parametrize("n", [12, 200], ids=["one_bin", "many_bins"])
def test_permuting_elements_permutes_outputs(model: MLPF, n: int) -> None:
    # float64 so that the continuous LSH sort keys of the permuted event are the same to ~1e-16
    model64 = MLPF(dim=32, n_layers=2, n_heads=2, bin_size=16, dist_dim=8, max_codes=16).double().eval()
    model64.load_state_dict(model.state_dict())
    elements = random_elements(2, n, seed=n).double()
    mask = torch.ones(2, n, dtype=torch.bool)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(1))
    out, out_perm = _run(model64, elements, mask), _run(model64, elements[:, perm], mask)
    for key, value in out.items():
        torch.testing.assert_close(out_perm[key], value[:, perm], rtol=1e-9, atol=1e-9)


def test_lsh_bins_group_nearby_elements_and_put_padding_last() -> None:
    g = torch.Generator().manual_seed(3)
    direction = torch.randn(11, generator=g)
    x = torch.cat(
        [
            direction + 0.05 * torch.randn(40, 11, generator=g),  # two tight groups, interleaved below
            -direction + 0.05 * torch.randn(40, 11, generator=g),
            torch.randn(8, 11, generator=g),
        ]
    )
    shuffle = torch.randperm(88, generator=g)
    mask = (shuffle < 80)[None]
    order = lsh_order(x[shuffle][None], mask, torch.randn(11, 4, generator=g), bin_size=40)[0]
    group = shuffle[order]
    assert set((group[:40] // 40).tolist()) in ({0}, {1}) and set((group[40:80] // 40).tolist()) in ({0}, {1})
    assert (group[80:] >= 80).all()  # padded rows sort last


@pytest.mark.parametrize("n", [10, 150], ids=["one_bin", "many_bins"])
def test_padding_never_changes_real_outputs(model: MLPF, n: int) -> None:
    elements = random_elements(3, n, seed=2)
    mask = torch.ones(3, n, dtype=torch.bool)
    mask[1, n // 2 :] = False  # a shorter event in the same batch
    reference = _run(model, elements, mask)
    extra = 57
    junk = 1e3 * random_elements(3, extra, seed=3)  # padded rows with wild (even invalid) content
    junk[..., 0] = 7.0
    padded = _run(model, torch.cat([elements, junk], 1), torch.cat([mask, torch.zeros(3, extra, dtype=torch.bool)], 1))
    for key, value in reference.items():
        torch.testing.assert_close(padded[key][:, :n][mask], value[mask], rtol=1e-5, atol=1e-5)
        assert bool((padded[key][:, n:] == 0).all()), f"{key} is not zero on padded rows"
    alone = _run(model, elements[1:2, : n // 2], mask[1:2, : n // 2])  # the short event on its own
    for key, value in alone.items():
        torch.testing.assert_close(reference[key][1:2, : n // 2], value, rtol=1e-5, atol=1e-5)


class _LargestTensor(TorchDispatchMode):
    """Records the largest tensor (numel) any aten operation returns."""

    def __init__(self) -> None:
        super().__init__()
        self.largest, self.op = 0, ""

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for leaf in tree_leaves(out):
            if isinstance(leaf, torch.Tensor) and leaf.numel() > self.largest:
                self.largest, self.op = leaf.numel(), str(func)
        return out


def test_memory_is_linear_in_the_number_of_elements() -> None:
    """Every intermediate tensor of a forward pass is O(N · bin_size); nothing is N × N (N up to 20k)."""
    torch.manual_seed(0)
    bin_size, heads = 32, 2
    model = MLPF(dim=16, n_layers=1, n_heads=heads, bin_size=bin_size, dist_dim=4, max_codes=64).eval()
    largest = {}
    for n in (5_000, 20_000):
        recorder = _LargestTensor()
        with torch.no_grad(), recorder:
            out = model(random_elements(1, n, seed=n), torch.ones(1, n, dtype=torch.bool))
        assert out["class_logits"].shape == (1, n, len(PARTICLE_CLASSES))
        largest[n] = recorder.largest
        assert recorder.largest <= 2 * heads * bin_size * (n + bin_size), (n, recorder.largest, recorder.op)
    assert largest[20_000] < 4.2 * largest[5_000]  # linear (×4), not quadratic (×16)
    assert largest[20_000] < 20_000**2 / 100


def test_zero_output_model_returns_the_elements() -> None:
    model = MLPF(dim=16, n_layers=1, n_heads=2, bin_size=16).eval()
    for head in (model.regress, model.charge):  # zero-initialised: must decode to the element itself
        assert not head[-1].weight.any() and not head[-1].bias.any()
    with torch.no_grad():  # and force every element into the charged-hadron class
        model.classify[-1].weight.zero_()
        model.classify[-1].bias.copy_(torch.tensor([0.0, 1.0, 0, 0, 0, 0]))
    elements = random_elements(2, 40, seed=5).double()
    mask = torch.ones(2, 40, dtype=torch.bool)
    mask[0, 30:] = False
    with torch.inference_mode():
        out = model(elements.float(), mask)
    cands = decode_candidates(out, elements, mask)
    assert cands["counts"].tolist() == [30, 40]
    el = elements[mask].numpy()
    track = el[:, 0] == TRACK
    cosh = np.cosh(el[:, F["eta"]])
    np.testing.assert_allclose(cands["pt"], np.where(track, el[:, F["pt"]], el[:, F["e"]] / cosh), rtol=1e-6)
    np.testing.assert_allclose(cands["e"], np.where(track, el[:, F["pt"]] * cosh, el[:, F["e"]]), rtol=1e-6)
    np.testing.assert_allclose(cands["eta"], el[:, F["eta"]], atol=1e-6)
    np.testing.assert_allclose(cands["phi"], el[:, F["phi"]], atol=1e-6)
    assert (cands["charge"][track] == el[track, F["charge"]]).all()  # the track's own charge
    assert (cands["pdgId"] == CLASS_PDGID[1] * cands["charge"]).all()
    assert (cands["element_index"] == np.concatenate([np.arange(30), np.arange(40)])).all()
    np.testing.assert_allclose(cands["mass"], 0.13957)


def test_decoding_applies_residuals_and_drops_none() -> None:
    elements = torch.zeros(1, 3, len(ELEMENT_FEATURES))
    elements[0, 0, [F["type"], F["pt"], F["eta"], F["phi"], F["charge"], F["dz"]]] = torch.tensor(
        [TRACK, 10.0, 0.5, 3.1, -1.0, 0.2]
    )
    elements[0, 1, [F["type"], F["e"], F["eta"], F["phi"]]] = torch.tensor([CLUSTER, 20.0, -1.0, -1.0])
    elements[0, 2, [F["type"], F["e"], F["eta"], F["phi"]]] = torch.tensor([CLUSTER, 5.0, 0.0, 0.0])
    momentum = torch.zeros(1, 3, 5)
    momentum[0, 0] = torch.tensor([math.log(1.1), 0.05, math.sin(0.1), math.cos(0.1) - 1, 0.0])
    momentum[0, 1, 4] = math.log(1 / 0.7)
    logits = torch.full((1, 3, 6), -5.0)
    logits[0, 0, PARTICLE_CLASSES.index("electron")] = logits[0, 1, 2] = logits[0, 2, 0] = 5.0
    out = {"class_logits": logits, "momentum": momentum, "charge_logit": torch.tensor([[-2.0, 0.0, 0.0]])}
    cands = decode_candidates(out, elements, drop_none=True)
    assert cands["counts"].tolist() == [2]
    np.testing.assert_allclose(cands["pt"], [11.0, 20 / math.cosh(1.0)], rtol=1e-5)  # pT and E are separate outputs
    np.testing.assert_allclose(cands["eta"], [0.55, -1.0], rtol=1e-6)
    np.testing.assert_allclose(cands["phi"], [3.2 - 2 * math.pi, -1.0], rtol=1e-6)  # wrapped into [−π, π)
    np.testing.assert_allclose(cands["e"], [10 * math.cosh(0.5), 20 / 0.7], rtol=1e-5)
    assert cands["pdgId"].tolist() == [11, 130] and cands["charge"].tolist() == [-1, 0]
    np.testing.assert_allclose(cands["dz"], [0.2, 0.0], atol=1e-7)


def test_inputs_are_validated_and_empty_events_work(model: MLPF) -> None:
    elements = random_elements(1, 5)
    with pytest.raises(ValueError, match="type"):
        model(elements.clone().index_fill_(1, torch.tensor([2]), 3.0), torch.ones(1, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\[B, N, 15\]"):
        model(elements[..., :12], torch.ones(1, 5, dtype=torch.bool))
    out = _run(model, torch.zeros(2, 0, len(ELEMENT_FEATURES)), torch.zeros(2, 0, dtype=torch.bool))
    assert out["momentum"].shape == (2, 0, 5)
    nothing = _run(model, elements, torch.zeros(1, 5, dtype=torch.bool))
    assert all(bool(torch.isfinite(v).all()) for v in nothing.values())
    assert decode_candidates(nothing, elements, torch.zeros(1, 5, dtype=torch.bool))["counts"].tolist() == [0]


def test_default_model_is_small() -> None:
    model = MLPF()
    n_params = sum(p.numel() for p in model.parameters())
    assert 300_000 < n_params < 1_000_000
    assert 4 * (n_params + sum(b.numel() for b in model.buffers())) < 5_000_000  # float32 weights file


def test_onnx_export_keeps_the_element_axis_dynamic(tmp_path: Any) -> None:
    pytest.importorskip("onnxruntime")
    from coffea_mlreco.inference import OnnxModel, export_onnx

    torch.manual_seed(1)
    model = MLPF(dim=16, n_layers=2, n_heads=2, bin_size=16).eval()
    with torch.no_grad():  # give the zero-initialised heads something to export
        for head in (model.regress, model.charge):
            head[-1].weight.normal_()
    names = ["class_logits", "momentum", "charge_logit"]
    axes = {"batch": 0, "elements": 1}
    dynamic = {name: {v: k for k, v in axes.items()} for name in ["elements", "elements_mask", *names]}
    path = export_onnx(
        model,
        {"elements": random_elements(2, 20), "elements_mask": torch.ones(2, 20, dtype=torch.bool)},
        names,
        tmp_path / "mlpf.onnx",
        dynamic=dynamic,
    )
    runner = OnnxModel(path).load(torch.device("cpu"))
    elements, mask = random_elements(3, 100, seed=9), torch.ones(3, 100, dtype=torch.bool)
    mask[0, 37:] = False
    reference = _run(model, elements, mask)
    out = runner(elements=elements, elements_mask=mask)
    for key in names:
        torch.testing.assert_close(out[key], reference[key], rtol=1e-4, atol=1e-4)


def test_link_inputs_start_at_zero_and_then_matter() -> None:
    """Weights of a model without link features load into one with them (zero columns) and give the same
    outputs; once those columns are non-zero the links change the outputs."""
    from coffea_mlreco.mlpf.model import expand_link_inputs

    torch.manual_seed(1)
    config = {"dim": 32, "n_layers": 1, "n_heads": 2, "bin_size": 16, "dist_dim": 8, "max_codes": 16}
    old, new = MLPF(**config).eval(), MLPF(**config, link_features=True).eval()
    for head in (old.regress, old.charge):  # zero-initialised last layers: make them active for the comparison
        torch.nn.init.normal_(head[-1].weight, std=0.1)
    new.load_state_dict(expand_link_inputs(old.state_dict(), new))
    el = random_elements(2, 40, seed=3)
    clusters = el[..., F["type"]] == CLUSTER
    el[..., F["e_linked"]] = torch.where(clusters, 0.5 * el[..., F["e"]], 0.0)
    el[..., F["n_linked"]] = clusters.float()
    mask = torch.ones(2, 40, dtype=torch.bool)
    a, b = _run(old, el, mask), _run(new, el, mask)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    with torch.no_grad():
        new.classify[0].weight[:, -4:] = 1.0
    assert not torch.allclose(_run(new, el, mask)["class_logits"], a["class_logits"])
    with pytest.raises(ValueError, match="cannot expand"):
        expand_link_inputs(old.state_dict(), MLPF(**{**config, "dim": 16}, link_features=True))
