"""Fault campaign: inputs ``coffea-mlreco evaluate`` cannot use, and inputs with nothing in them.

Protection under test: the up-front checks of :mod:`coffea_mlreco.evaluation.inputs` and the task selection of
:mod:`coffea_mlreco.evaluation.tasks`. A truncated ROOT file, a text file, random bytes, a directory, a missing
file, an RNTuple given to ``--executor dask-awkward`` (where coffea's dask reader cannot read it), a file without
``luminosityBlock`` and a file without MET each end the run before anything is processed with exactly one line
on stderr naming the file (and the branch), exit status 2, no traceback, and nothing written (no report folder, no
temporary one). Empty inputs are no fault: a file of 0 events, an empty chunk (a 0-event file next to a good one)
and a selection that keeps no event each give a complete report (exit 0).

``coffea_mlreco.cli.main`` runs in-process; its stderr is captured with ``capsys``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import uproot

from coffea_mlreco.cli import main
from coffea_mlreco.evaluation import runner
from coffea_mlreco.simulation import generate_sample

pytestmark = pytest.mark.filterwarnings("ignore:Missing cross-reference:RuntimeWarning")

EXIT_BAD_INPUT = 2
GOOD_EVENTS = 20
"""Events of the synthetic file the bad files are made from."""
MET_BRANCHES = {
    "run": np.uint32,
    "luminosityBlock": np.uint32,
    "event": np.uint64,
    "MET_pt": np.float32,
    "MET_phi": np.float32,
    "GenMET_pt": np.float32,
    "GenMET_phi": np.float32,
}
"""The branches (and types) of a NanoAOD file the ``met`` task can run on, without PF candidates."""
RNTUPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "nano_dy_rntuple.root"
"""The real Drell-Yan NanoAOD events stored as an RNTuple (present in the development checkout only)."""


@pytest.fixture
def rntuple_file() -> Path:
    """The RNTuple NanoAOD file; the test is skipped when it is absent."""
    if not RNTUPLE.is_file():
        pytest.skip(f"RNTuple NanoAOD test file {RNTUPLE} is absent (only present in the development checkout)")
    return RNTUPLE


def _truncated(tmp_path: Path, write_nano: Callable[..., Path]) -> Path:
    """A good file cut to its first half: what an interrupted write or copy leaves."""
    good = write_nano(tmp_path / "whole.root", GOOD_EVENTS).read_bytes()
    path = tmp_path / "truncated.root"
    path.write_bytes(good[: len(good) // 2])
    return path


def _random_bytes(tmp_path: Path, signature: bytes = b"") -> Path:
    path = tmp_path / ("garbled.root" if signature else "random.root")
    path.write_bytes(signature + np.random.default_rng(7).bytes(4096))
    return path


def _text(tmp_path: Path) -> Path:
    path = tmp_path / "notes.root"
    path.write_text("run,event,MET_pt\n1,1,20.5\n")
    return path


def _directory(tmp_path: Path) -> Path:
    path = tmp_path / "sample.root"
    path.mkdir()
    return path


BAD_INPUTS: dict[str, tuple[Callable[[Path, Callable[..., Path]], Path], list[str], str]] = {
    # kind: (make the file, extra arguments, what the one line says besides the file name)
    "truncated": (_truncated, [], "truncated"),
    "text": (lambda tmp, _: _text(tmp), [], "not a ROOT file"),
    "random_bytes": (lambda tmp, _: _random_bytes(tmp), [], "not a ROOT file"),
    "garbage_after_signature": (lambda tmp, _: _random_bytes(tmp, b"root"), [], "ROOT"),
    "directory": (lambda tmp, _: _directory(tmp), [], "is a directory"),
    "missing": (lambda tmp, _: tmp / "never_written.root", [], "no such file"),
    "no_luminosity_block": (
        lambda tmp, write: write(tmp / "nolumi.root", GOOD_EVENTS, drop=("luminosityBlock",)),
        [],
        "'luminosityBlock'",
    ),
    "no_met_default_tasks": (lambda tmp, write: write(tmp / "nomet.root", GOOD_EVENTS, drop=("MET",)), [], "'MET_pt'"),
    "no_met_task_met": (
        lambda tmp, write: write(tmp / "nomet.root", GOOD_EVENTS, drop=("MET",)),
        ["--tasks", "met"],
        "'MET_pt'",
    ),
}


def assert_one_line_refusal(status: int, err: str, path: Path, expected: str, report: Path) -> None:
    """Exit status 2, exactly one stderr line naming the file and saying ``expected``, no traceback, and nothing
    written: neither the report folder nor a temporary one beside it (``report.partial-...``)."""
    lines = err.strip().splitlines()
    assert status == EXIT_BAD_INPUT, err
    assert len(lines) == 1, err
    assert path.name in lines[0] and expected in lines[0], lines[0]
    assert "Traceback" not in err
    assert not [entry.name for entry in report.parent.iterdir() if entry.name.startswith(report.name)]


@pytest.mark.parametrize("kind", list(BAD_INPUTS))
def test_bad_input_is_one_clear_line_and_exit_2(
    kind: str, tmp_path: Path, write_nano: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    make, extra, expected = BAD_INPUTS[kind]
    path = make(tmp_path, write_nano)
    report = tmp_path / "report"
    status = main(["evaluate", str(path), *extra, "--output", str(report)])
    assert_one_line_refusal(status, capsys.readouterr().err, path, expected, report)


def test_bad_file_after_a_good_one_is_named(
    tmp_path: Path, write_nano: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    good = write_nano(tmp_path / "good.root", GOOD_EVENTS)
    bad = _truncated(tmp_path, write_nano)
    report = tmp_path / "report"
    status = main(["evaluate", str(good), str(bad), "--tasks", "met", "--output", str(report)])
    assert_one_line_refusal(status, capsys.readouterr().err, bad, "truncated", report)


def test_rntuple_with_dask_awkward_is_refused_with_one_line(
    rntuple_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """RNTuple NanoAOD runs with the Runner's executors; dask-awkward, where coffea's dask reader cannot read it
    (coffea 2026.9 with uproot 5.7), is refused before any cluster starts, naming the executors that work."""
    if runner.dask_awkward_rntuple_problem(str(rntuple_file)) is None:
        pytest.skip("the installed coffea and uproot read RNTuple with dask-awkward: nothing to refuse")
    report = tmp_path / "report"
    status = main(["evaluate", str(rntuple_file), "--executor", "dask-awkward", "--output", str(report)])
    err = capsys.readouterr().err
    assert_one_line_refusal(status, err, rntuple_file, "--executor dask-awkward cannot read RNTuple", report)
    assert "use --executor iterative, futures or dask" in err


def write_empty_met_file(path: Path) -> Path:
    """A NanoAOD-like file whose ``Events`` tree has the ``met`` task's branches and 0 entries."""
    with uproot.recreate(path) as f:
        f.mktree("Events", MET_BRANCHES)
    return path


