"""RNTuple NanoAOD: ``nano_dy_rntuple.root`` (the 40 Drell-Yan events of ``nano_dy.root`` stored as an RNTuple)
gives the branch list, the ``reconstruct`` columns and the ``evaluate`` report (metrics.json and histograms) of
the TTree file.

Paths that read RNTuple here: ``check_input_file`` (fields under their NanoAOD flat names), NanoEvents in eager
and virtual mode, ``processor.Runner`` with every executor (the processors, ``evaluate``). dask-awkward reads it
only where coffea's dask reader can (:func:`coffea_mlreco.evaluation.runner.dask_awkward_rntuple_problem`: not
with coffea 2026.9 and uproot 5.7); the tests check that the probe predicts what dask mode does.
"""

from __future__ import annotations

import importlib
import json
import math
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import uproot
from column_modes import assert_same_columns, columns_in_mode, open_events

from coffea_mlreco import met
from coffea_mlreco.cli import main
from coffea_mlreco.core import MissingBranchError
from coffea_mlreco.evaluation.inputs import InputError, check_input_file, first_missing_branch
from coffea_mlreco.evaluation.report import metrics_leaves
from coffea_mlreco.evaluation.runner import dask_awkward_rntuple_problem

pytestmark = pytest.mark.filterwarnings("ignore:Missing cross-reference:RuntimeWarning")

COLUMNS = {"ttbar": "TTbarReco", "ditau": "DiTauReco", "mem": "MEMReco"}
"""The tasks whose ``reconstruct`` runs on ``nano_dy`` (no PF candidates: ``met`` names the missing branch; no
detector elements: ``mlpf`` is not run) and the column each appends."""
TIMINGS = {("meta", "seconds"), ("meta", "files"), ("throughput",)}
"""metrics.json paths (prefixes) allowed to differ between the two reports: timings and the file names."""


@pytest.fixture(scope="module")
def real_nano_dy_rntuple(real_nano_dy: Path) -> Path:
    """``nano_dy_rntuple.root`` beside ``nano_dy.root`` in ../shared/data; skipped when absent."""
    path = real_nano_dy.with_name("nano_dy_rntuple.root")
    if not path.is_file():
        pytest.skip(f"real RNTuple NanoAOD test file {path} is absent (only present in the development checkout)")
    return path


def reconstruct_task(task: str) -> Callable[[Any], Any]:
    """``coffea_mlreco.<task>.reconstruct`` on the CPU with its defaults (MEM: every event integrated)."""
    module = importlib.import_module(f"coffea_mlreco.{task}")
    options: dict[str, Any] = {"max_integrated_events": None} if task == "mem" else {}
    return lambda events: module.reconstruct(events, device="cpu", **options)


def test_branch_list_is_the_ttree_s(real_nano_dy: Path, real_nano_dy_rntuple: Path) -> None:
    ttree, ntuple = check_input_file(real_nano_dy), check_input_file(real_nano_dy_rntuple)
    assert (ttree.rntuple, ntuple.rntuple) == (False, True)
    assert ntuple.num_entries == ttree.num_entries == 40
    assert ntuple.branches == ttree.branches  # NanoAOD flat names, no importer "_collectionN" fields
    assert {"Muon_pt", "nMuon", "MET_pt", "GenPart_pdgId"} <= ntuple.branches
    assert first_missing_branch([ntuple], ["Muon_pt", "PFCands_pt"]) == (ntuple.path, "PFCands_pt")


def test_events_neither_ttree_nor_rntuple_is_named(tmp_path: Path) -> None:
    path = tmp_path / "histogram.root"
    with uproot.recreate(path) as f:
        f["Events"] = np.histogram(np.arange(10.0), bins=5)
    with pytest.raises(InputError, match=r"'Events' is a TH1D, not a TTree or an RNTuple"):
        check_input_file(path)


@pytest.mark.parametrize("mode", ["eager", "virtual"])
@pytest.mark.parametrize("task", list(COLUMNS))
def test_reconstruct_gives_the_ttree_columns(
    real_nano_dy: Path, real_nano_dy_rntuple: Path, task: str, mode: str
) -> None:
    reconstruct = reconstruct_task(task)
    expected = columns_in_mode(reconstruct, real_nano_dy, "eager", [COLUMNS[task]])
    assert_same_columns(columns_in_mode(reconstruct, real_nano_dy_rntuple, mode, [COLUMNS[task]]), expected)


