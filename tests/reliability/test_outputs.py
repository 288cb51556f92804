"""Outputs are complete or absent (issue #20, deliverable 1).

Every command writes to ``<name>.partial-XXXXXXXX`` next to the requested name and renames on success
(`coffea_mlreco.core.outputs`). Here: ``generate`` and ``evaluate`` interrupted as subprocesses with SIGTERM and
SIGKILL mid-run leave nothing complete-looking under the requested name (an earlier report stays as it was);
``generate --resume`` continues a partial sample to a file identical in events to an uninterrupted run,
simulating only the missing chunks; an interrupted ``train`` leaves no model directory; an unwritable output
folder is one line and exit status 2 for each command; the building blocks (atomic file/folder, deferred signals,
the MEM table and model writers) keep the previous output when writing fails.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import awkward as ak
import numpy as np
import pytest
import uproot

from coffea_mlreco.cli import main
from coffea_mlreco.core import (
    Interrupted,
    OutputError,
    atomic_directory,
    atomic_file,
    deferred_interrupts,
    partial_outputs,
    sigterm_as_interrupt,
)
from coffea_mlreco.evaluation.report import is_report_folder
from coffea_mlreco.mem.table_schema import read_mem_table, write_mem_table
from coffea_mlreco.simulation import generate_sample

GENERATE = importlib.import_module("coffea_mlreco.simulation.generate")

# A small generated sample: 100 Drell-Yan events at pileup 0 in 50 chunks of 2 (about 0.1 s per chunk), so an
# interruption after the second chunk still has seconds of the run ahead of it, even on a loaded machine where the
# poll that sees the second chunk is slow (with 20 chunks a clean-clone CI run once finished first).
SAMPLE = {"process": "dy-ll", "n_events": 100, "pileup": 0.0, "seed": 5, "chunk_size": 2}
N_CHUNKS = SAMPLE["n_events"] // SAMPLE["chunk_size"]


def _generate_argv(output: Path, *extra: str) -> list[str]:
    return [
        "generate",
        "--process",
        SAMPLE["process"],
        "--events",
        str(SAMPLE["n_events"]),
        "--pileup",
        str(SAMPLE["pileup"]),
        "--seed",
        str(SAMPLE["seed"]),
        "--chunk-size",
        str(SAMPLE["chunk_size"]),
        "--output",
        str(output),
        "--quiet",
        *extra,
    ]


def _error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _entries(path: Path) -> int:
    """Events in a (possibly still growing) ROOT file's Events tree; 0 while it cannot be read."""
    try:
        with uproot.open(path) as handle:
            return int(handle["Events"].num_entries)
    except Exception:
        return 0


def _run_interrupted(
    argv: list[str], ready: Callable[[], bool], sig: signal.Signals, logs: Path, timeout_s: float = 120.0
) -> tuple[int, str, str]:
    """Start ``coffea-mlreco ARGV`` as a subprocess, send ``sig`` once ``ready()``; (exit status, stdout, stderr).

    The run must still be going when ``ready()`` becomes true (else the test fails: it was not interrupted)."""
    logs.mkdir(parents=True, exist_ok=True)
    out_path, err_path = logs / "stdout.txt", logs / "stderr.txt"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    with out_path.open("w") as out, err_path.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "coffea_mlreco.cli", *argv], stdout=out, stderr=err, env=env)
        deadline = time.monotonic() + timeout_s
        try:
            while not ready():
                assert proc.poll() is None, f"finished before the interruption: {err_path.read_text()[-2000:]}"
                assert time.monotonic() < deadline, "the run never reached the point of interruption"
                time.sleep(0.02)
            proc.send_signal(sig)
            status = proc.wait(timeout=timeout_s)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return status, out_path.read_text(), err_path.read_text()


