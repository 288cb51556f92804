"""``coffea-mlreco evaluate --executor dask-awkward``: the same report as the Runner, invalid events counted, and
only transient I/O errors retried.

The evaluations run on the session's 2-worker cluster (``--scheduler``) and share one module-scoped set of
reports: the generated file with ``--executor iterative`` and ``dask-awkward``, and a copy of it in which one PF
candidate's p_T is NaN with ``dask-awkward``.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import awkward as ak
import dask
import numpy as np
import pytest
import uproot

from coffea_mlreco.cli import main
from coffea_mlreco.evaluation import runner

pytestmark = pytest.mark.filterwarnings("ignore:Missing cross-reference:RuntimeWarning")

NAN_EVENT = 11
"""The event (of the first chunk) whose first PF candidate gets p_T = NaN."""
RECONSTRUCTED = ("pf", "puppi", "deepmet", "perceiver")
COMMON = ["--tasks", "met", "--chunksize", "60", "--max-events", "150", "--device", "cpu"]
"""200-event file: the Runner's chunks of 67 events, cut to 150 events (67 + 67 + 16)."""


def write_with_nan_pt(source: Path, target: Path, event: int, candidate: int = 0) -> Path:
    """Copy ``source``'s ``Events`` tree to ``target`` with ``PFCands_pt`` of one candidate set to NaN."""
    with uproot.open(source) as f:
        arrays = f["Events"].arrays()
    names = set(arrays.fields)
    prefixes = {name.partition("_")[0] for name in names if "_" in name}
    collections: dict[str, dict[str, ak.Array]] = {}
    branches: dict[str, Any] = {}
    for name in arrays.fields:
        prefix, _, field = name.partition("_")
        if field and f"n{prefix}" in names:
            collections.setdefault(prefix, {})[field] = arrays[name]
        elif not (name.startswith("n") and name[1:] in prefixes):  # counters are rewritten by uproot
            branches[name] = arrays[name]
    pt = collections["PFCands"]["pt"]
    counts = ak.to_numpy(ak.num(pt))
    assert counts[event] > candidate
    flat = ak.to_numpy(ak.flatten(pt)).copy()
    flat[int(counts[:event].sum()) + candidate] = np.nan
    collections["PFCands"]["pt"] = ak.unflatten(flat, counts)
    branches.update({prefix: ak.zip(fields) for prefix, fields in collections.items()})
    with uproot.recreate(target) as f:
        f.mktree("Events", branches)
    return target


