"""The example notebooks run from top to bottom (as a user runs them in Jupyter or on binder) and show the physics
they claim."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_notebook(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Execute ``examples/<name>`` in ``tmp_path`` (simulation cache there unless set); returns its text output."""
    source = EXAMPLES / name
    if not source.exists():
        pytest.skip("examples/ is not part of this checkout")
    shutil.copy(source, tmp_path / source.name)
    notebook = nbformat.read(tmp_path / source.name, as_version=4)
    if "COFFEA_MLRECO_CACHE" not in os.environ:
        monkeypatch.setenv("COFFEA_MLRECO_CACHE", str(tmp_path / "cache"))
    NotebookClient(
        notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    return "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_quickstart_notebook_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = run_notebook("quickstart.ipynb", tmp_path, monkeypatch)
    assert (tmp_path / "quickstart_upar.png").stat().st_size > 10_000
    assert "pf        upar   bias" in text
    assert "perceiver upar   bias" in text  # the quick start shows a machine-learned MET too


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_analysis_notebook_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default sample's tt̄ in dask mode through apply_to_fileset on a local cluster, MET and tt̄ columns from
    coffea_mlreco.reconstruct, and the physics it shows."""
    text = run_notebook("analysis.ipynb", tmp_path, monkeypatch)
    assert (tmp_path / "analysis_mtop_met.png").stat().st_size > 10_000
    assert "1000 events" in text
    read = re.search(r"branches the analysis reads: \[(.*)\]", text)
    assert read is not None
    branches = {name.strip("' ") for name in read.group(1).split(",")}
    assert {"PFCands_pt", "PV_npvsGood", "Jet_pt", "Jet_btagDeepFlavB", "GenMET_pt"} <= branches
    assert not any(b.startswith(("GenPart", "Tau", "Photon", "FatJet")) for b in branches)  # nothing else is read
    sigma = {m: float(v) for m, v in re.findall(r"(\w+)\s+u_par resolution \(P84 - P16\)/2 = ([\d.]+) GeV", text)}
    assert sigma["Perceiver"] < sigma["PUPPI"]  # at pileup 60 the network beats PUPPI
    peaks = {m: float(v) for m, v in re.findall(r"(chi2|spanet)\s+peak at (\d+) GeV", text)}
    assert set(peaks) == {"chi2", "spanet"}
    assert all(150 < peak < 195 for peak in peaks.values()), peaks  # both find the top quark
