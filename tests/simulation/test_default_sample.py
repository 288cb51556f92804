"""The embedded default sample: which files, with which settings, and where they are cached."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest

# the module (the package re-exports its function under the same name)
default_sample_module = importlib.import_module("coffea_mlreco.simulation.default_sample")


def test_default_sample_carries_the_detector_elements(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every default file is generated with the detector elements (so evaluate with no input runs MLPF too), with
    fixed seeds, under a cache name that holds the simulation version."""
    monkeypatch.setenv("COFFEA_MLRECO_CACHE", str(tmp_path))
    calls: list[dict[str, Any]] = []

    def fake_generate(process: str, events: int, pileup: float, seed: int, path: Path, **options: Any) -> Path:
        calls.append({"process": process, "events": events, "pileup": pileup, "seed": seed, **options})
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(b"")
        return Path(path)

    monkeypatch.setattr(default_sample_module, "generate_sample", fake_generate)
    paths = default_sample_module.default_sample(progress=False)
    assert [c["process"] for c in calls] == ["ttbar-semilep", "dy-ll"]
    assert all(c["elements"] is True and c["pileup"] == 60.0 for c in calls)
    assert [c["seed"] for c in calls] == [101, 102]
    assert all(p.name.startswith(f"v{default_sample_module.SIMULATION_VERSION}_") for p in paths)
    assert default_sample_module.default_sample(progress=False) == paths and len(calls) == 2  # cached
