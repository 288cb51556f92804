"""A model trained by the user is used wherever a shipped one is: ``coffea-mlreco train met`` writes a model
directory, which ``coffea_mlreco.met.reconstruct(models=...)``, ``METProcessor(models=...)`` under a Runner and
``coffea-mlreco evaluate --model met.deepmet=DIR`` take; ``train`` refuses a validation file that is a training
file, an output inside the package, and ``evaluate --model`` refuses what is no usable model, before running.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest
from coffea import processor
from coffea.nanoevents import NanoAODSchema, NanoEventsFactory
from coffea_mlreco.processors.met import METProcessor

from coffea_mlreco import met
from coffea_mlreco.cli import main
from coffea_mlreco.inference.model_cards import read_model_card
from coffea_mlreco.simulation import generate_sample
from coffea_mlreco.training.model_dir import DEFAULT_MODELS_DIR, package_directory, ship_model

pytestmark = pytest.mark.filterwarnings("ignore:Missing cross-reference:RuntimeWarning")

CHUNKSIZE = 60
"""Events per chunk of the Runner and of ``evaluate`` (the same chunks: 67 + 67 + 66 of the 200 events)."""


@pytest.fixture(scope="module")
def validation_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 Drell-Yan events of another seed than ``generated_nano``'s."""
    return generate_sample("dy-ll", 60, 0, 9, tmp_path_factory.mktemp("validation") / "dy_val.root", progress=False)


