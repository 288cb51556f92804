"""`ModelRegistry`: a task's shipped names, their cards and wrappers, chosen by pileup or given as a directory.

The task is a toy package ``toy_task`` (a ``weights`` folder with ``toy_pu60`` and ``toy_pu200``, CandidateMLP
cards) written into a temporary folder on ``sys.path``.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest
from candidate_wrappers import MLP_CLASS, CandidateWrapper

from coffea_mlreco.inference import ModelCache, ModelRegistry
from coffea_mlreco.inference.backends import Backend
from coffea_mlreco.inference.model_cards import ModelCardError


class ScaledWrapper(CandidateWrapper):
    """Takes the card's ``scale`` entry (1 when absent)."""

    def __init__(self, *args: Any, scale: float = 1.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.scale = scale

    @classmethod
    def from_card(cls, backend: Backend, card: Mapping[str, Any], **kwargs: Any) -> ScaledWrapper:
        return cls(backend, scale=card.get("scale", 1.0), **kwargs)


@pytest.fixture
def toy_package(tmp_path: Path, mlp_weights: Path) -> Iterator[Path]:
    """The ``weights`` folder of the package ``toy_task``: ``toy_pu60`` (scale 2) and ``toy_pu200`` (no scale)."""
    weights = tmp_path / "toy_task" / "weights"
    weights.mkdir(parents=True)
    (weights.parent / "__init__.py").write_text("")
    for name, extra in (("toy_pu60", {"scale": 2.0}), ("toy_pu200", {})):
        shutil.copy(mlp_weights, weights / f"{name}.safetensors")
        card = {"model": MLP_CLASS, "config": {}, "weights": f"{name}.safetensors", **extra}
        (weights / f"{name}.json").write_text(json.dumps(card))
    sys.path.insert(0, str(tmp_path))
    yield weights
    sys.path.remove(str(tmp_path))
    sys.modules.pop("toy_task", None)


@pytest.fixture
def registry(toy_package: Path) -> ModelRegistry[ScaledWrapper]:
    return ModelRegistry("toy_task", "toy", {MLP_CLASS: ScaledWrapper})


def test_names_and_pileups_of_the_shipped_models(registry: ModelRegistry[ScaledWrapper], toy_package: Path) -> None:
    assert registry.directory == toy_package
    assert registry.names() == ["toy_pu200", "toy_pu60"]
    assert registry.by_pileup("toy") == {60: "toy_pu60", 200: "toy_pu200"}
    assert registry.by_pileup("other") == {}
    assert registry.architectures() == registry.architectures("toy") == {MLP_CLASS}
    assert registry.architectures("other") == set()
    assert registry.card("toy_pu60")["weights"] == str((toy_package / "toy_pu60.safetensors").resolve())


def test_load_builds_the_wrapper_with_its_card_entries(
    registry: ModelRegistry[ScaledWrapper], synthetic_events: ak.Array
) -> None:
    cache = ModelCache()
    wrapper = registry.load("toy_pu60", device="cpu", precision="fp32", max_tokens=4096, cache=cache)
    assert isinstance(wrapper, ScaledWrapper) and wrapper.scale == 2.0
    assert (wrapper.device, wrapper.precision, wrapper.max_tokens, wrapper.cache) == ("cpu", "fp32", 4096, cache)
    assert registry.load("toy_pu200").scale == 1.0
    out = wrapper(synthetic_events)
    assert np.isfinite(ak.to_numpy(out.met_xy)).all()


def test_load_takes_a_model_directory_or_card(
    registry: ModelRegistry[ScaledWrapper], toy_package: Path, tmp_path: Path
) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    for suffix in (".json", ".safetensors"):
        shutil.copy(toy_package / f"toy_pu60{suffix}", mine / f"toy_pu60{suffix}")
    for spec in (mine, str(mine), mine / "toy_pu60.json"):
        wrapper = registry.load(spec)
        assert wrapper.scale == 2.0
        assert registry.card(spec)["weights"] == str((mine / "toy_pu60.safetensors").resolve())


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("toy_pu999", "no shipped toy model 'toy_pu999'; shipped: toy_pu200, toy_pu60"),
        ("{tmp}/missing", "no such toy model directory or model card"),
        ("{tmp}", "a toy model directory must hold exactly one model card"),
    ],
)
def test_bad_specs_name_what_is_wrong(
    registry: ModelRegistry[ScaledWrapper], spec: str, message: str, tmp_path: Path
) -> None:
    with pytest.raises(ModelCardError, match=message):
        registry.load(spec.format(tmp=tmp_path))


def test_an_architecture_without_wrapper_is_refused(toy_package: Path) -> None:
    with pytest.raises(ModelCardError, match=f"toy_pu60: no toy wrapper runs a {MLP_CLASS} model"):
        ModelRegistry("toy_task", "toy").load("toy_pu60")


def test_a_missing_package_is_named() -> None:
    with pytest.raises(ModelCardError, match="no package no_such_task with shipped toy models"):
        ModelRegistry("no_such_task", "toy").names()
