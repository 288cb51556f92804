"""MET features, the shipped DeepMET/Perceiver models in the MET processor, ONNX export, training CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import torch
from coffea import processor
from coffea.nanoevents import NanoAODSchema, NanoEventsFactory
from coffea_mlreco.processors.met import METProcessor

from coffea_mlreco.cli import main
from coffea_mlreco.core.metrics import met_residuals, resolution
from coffea_mlreco.inference import OnnxModel, export_onnx
from coffea_mlreco.met.features import CANDIDATE_FEATURES, feature_names, met_inputs, type_class
from coffea_mlreco.met.wrappers import MET_MODELS, METWrapper

SHIPPED = MET_MODELS.names()


def events(path: Path):
    return NanoEventsFactory.from_root({str(path): "Events"}, schemaclass=NanoAODSchema, mode="eager").events()


def test_candidate_features(dilep_pu60: Path) -> None:
    ev = events(dilep_pu60)
    cands, event = met_inputs(ev)
    assert ak.fields(cands) == list(CANDIDATE_FEATURES)
    assert ak.all(ak.num(cands) == ak.num(ev.PFCands))
    np.testing.assert_allclose(
        ak.to_numpy(ak.flatten(np.hypot(cands.px, cands.py))), ak.to_numpy(ak.flatten(ev.PFCands.pt)), rtol=1e-5
    )
    assert ak.all((cands.puppi >= 0) & (cands.puppi <= 1))
    assert ak.all(cands.pv_class[ev.PFCands.charge == 0] == 3)
    assert set(np.unique(ak.to_numpy(ak.flatten(type_class(ev.PFCands.pdgId))))) <= set(range(7))
    assert len(event) == len(ev)


@pytest.mark.skipif(not SHIPPED, reason="no MET model shipped")
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_cards_are_complete(name: str) -> None:
    card = MET_MODELS.card(name)
    for key in (
        "model",
        "config",
        "weights",
        "command",
        "training_files",
        "validation_file",
        "training_events",
        "seed",
        "validation_metrics_gev",
    ):
        assert key in card, key
    assert card["command"].startswith("coffea-mlreco train met")
    assert 0.8 < card.get("response_scale", 0.0) < 1.5  # response calibrated on the validation sample
    assert abs(card["validation_metrics_gev"]["model"]["bias_upar"]) < 2.0
    weights = Path(__file__).resolve().parents[2] / "src/coffea_mlreco/met/weights" / card["weights"]
    if weights.exists():
        assert weights.stat().st_size < 5_000_000


@pytest.mark.skipif(not SHIPPED, reason="no MET model shipped")
def test_processor_appends_ml_met_and_beats_pf(dilep_pu60: Path) -> None:
    out = processor.Runner(executor=processor.IterativeExecutor(status=False), schema=NanoAODSchema)(
        {"dilep": [str(dilep_pu60)]}, METProcessor(device="cpu"), treename="Events"
    )
    ev = events(dilep_pu60)
    for method, wrapper_name in ((m, n) for m in ("deepmet", "perceiver") for n in SHIPPED if n.startswith(m)):
        assert out["events_per_method"][method] == len(ev)
        met = MET_MODELS.load(wrapper_name, device="cpu")(ev)
        r = met_residuals(
            ak.to_numpy(met.pt), ak.to_numpy(met.phi), ak.to_numpy(ev.GenMET.pt), ak.to_numpy(ev.GenMET.phi)
        )
        pf = met_residuals(
            ak.to_numpy(ev.MET.pt), ak.to_numpy(ev.MET.phi), ak.to_numpy(ev.GenMET.pt), ak.to_numpy(ev.GenMET.phi)
        )
        assert resolution(r.upar) < resolution(pf.upar), wrapper_name


@pytest.mark.skipif(not SHIPPED, reason="no MET model shipped")
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_onnx_round_trip(name: str, dilep_pu60: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    wrapper = MET_MODELS.load(name, device="cpu")
    model = wrapper.backend.load(torch.device("cpu"))
    example = {
        "cands": torch.zeros(2, 7, len(feature_names(wrapper.neighbourhood))),
        "cands_mask": torch.ones(2, 7, dtype=torch.bool),
        "event": torch.zeros(2, 2),
    }
    path = export_onnx(model, example, ["met_xy"], tmp_path / f"{name}.onnx")
    ev = events(dilep_pu60)[:40]
    onnx_met = METWrapper(
        OnnxModel(path), device="cpu", response_scale=wrapper.response_scale, neighbourhood=wrapper.neighbourhood
    )(ev)
    torch_met = wrapper(ev)
    np.testing.assert_allclose(ak.to_numpy(onnx_met.pt), ak.to_numpy(torch_met.pt), rtol=1e-3, atol=1e-2)


def held_out_copy(path: Path, tmp_path: Path) -> Path:
    """A copy of ``path`` as the validation file (train refuses a validation file that is a training file)."""
    return Path(shutil.copy(path, tmp_path / f"val_{path.name}"))


def test_train_met_cli_writes_weights_and_card(dilep_pu60: Path, tmp_path: Path) -> None:
    output = tmp_path / "deepmet_test"
    assert (
        main(
            [
                "train",
                "met",
                "--model",
                "deepmet",
                "--train",
                str(dilep_pu60),
                "--validation",
                str(held_out_copy(dilep_pu60, tmp_path)),
                "--output",
                str(output),
                "--epochs",
                "1",
                "--quiet",
            ]
        )
        == 0
    )
    card = json.loads((output / "deepmet.json").read_text())
    assert card["training_events"] == 200 and card["training_files"][0]["generator"]["seed"] == "41"
    assert (output / "deepmet.safetensors").stat().st_size > 10_000
    assert set(card["validation_metrics_gev"]) == {"model", "puppi", "pf"}
    assert card["response_scale"] > 0


def test_train_met_with_feature_workers_keeps_the_best_epoch(dilep_pu60: Path, tmp_path: Path) -> None:
    second = tmp_path / "copy.root"  # a second training file, so two processes fill the feature caches
    second.write_bytes(dilep_pu60.read_bytes())
    output = tmp_path / "perceiver_test"
    assert (
        main(
            [
                "train",
                "met",
                "--model",
                "perceiver",
                "--train",
                str(dilep_pu60),
                str(second),
                "--validation",
                str(held_out_copy(dilep_pu60, tmp_path)),
                "--output",
                str(output),
                "--epochs",
                "2",
                "--workers",
                "2",
                "--device",
                "cpu",
                "--latents",
                "8",
                "--dim",
                "16",
                "--quiet",
            ]
        )
        == 0
    )
    card = json.loads((output / "perceiver.json").read_text())
    assert card["training_events"] == 400 and card["device"] == "cpu" and len(card["history"]) == 2
    best = min(card["history"], key=lambda h: h["val_resolution_upar"])
    assert card["best_epoch"] == best["epoch"]


def test_train_met_fine_tunes_from_init_weights(dilep_pu60: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    first, second = tmp_path / "first", tmp_path / "second"
    common = [
        "train",
        "met",
        "--model",
        "perceiver",
        "--target",
        "direct",
        "--train",
        str(dilep_pu60),
        "--validation",
        str(held_out_copy(dilep_pu60, tmp_path)),
        "--device",
        "cpu",
        "--dim",
        "16",
        "--quiet",
        "--cache-dir",
        str(tmp_path / "cache"),
    ]
    assert main([*common, "--latents", "8", "--output", str(first), "--epochs", "1"]) == 0
    start = json.loads((first / "perceiver.json").read_text())
    # a learning rate of zero cannot improve on the starting weights: epoch 0 (the init) is kept, unchanged
    assert (
        main(
            [
                *common,
                "--latents",
                "8",
                "--output",
                str(second),
                "--epochs",
                "1",
                "--lr",
                "0",
                "--init",
                str(first / "perceiver.safetensors"),
            ]
        )
        == 0
    )
    card = json.loads((second / "perceiver.json").read_text())
    assert [h["epoch"] for h in card["history"]] == [0, 1] and card["best_epoch"] == 0
    assert card["history"][0]["val_resolution_upar"] == pytest.approx(start["history"][-1]["val_resolution_upar"])
    assert (
        card["init"]["weights"] == "perceiver.safetensors"
        and card["init"]["training_files"][0]["generator"]["seed"] == "41"
    )
    old, new = load_file(str(first / "perceiver.safetensors")), load_file(str(second / "perceiver.safetensors"))
    assert all(torch.equal(old[k], new[k]) for k in old)
    # weights of another configuration are refused with the mismatch named
    assert (
        main(
            [
                *common,
                "--latents",
                "4",
                "--output",
                str(tmp_path / "bad"),
                "--epochs",
                "1",
                "--init",
                str(first / "perceiver.safetensors"),
            ]
        )
        == 2
    )


def test_device_side_padding_equals_host_padding(dilep_pu60: Path, tmp_path: Path) -> None:
    import torch

    from coffea_mlreco.met.training import batch_source, load_features, plan_batches

    data = load_features(dilep_pu60, tmp_path / "cache")
    cpu = torch.device("cpu")
    host, device = batch_source(data, cpu, on_device=False), batch_source(data, cpu, on_device=True)
    batches = plan_batches(np.asarray(data.counts)[:, None], 1 << 14, 512)
    assert len(batches) > 3
    for events in [*batches[:2], np.array([5, 0, 17]), np.array([3])]:
        for a, b in zip(host.tensors(events), device.tensors(events), strict=True):
            assert a.dtype == b.dtype and a.shape == b.shape
            assert torch.equal(a, b)


def test_one_cycle_schedule_and_time_budget(dilep_pu60: Path, tmp_path: Path) -> None:
    from coffea_mlreco.training.trainer import one_cycle_lr

    assert one_cycle_lr(0.0, 1e-3) == pytest.approx(1e-3 / 25)
    assert one_cycle_lr(0.3, 1e-3) == pytest.approx(1e-3)
    assert one_cycle_lr(1.0, 1e-3) == pytest.approx(1e-3 / 25 / 1e4)
    lrs = [one_cycle_lr(p, 1e-3) for p in np.linspace(0.3, 1.0, 20)]
    assert np.all(np.diff(lrs) <= 0)  # falls monotonically after the warm-up
    output = tmp_path / "budget"
    assert (
        main(
            [
                "train",
                "met",
                "--model",
                "deepmet",
                "--train",
                str(dilep_pu60),
                "--validation",
                str(held_out_copy(dilep_pu60, tmp_path)),
                "--output",
                str(output),
                "--epochs",
                "50",
                "--max-seconds",
                "0.5",
                "--quiet",
            ]
        )
        == 0
    )
    card = json.loads((output / "deepmet.json").read_text())
    assert len(card["history"]) == 1 and card["history"][0]["steps"] >= 1 and card["max_seconds"] == 0.5


def test_train_met_names_missing_branches(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import uproot

    bad = tmp_path / "bad.root"
    with uproot.recreate(bad) as f:
        f["Events"] = {"MET_pt": np.ones(3, np.float32)}
    assert (
        main(
            [
                "train",
                "met",
                "--model",
                "deepmet",
                "--train",
                str(bad),
                "--validation",
                str(held_out_copy(bad, tmp_path)),
                "--output",
                str(tmp_path / "x"),
                "--epochs",
                "1",
                "--quiet",
            ]
        )
        == 2
    )
    assert "PFCands" in capsys.readouterr().err


def test_host_batches_read_only_their_rows(dilep_pu60: Path, tmp_path: Path) -> None:
    """The CPU path keeps the features memory-mapped: building the batch source and a batch allocates a batch, not
    the feature set (a copy of it does not fit in memory for a large PU 200 sample)."""
    import tracemalloc

    import torch

    from coffea_mlreco.met.training import batch_source, load_features

    data = load_features(dilep_pu60, tmp_path / "cache")
    assert isinstance(data.features, np.memmap)
    tracemalloc.start()
    try:
        host = batch_source(data, torch.device("cpu"), on_device=False)
        x, mask, _, _ = host.tensors(np.array([0, 1]))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < data.features.nbytes / 10
    assert x.shape[0] == 2 and int(mask.sum()) == int(np.asarray(data.counts)[:2].sum())
