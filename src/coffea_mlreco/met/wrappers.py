"""Model wrappers of the MET regressions (DeepMET-style, Perceiver) and the shipped trained models.

Each shipped model is a model card ``met/weights/<name>.json`` (architecture, configuration, training
command, data, metrics) next to its ``<name>.safetensors``. ``MET_MODELS.load(name)`` builds the wrapper;
``wrapper(events)`` returns a ``MissingET``-like record (pt in GeV, phi in rad) per event.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import awkward as ak
import numpy as np

from coffea_mlreco.core.columns import Events, to_numpy
from coffea_mlreco.inference import Dense, Jagged, ModelRegistry, ModelWrapper
from coffea_mlreco.inference.backends import Backend
from coffea_mlreco.met.features import met_inputs

__all__ = ["MET_MODELS", "METWrapper"]


class METWrapper(ModelWrapper):
    """Runs a MET model on NanoEvents with PF candidates; output record ``pt``, ``phi`` (GeV, rad).

    PUPPI weights are computed on the fly (or taken from ``PFCands.puppiWeightReco`` if already there).
    ``response_scale`` multiplies the model's MET (the response calibration from its model card);
    ``neighbourhood``: the model reads what surrounds each candidate (`coffea_mlreco.met.neighbourhood`).
    """

    selected_outputs = ("met_xy",)

    def __init__(self, *args: Any, response_scale: float = 1.0, neighbourhood: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.response_scale = float(response_scale)
        self.neighbourhood = bool(neighbourhood)

    @classmethod
    def from_card(cls, backend: Backend, card: Mapping[str, Any], **kwargs: Any) -> METWrapper:
        """The wrapper with the card's ``response_scale`` (1 when absent) and its model's inputs."""
        neighbourhood = bool(card.get("config", {}).get("neighbourhood", False))
        return cls(backend, response_scale=card.get("response_scale", 1.0), neighbourhood=neighbourhood, **kwargs)

    def prepare(self, events: Events) -> dict[str, Jagged | Dense]:
        cands, event = met_inputs(events, neighbourhood=self.neighbourhood)
        return {"cands": Jagged(cands), "event": Dense(event)}

    def postprocess(self, outputs: ak.Array, events: Events) -> ak.Array:
        met = self.response_scale * to_numpy(outputs.met_xy, np.float64)
        return ak.zip({"pt": np.hypot(met[:, 0], met[:, 1]), "phi": np.arctan2(met[:, 1], met[:, 0])})


MET_MODELS = ModelRegistry(
    "coffea_mlreco.met",
    "MET",
    {"coffea_mlreco.met.deepmet:DeepMET": METWrapper, "coffea_mlreco.met.perceiver:PerceiverMET": METWrapper},
)
"""The MET models: shipped ``deepmet_pu<N>``, ``perceiver_pu<N>`` (``MET_MODELS.load("perceiver_pu60")``) or
model directories."""