@pytest.fixture(scope="module")
def reports(generated_nano: Path, dask_client: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Report directories: ``iterative`` and ``dask-awkward`` of the generated file, ``nan`` (dask-awkward) of its
    copy with one NaN candidate p_T."""
    work = tmp_path_factory.mktemp("evaluate_dask")
    nan_file = write_with_nan_pt(generated_nano, work / "dy_nan.root", NAN_EVENT)
    address = dask_client.scheduler.address
    runs = {
        "iterative": [str(generated_nano), "--executor", "iterative"],
        "dask-awkward": [str(generated_nano), "--executor", "dask-awkward", "--scheduler", address],
        "nan": [str(nan_file), "--executor", "dask-awkward", "--scheduler", address],
    }
    out = {}
    for name, argv in runs.items():
        out[name] = work / name
        assert main(["evaluate", *argv, *COMMON, "--output", str(out[name])]) == 0, name
    return out


def _metrics(outdir: Path) -> dict[str, Any]:
    return json.loads((outdir / "metrics.json").read_text())


def _histograms(outdir: Path) -> dict[str, Any]:
    with (outdir / "histograms.pkl").open("rb") as stream:
        return pickle.load(stream)


def test_dask_awkward_metrics_equal_the_runner(reports: dict[str, Path]) -> None:
    runner_metrics, dask_metrics = _metrics(reports["iterative"]), _metrics(reports["dask-awkward"])
    assert dask_metrics["meta"]["executor"] == "dask-awkward" and runner_metrics["meta"]["executor"] == "iterative"
    assert runner_metrics["meta"]["events"] == dask_metrics["meta"]["events"] == 150
    assert runner_metrics["meta"]["invalid_events"] == dask_metrics["meta"]["invalid_events"] == {"met": 0}
    assert set(dask_metrics["met"]) == set(RECONSTRUCTED)
    assert dask_metrics["met"] == runner_metrics["met"]
    assert all(m["n"] == 150 for m in dask_metrics["met"].values())
    assert dask_metrics["throughput"] == {}  # a graph has no per-method timing
    h_runner, h_dask = _histograms(reports["iterative"]), _histograms(reports["dask-awkward"])
    assert set(h_runner) == set(h_dask)
    for name, h in h_runner.items():
        np.testing.assert_array_equal(h.view(flow=True), h_dask[name].view(flow=True), err_msg=name)
    page = (reports["dask-awkward"] / "index.html").read_text()
    assert "dask-awkward" in page and "met: 0" in page


def test_nan_candidate_is_one_invalid_event_and_leaves_the_others_unchanged(reports: dict[str, Path]) -> None:
    nan = _metrics(reports["nan"])
    assert nan["meta"]["invalid_events"] == {"met": 1}
    assert "Invalid events" in (reports["nan"] / "index.html").read_text()
    assert all(nan["met"][m]["n"] == 149 for m in RECONSTRUCTED)
    clean, dirty = _histograms(reports["dask-awkward"]), _histograms(reports["nan"])
    for name in ("met/upar", "met/uperp", "met/dpx", "met/dpy", "met/reco_vs_gen"):
        for method in RECONSTRUCTED:
            missing = clean[name][{"method": method}].view(flow=True) - dirty[name][{"method": method}].view(flow=True)
            # exactly the invalid event is left out; every other event fills the same bin as in the clean file
            assert missing.sum() == 1 and missing.min() == 0, (name, method)
        file_met = clean[name][{"method": "file_met"}].view(flow=True)
        np.testing.assert_array_equal(file_met, dirty[name][{"method": "file_met"}].view(flow=True))
    # the response sums are exact (weights on a 2^-10 GeV grid): all gen-MET bins but the invalid event's agree
    for method in RECONSTRUCTED:
        diff = clean["met/response"][{"method": method}].view(flow=True) - dirty["met/response"][
            {"method": method}
        ].view(flow=True)
        assert np.count_nonzero(np.any(diff != 0, axis=1)) == 1, method


def _attempts(path: Path) -> int:
    return len(path.read_text()) if path.exists() else 0


def _flaky(log: str, failures: int, error: str) -> int:
    """Count the attempt in ``log``; raise ``error`` (OSError or ValueError) for the first ``failures`` ones."""
    path = Path(log)
    with path.open("a") as stream:
        stream.write("x")
    if _attempts(path) <= failures:
        raise {"OSError": OSError, "ValueError": ValueError}[error](f"attempt {_attempts(path)} failed")
    return _attempts(path)


def test_transient_errors_are_retried_on_the_cluster(
    tmp_path: Path, dask_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "TRANSIENT_RETRY_DELAY_S", 0.0)
    log = tmp_path / "transient.log"
    with pytest.warns(runner.TransientErrorRetry):
        result = runner.compute_on_client(dask_client, {"value": dask.delayed(_flaky)(str(log), 2, "OSError")})
    assert result == {"value": 3} and _attempts(log) == 3


def test_deterministic_errors_fail_at_once_on_the_cluster(
    tmp_path: Path, dask_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "TRANSIENT_RETRY_DELAY_S", 0.0)
    log = tmp_path / "deterministic.log"
    with pytest.raises(ValueError, match="attempt 1 failed"):
        runner.compute_on_client(dask_client, [dask.delayed(_flaky)(str(log), 5, "ValueError")])
    assert _attempts(log) == 1
    # a transient error that outlasts the retries is raised after TRANSIENT_RETRIES + 1 attempts
    log = tmp_path / "persistent.log"
    with pytest.warns(runner.TransientErrorRetry), pytest.raises(OSError, match="attempt 4 failed"):
        runner.compute_on_client(dask_client, [dask.delayed(_flaky)(str(log), 99, "OSError")])
    assert _attempts(log) == runner.TRANSIENT_RETRIES + 1
