"""``coffea-mlreco evaluate`` end to end: report files, metrics.json schema, executors, bad inputs."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import pickle
import re
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hist
import numpy as np
import pytest
import uproot
from coffea import processor
from coffea_mlreco.processors.met import REFERENCES

from coffea_mlreco.evaluation import evaluate, runner
from coffea_mlreco.evaluation.inputs import InputError, InputFile
from coffea_mlreco.evaluation.tasks import load_attribute, select_tasks
from coffea_mlreco.tasks import TASKS

# real NanoAOD cross-references collections the file does not store; coffea warns about each
pytestmark = pytest.mark.filterwarnings("ignore:Missing cross-reference index:RuntimeWarning")

META_KEYS = {
    "package_version",
    "files",
    "sample",
    "events",
    "device",
    "executor",
    "seconds",
    "invalid_events",
    "models",
}
MET_REFERENCES = set(REFERENCES)
METHOD_KEYS = {"bias_upar", "resolution_upar", "bias_uperp", "resolution_uperp", "n", "bins"}
BIN_KEYS = {"lo", "hi", "n", "bias_upar", "resolution_upar", "resolution_uperp"}


def cli(argv: list[str]) -> int:
    """``coffea-mlreco evaluate ...`` through the package's command line.

    ``coffea_mlreco.cli`` imports every sub-command; while the ``generate`` one is not written yet,
    fall back to the evaluate sub-command alone so these tests exercise the same parser and run().
    """
    if importlib.util.find_spec("coffea_mlreco.simulation.generate") is not None:
        from coffea_mlreco.cli import main

        return main(["evaluate", *argv])
    parser = argparse.ArgumentParser(prog="coffea-mlreco evaluate")
    evaluate.add_arguments(parser, TASKS)
    return evaluate.run(parser.parse_args(argv), TASKS)


def check_metrics_schema(metrics: dict[str, Any]) -> None:
    assert set(metrics) <= {"meta", "met", "met_references", "ttbar", "ditau", "mem", "throughput"}
    assert set(metrics["meta"]) == META_KEYS
    assert metrics["meta"]["sample"] == "simulation"
    assert set(metrics.get("met_references", {})) <= MET_REFERENCES
    for method, summary in [*metrics["met"].items(), *metrics.get("met_references", {}).items()]:
        assert method in {"pf", "puppi", "deepmet", "perceiver"} | MET_REFERENCES
        assert set(summary) >= METHOD_KEYS  # DESIGN.md keys; extras (response, ...) allowed
        assert [(b["lo"], b["hi"]) for b in summary["bins"]] == [
            (0.0, 45.0),
            (45.0, 70.0),
            (70.0, 100.0),
            (100.0, 150.0),
            (150.0, None),
        ]
        for b in summary["bins"]:
            assert set(b) >= BIN_KEYS
        assert sum(b["n"] for b in summary["bins"]) == summary["n"]
    for key, value in metrics["throughput"].items():
        assert re.fullmatch(r"[a-z]+/[a-z_]+", key) and value > 0


def check_report(outdir: Path) -> dict[str, Any]:
    """Schema of metrics.json, PNGs referenced by index.html, readable histogram files."""
    metrics = json.loads((outdir / "metrics.json").read_text())
    check_metrics_schema(metrics)
    page = (outdir / "index.html").read_text()
    images = re.findall(r'<img src="([^"]+)"', page)
    assert images, "the report shows no plots"
    for name in images:
        assert (outdir / name).is_file() and (outdir / name).read_bytes()[:4] == b"\x89PNG"
    with uproot.open(outdir / "histograms.root") as f:
        for method, summary in [*metrics["met"].items(), *metrics.get("met_references", {}).items()]:
            th1 = f[f"met/{method}/upar"]
            assert th1.classname.startswith("TH1")
            assert th1.values(flow=True).sum() == summary["n"]
            assert f[f"met/{method}/reco_vs_gen"].classname.startswith("TH2")
            assert f"met/{method}/uperp_genmet_150toinf" in f
            assert f[f"met/{method}/met_pt"].values(flow=True).sum() == summary["n"]
    with (outdir / "histograms.pkl").open("rb") as stream:
        histograms = pickle.load(stream)
    assert all(isinstance(h, hist.Hist) for h in histograms.values())
    return metrics


def test_evaluate_synthetic_file(synthetic_nano: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    assert cli([str(synthetic_nano), "--output", str(out), "--chunksize", "150", "--device", "cpu"]) == 0
    metrics = check_report(out)
    assert metrics["meta"]["events"] == 400
    assert metrics["meta"]["executor"] == "iterative" and metrics["meta"]["device"] == "cpu"
    assert metrics["meta"]["files"] == [str(synthetic_nano.resolve())]
    assert set(metrics["met"]) == {"pf"}
    assert set(metrics["met_references"]) == {"file_met"}  # CMS's columns go to met_references
    assert metrics["met"]["pf"]["n"] == metrics["met_references"]["file_met"]["n"] == 400
    assert metrics["met"]["pf"]["resolution_upar"] == pytest.approx(12.0, abs=2.0)
    assert set(metrics["throughput"]) == {"met/pf"}
    assert "MET stored in the file" in (out / "index.html").read_text()


def test_evaluate_real_nanoaod_compares_cms_columns(real_nano_dy: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    assert cli([str(real_nano_dy), "--tasks", "met", "--output", str(out)]) == 0
    metrics = check_report(out)
    # no PF candidates: none of our methods runs (absent, not filled in); CMS's MET, RawMET and PuppiMET are compared
    assert metrics["met"] == {}
    assert set(metrics["met_references"]) == {"file_met", "cms_raw_pf", "cms_puppi"}
    assert all(m["n"] == 40 for m in metrics["met_references"].values())
    assert metrics["throughput"] == {}  # reading the file's columns is not timed as a reconstruction
    # Drell-Yan → ℓℓ: gen MET of a few GeV, so no response ratio is stable enough to be given
    assert all(b["response"] is None for m in metrics["met_references"].values() for b in m["bins"])
    assert "need PF candidates" in (out / "index.html").read_text()


def test_max_events_and_dask_scheduler_match_iterative(synthetic_nano: Path, tmp_path: Path, dask_client: Any) -> None:
    common = [str(synthetic_nano), "--chunksize", "64", "--max-events", "250"]
    assert cli([*common, "--output", str(tmp_path / "it")]) == 0
    address = dask_client.scheduler.address
    assert cli([*common, "--output", str(tmp_path / "dk"), "--executor", "dask", "--scheduler", address]) == 0
    m_it, m_dk = (check_report(tmp_path / d) for d in ("it", "dk"))
    assert m_it["meta"]["events"] == m_dk["meta"]["events"] == 250
    assert m_it["met"] == m_dk["met"]
    with (
        (tmp_path / "it" / "histograms.pkl").open("rb") as a,
        (tmp_path / "dk" / "histograms.pkl").open("rb") as b,
    ):
        h_it, h_dk = pickle.load(a), pickle.load(b)
    for name, h in h_it.items():
        np.testing.assert_array_equal(h.view(flow=True), h_dk[name].view(flow=True))


def test_futures_executor(synthetic_nano: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    argv = [
        str(synthetic_nano),
        "-o",
        str(out),
        "--executor",
        "futures",
        "--workers",
        "2",
        "--chunksize",
        "200",
    ]
    assert cli(argv) == 0
    assert json.loads((out / "metrics.json").read_text())["met"]["pf"]["n"] == 400


def _simulation_module(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """The simulation package, or an empty stand-in while it cannot be imported."""
    try:
        return importlib.import_module("coffea_mlreco.simulation")
    except ImportError:
        stand_in = types.ModuleType("coffea_mlreco.simulation")
        monkeypatch.setitem(sys.modules, "coffea_mlreco.simulation", stand_in)
        return stand_in


def test_default_sample_is_used_without_files(
    synthetic_nano: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    simulation = _simulation_module(monkeypatch)
    monkeypatch.setattr(simulation, "default_sample", lambda: [synthetic_nano], raising=False)
    assert evaluate.default_files() == [str(synthetic_nano)]
    assert cli(["--output", str(tmp_path / "r"), "--max-events", "50"]) == 0
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["meta"]["events"] == 50


def test_missing_default_sample_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    simulation = _simulation_module(monkeypatch)
    monkeypatch.delattr(simulation, "default_sample", raising=False)
    assert cli(["--output", str(tmp_path / "r")]) != 0
    assert "default sample" in capsys.readouterr().err


def _bad_input(kind: str, tmp_path: Path, write_nano: Callable[..., Path]) -> tuple[Path, list[str], str]:
    """(file, extra args, text the error must contain besides the file name)."""
    if kind == "nonexistent":
        return tmp_path / "does_not_exist.root", [], "no such file"
    if kind == "text_file":
        path = tmp_path / "notes.root"
        path.write_text("this is not a ROOT file\n")
        return path, [], "not a ROOT file"
    if kind == "no_events_tree":
        path = tmp_path / "other_tree.root"
        with uproot.recreate(path) as f:
            f["Runs"] = {"run": np.array([1], dtype=np.uint32)}
        return path, [], "'Events'"
    if kind == "data_mixed_with_simulation":
        simulation = write_nano(tmp_path / "simulation.root", 20)
        data = write_nano(tmp_path / "data.root", 20, drop=("GenMET", "GenPart", "Pileup"))
        return data, [str(simulation)], "mix collision data"
    if kind == "no_met":
        return write_nano(tmp_path / "nomet.root", 20, drop=("MET",)), ["--tasks", "met"], "MET_pt"
    if kind == "no_event_ids":
        return write_nano(tmp_path / "noid.root", 20, drop=("event",)), [], "'event'"
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    [
        "nonexistent",
        "text_file",
        "no_events_tree",
        "data_mixed_with_simulation",
        "no_met",
        "no_event_ids",
    ],
)
def test_bad_input_exits_nonzero_naming_file_and_branch(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], write_nano: Callable[..., Path]
) -> None:
    path, extra, expected = _bad_input(kind, tmp_path, write_nano)
    out = tmp_path / "report"
    assert cli([str(path), *extra, "--output", str(out)]) != 0
    err = capsys.readouterr().err
    assert path.name in err and expected in err
    assert "Traceback" not in err
    assert not (out / "metrics.json").exists()


def test_without_genmet_met_shows_distributions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], write_nano: Callable[..., Path]
) -> None:
    """A simulated file without GenMET: the MET task runs (no longer refused) and reports distributions."""
    path = write_nano(tmp_path / "nogen.root", 20, drop=("GenMET",))
    out = tmp_path / "report"
    assert cli([str(path), "--tasks", "met", "--output", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["meta"]["sample"] == "simulation"
    assert metrics["met"]["pf"]["n"] == 20 and "bias_upar" not in metrics["met"]["pf"]
    assert metrics["met"]["pf"]["distributions"]["met_pt"]["n"] == 20


def test_one_bad_file_among_good_ones_is_named(
    synthetic_nano: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], write_nano: Callable[..., Path]
) -> None:
    bad = write_nano(tmp_path / "second.root", 20, drop=("MET",))
    assert cli([str(synthetic_nano), str(bad), "--tasks", "met", "-o", str(tmp_path / "r")]) != 0
    assert "second.root" in capsys.readouterr().err


def test_unknown_task_is_an_error(synthetic_nano: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli([str(synthetic_nano), "--tasks", "met,nonsense", "-o", str(tmp_path / "r")]) != 0
    assert "nonsense" in capsys.readouterr().err


def test_resolve_device() -> None:
    assert evaluate.resolve_device("cpu") == "cpu"
    assert evaluate.resolve_device("cuda:1") == "cuda:1"
    assert evaluate.resolve_device("auto") in {"cpu", "cuda"}
    with pytest.raises(evaluate.InputError, match="unknown device"):
        evaluate.resolve_device("tpu")


class _FlakyProcessor(processor.ProcessorABC):
    """Counts its attempts in a file (shared by worker processes); raises ``error`` on the first ``failures``."""

    def __init__(self, log: Path, failures: int, error: type[Exception]) -> None:
        self.log, self.failures, self.error = log, failures, error

    def process(self, events: Any) -> dict[str, Any]:
        with self.log.open("a") as stream:
            stream.write("x")
        attempt = len(self.log.read_text())
        if attempt <= self.failures:
            raise self.error(f"attempt {attempt} failed")
        return {"events": len(events)}

    def postprocess(self, accumulator: dict[str, Any]) -> dict[str, Any]:
        return accumulator


def test_is_transient() -> None:
    from uproot.deserialization import DeserializationError

    from coffea_mlreco.core import NonFiniteInputError

    def wrapped(err: Exception) -> Exception:  # as coffea's Runner re-raises a processing error
        outer = Exception("Failed processing file")
        outer.__cause__ = err
        return outer

    for err in (
        OSError("connection reset"),
        TimeoutError("read timed out"),
        wrapped(OSError("XRootD error")),
        DeserializationError("short read", None, None, None, "file.root"),
    ):
        assert runner.is_transient(err), err
    for err in (
        ValueError("bad"),
        NonFiniteInputError("NaN"),
        wrapped(NonFiniteInputError("NaN")),
        FileNotFoundError("gone"),
        wrapped(PermissionError("denied")),
        KeyError("PFCands_pt"),
    ):
        assert not runner.is_transient(err), err


def test_runner_retries_transient_errors_only(
    synthetic_nano: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "TRANSIENT_RETRY_DELAY_S", 0.0)
    with runner.executor_session("iterative", status=False) as executor:
        chunks = runner.plan_chunks([str(synthetic_nano)], executor, 1000)
        log = tmp_path / "transient.log"
        with pytest.warns(runner.TransientErrorRetry):
            result = runner.run_processor(_FlakyProcessor(log, 2, OSError), chunks, executor, 1000)
        assert result.output == {"events": 400} and len(log.read_text()) == 3
        log = tmp_path / "persistent.log"
        with pytest.warns(runner.TransientErrorRetry), pytest.raises(Exception, match="attempt 4 failed"):
            runner.run_processor(_FlakyProcessor(log, 99, OSError), chunks, executor, 1000)
        assert len(log.read_text()) == runner.TRANSIENT_RETRIES + 1


@pytest.mark.parametrize("kind", ["iterative", "futures"])
def test_deterministic_errors_fail_at_once(kind: str, synthetic_nano: Path, tmp_path: Path) -> None:
    """A ValueError (as NonFiniteInputError is) is not retried: coffea's executors would try it 4 times."""
    with runner.executor_session(kind, workers=1, status=False) as executor:
        chunks = runner.plan_chunks([str(synthetic_nano)], executor, 1000)
        log = tmp_path / f"{kind}.log"
        with pytest.raises(Exception, match="attempt 1 failed"):
            runner.run_processor(_FlakyProcessor(log, 5, ValueError), chunks, executor, 1000)
    assert len(log.read_text()) == 1


