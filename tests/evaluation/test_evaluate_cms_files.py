"""``coffea-mlreco evaluate FILE`` on every real CMS file of ../shared/data: a report with each task the file
supports, no traceback, MLPF refused in one line, and CMS's own MET columns compared where the file has them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coffea_mlreco.cli import main

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"

EXPECTED = {
    # file: (sample, tasks with a metrics.json entry, CMS MET columns compared)
    "nano_dy.root": ("simulation", {"met", "ttbar", "ditau", "mem"}, {"file_met", "cms_raw_pf", "cms_puppi"}),
    "nano_tt_v12.root": (
        "simulation",
        {"met", "ttbar", "mem"},
        {"file_met", "cms_raw_pf", "cms_puppi", "cms_raw_puppi", "cms_deepmet_resolution", "cms_deepmet_response"},
    ),
    "nano_tt_v15.root": (
        "simulation",
        {"met", "ttbar", "ditau", "mem"},
        {"file_met", "cms_raw_pf", "cms_puppi", "cms_raw_puppi", "cms_deepmet_resolution", "cms_deepmet_response"},
    ),
    "nano_dy_rntuple.root": ("simulation", {"met", "ttbar", "ditau", "mem"}, {"file_met", "cms_raw_pf", "cms_puppi"}),
    "nano_dimuon.root": ("collision data", {"met", "ttbar", "ditau", "mem"}, {"file_met", "cms_raw_pf", "cms_puppi"}),
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_every_shared_file_gives_a_report(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = SHARED / name
    if not path.is_file():
        pytest.skip(f"real NanoAOD test file {path} is absent (only present in the development checkout)")
    sample, tasks, references = EXPECTED[name]
    assert main(["evaluate", str(path), "--output", str(tmp_path / "report"), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "skipping task 'mlpf'" in err and "detector elements" in err  # refused in one line, saying why
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert metrics["meta"]["sample"] == sample
    assert tasks <= set(metrics) and "mlpf" not in metrics
    assert set(metrics["met_references"]) == references
    assert metrics["met"] == {}  # no PF candidates in CMS NanoAOD: none of our MET methods runs
    if sample == "simulation":  # CMS's columns against GenMET
        assert all(r["n"] == metrics["meta"]["events"] for r in metrics["met_references"].values())
        assert all("resolution_upar" in r for r in metrics["met_references"].values())
