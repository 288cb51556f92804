"""The quick-start notebook runs from top to bottom (as a user runs it in Jupyter or on binder)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_quickstart_notebook_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = EXAMPLES / "quickstart.ipynb"
    if not source.exists():
        pytest.skip("examples/ is not part of this checkout")
    shutil.copy(source, tmp_path / source.name)
    notebook = nbformat.read(tmp_path / source.name, as_version=4)
    if "COFFEA_MLRECO_CACHE" not in os.environ:
        monkeypatch.setenv("COFFEA_MLRECO_CACHE", str(tmp_path / "cache"))
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert (tmp_path / "quickstart_upar.png").stat().st_size > 10_000
    outputs = "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs)
    assert "pf        upar   bias" in outputs