def _same_events(a: Path, b: Path) -> None:
    """Identical branch lists, values and generator metadata."""
    with uproot.open(a) as fa, uproot.open(b) as fb:
        ta, tb = fa["Events"], fb["Events"]
        assert ta.keys() == tb.keys()
        assert ta.num_entries == tb.num_entries == SAMPLE["n_events"]
        for key in ta.keys():  # noqa: SIM118 -- uproot's keys() lists the branch names
            assert ak.array_equal(ta[key].array(), tb[key].array()), key
        meta_a = {k: str(fa[k]) for k in fa.keys(recursive=True) if k.startswith("Metadata/")}
        meta_b = {k: str(fb[k]) for k in fb.keys(recursive=True) if k.startswith("Metadata/")}
        assert meta_a == meta_b and meta_a["Metadata/chunk_size;1"] == str(SAMPLE["chunk_size"])


@pytest.fixture(scope="module")
def uninterrupted_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample generated in one go (in this process)."""
    return generate_sample(**SAMPLE, output=tmp_path_factory.mktemp("reference") / "reference.root", progress=False)


@pytest.fixture
def unwritable_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder nobody may write into: read-only permissions, or, for root (who ignores them), /sys."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if not _writable(folder):
            yield folder
        elif not _writable(Path("/sys")):
            yield Path("/sys")
        else:
            pytest.skip("no unwritable folder here (running as root without a read-only /sys)")
    finally:
        folder.chmod(0o755)


def _writable(folder: Path) -> bool:
    probe = folder / ".probe"
    try:
        probe.touch()
    except OSError:
        return False
    probe.unlink()
    return True


def _toy_mem_table(path: Path, n_events: int = 300, seed: int = 1) -> Path:
    """A valid MEM weight table (leptons, no jets, MET; one hypothesis with smooth finite weights)."""
    rng = np.random.default_rng(seed)
    kinematics: dict[str, np.ndarray] = {}
    for lep, pdg in (("lep1", 13), ("lep2", -13)):
        kinematics[f"{lep}_pt"] = 25 + rng.exponential(20, n_events)
        kinematics[f"{lep}_eta"] = rng.uniform(-2.4, 2.4, n_events)
        kinematics[f"{lep}_phi"] = rng.uniform(-np.pi, np.pi, n_events)
        kinematics[f"{lep}_pdgId"] = np.full(n_events, pdg)
    for jet in ("jet1", "jet2"):
        for field in ("pt", "eta", "phi"):
            kinematics[f"{jet}_{field}"] = np.zeros(n_events)
    kinematics["met_pt"], kinematics["met_phi"] = rng.exponential(20, n_events), rng.uniform(-np.pi, np.pi, n_events)
    log10_weight = -np.log10(kinematics["lep1_pt"] * kinematics["lep2_pt"])[:, None]
    return write_mem_table(
        path, kinematics, ("dy",), log10_weight, np.full((n_events, 1), 1e-3), {"file": "toy", "generator_seed": seed}
    )


# ---- the building blocks --------------------------------------------------------------------------------------
def _write_then_raise(path: Path, text: str, error: BaseException) -> NoReturn:
    """Write ``text`` to ``path`` and raise ``error``: a write that fails half way."""
    path.write_text(text)
    raise error


def _sigterm_held_by_deferred_interrupts(finished: list[bool]) -> NoReturn:
    """Send this process SIGTERM inside `deferred_interrupts`; the block runs to its end (appending True to
    ``finished``) and the held-back signal must interrupt right there."""
    with deferred_interrupts():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)  # the handler would run here if the signal were not held back
        finished.append(True)
    pytest.fail("the held-back SIGTERM was not delivered at the end of the block")


def test_atomic_file_appears_only_when_complete(tmp_path: Path) -> None:
    final = tmp_path / "new" / "table.txt"
    with atomic_file(final) as partial:
        assert partial.parent == final.parent and partial.name.startswith("table.txt.partial-")
        partial.write_text("complete")
        assert not final.exists()
    assert final.read_text() == "complete" and partial_outputs(final) == []
    with pytest.raises(RuntimeError), atomic_file(final) as partial:
        _write_then_raise(partial, "half", RuntimeError("failed half way"))
    assert final.read_text() == "complete" and partial_outputs(final) == []  # the earlier file is untouched


def test_atomic_directory_replaces_or_merges_only_on_success(tmp_path: Path) -> None:
    report = tmp_path / "report"
    report.mkdir()
    (report / "metrics.json").write_text("earlier")
    with pytest.raises(RuntimeError), atomic_directory(report) as partial:
        _write_then_raise(partial / "metrics.json", "half", RuntimeError("failed half way"))
    assert [p.name for p in report.iterdir()] == ["metrics.json"] and (report / "metrics.json").read_text() == "earlier"
    assert partial_outputs(report) == []
    with atomic_directory(report) as partial:
        (partial / "index.html").write_text("new")
        assert (report / "metrics.json").read_text() == "earlier"
    assert sorted(p.name for p in report.iterdir()) == ["index.html"]  # replaced as a whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # nothing moved aside is left
    with atomic_directory(report, existing="merge", publish_last=("m.json",)) as partial:
        (partial / "m.safetensors").write_text("weights")
        (partial / "m.json").write_text("card")
    assert sorted(p.name for p in report.iterdir()) == ["index.html", "m.json", "m.safetensors"]


def test_deferred_interrupts_hold_sigterm_until_the_block_ends() -> None:
    finished: list[bool] = []
    with pytest.raises(KeyboardInterrupt), sigterm_as_interrupt():
        _sigterm_held_by_deferred_interrupts(finished)
    assert finished == [True]


def test_mem_table_and_model_writers_keep_the_previous_output_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = _toy_mem_table(tmp_path / "t.npz")
    before = table.read_bytes()

    def fail_half_way(stream: object, **arrays: np.ndarray) -> None:
        stream.write(b"PK\x03\x04 half a zip")  # type: ignore[attr-defined]
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", fail_half_way)
    with pytest.raises(OSError, match="disk full"):
        _toy_mem_table(table, seed=2)
    assert table.read_bytes() == before and len(read_mem_table(table)) == 300 and partial_outputs(table) == []
    monkeypatch.undo()

    from coffea_mlreco.training.model_dir import write_model

    def fail_saving(state: object, path: str) -> None:
        Path(path).write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr("safetensors.torch.save_file", fail_saving)
    with pytest.raises(OSError, match="disk full"):
        write_model(tmp_path / "model", "toy", {}, {"weights": "toy.safetensors"})
    assert not (tmp_path / "model").exists() and partial_outputs(tmp_path / "model") == []


def test_training_cache_is_never_half_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from coffea_mlreco.training.cached_arrays import cached_arrays

    source = tmp_path / "events.root"
    source.write_bytes(b"stands for a ROOT file: only its path, size and time make the cache key")
    monkeypatch.setattr("coffea_mlreco.training.cached_arrays.open_events", lambda path: None)
    built = []

    def build(events: object) -> dict[str, np.ndarray]:
        built.append(True)
        return {"x": np.arange(5.0)}

    def fail_half_way(stream: object, **arrays: np.ndarray) -> None:
        stream.write(b"PK\x03\x04 half a zip")  # type: ignore[attr-defined]
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", fail_half_way)
    with pytest.raises(KeyboardInterrupt):
        cached_arrays(source, tmp_path / "cache", "toy", build)
    monkeypatch.undo()
    monkeypatch.setattr("coffea_mlreco.training.cached_arrays.open_events", lambda path: None)
    assert list((tmp_path / "cache").iterdir()) == []  # no truncated cache to be read next time
    assert cached_arrays(source, tmp_path / "cache", "toy", build)["x"].tolist() == [0, 1, 2, 3, 4]
    assert cached_arrays(source, tmp_path / "cache", "toy", build)["x"].tolist() == [0, 1, 2, 3, 4]
    assert len(built) == 2  # built again after the interruption, then read from the cache


# ---- unwritable output folder: one line, exit status 2, for every command -------------------------------------
@pytest.mark.parametrize("command", ["generate", "mem-weights", "train", "evaluate"])
def test_unwritable_output_folder_is_one_line_and_exit_status_2(
    command: str,
    unwritable_folder: Path,
    tmp_path: Path,
    synthetic_nano: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Refused before any work: simulation, integration, training and processing fail the test if called."""
    output = (
        unwritable_folder
        / {"generate": "sample.root", "mem-weights": "table.npz", "train": "model", "evaluate": "report"}[command]
    )
    argv = {
        "generate": _generate_argv(output),
        "mem-weights": ["mem-weights", str(synthetic_nano), "--output", str(output)],
        "train": [
            "train",
            "mem",
            "--table",
            str(_toy_mem_table(tmp_path / "t.npz")),
            "--output",
            str(output),
            "--name",
            "toy",
            "--epochs",
            "1",
            "--device",
            "cpu",
            "--quiet",
        ],
        "evaluate": ["evaluate", str(synthetic_nano), "--tasks", "met", "--output", str(output), "--device", "cpu"],
    }[command]

    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("work started before the output folder was checked")

    monkeypatch.setattr(GENERATE, "_simulate", no_work)
    monkeypatch.setattr("coffea_mlreco.mem.tables.mem_table_from_files", no_work)
    monkeypatch.setattr("coffea_mlreco.mem.training.train_deepmem", no_work)
    monkeypatch.setattr("coffea_mlreco.evaluation.runner.plan_chunks", no_work)
    capsys.readouterr()
    assert main(argv) == 2
    lines = _error_lines(capsys.readouterr().err)
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"coffea-mlreco {command}") and str(unwritable_folder) in lines[0]
    assert "not writable" in lines[0] and "Traceback" not in lines[0]
    assert not output.exists()