@pytest.fixture(scope="module")
def user_deepmet(generated_nano: Path, validation_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DeepMET-style model (smallest width) trained for one epoch, into the default ``--output`` directory of
    a fresh working directory; returns that model directory."""
    work = tmp_path_factory.mktemp("work")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        assert (
            main(
                [
                    "train",
                    "met",
                    "--model",
                    "deepmet",
                    "--train",
                    str(generated_nano),
                    "--validation",
                    str(validation_file),
                    "--epochs",
                    "1",
                    "--dim",
                    "8",
                    "--device",
                    "cpu",
                    "--quiet",
                ]
            )
            == 0
        )
    return work / DEFAULT_MODELS_DIR / "met-deepmet"


def _events(path: Path) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return NanoEventsFactory.from_root({str(path): "Events"}, schemaclass=NanoAODSchema, mode="eager").events()


def _deepmet_upar(path: Path, models: dict[str, str] | None) -> np.ndarray:
    """The u∥ residual histogram of ``deepmet`` from ``METProcessor`` under an iterative Runner."""
    run = processor.Runner(
        executor=processor.IterativeExecutor(status=False), chunksize=CHUNKSIZE, schema=NanoAODSchema
    )
    out = run({"dy": [str(path)]}, METProcessor(methods=("deepmet",), models=models, device="cpu"), treename="Events")
    assert out["events_per_method"]["deepmet"] == 200 and out["events_invalid"] == 0
    return out["histograms"]["upar"][{"method": "deepmet"}].view(flow=True)


def test_train_writes_a_model_directory(user_deepmet: Path, generated_nano: Path, validation_file: Path) -> None:
    assert sorted(p.name for p in user_deepmet.iterdir()) == ["deepmet.json", "deepmet.safetensors"]
    card = read_model_card(Path("unused"), user_deepmet, "MET")
    assert card["weights"] == str(user_deepmet.resolve() / "deepmet.safetensors")
    assert card["model"] == "coffea_mlreco.met.deepmet:DeepMET" and card["config"] == {"dim": 8}
    assert card["training_files"][0]["file"] == generated_nano.name
    assert card["validation_file"]["file"] == validation_file.name and card["epochs"] == 1
    assert not (package_directory() / DEFAULT_MODELS_DIR).exists()


def test_reconstruct_takes_the_model_directory(user_deepmet: Path, generated_nano: Path) -> None:
    events = _events(generated_nano)
    mine = met.reconstruct(events, methods=("deepmet",), models={"deepmet": str(user_deepmet)}, device="cpu")
    shipped = met.reconstruct(events, methods=("deepmet",), device="cpu")
    ours, theirs = ak.to_numpy(mine.DeepMETReco.pt), ak.to_numpy(shipped.DeepMETReco.pt)
    assert np.isfinite(ours).all() and ak.all(mine.DeepMETReco.valid)
    assert np.mean(np.abs(ours - theirs)) > 0.1  # GeV: another network
    card = met.reconstruct(
        events, methods=("deepmet",), models={"deepmet": user_deepmet / "deepmet.json"}, device="cpu"
    )
    np.testing.assert_array_equal(ak.to_numpy(card.DeepMETReco.pt), ours)


@pytest.fixture(scope="module")
def processor_histograms(user_deepmet: Path, generated_nano: Path) -> dict[str, np.ndarray]:
    return {
        "user": _deepmet_upar(generated_nano, {"deepmet": str(user_deepmet)}),
        "shipped": _deepmet_upar(generated_nano, None),
    }


def test_processor_takes_the_model_directory(processor_histograms: dict[str, np.ndarray]) -> None:
    user, shipped = processor_histograms["user"], processor_histograms["shipped"]
    assert user.sum() == shipped.sum() == 200
    assert not np.array_equal(user, shipped)


def test_evaluate_model_option(
    user_deepmet: Path, generated_nano: Path, processor_histograms: dict[str, np.ndarray], tmp_path: Path
) -> None:
    import pickle

    out = tmp_path / "report"
    assert (
        main(
            [
                "evaluate",
                str(generated_nano),
                "--tasks",
                "met",
                "--chunksize",
                str(CHUNKSIZE),
                "--device",
                "cpu",
                "--model",
                f"met.deepmet={user_deepmet}",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["meta"]["models"] == {"met": {"deepmet": str(user_deepmet.resolve())}}
    assert "deepmet" in metrics["met"] and metrics["met"]["deepmet"]["n"] == 200
    assert str(user_deepmet.resolve()) in (out / "index.html").read_text()
    with (out / "histograms.pkl").open("rb") as stream:
        upar = pickle.load(stream)["met/upar"][{"method": "deepmet"}].view(flow=True)
    np.testing.assert_array_equal(upar, processor_histograms["user"])  # the same chunks, the user's network


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("met.deepmet", "expected TASK.METHOD=SPEC"),
        ("nonsense.deepmet=deepmet_pu60", "unknown task 'nonsense'"),
        ("met.pf=deepmet_pu60", "no method 'pf' that runs a trained model"),
        ("met.deepmet=deepmet_pu999", "no shipped met deepmet model 'deepmet_pu999'"),
        ("met.deepmet={tmp}/missing", "no such met deepmet model directory"),
        ("met.deepmet={tmp}", "must hold exactly one model card"),
        ("met.deepmet=perceiver_pu60", "describes a coffea_mlreco.met.perceiver:PerceiverMET model"),
    ],
)
def test_evaluate_refuses_a_bad_model_before_running(
    option: str, message: str, synthetic_nano: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    assert main(["evaluate", str(synthetic_nano), "--model", option.format(tmp=tmp_path), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "--model" in err
    assert not out.exists()


def _train_argv(train: Path, validation: Path, *extra: str) -> list[str]:
    return [
        "train",
        "met",
        "--model",
        "deepmet",
        "--train",
        str(train),
        "--validation",
        str(validation),
        "--epochs",
        "1",
        "--dim",
        "8",
        "--device",
        "cpu",
        "--quiet",
        *extra,
    ]


def test_train_refuses_validation_among_training(
    generated_nano: Path, validation_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    link = tmp_path / "link.root"
    link.symlink_to(generated_nano)
    for validation in (generated_nano, link):
        output = tmp_path / "never"
        assert main(_train_argv(generated_nano, validation, "--output", str(output))) == 2
        err = capsys.readouterr().err
        assert "is also a training file" in err and str(validation) in err and len(err.strip().splitlines()) == 1
        assert not output.exists()
    # the same for the other trainers' --validation and for train mem's --val-table
    for task in (["ttbar", "--model", "pdnn"], ["ditau"], ["mlpf"]):
        assert (
            main(
                [
                    "train",
                    *task,
                    "--train",
                    str(validation_file),
                    str(generated_nano),
                    "--validation",
                    str(link),
                    "--output",
                    str(tmp_path / task[0]),
                ]
            )
            == 2
        )
    table = tmp_path / "table.npz"
    table.write_bytes(b"")
    assert (
        main(
            [
                "train",
                "mem",
                "--table",
                str(table),
                "--val-table",
                str(table),
                "--name",
                "x",
                "--output",
                str(tmp_path / "m"),
            ]
        )
        == 2
    )
    assert capsys.readouterr().err.count("is also a training file") == 4
    assert not any((tmp_path / name).exists() for name in ("ttbar", "ditau", "mlpf", "m"))


def test_train_refuses_an_output_inside_the_package_or_beside_another_model(
    generated_nano: Path, validation_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inside = package_directory() / "met" / "weights" / "my_model"
    assert main(_train_argv(generated_nano, validation_file, "--output", str(inside))) == 2
    assert "inside the installed package" in capsys.readouterr().err and not inside.exists()
    crowded = tmp_path / "crowded"
    crowded.mkdir()
    (crowded / "perceiver.json").write_text("{}")
    assert main(_train_argv(generated_nano, validation_file, "--output", str(crowded))) == 2
    assert "already holds another model card (perceiver.json)" in capsys.readouterr().err


def test_ship_model_copies_under_a_new_name(user_deepmet: Path, tmp_path: Path) -> None:
    from coffea_mlreco.training import model_dir

    weights = tmp_path / "weights"
    card_path = ship_model(user_deepmet, weights, "deepmet_custom")
    assert card_path == weights / "deepmet_custom.json"
    card = read_model_card(weights, "deepmet_custom", "MET")
    assert Path(card["weights"]) == (weights / "deepmet_custom.safetensors").resolve()
    assert (weights / "deepmet_custom.safetensors").read_bytes() == (user_deepmet / "deepmet.safetensors").read_bytes()
    assert model_dir.main([str(user_deepmet), str(weights), "again"]) == 0
    assert json.loads((weights / "again.json").read_text())["weights"] == "again.safetensors"