def test_model_methods_are_the_tasks_network_methods() -> None:
    """``--model TASK.METHOD`` accepts exactly the network methods of the task's method set, which its columns
    module runs."""
    for name, task in TASKS.items():
        columns = importlib.import_module(f"coffea_mlreco.{name}.columns")
        method_set = load_attribute(task.methods)
        assert task.model_methods and task.model_methods == method_set.networks, name
        assert set(task.model_methods) <= set(columns.METHODS) == set(method_set.names), name
        assert set(task.model_methods) == set(getattr(columns, "ML_METHODS", task.model_methods)), name
        for method, prefix in task.model_methods.items():  # a shipped model of every such method
            assert task.models(method).architectures(prefix), (name, method)


def _branches_of(path: Path) -> InputFile:
    tree = uproot.open(path)["Events"]
    return InputFile(str(path), tree.num_entries, frozenset(tree.keys()))


def test_task_selection_accepts_any_nanoaod_version_of_a_branch() -> None:
    """NanoAODv15 renamed MET to PFMET and dropped Jet_jetId: the registry's alternatives ("MET_pt|PFMET_pt",
    "Jet_jetId|Jet_chHEF", ...) select the tasks on it as on v12, and a message names every alternative."""
    shared = Path(__file__).resolve().parents[2].parent / "shared" / "data"
    v12, v15 = shared / "nano_tt_v12.root", shared / "nano_tt_v15.root"
    if not (v12.is_file() and v15.is_file()):
        pytest.skip("real NanoAOD test files are absent")
    for path in (v12, v15):
        chosen, _ = select_tasks(["ttbar", "mem"], [_branches_of(path)], TASKS)
        assert [task.name for task in chosen] == ["ttbar", "mem"]
    chosen, _ = select_tasks(None, [_branches_of(v15)], TASKS)
    assert "ditau" in [task.name for task in chosen]
    without_met = InputFile("x.root", 1, _branches_of(v15).branches - {"PFMET_pt"})
    with pytest.raises(
        InputError, match=r"on x\.root \(it needs .*MET\): branch 'MET_pt' \(or 'PFMET_pt'\) is missing"
    ):
        select_tasks(["ttbar"], [without_met], TASKS)


def test_a_task_the_file_cannot_feed_is_refused_in_one_line_saying_what_it_needs() -> None:
    """MLPF on CMS NanoAOD: the one-line refusal (asked for) and note (not asked for) say that it needs detector
    elements, which our generator writes with --elements and CMS NanoAOD does not carry."""
    path = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "nano_tt_v12.root"
    if not path.is_file():
        pytest.skip("real NanoAOD test files are absent")
    with pytest.raises(InputError) as err:
        select_tasks(["mlpf"], [_branches_of(path)], TASKS)
    message = str(err.value)
    assert "\n" not in message and "detector elements" in message and "generate --elements" in message
    assert "'PFTrack_pt' is missing" in message and str(path) in message
    chosen, notes = select_tasks(None, [_branches_of(path)], TASKS)
    assert "mlpf" not in [task.name for task in chosen]
    assert any(note.startswith("skipping task 'mlpf'") and "CMS NanoAOD does not carry" in note for note in notes)
