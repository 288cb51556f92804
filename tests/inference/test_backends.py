"""Backends: the same wrapper on ONNX Runtime and TorchScript gives the PyTorch backend's outputs."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import torch
from candidate_wrappers import CandidateWrapper

from coffea_mlreco.inference import ModelCache, OnnxModel, TorchModule, TorchScript, export_onnx

# variable-length chunks: small token budgets give many batches of different shapes (B and L)
BUDGETS = [512, 4096, None]


def assert_same_outputs(out: ak.Array, expected: ak.Array, atol: float) -> None:
    assert ak.fields(out) == ak.fields(expected) and out.type.content == expected.type.content
    assert ak.all(ak.num(out.weight) == ak.num(expected.weight))
    np.testing.assert_allclose(
        ak.to_numpy(ak.flatten(out.weight)), ak.to_numpy(ak.flatten(expected.weight)), rtol=0, atol=atol
    )
    np.testing.assert_allclose(ak.to_numpy(out.met_xy), ak.to_numpy(expected.met_xy), rtol=atol, atol=atol)


@pytest.fixture(scope="module")
def onnx_file(mlp_backend: TorchModule, tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    model = mlp_backend.load(torch.device("cpu"))
    x = torch.randn(3, 17, 6)
    mask = torch.arange(17)[None, :] < torch.tensor([[17], [9], [1]])
    return export_onnx(
        model,
        example_inputs={"cands": x, "cands_mask": mask},
        output_names=["weight", "met_xy"],
        path=tmp_path_factory.mktemp("onnx") / "candidate_mlp.onnx",
    )


def test_onnx_export_has_dynamic_batch_and_object_axes(onnx_file: Path) -> None:
    import onnx

    graph = onnx.load(str(onnx_file)).graph

    def dims(values: list) -> dict[str, list[str | int]]:
        return {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in values}

    assert dims(graph.input) == {"cands": ["batch", "cands_objects", 6], "cands_mask": ["batch", "cands_objects"]}
    # the per-object output follows the input's object axis, not the example's 17 candidates
    assert dims(graph.output) == {"weight": ["batch", "cands_objects"], "met_xy": ["batch", 2]}


@pytest.mark.parametrize("max_tokens", BUDGETS)
def test_onnx_round_trip(
    synthetic_events: ak.Array, mlp_backend: TorchModule, onnx_file: Path, max_tokens: int | None
) -> None:
    expected = CandidateWrapper(mlp_backend, device="cpu", max_tokens=max_tokens)(synthetic_events)
    out = CandidateWrapper(OnnxModel(onnx_file), device="cpu", max_tokens=max_tokens)(synthetic_events)
    assert_same_outputs(out, expected, atol=1e-4)


def test_onnx_empty_chunk(synthetic_events: ak.Array, mlp_backend: TorchModule, onnx_file: Path) -> None:
    expected = CandidateWrapper(mlp_backend, device="cpu")(synthetic_events[:0])
    out = CandidateWrapper(OnnxModel(onnx_file), device="cpu")(synthetic_events[:0])
    assert len(out) == 0 and out.type.content == expected.type.content


@pytest.fixture(scope="module", params=["script", "trace"])
def torchscript_file(
    request: pytest.FixtureRequest, mlp_backend: TorchModule, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    model = mlp_backend.load(torch.device("cpu"))
    if request.param == "script":
        compiled = torch.jit.script(model)
    else:  # traced on one shape, must still follow others (no shape-dependent control flow in the model)
        x, mask = torch.randn(2, 5, 6), torch.ones(2, 5, dtype=torch.bool)
        compiled = torch.jit.trace(model, (x, mask), strict=False)
    path = tmp_path_factory.mktemp("torchscript") / f"candidate_mlp_{request.param}.pt"
    torch.jit.save(compiled, str(path))
    return path


@pytest.mark.parametrize("max_tokens", BUDGETS)
def test_torchscript_round_trip(
    synthetic_events: ak.Array, mlp_backend: TorchModule, torchscript_file: Path, max_tokens: int | None
) -> None:
    expected = CandidateWrapper(mlp_backend, device="cpu", max_tokens=max_tokens)(synthetic_events)
    out = CandidateWrapper(TorchScript(torchscript_file), device="cpu", max_tokens=max_tokens)(synthetic_events)
    assert_same_outputs(out, expected, atol=1e-5)


def test_each_backend_is_cached_separately(
    synthetic_events: ak.Array, mlp_backend: TorchModule, onnx_file: Path
) -> None:
    cache = ModelCache()
    for backend in (mlp_backend, OnnxModel(onnx_file), mlp_backend, OnnxModel(onnx_file)):
        CandidateWrapper(backend, device="cpu", cache=cache)(synthetic_events[:5])
    assert sorted(key[0][0] for key in cache.loads) == ["onnx", "torch"]
    assert set(cache.loads.values()) == {1}