def _evaluate(argv: list[str], report: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """Run ``evaluate argv --output report``; assert exit 0, no traceback and a complete report; its metrics."""
    status = main(["evaluate", *argv, "--device", "cpu", "--output", str(report)])
    err = capsys.readouterr().err
    assert status == 0, err
    assert "Traceback" not in err
    assert {"index.html", "metrics.json", "histograms.root", "histograms.pkl"} <= {p.name for p in report.iterdir()}
    return json.loads((report / "metrics.json").read_text())


def test_file_of_zero_events_gives_a_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = write_empty_met_file(tmp_path / "empty.root")
    metrics = _evaluate([str(empty), "--tasks", "met"], tmp_path / "report", capsys)
    assert metrics["meta"]["events"] == 0 and metrics["meta"]["invalid_events"] == {"met": 0}
    assert metrics["met"] == {}  # no method saw an event: no metrics, not NaN


def test_empty_chunk_gives_the_report_of_the_other_chunks(
    tmp_path: Path, write_nano: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """A 0-event file next to a good one: the planned chunks include an empty one, processed like the others."""
    good = write_nano(tmp_path / "good.root", GOOD_EVENTS)
    empty = write_empty_met_file(tmp_path / "empty.root")
    with runner.executor_session("iterative", status=False) as executor:
        planned = runner.plan_chunks([str(good), str(empty)], executor, 8)
    assert [len(chunk) for chunk in planned if chunk.filename == str(empty)] == [0]
    metrics = _evaluate([str(good), str(empty), "--tasks", "met", "--chunksize", "8"], tmp_path / "report", capsys)
    assert metrics["meta"]["events"] == GOOD_EVENTS
    assert metrics["met"]["pf"]["n"] == GOOD_EVENTS


def test_selection_that_keeps_nothing_gives_a_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Semileptonic tt̄ selection (one lepton, ≥ 4 jets) on Drell-Yan → ℓℓ events, with ``--max-events``: every
    chunk reaches the assignment with no selected event."""
    drell_yan = generate_sample("dy-ll", GOOD_EVENTS, 0, seed=3, output=tmp_path / "dy.root", progress=False)
    report = tmp_path / "report"
    metrics = _evaluate([str(drell_yan), "--tasks", "ttbar", "--chunksize", "6", "--max-events", "15"], report, capsys)
    assert metrics["meta"]["events"] == 15
    assert metrics["ttbar"] == {}  # no method processed a selected event: no efficiencies, not NaN
    assert "0 events selected" in (report / "index.html").read_text()
