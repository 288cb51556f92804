"""The DeepMEM network: input construction, φ-rotation invariance, input checks, reloading through the inference
backend and ONNX export."""

from __future__ import annotations

import math
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from coffea_mlreco.inference import TorchModule
from coffea_mlreco.mem.deepmem import INPUT_NAMES, DeepMEM, DeepMEMConfig, deepmem_features, output_name

_PHI = [INPUT_NAMES.index(n) for n in INPUT_NAMES if n.endswith("_phi")]


def _features(n: int = 64, seed: int = 3, jets: int = 2) -> np.ndarray:
    """Realistic raw inputs [n, 14] (GeV, rad); events beyond ``jets`` have absent jets (all zero)."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 14), np.float32)
    for k in range(4):  # lep1, lep2, jet1, jet2
        x[:, 3 * k] = 25 + rng.exponential(25, n)
        x[:, 3 * k + 1] = rng.uniform(-2.4, 2.4, n)
        x[:, 3 * k + 2] = rng.uniform(-math.pi, math.pi, n)
    x[:, 12], x[:, 13] = rng.exponential(30, n), rng.uniform(-math.pi, math.pi, n)
    x[n // 3 :, 9:12] = 0.0  # a third with two jets, a third with one, a third with none
    x[2 * n // 3 :, 6:9] = 0.0
    return x


def _trained_like(seed: int = 0, **config: object) -> DeepMEM:
    """A model with non-trivial weights and standardisation (the residual branches start at zero)."""
    torch.manual_seed(seed)
    model = DeepMEM(hypotheses=("dy", "zprime"), hidden=32, blocks=2, **config)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    x = torch.from_numpy(_features(500, seed=11))
    model.set_standardisation(x, torch.randn(500, 2) * 2 + 10)
    return model.eval()


def _rotate(x: np.ndarray, angle: float) -> np.ndarray:
    """Rotate every present object (leptons, MET, jets with pT > 0) by ``angle`` about the beam axis."""
    out = x.astype(np.float64).copy()
    for c in _PHI:
        present = out[:, c - 2] > 0 if c in (8, 11) else np.ones(len(x), bool)
        out[:, c] = np.where(present, np.remainder(out[:, c] + angle + math.pi, 2 * math.pi) - math.pi, out[:, c])
    return out.astype(np.float32)


@pytest.mark.parametrize("angle", [0.7, -2.9, math.pi])
def test_output_is_invariant_under_a_global_phi_rotation(angle: float) -> None:
    x = _features()
    model = _trained_like()
    with torch.inference_mode():
        ref = model.neg_log10_weight(torch.from_numpy(x)).numpy()
        got = model.neg_log10_weight(torch.from_numpy(_rotate(x, angle))).numpy()
    np.testing.assert_allclose(got, ref, rtol=0, atol=2e-5)  # float32 rounding of the angles only
    # without the relative-φ transform the same weights do see the rotation (the check above has teeth)
    raw = _trained_like(phi_relative=False)
    with torch.inference_mode():
        moved = raw.neg_log10_weight(torch.from_numpy(_rotate(x, angle))) - raw.neg_log10_weight(torch.from_numpy(x))
    assert moved.abs().max() > 1e-2


def test_relative_phi_transform() -> None:
    x = np.array([[40, 0.1, 3.0, 30, -0.5, -3.0, 50, 1.0, 0.5, 0, 0, 0, 20, -2.0]], np.float32)
    model = DeepMEM(dilepton_features=False, log_pt=False)
    z = model.transform(torch.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(
        z[[2, 5, 8, 11, 13]], [0.0, -6.0 + 2 * math.pi, 0.5 - 3.0, 0.0, -5.0 + 2 * math.pi], atol=1e-5
    )  # the absent jet 2 keeps φ = 0
    np.testing.assert_allclose(z[[0, 3, 6, 12]], x[0, [0, 3, 6, 12]])


def test_dilepton_features_are_the_pair_mass_rapidity_and_pt() -> None:
    x = _features(8)
    z = DeepMEM().transform(torch.from_numpy(x)).double().numpy()
    pt, eta, phi = x[:, [0, 3]].astype(float), x[:, [1, 4]].astype(float), x[:, [2, 5]].astype(float)
    px, py, pz = (pt * np.cos(phi)).sum(1), (pt * np.sin(phi)).sum(1), (pt * np.sinh(eta)).sum(1)
    e = (pt * np.cosh(eta)).sum(1)
    np.testing.assert_allclose(np.exp(z[:, 14]), np.sqrt(e**2 - px**2 - py**2 - pz**2), rtol=2e-4)
    np.testing.assert_allclose(z[:, 15], 0.5 * np.log((e + pz) / (e - pz)), atol=2e-4)
    np.testing.assert_allclose(np.exp(z[:, 16]), np.hypot(px, py), rtol=2e-4)
    np.testing.assert_allclose(z[:, [0, 3]], np.log(pt), rtol=1e-5)


def test_features_take_the_two_leading_jets_and_zero_absent_ones() -> None:
    lep1 = {"pt": [40.0, 35.0], "eta": [0.1, -1.0], "phi": [1.0, 2.0]}
    lep2 = {"pt": [30.0, 25.0], "eta": [0.3, 0.2], "phi": [-1.0, -2.0]}
    jets = {
        "pt": [[20.0, 60.0, 40.0], [35.0, np.nan, np.nan]],
        "eta": [[1, 2, 3], [4, np.nan, np.nan]],
        "phi": [[0.1, 0.2, 0.3], [0.4, np.nan, np.nan]],
    }
    met = {"pt": [10.0, 0.0], "phi": [0.5, 0.0]}
    x = deepmem_features(lep1, lep2, jets, met)
    assert x.shape == (2, 14) and x.dtype == np.float32
    np.testing.assert_allclose(x[0], [40, 0.1, 1, 30, 0.3, -1, 60, 2, 0.2, 40, 3, 0.3, 10, 0.5], rtol=1e-6)
    np.testing.assert_allclose(x[1, 6:12], [35, 4, 0.4, 0, 0, 0])
    # awkward jagged jets and records give the same
    ajets = ak.zip({"pt": [[20.0, 60.0, 40.0], [35.0]], "eta": [[1.0, 2, 3], [4.0]], "phi": [[0.1, 0.2, 0.3], [0.4]]})
    np.testing.assert_array_equal(deepmem_features(ak.zip(lep1), ak.zip(lep2), ajets, ak.zip(met)), x)


def test_feature_and_model_input_errors() -> None:
    lep = {"pt": [40.0, 30.0], "eta": [0.0, 0.0], "phi": [0.0, 0.0]}
    jets = {"pt": np.zeros((2, 0)), "eta": np.zeros((2, 0)), "phi": np.zeros((2, 0))}
    met = {"pt": [1.0, 2.0], "phi": [0.0, 0.0]}
    assert deepmem_features(lep, lep, jets, met)[:, 6:12].sum() == 0  # no jets at all is fine
    with pytest.raises(ValueError, match="lep2_eta has 1 non-finite"):
        deepmem_features(lep, {**lep, "eta": [0.0, np.nan]}, jets, met)
    with pytest.raises(ValueError, match="met_phi must be a 1-D array"):
        deepmem_features(lep, lep, jets, {"pt": [1.0, 2.0], "phi": [0.0]})
    with pytest.raises(ValueError, match="no field 'phi'"):
        deepmem_features(lep, lep, jets, {"pt": [1.0, 2.0]})
    with pytest.raises(ValueError, match=r"jets pt/eta/phi must be \[N, k\]"):
        deepmem_features(lep, lep, {"pt": np.ones((3, 1)), "eta": np.ones((3, 1)), "phi": np.ones((3, 1))}, met)
    with pytest.raises(ValueError, match="non-finite η or φ"):
        deepmem_features(lep, lep, {"pt": [[30.0], [30.0]], "eta": [[np.nan], [0.0]], "phi": [[0.0], [0.0]]}, met)
    with pytest.raises(ValueError, match="lepton pT must be positive"):
        deepmem_features({**lep, "pt": [0.0, 1.0]}, lep, jets, met)
    # the ΣE_T input (a per-event MET width): the last column, checked like the other MET inputs
    with_sum_et = deepmem_features(lep, lep, jets, {**met, "sumEt": [150.0, 2800.0]}, sum_et=True)
    assert with_sum_et.shape == (2, 15) and with_sum_et[:, -1].tolist() == [150.0, 2800.0]
    with pytest.raises(ValueError, match="no field 'sumEt'"):
        deepmem_features(lep, lep, jets, met, sum_et=True)
    with pytest.raises(ValueError, match="met_sumEt has 1 non-finite"):
        deepmem_features(lep, lep, jets, {**met, "sumEt": [150.0, np.nan]}, sum_et=True)
    with pytest.raises(ValueError, match="met_sumEt must be ≥ 0"):
        deepmem_features(lep, lep, jets, {**met, "sumEt": [150.0, -1.0]}, sum_et=True)
    with pytest.raises(ValueError, match=r"features \[B, 14\]"):
        DeepMEM()(torch.zeros(3, 13))


def test_config_is_closed_and_validated() -> None:
    with pytest.raises(TypeError):
        DeepMEM(hiden=64)  # a typo is an error, not a default
    with pytest.raises(ValueError, match="unknown activation"):
        DeepMEMConfig(activation="swish")
    with pytest.raises(ValueError, match="identifiers"):
        DeepMEMConfig(hypotheses=("dy", "z prime"))
    with pytest.raises(ValueError, match="repeat"):
        DeepMEMConfig(hypotheses=("dy", "dy"))
    assert DeepMEMConfig(**DeepMEMConfig(hypotheses=("a", "b")).to_dict()) == DeepMEMConfig(hypotheses=("a", "b"))


def test_reload_through_torch_module_gives_identical_outputs(tmp_path: Path) -> None:
    model = _trained_like(layer_norm=False, activation="gelu")
    path = tmp_path / "m.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    loaded = TorchModule("coffea_mlreco.mem.deepmem:DeepMEM", path, model.config.to_dict()).load(torch.device("cpu"))
    x = torch.from_numpy(_features())
    with torch.inference_mode():
        ref, got = model(features=x), loaded(features=x)
    assert list(got) == [output_name("dy"), output_name("zprime")]
    for k in ref:
        torch.testing.assert_close(got[k], ref[k], rtol=0, atol=0)
    assert torch.equal(loaded.in_std, model.in_std) and torch.equal(loaded.out_mean, model.out_mean)


def test_onnx_export_with_dynamic_batch(tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from coffea_mlreco.inference.backends import export_onnx

    model = _trained_like()
    names = [output_name(h) for h in model.hypotheses]
    path = export_onnx(model, {"features": torch.from_numpy(_features(4))}, names, tmp_path / "deepmem.onnx")
    x = _features(37, seed=5)
    got = ort.InferenceSession(str(path)).run(None, {"features": x})
    with torch.inference_mode():
        ref = model(torch.from_numpy(x))
    for name, value in zip(names, got, strict=True):
        assert value.shape == (37,)
        np.testing.assert_allclose(value, ref[name].numpy(), rtol=1e-5, atol=1e-4, err_msg=name)
