"""Model cards: a JSON file ``<name>.json`` (architecture, configuration, training command, data, metrics) next to
its ``<name>.safetensors`` weights.

A model is named either by a shipped name (looked up in the task's ``weights`` directory inside the package) or
by a path: a directory holding exactly one model card (what ``coffea-mlreco train --output DIR`` writes), or a
card ``.json`` itself. Each task's wrappers module points these helpers at its own ``weights`` directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

import awkward as ak
import numpy as np

from .backends import TorchModule

__all__ = ["ModelCardError", "card_backend", "card_names", "card_path", "closest_pileup", "names_by_pileup",
           "read_model_card"]

T = TypeVar("T")


class ModelCardError(ValueError):
    """A model name or directory that does not hold a usable model card."""


def card_names(directory: Path) -> list[str]:
    """Names of the models whose cards are in ``directory`` (none if it does not exist)."""
    return sorted(p.stem for p in directory.glob("*.json")) if directory.exists() else []


def _is_path(spec: str | Path) -> bool:
    text = str(spec)
    return isinstance(spec, Path) or "/" in text or "\\" in text or text.endswith(".json") or Path(text).is_dir()


def card_path(directory: Path, spec: str | Path, what: str) -> Path:
    """The card file of ``spec``: a shipped name in ``directory``, a model directory (one card) or a card file.

    Raises:
        ModelCardError: no such shipped model, a path that does not exist, or a directory with no card or
            with several (the message names them).
    """
    if not _is_path(spec):
        path = directory / f"{spec}.json"
        if not path.exists():
            shipped = ", ".join(card_names(directory)) or "none"
            raise ModelCardError(f"no shipped {what} model {spec!r}; shipped: {shipped} "
                                 "(or give a model directory written by 'coffea-mlreco train --output DIR')")
        return path
    path = Path(spec).expanduser()
    if path.is_dir():
        cards = sorted(path.glob("*.json"))
        if len(cards) != 1:
            found = ", ".join(c.name for c in cards) or "none"
            raise ModelCardError(f"{path}: a {what} model directory must hold exactly one model card (*.json); "
                                 f"found {found}")
        return cards[0]
    if not path.is_file():
        raise ModelCardError(f"{path}: no such {what} model directory or model card")
    return path


def read_model_card(directory: Path, spec: str | Path, what: str) -> dict[str, Any]:
    """The card of model ``spec`` (see :func:`card_path`); its ``"weights"`` entry becomes the absolute path
    of the weights file, so :func:`card_backend` finds them wherever the card lives.

    Raises:
        ModelCardError: see :func:`card_path`; a card that is not JSON, lacks ``model``/``config``/``weights``,
            or whose weights file is absent (the message names the file).
    """
    path = card_path(directory, spec, what)
    try:
        card = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ModelCardError(f"{path}: not a model card ({err})") from err
    missing = [key for key in ("model", "config", "weights") if key not in card]
    if missing:
        raise ModelCardError(f"{path}: model card lacks {', '.join(missing)}")
    weights = path.parent / card["weights"]
    if not weights.is_file():
        raise ModelCardError(f"{path}: its weights file {weights} is missing")
    card["weights"] = str(weights.resolve())
    return card


def card_backend(directory: Path, card: dict[str, Any]) -> TorchModule:
    """The backend (architecture, safetensors weights, configuration) a card describes (a relative
    ``weights`` entry is taken in ``directory``)."""
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
    when the events have no pileup branch or are empty; ties go to the higher pileup; non-finite values are
    left out of the mean)."""
    if not available:
        raise ValueError("no model to choose from")
    try:
        values = np.asarray(ak.to_numpy(events.Pileup.nTrueInt), np.float64)
    except (AttributeError, ValueError):
        values = np.zeros(0)
    values = values[np.isfinite(values)]
    mean_pu = float(values.mean()) if values.size else max(available)
    return available[min(available, key=lambda pu: (abs(pu - mean_pu), -pu))]
