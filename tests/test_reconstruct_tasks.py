"""``coffea_mlreco.reconstruct(events, tasks)``: several tasks' columns in one call, the same in eager and dask
mode, each task's columns equal to its own function's, and clear errors for unknown tasks and model keys."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from column_modes import assert_same_columns, columns_in_mode, open_events

import coffea_mlreco
from coffea_mlreco import met, ttbar
from coffea_mlreco.simulation import generate_sample

NAMES = ("PFMETReco", "PuppiMETReco", "MLMET", "TTbarReco")


@pytest.fixture(scope="module")
def semilep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if "COFFEA_MLRECO_CACHE" not in os.environ:
        os.environ["COFFEA_MLRECO_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    return generate_sample(
        "ttbar-semilep", 120, 0, seed=77, output=tmp_path_factory.mktemp("tasks") / "tt.root", progress=False
    )


def both(events: Any) -> Any:
    return coffea_mlreco.reconstruct(
        events,
        ("met", "ttbar"),
        device="cpu",
        options={"met": {"methods": ("pf", "puppi", "perceiver")}, "ttbar": {"methods": ("chi2", "spanet")}},
    )


def test_several_tasks_in_eager_and_dask_mode(semilep: Path) -> None:
    eager = columns_in_mode(both, semilep, "eager", NAMES)
    assert_same_columns(columns_in_mode(both, semilep, "dask", NAMES), eager)
    events = open_events(semilep, "eager")
    alone = met.reconstruct(events, methods=("pf", "puppi", "perceiver"), device="cpu")
    assert_same_columns(alone.MLMET, eager.MLMET)
    alone = ttbar.reconstruct(events, methods=("chi2", "spanet"), device="cpu")
    assert_same_columns(alone.TTbarReco, eager.TTbarReco)
    assert set(events.fields).isdisjoint(NAMES)  # the caller's events are unchanged


def test_models_by_task_and_method(semilep: Path) -> None:
    events = open_events(semilep, "eager")[:30]
    flat = coffea_mlreco.reconstruct(
        events,
        ("met",),
        models={"met.perceiver": "perceiver_pu200"},
        options={"met": {"methods": ("perceiver",)}},
        device="cpu",
    )
    nested = met.reconstruct(events, methods=("perceiver",), models={"perceiver": "perceiver_pu200"}, device="cpu")
    assert_same_columns(flat.MLMET, nested.MLMET)
    with pytest.raises(ValueError, match="unknown task"):
        coffea_mlreco.reconstruct(events, ("jets",))
    with pytest.raises(ValueError, match=r"task\.method"):
        coffea_mlreco.reconstruct(events, ("met",), models={"perceiver": "perceiver_pu200"})