def test_met_names_the_same_missing_branch(real_nano_dy_rntuple: Path) -> None:
    events = open_events(real_nano_dy_rntuple, "eager")
    assert met.supported_methods(events) == ()
    with pytest.raises(MissingBranchError, match="PFCands_pt"):
        met.reconstruct(events)


def test_dask_mode_is_as_the_probe_says(real_nano_dy: Path, real_nano_dy_rntuple: Path) -> None:
    """Where :func:`dask_awkward_rntuple_problem` finds a problem, coffea's dask reader fails on the RNTuple (and
    ``evaluate --executor dask-awkward`` is refused up front); where it finds none, dask mode gives the columns."""
    reconstruct = reconstruct_task("ttbar")
    problem = dask_awkward_rntuple_problem(str(real_nano_dy_rntuple))
    if problem is None:
        expected = columns_in_mode(reconstruct, real_nano_dy, "eager", ["TTbarReco"])
        assert_same_columns(columns_in_mode(reconstruct, real_nano_dy_rntuple, "dask", ["TTbarReco"]), expected)
    else:
        assert "'title'" in problem
        with pytest.raises(AttributeError, match="title"):
            columns_in_mode(reconstruct, real_nano_dy_rntuple, "dask", ["TTbarReco"])
    assert dask_awkward_rntuple_problem(str(real_nano_dy)) is None


def _physics(report: Path) -> dict[tuple[str, ...], Any]:
    """metrics.json's scalars without timings and file names; NaN as the string ``"nan"`` (NaN equals NaN)."""
    values = metrics_leaves(json.loads((report / "metrics.json").read_text()))
    return {
        path: "nan" if isinstance(value, float) and math.isnan(value) else value
        for path, value in values.items()
        if not any(path[: len(prefix)] == prefix for prefix in TIMINGS)
    }


def assert_same_histograms(actual: Path, expected: Path) -> None:
    """histograms.pkl of two reports of one file each: the same histograms, axes (but the ``dataset`` category,
    named by the file), counts and variances (with flow bins)."""
    left = pickle.loads((actual / "histograms.pkl").read_bytes())
    right = pickle.loads((expected / "histograms.pkl").read_bytes())
    assert sorted(left) == sorted(right)
    for name, histogram in right.items():
        assert [len(axis) if axis.name == "dataset" else axis for axis in left[name].axes] == [
            len(axis) if axis.name == "dataset" else axis for axis in histogram.axes
        ], name
        np.testing.assert_array_equal(left[name].values(flow=True), histogram.values(flow=True), err_msg=name)
        variances = histogram.variances(flow=True)
        if variances is not None:
            np.testing.assert_array_equal(left[name].variances(flow=True), variances, err_msg=name)


@pytest.fixture(scope="module")
def ttree_report(real_nano_dy: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``evaluate`` on the TTree file, 15-event chunks (several chunks, the last one short)."""
    out = tmp_path_factory.mktemp("ttree") / "report"
    assert main(["evaluate", str(real_nano_dy), "--chunksize", "15", "--device", "cpu", "--output", str(out)]) == 0
    return out


def test_evaluate_gives_the_ttree_report(real_nano_dy_rntuple: Path, ttree_report: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    argv = ["evaluate", str(real_nano_dy_rntuple), "--chunksize", "15", "--device", "cpu", "--output", str(out)]
    assert main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"meta", "met", "met_references", "ttbar", "ditau", "mem", "throughput"}  # every task
    assert metrics["meta"]["files"] == [str(real_nano_dy_rntuple)]
    assert _physics(out) == _physics(ttree_report)
    assert_same_histograms(out, ttree_report)


def test_evaluate_with_futures_gives_the_ttree_metrics(
    real_nano_dy_rntuple: Path, ttree_report: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report"
    argv = ["evaluate", str(real_nano_dy_rntuple), "--tasks", "ditau", "--executor", "futures", "--workers", "2"]
    assert main([*argv, "--chunksize", "15", "--device", "cpu", "--output", str(out)]) == 0
    physics, expected = _physics(out), _physics(ttree_report)
    assert {p: v for p, v in physics.items() if p[0] == "ditau"} == {
        p: v for p, v in expected.items() if p[0] == "ditau"
    }
