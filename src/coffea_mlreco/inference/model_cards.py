"""Shipped models: a directory of model cards ``<name>.json`` (architecture, configuration, training command,
data, metrics) next to their ``<name>.safetensors`` weights. Each task's wrappers module points these helpers
at its own ``weights`` directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

import awkward as ak
import numpy as np

from .backends import TorchModule

__all__ = ["card_backend", "card_names", "closest_pileup", "names_by_pileup", "read_model_card"]

T = TypeVar("T")


def card_names(directory: Path) -> list[str]:
    """Names of the models whose cards are in ``directory`` (none if it does not exist)."""
    return sorted(p.stem for p in directory.glob("*.json")) if directory.exists() else []


def read_model_card(directory: Path, name: str, what: str) -> dict[str, Any]:
    """The card of model ``name``; ``what`` names the kind of model in the error ("MET", "tt̄")."""
    path = directory / f"{name}.json"
    if not path.exists():
        raise ValueError(f"no shipped {what} model {name!r}; shipped: {', '.join(card_names(directory)) or 'none'}")
    return json.loads(path.read_text())


def card_backend(directory: Path, card: dict[str, Any]) -> TorchModule:
    """The backend (architecture, safetensors weights, configuration) a card describes."""
    return TorchModule(card["model"], directory / card["weights"], card["config"])


def names_by_pileup(names: list[str], prefix: str) -> dict[int, str]:
    """``{pileup: name}`` of the model names ``<prefix>_pu<N>`` (the mean pileup N they were trained at)."""
    out = {}
    for name in names:
        stem, _, pileup = name.rpartition("_pu")
        if stem == prefix and pileup.isdigit():
            out[int(pileup)] = name
    return out


def closest_pileup(available: dict[int, T], events: Any) -> T:
    """The entry trained at the pileup closest to the chunk's mean ``Pileup_nTrueInt`` (the highest-pileup one
    when the events have no pileup branch or are empty; ties go to the higher pileup)."""
    if not available:
        raise ValueError("no model to choose from")
    try:
        mean_pu = float(np.mean(np.asarray(ak.to_numpy(events.Pileup.nTrueInt), np.float64))) if len(events) \
            else max(available)
    except (AttributeError, ValueError):
        mean_pu = max(available)
    return available[min(available, key=lambda pu: (abs(pu - mean_pu), -pu))]
