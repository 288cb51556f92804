"""`ModelRegistry`: one task's models — its shipped names, their model cards and their wrappers.

Each task's wrappers module declares one registry (``MET_MODELS = ModelRegistry("coffea_mlreco.met", "MET",
{architecture: METWrapper, ...})``); the column functions, processors, benchmarks and tests load through it. A
model is named by a *spec*: a shipped name (a model card ``<package>/weights/<name>.json``) or a path (a model
directory written by ``coffea-mlreco train --output DIR``, or a card ``.json``); every card is checked as
:func:`~coffea_mlreco.inference.model_cards.read_model_card` lists, before any event is processed.

The wrapper is built by its class's :meth:`~coffea_mlreco.inference.ModelWrapper.from_card`, which takes the card
entries the wrapper needs (a response calibration, a topology, decision thresholds, ...); the class is chosen by
the card's architecture (``"module:Class"``), so a task with several kinds of networks (tt̄: SPANet and the
permutation DNN) has one registry too.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from coffea_mlreco.inference.model_cards import (
    ModelCardError,
    card_backend,
    card_names,
    names_by_pileup,
    read_model_card,
)
from coffea_mlreco.inference.wrapper import ModelWrapper

__all__ = ["ModelRegistry"]

W = TypeVar("W", bound=ModelWrapper)


@dataclass(frozen=True)
class ModelRegistry(Generic[W]):
    """The models of one task.

    Attributes:
        package: the task package whose ``weights`` folder holds the shipped model cards (``"coffea_mlreco.met"``).
        what: how error messages name the task's models (``"MET"``: "no shipped MET model 'x'").
        wrappers: the wrapper class of each architecture the task runs (``"module:Class"`` as model cards name
            it → wrapper class); empty for a registry that only reads cards (``coffea-mlreco evaluate --model``).
    """

    package: str
    what: str
    wrappers: Mapping[str, type[W]] = field(default_factory=dict)

    @property
    def directory(self) -> Path:
        """The folder of the shipped model cards: ``<package>/weights`` (the package is not imported).

        Raises:
            ModelCardError: no such package.
        """
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise ModelCardError(f"no package {self.package} with shipped {self.what} models")
        return Path(next(iter(spec.submodule_search_locations))) / "weights"

    def names(self) -> list[str]:
        """Names of the shipped models, sorted (none where the package has no ``weights`` folder)."""
        return card_names(self.directory)

    def by_pileup(self, prefix: str) -> dict[int, str]:
        """``{pileup: name}`` of the shipped models ``<prefix>_pu<N>`` (N: the mean pileup they were trained at)."""
        return names_by_pileup(self.names(), prefix)

    def architectures(self, prefix: str | None = None) -> set[str]:
        """The architectures (card ``model`` entries) of the shipped models, or of those named ``prefix`` or
        ``<prefix>_*`` (one method's models: ``"deepmet"`` → ``deepmet_pu60``, ``deepmet_pu200``).

        Raises:
            ModelCardError: a shipped card that does not give a usable model.
        """
        names = [n for n in self.names() if prefix is None or n == prefix or n.startswith(f"{prefix}_")]
        return {str(self.card(n)["model"]) for n in names}

    def card(self, spec: str | Path) -> dict[str, Any]:
        """The checked model card of ``spec`` (a shipped name, a model directory or a card file); its
        ``"weights"`` entry is the absolute path of the weights file.

        Raises:
            ModelCardError: as :func:`~coffea_mlreco.inference.model_cards.read_model_card` (the message names
                the shipped models or the file).
        """
        return read_model_card(self.directory, spec, self.what)

    def load(self, spec: str | Path, device: str = "auto", precision: str = "auto", **kwargs: Any) -> W:
        """The wrapper of model ``spec`` (see :meth:`card`), built by its architecture's wrapper class
        (:meth:`~coffea_mlreco.inference.ModelWrapper.from_card`), e.g. ``MET_MODELS.load("perceiver_pu60")``.

        Args:
            spec: a shipped name, a model directory or a model card file.
            device, precision: as :class:`~coffea_mlreco.inference.ModelWrapper`.
            kwargs: further keyword arguments of the wrapper (``max_tokens``, ``cache``, ...).

        Raises:
            ModelCardError: see :meth:`card`; an architecture the task has no wrapper for.
        """
        card = self.card(spec)
        wrapper = self.wrappers.get(card["model"])
        if wrapper is None:
            known = ", ".join(sorted(self.wrappers)) or "none"
            raise ModelCardError(
                f"{spec}: no {self.what} wrapper runs a {card['model']} model (the {self.what} models are {known})"
            )
        return wrapper.from_card(card_backend(self.directory, card), card, device=device, precision=precision, **kwargs)
