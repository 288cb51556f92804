"""`ModelWrapper` on eager awkward chunks, against a per-event reference (one event at a time, no padding).

The chunk (``synthetic_events``) has 40 events of 100–3000 candidates, three without any and one with a
single candidate, so mini-batches are ragged, sorted and (with a small token budget) single-event.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest
import torch
from candidate_wrappers import (
    GLOBALS_CLASS,
    MLP_CLASS,
    CandidateWrapper,
    GlobalsMLP,
    GlobalsWrapper,
    ScalarGlobalWrapper,
    TruncatedWrapper,
    load_reference,
    reference_outputs,
)

from coffea_mlreco.inference import (
    MODEL_CACHE,
    Dense,
    Jagged,
    ModelCache,
    ModelWrapper,
    NonFiniteInputError,
    TorchModule,
    WeightsMismatchError,
)
from coffea_mlreco.nn.candidate_mlp import CandidateMLP

ATOL = 1e-5


def assert_matches_reference(out: ak.Array, events: ak.Array, weight: np.ndarray, met: np.ndarray) -> None:
    np.testing.assert_array_equal(ak.to_numpy(ak.num(out.weight, axis=1)), ak.to_numpy(ak.num(events.PFCands)))
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(out.weight)), weight, rtol=0, atol=ATOL)
    np.testing.assert_allclose(ak.to_numpy(out.met_xy), met, rtol=1e-5, atol=ATOL)


@pytest.mark.parametrize("max_tokens", [None, 2048, 1 << 17], ids=["default", "small", "large"])
def test_eager_outputs_equal_the_per_event_reference(
    synthetic_events: ak.Array, mlp_backend: TorchModule, mlp_reference: torch.nn.Module, max_tokens: int | None
) -> None:
    # 2048 tokens is less than the longest events (up to 3000 candidates): those run alone
    out = CandidateWrapper(mlp_backend, device="cpu", max_tokens=max_tokens)(synthetic_events)
    weight, met = reference_outputs(mlp_reference, synthetic_events.PFCands)
    assert_matches_reference(out, synthetic_events, weight, met)
    empty = ak.to_numpy(ak.num(synthetic_events.PFCands)) == 0
    assert empty.sum() == 3
    np.testing.assert_array_equal(ak.to_numpy(out.met_xy)[empty], 0.0)


def test_output_order_is_input_order(synthetic_events: ak.Array, mlp_backend: TorchModule) -> None:
    wrapper = CandidateWrapper(mlp_backend, device="cpu")
    perm = np.random.default_rng(0).permutation(len(synthetic_events))
    out = wrapper(synthetic_events)
    shuffled = wrapper(synthetic_events[perm])
    np.testing.assert_allclose(ak.to_numpy(shuffled.met_xy), ak.to_numpy(out.met_xy)[perm], rtol=1e-5, atol=ATOL)
    assert ak.all(ak.num(shuffled.weight) == ak.num(out.weight[perm]))
    np.testing.assert_allclose(
        ak.to_numpy(ak.flatten(shuffled.weight)), ak.to_numpy(ak.flatten(out.weight[perm])), rtol=0, atol=ATOL
    )


def test_truncation_keeps_the_highest_pt_candidates(
    synthetic_events: ak.Array, mlp_backend: TorchModule, mlp_reference: torch.nn.Module
) -> None:
    out = TruncatedWrapper(mlp_backend, device="cpu")(synthetic_events)
    weight, met = reference_outputs(mlp_reference, synthetic_events.PFCands, max_objects=300)
    counts = ak.to_numpy(ak.num(synthetic_events.PFCands))
    assert (counts > 300).sum() > 30 and (counts <= 300).sum() >= 4
    flat = ak.to_numpy(ak.flatten(out.weight))
    # dropped candidates (NaN in the reference) are exactly the NaN ones of the wrapper
    np.testing.assert_array_equal(np.isnan(flat), np.isnan(weight))
    assert np.isnan(flat).sum() == np.maximum(counts - 300, 0).sum()
    assert_matches_reference(out, synthetic_events, weight, met)  # NaN == NaN for assert_allclose
    kept_pt = ak.to_numpy(ak.flatten(synthetic_events.PFCands.pt))[~np.isnan(flat)]
    dropped_pt = ak.to_numpy(ak.flatten(synthetic_events.PFCands.pt))[np.isnan(flat)]
    assert kept_pt.size == np.minimum(counts, 300).sum() and dropped_pt.size > 0


@pytest.mark.parametrize(
    ("wrapper_class", "n_globals"), [(GlobalsWrapper, 2), (ScalarGlobalWrapper, 1)], ids=["record", "number"]
)
def test_dense_event_level_input(
    synthetic_events: ak.Array, weights_dir: Path, save_state: Any, wrapper_class: type[ModelWrapper], n_globals: int
) -> None:
    torch.manual_seed(1)
    path = save_state(GlobalsMLP(n_globals), weights_dir / f"globals_{n_globals}.safetensors")
    backend = TorchModule(GLOBALS_CLASS, path, config={"n_globals": n_globals})
    out = wrapper_class(backend, device="cpu")(synthetic_events)
    glob = synthetic_events.Globals
    columns = [glob.npvs, glob.rho] if n_globals == 2 else [glob.rho]
    event_vars = np.stack([ak.to_numpy(c).astype(np.float32) for c in columns], axis=1)
    weight, met = reference_outputs(
        load_reference(GlobalsMLP, path, n_globals=n_globals), synthetic_events.PFCands, event_vars=event_vars
    )
    assert_matches_reference(out, synthetic_events, weight, met)
    # the event-level input matters: the empty events' MET is the shift alone, not zero
    assert np.all(np.abs(ak.to_numpy(out.met_xy)[[3, 17, 30]]) > 0)


def test_multi_head_output_is_an_awkward_record(synthetic_events: ak.Array, mlp_backend: TorchModule) -> None:
    out = CandidateWrapper(mlp_backend, device="cpu")(synthetic_events)
    assert isinstance(out, ak.Array)
    assert ak.fields(out) == ["weight", "met_xy"]
    assert str(out.type) == "40 * {weight: var * float32, met_xy: 2 * float32}"


def test_zero_length_chunk(synthetic_events: ak.Array, mlp_backend: TorchModule) -> None:
    wrapper = CandidateWrapper(mlp_backend, device="cpu")
    full = wrapper(synthetic_events[:4])
    out = wrapper(synthetic_events[:0])
    assert len(out) == 0
    assert ak.fields(out) == ["weight", "met_xy"]
    assert out.type.content == full.type.content
    assert str(out.type) == "0 * {weight: var * float32, met_xy: 2 * float32}"


def test_chunk_of_events_without_objects(synthetic_events: ak.Array, mlp_backend: TorchModule) -> None:
    out = CandidateWrapper(mlp_backend, device="cpu")(synthetic_events[[3, 17, 30]])
    assert ak.num(out.weight).tolist() == [0, 0, 0]
    assert out.met_xy.tolist() == [[0.0, 0.0]] * 3


def _with_candidate_value(events: ak.Array, field: str, index: int, value: float) -> ak.Array:
    flat = ak.to_numpy(ak.flatten(events.PFCands[field])).copy()
    flat[index] = value
    pfcands = ak.with_field(events.PFCands, ak.unflatten(flat, ak.num(events.PFCands)), field)
    return ak.with_field(events, pfcands, "PFCands")


@pytest.mark.parametrize(("field", "value"), [("pt", np.nan), ("eta", np.inf), ("mass", -np.inf)])
def test_non_finite_candidate_input_names_the_field(
    synthetic_events: ak.Array, mlp_backend: TorchModule, field: str, value: float
) -> None:
    events = _with_candidate_value(synthetic_events, field, 12345, value)
    with pytest.raises(NonFiniteInputError, match=rf"'cands\.{field}' has 1 non-finite"):
        CandidateWrapper(mlp_backend, device="cpu")(events)


def test_non_finite_dense_input_names_the_field(synthetic_events: ak.Array, weights_dir: Path, save_state: Any) -> None:
    path = save_state(GlobalsMLP(2), weights_dir / "globals_nan.safetensors")
    rho = ak.to_numpy(synthetic_events.Globals.rho).copy()
    rho[7] = np.nan
    events = ak.with_field(synthetic_events, ak.with_field(synthetic_events.Globals, rho, "rho"), "Globals")
    with pytest.raises(NonFiniteInputError, match=r"'event_vars\.rho'"):
        GlobalsWrapper(TorchModule(GLOBALS_CLASS, path, config={"n_globals": 2}), device="cpu")(events)


def test_weights_of_another_width_raise_a_clear_error(
    synthetic_events: ak.Array, weights_dir: Path, save_state: Any
) -> None:
    path = save_state(CandidateMLP(hidden=32), weights_dir / "hidden32.safetensors")
    wrapper = CandidateWrapper(TorchModule(MLP_CLASS, path, config={"hidden": 64}), device="cpu")
    with pytest.raises(
        WeightsMismatchError,
        match=r"shape mismatch.*net\.0\.weight: file \(32, 6\) vs model "
        r"\(64, 6\)",
    ) as info:
        wrapper(synthetic_events[:2])
    assert "hidden32.safetensors" in str(info.value) and "CandidateMLP" in str(info.value)


def test_weights_with_missing_or_unexpected_keys_raise(weights_dir: Path) -> None:
    from safetensors.torch import save_file

    state = CandidateMLP().state_dict()
    missing = {k: v for k, v in state.items() if k != "net.4.bias"}
    save_file(missing, str(weights_dir / "missing.safetensors"))
    with pytest.raises(WeightsMismatchError, match=r"missing \['net\.4\.bias'\]"):
        TorchModule(MLP_CLASS, weights_dir / "missing.safetensors").load(torch.device("cpu"))
    save_file({**state, "extra.weight": torch.zeros(3)}, str(weights_dir / "extra.safetensors"))
    with pytest.raises(WeightsMismatchError, match=r"unexpected \['extra\.weight'\]"):
        TorchModule(MLP_CLASS, weights_dir / "extra.safetensors").load(torch.device("cpu"))
    # two layers saved, three asked for: missing keys of the extra layer
    save_file(CandidateMLP(n_layers=1).state_dict(), str(weights_dir / "one_layer.safetensors"))
    with pytest.raises(WeightsMismatchError, match="missing"):
        TorchModule(MLP_CLASS, weights_dir / "one_layer.safetensors").load(torch.device("cpu"))


def test_unknown_device_is_a_value_error(synthetic_events: ak.Array, mlp_backend: TorchModule) -> None:
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        CandidateWrapper(mlp_backend, device="gpu")(synthetic_events[:2])


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_cuda_without_gpu_is_a_runtime_error(synthetic_events: ak.Array, mlp_backend: TorchModule, device: str) -> None:
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        CandidateWrapper(mlp_backend, device=device)(synthetic_events[:2])


def test_bf16_autocast_on_cpu_stays_within_tolerance(synthetic_events: ak.Array, mlp_backend: TorchModule) -> None:
    """bf16 (8-bit mantissa) autocast vs fp32, on events with > 50 candidates. Stated tolerance: each
    candidate weight within 0.02 (absolute; weights are in (0, 1)); met_x = −Σ w·pT (a sum of positive
    terms) within 2 % relative; met_y = −Σ w·η (which cancels) within 2 % of its scale Σ w·|η|."""
    fp32 = CandidateWrapper(mlp_backend, device="cpu", precision="fp32")(synthetic_events)
    bf16 = CandidateWrapper(mlp_backend, device="cpu", precision="bf16")(synthetic_events)
    busy = ak.to_numpy(ak.num(synthetic_events.PFCands)) > 50
    w32 = ak.to_numpy(ak.flatten(fp32.weight[busy]))
    w16 = ak.to_numpy(ak.flatten(bf16.weight[busy]))
    assert not np.array_equal(w32, w16), "bf16 autocast was not applied"
    np.testing.assert_allclose(w16, w32, rtol=0, atol=0.02)
    m32, m16 = ak.to_numpy(fp32.met_xy)[busy], ak.to_numpy(bf16.met_xy)[busy]
    np.testing.assert_allclose(m16[:, 0], m32[:, 0], rtol=0.02)
    scale = ak.to_numpy(ak.sum(fp32.weight * abs(synthetic_events.PFCands.eta), axis=1))[busy]
    assert np.all(np.abs(m16[:, 1] - m32[:, 1]) <= 0.02 * scale)


def test_auto_precision_on_cpu_is_exactly_fp32(synthetic_events: ak.Array, mlp_backend: TorchModule) -> None:
    auto = CandidateWrapper(mlp_backend, device="cpu", precision="auto")(synthetic_events)
    fp32 = CandidateWrapper(mlp_backend, device="cpu", precision="fp32")(synthetic_events)
    assert ak.array_equal(auto, fp32)


@pytest.mark.parametrize(
    ("precision", "message"), [("fp16", "fp16 autocast needs a CUDA device"), ("half", "unknown precision")]
)
def test_bad_precision_on_cpu_is_a_value_error(
    synthetic_events: ak.Array, mlp_backend: TorchModule, precision: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        CandidateWrapper(mlp_backend, device="cpu", precision=precision)(synthetic_events[:2])


def test_model_is_loaded_once_per_process(
    synthetic_events: ak.Array, mlp_backend: TorchModule, fresh_cache: ModelCache
) -> None:
    wrapper = CandidateWrapper(mlp_backend, device="cpu")
    for start in range(0, 40, 10):  # four chunks
        wrapper(synthetic_events[start : start + 10])
    CandidateWrapper(mlp_backend, device="cpu")(synthetic_events[:3])  # another wrapper, same model
    assert dict(fresh_cache.loads) == {(mlp_backend.cache_key(), "cpu"): 1}


def test_wrapper_pickles_without_the_model(
    synthetic_events: ak.Array, mlp_backend: TorchModule, mlp_weights: Path, fresh_cache: ModelCache
) -> None:
    own_cache = ModelCache()
    wrapper = CandidateWrapper(mlp_backend, device="cpu", cache=own_cache)
    expected = wrapper(synthetic_events)
    assert sum(own_cache.loads.values()) == 1
    assert not fresh_cache.loads  # the given cache was used, not the process-wide one
    blob = pickle.dumps(wrapper)
    # the model's weights alone are 4.6k floats (18 kB); the wrapper is a class reference and a file path
    assert len(blob) < 1500 < mlp_weights.stat().st_size
    clone = pickle.loads(blob)
    assert clone.cache is MODEL_CACHE is fresh_cache  # the receiving process's cache, not the sender's
    assert ak.array_equal(clone(synthetic_events), expected)


def test_inconsistent_inputs_are_rejected(synthetic_events: ak.Array, mlp_backend: TorchModule) -> None:
    class Mismatched(CandidateWrapper):
        def prepare(self, events: Any) -> dict[str, Jagged | Dense]:
            return {**super().prepare(events), "event_vars": Dense(events.Globals.rho[:-1])}

    with pytest.raises(ValueError, match="disagree on the number of events"):
        Mismatched(mlp_backend, device="cpu")(synthetic_events)

    class NoJagged(CandidateWrapper):
        def prepare(self, events: Any) -> dict[str, Jagged | Dense]:
            return {"event_vars": Dense(events.Globals.rho)}

    with pytest.raises(ValueError, match="per-object output 'weight' refers to 'cands'"):
        NoJagged(mlp_backend, device="cpu")(synthetic_events)
