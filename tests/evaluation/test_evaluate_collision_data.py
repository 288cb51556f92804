"""``coffea-mlreco evaluate`` on collision data: real 2018 CMS data (``nano_dimuon.root``) and a generated sample
copied without its generator branches. Every task the file supports runs (none is skipped for lack of truth),
each section is marked as data and shows distributions, and metrics.json holds no truth metric."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from coffea_mlreco.cli import main

TRUTH_KEYS = {"bias_upar", "resolution_upar", "event_efficiency", "resolution", "auc", "auc_h_vs_z"}


def _evaluate(files: list[Path], out: Path, capsys: pytest.CaptureFixture[str]) -> tuple[dict[str, Any], str, str]:
    """(metrics.json, index.html, stderr) of ``evaluate FILES --output out``, which must succeed."""
    code = main(["evaluate", *map(str, files), "--output", str(out), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "Traceback" not in err
    return json.loads((out / "metrics.json").read_text()), (out / "index.html").read_text(encoding="utf-8"), err


def _truth_keys(entry: dict[str, Any]) -> set[str]:
    return {key for summary in entry.values() for key in summary if key in TRUTH_KEYS}


def test_real_collision_data(real_nano_dimuon: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    metrics, page, err = _evaluate([real_nano_dimuon], tmp_path / "report", capsys)
    assert metrics["meta"]["sample"] == "collision data"
    assert {"met", "ttbar", "ditau", "mem"} <= set(metrics)  # no task skipped for lack of truth
    assert "skipping task 'met'" not in err and "skipping task 'mlpf'" in err  # MLPF: no detector elements
    # no PF candidates in CMS NanoAOD: none of our MET methods, CMS's MET columns as distributions
    assert metrics["met"] == {}
    references = metrics["met_references"]
    assert set(references) == {"file_met", "cms_raw_pf", "cms_puppi"}
    assert all(r["n"] == 40 and r["distributions"]["met_pt"]["n"] == 40 for r in references.values())
    assert references["file_met"]["distributions"]["met_significance"]["n"] == 40
    for task in ("met_references", "ttbar", "ditau", "mem"):
        assert not _truth_keys(metrics[task]), task
    assert page.count("Collision data") >= 4  # every section says so
    assert "Bias u∥" not in page


def test_generated_sample_as_collision_data(
    generated_nano: Path,
    as_collision_data: Callable[[Path, Path], Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Our Drell-Yan sample without generator branches: our four MET reconstructions run and show distributions."""
    data = as_collision_data(generated_nano, tmp_path / "dy_data.root")
    metrics, page, _ = _evaluate([data], tmp_path / "report", capsys)
    assert metrics["meta"]["sample"] == "collision data"
    assert set(metrics["met"]) == {"pf", "puppi", "deepmet", "perceiver"}
    for summary in metrics["met"].values():
        assert summary["n"] == 200 and set(summary["distributions"]) == {"met_pt", "met_phi"}
    for task in ("met", "ttbar", "ditau", "mem"):
        assert task in metrics and not _truth_keys(metrics[task]), task
    assert metrics["mem"]["network"]["n"] > 0  # Drell-Yan dileptons are selected
    assert "met/pf" in metrics["throughput"]
    assert page.count("Collision data") >= 4
