"""Shipped models: a directory of model cards ``<name>.json`` (architecture, configuration, training command,
data, metrics) next to their ``<name>.safetensors`` weights. Each task's wrappers module points these helpers
at its own ``weights`` directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .backends import TorchModule

__all__ = ["card_backend", "card_names", "read_model_card"]


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
