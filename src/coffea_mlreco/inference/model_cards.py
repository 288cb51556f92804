"""Model cards: a JSON file ``<name>.json`` (architecture, configuration, training command, data, metrics) next to
its ``<name>.safetensors`` weights.

A model is named either by a shipped name (looked up in the task's ``weights`` directory inside the package) or
by a path: a directory holding exactly one model card (what ``coffea-mlreco train --output DIR`` writes), or a
card ``.json`` itself. Each task's wrappers module points these helpers at its own ``weights`` directory.

Every card is checked when it is read (:func:`read_model_card`), so that a wrong model directory fails before any
event is processed, with one :class:`ModelCardError` naming the file:

- the card is a JSON object with ``model`` (``package.module:Class``), ``config`` and ``weights``;
- its format version ``card_version`` is one this package reads (:data:`KNOWN_CARD_VERSIONS`; a card without
  the field is version 1, the format of every card written so far);
- for a model given by path, its architecture is one of the task's shipped models' (a tt̄ model directory given
  to the MET reconstruction is refused);
- the weights file exists, is a readable safetensors file, and holds exactly the tensors, with the same shapes,
  that ``Class(**config)`` has (:meth:`~coffea_mlreco.inference.backends.TorchModule.check`: the network is
  built on PyTorch's ``meta`` device and compared with the file's header; no weights are loaded). A mismatch is
  a :class:`WeightsMismatchError` (a :class:`ModelCardError`) naming the weights file, the card and the first
  mismatching tensors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from coffea_mlreco.core.columns import Events, has_column, to_numpy
from coffea_mlreco.inference.backends import ModelCardError, TorchModule, WeightsMismatchError, architecture

__all__ = [
    "CARD_VERSION",
    "KNOWN_CARD_VERSIONS",
    "ModelCardError",
    "WeightsMismatchError",
    "card_backend",
    "card_names",
    "card_path",
    "card_version",
    "chunk_pileup",
    "closest_pileup",
    "names_by_pileup",
    "read_model_card",
]

T = TypeVar("T")

CARD_VERSION = 1
"""The model-card format this package writes (the trainers' ``card_version`` entry)."""
KNOWN_CARD_VERSIONS = frozenset({1})
"""The model-card formats this package reads."""


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
            raise ModelCardError(
                f"no shipped {what} model {spec!r}; shipped: {shipped} "
                "(or give a model directory written by 'coffea-mlreco train --output DIR')"
            )
        return path
    path = Path(spec).expanduser()
    if path.is_dir():
        cards = sorted(path.glob("*.json"))
        if len(cards) != 1:
            found = ", ".join(c.name for c in cards) or "none"
            raise ModelCardError(
                f"{path}: a {what} model directory must hold exactly one model card (*.json); found {found}"
            )
        return cards[0]
    if not path.is_file():
        raise ModelCardError(f"{path}: no such {what} model directory or model card")
    return path


def card_version(card: dict[str, Any], path: Path) -> int:
    """The card's format version (its ``card_version`` entry; 1 when absent).

    Raises:
        ModelCardError: a version this package does not read (the message names the card file).
    """
    version = card.get("card_version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version not in KNOWN_CARD_VERSIONS:
        from coffea_mlreco.core.version import __version__

        known = ", ".join(str(v) for v in sorted(KNOWN_CARD_VERSIONS))
        raise ModelCardError(
            f"{path}: model card version {version!r} is unknown to coffea-mlreco {__version__} "
            f"(it reads version {known}); use the coffea-mlreco that wrote the card, or retrain"
        )
    return version


def _shipped_architectures(directory: Path) -> set[str]:
    """The ``model`` entries of the cards in ``directory`` (unreadable cards are left out)."""
    architectures = set()
    for name in card_names(directory):
        try:
            card = json.loads((directory / f"{name}.json").read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(card, dict) and isinstance(card.get("model"), str):
            architectures.add(architecture(card["model"]))
    return architectures


def read_model_card(directory: Path, spec: str | Path, what: str) -> dict[str, Any]:
    """The card of model ``spec`` (see :func:`card_path`), checked as the module docstring lists; its
    ``"weights"`` entry becomes the absolute path of the weights file, so :func:`card_backend` finds them
    wherever the card lives.

    Raises:
        ModelCardError: see :func:`card_path`; a card that is not a JSON object, lacks ``model``/``config``/
            ``weights``, has an unknown ``card_version``, describes another architecture than the shipped
            models in ``directory`` (for a model given by path), or whose weights file is absent, unreadable or
            does not fit ``model(**config)`` (then a :class:`WeightsMismatchError`); the message names the file.
    """
    path = card_path(directory, spec, what)
    try:
        card = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelCardError(f"{path}: not a model card ({err})") from err
    if not isinstance(card, dict):
        raise ModelCardError(f"{path}: not a model card (a JSON {type(card).__name__}, not an object)")
    missing = [key for key in ("model", "config", "weights") if key not in card]
    if missing:
        raise ModelCardError(f"{path}: model card lacks {', '.join(missing)}")
    card_version(card, path)
    if not (isinstance(card["model"], str) and isinstance(card["config"], dict) and isinstance(card["weights"], str)):
        raise ModelCardError(f"{path}: model card needs model and weights as strings and config as an object")
    card["model"] = architecture(card["model"])  # cards written before the models moved into their tasks
    if _is_path(spec):
        expected = _shipped_architectures(directory)
        if expected and card["model"] not in expected:
            raise ModelCardError(
                f"{path}: the model card describes a {card['model']} model, but the {what} "
                f"models are {', '.join(sorted(expected))}"
            )
    weights = path.parent / card["weights"]
    if not weights.is_file():
        raise ModelCardError(f"{path}: its weights file {weights} is missing")
    try:
        TorchModule(card["model"], weights.resolve(), card["config"]).check()
    except WeightsMismatchError as err:
        raise WeightsMismatchError(f"{err} (model card {path})") from None
    except ModelCardError as err:
        raise ModelCardError(f"{path}: {err}") from None
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


def _finite_mean(events: Events, collection: str, field: str) -> float | None:
    """Mean of the finite values of ``events[collection][field]`` (None: no such column, or no finite value)."""
    if not has_column(events, collection, field):
        return None
    values = to_numpy(events[collection][field], np.float64)
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else None


def chunk_pileup(events: Events) -> float | None:
    """The chunk's mean pileup: the mean ``Pileup_nTrueInt`` in simulation; without it (collision data) the mean
    number of good primary vertices ``PV_npvsGood``, which underestimates it (CMS reconstructs about three quarters
    of the interactions as good vertices, our detector model 85 %); None with neither, or no events."""
    true_pileup = _finite_mean(events, "Pileup", "nTrueInt")
    return true_pileup if true_pileup is not None else _finite_mean(events, "PV", "npvsGood")


def closest_pileup(available: dict[int, T], events: Events) -> T:
    """The entry trained at the pileup closest to the chunk's (:func:`chunk_pileup`: ``Pileup_nTrueInt``, else
    ``PV_npvsGood`` on collision data); the highest-pileup one when the events have neither or are empty. Ties go
    to the higher pileup. With one entry nothing is read (the chosen model's inputs need not include the pileup)."""
    if not available:
        raise ValueError("no model to choose from")
    if len(available) == 1:
        return next(iter(available.values()))
    pileup = chunk_pileup(events)
    mean_pu = pileup if pileup is not None else max(available)
    return available[min(available, key=lambda pu: (abs(pu - mean_pu), -pu))]