# ---- generate: interrupted, then resumed ----------------------------------------------------------------------
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_interrupted_generate_leaves_a_partial_file_that_resume_completes(
    sig: signal.Signals,
    tmp_path: Path,
    uninterrupted_sample: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    output = tmp_path / "sample.root"

    def two_chunks_written() -> bool:  # into the partial file (or, were it unprotected, into the output)
        return any(
            _entries(path) >= 2 * SAMPLE["chunk_size"] for path in (*partial_outputs(output), output) if path.exists()
        )

    status, _, err = _run_interrupted(_generate_argv(output), two_chunks_written, sig, tmp_path / "logs")
    assert not output.exists()  # nothing under the requested name
    [partial] = partial_outputs(output)
    kept = _entries(partial)
    assert 2 * SAMPLE["chunk_size"] <= kept < SAMPLE["n_events"]
    if sig == signal.SIGTERM:  # stopped cleanly, after whole chunks, saying what it kept
        assert status == 1, err[-3000:]
        [line] = [line for line in _error_lines(err) if line.startswith("coffea-mlreco generate")]
        assert "interrupted" in line and f"({kept} of {SAMPLE['n_events']} events)" in line
        assert partial.name in line and "--resume" in line
        assert kept % SAMPLE["chunk_size"] == 0
    else:
        assert status == -signal.SIGKILL

    simulated: list[int] = []
    simulate = GENERATE._simulate
    monkeypatch.setattr(GENERATE, "_simulate", lambda spec: simulated.append(spec.index) or simulate(spec))
    capsys.readouterr()
    assert main(_generate_argv(output, "--resume")) == 0
    notes = capsys.readouterr().err
    _same_events(output, uninterrupted_sample)
    if sig == signal.SIGTERM:  # only the chunks the partial file lacked were simulated
        assert f"{kept} of {SAMPLE['n_events']} events written" in notes
        assert simulated == list(range(kept // SAMPLE["chunk_size"], N_CHUNKS)), notes
    else:  # a SIGKILL may land inside a chunk's write: whatever could be read back was used, the rest simulated
        assert simulated == list(range(N_CHUNKS - len(simulated), N_CHUNKS)), notes
    assert partial_outputs(output) == []  # the partial file is gone once the sample is complete


def test_resume_without_a_partial_file_starts_from_the_first_event(
    tmp_path: Path, uninterrupted_sample: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "sample.root"
    (tmp_path / "sample.root.partial-0badf11e").write_bytes(b"not a ROOT file")  # killed before it was readable
    assert main(_generate_argv(output, "--resume")) == 0
    assert "starting from the first event" in capsys.readouterr().err
    _same_events(output, uninterrupted_sample)
    assert partial_outputs(output) == []


# ---- evaluate: interrupted --------------------------------------------------------------------------------------
def _earlier_report(folder: Path) -> dict[str, bytes]:
    folder.mkdir()
    (folder / "metrics.json").write_text(json.dumps({"meta": {"events": 7}}))
    (folder / "index.html").write_text("<p>the earlier report</p>")
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_interrupted_evaluate_leaves_no_report(sig: signal.Signals, tmp_path: Path, synthetic_nano: Path) -> None:
    """SIGTERM with an earlier report at the destination (kept as it was), SIGKILL without one (still absent).
    One event per chunk makes the run long enough (400 chunks) to be interrupted while it processes."""
    report = tmp_path / "report"
    earlier = _earlier_report(report) if sig == signal.SIGTERM else None
    argv = [
        "evaluate",
        str(synthetic_nano),
        "--tasks",
        "met",
        "--chunksize",
        "1",
        "--device",
        "cpu",
        "--output",
        str(report),
    ]
    status, _, err = _run_interrupted(argv, lambda: bool(partial_outputs(report)), sig, tmp_path / "logs")
    if sig == signal.SIGTERM:
        assert status == 1, err[-3000:]
        [line] = [line for line in _error_lines(err) if line.startswith("coffea-mlreco evaluate")]
        assert "interrupted" in line and "as it was" in line
        assert _files(report) == earlier
        assert partial_outputs(report) == []  # the temporary folder was removed
    else:
        assert status == -signal.SIGKILL
        assert not report.exists()
        assert partial_outputs(report)  # what was written stays under the .partial- name only
    assert sorted(
        p.name for p in tmp_path.iterdir() if p.name.startswith("report") and not p.name.startswith("report.partial-")
    ) == (["report"] if earlier else [])


def test_evaluate_replaces_only_an_earlier_report_and_only_when_complete(
    tmp_path: Path, write_nano: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    events = write_nano(tmp_path / "small.root", 60, with_pfcands=False)
    report = tmp_path / "report"
    _earlier_report(report)
    assert main(["evaluate", str(events), "--tasks", "met", "--device", "cpu", "--output", str(report)]) == 0
    assert json.loads((report / "metrics.json").read_text())["meta"]["events"] == 60
    assert "earlier" not in (report / "index.html").read_text() and is_report_folder(report)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report", "small.root"]  # nothing left aside
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "plan.txt").write_text("mine")
    capsys.readouterr()
    assert main(["evaluate", str(events), "--tasks", "met", "--device", "cpu", "--output", str(notes)]) == 2
    [line] = _error_lines(capsys.readouterr().err)
    assert "plan.txt" in line and "not an evaluation report" in line
    assert _files(notes) == {"plan.txt": b"mine"} and partial_outputs(notes) == []


# ---- train: interrupted -----------------------------------------------------------------------------------------
def test_interrupted_train_leaves_no_model_directory(tmp_path: Path) -> None:
    table = _toy_mem_table(tmp_path / "t.npz")
    model = tmp_path / "models" / "toy"
    argv = [
        "train",
        "mem",
        "--table",
        str(table),
        "--output",
        str(model),
        "--name",
        "toy",
        "--epochs",
        "100000",
        "--patience",
        "100000",
        "--hidden",
        "8",
        "--blocks",
        "1",
        "--batch-size",
        "64",
        "--device",
        "cpu",
    ]
    stdout = tmp_path / "logs" / "stdout.txt"

    def training() -> bool:
        return stdout.exists() and "epoch 2/" in stdout.read_text()

    status, _, err = _run_interrupted(argv, training, signal.SIGTERM, tmp_path / "logs")
    assert status == 1, err[-3000:]
    lines = [line for line in _error_lines(err) if line.startswith("coffea-mlreco train")]
    assert len(lines) == 1, err[-3000:]
    [line] = lines
    assert "interrupted" in line and "no model directory" in line
    assert not model.exists() and partial_outputs(model) == []


def test_interrupted_is_a_keyboard_interrupt_naming_what_was_kept(tmp_path: Path) -> None:
    with pytest.raises(Interrupted) as caught, atomic_file(tmp_path / "f.root", keep_on_interrupt=True) as partial:
        _write_then_raise(partial, "two chunks", KeyboardInterrupt())
    assert caught.value.kept == partial and partial.read_text() == "two chunks" and str(partial) in str(caught.value)
    assert not (tmp_path / "f.root").exists()
    with pytest.raises(OutputError, match="is a folder"):
        atomic_file(tmp_path).__enter__()
