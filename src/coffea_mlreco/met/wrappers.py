"""Model wrappers of the MET regressions (DeepMET-style, Perceiver) and the shipped trained models.

Each shipped model is a model card ``met/weights/<name>.json`` (architecture, configuration, training
command, data, metrics) next to its ``<name>.safetensors``. `shipped_met_model(name)` builds the wrapper;
``wrapper(events)`` returns a ``MissingET``-like record (pt in GeV, phi in rad) per event.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from coffea_mlreco.inference import Dense, Jagged, ModelWrapper
from coffea_mlreco.inference.model_cards import card_backend, card_names, read_model_card
from coffea_mlreco.met.features import met_inputs

__all__ = ["METWrapper", "model_card", "shipped_met_model", "shipped_met_models"]


class METWrapper(ModelWrapper):
    """Runs a MET model on NanoEvents with PF candidates; output record ``pt``, ``phi`` (GeV, rad).

    PUPPI weights are computed on the fly (or taken from ``PFCands.puppiWeightReco`` if already there).
    ``response_scale`` multiplies the model's MET (the response calibration from its model card).
    """

    selected_outputs = ("met_xy",)

    def __init__(self, *args: Any, response_scale: float = 1.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.response_scale = float(response_scale)

    def prepare(self, events: Any) -> dict[str, Jagged | Dense]:
        cands, event = met_inputs(events)
        return {"cands": Jagged(cands), "event": Dense(event)}

    def postprocess(self, outputs: ak.Array, events: Any) -> ak.Array:
        met = self.response_scale * np.asarray(ak.to_numpy(outputs.met_xy), dtype=np.float64)
        return ak.zip({"pt": np.hypot(met[:, 0], met[:, 1]), "phi": np.arctan2(met[:, 1], met[:, 0])})


def _weights_dir() -> Path:
    return Path(str(resources.files(__package__).joinpath("weights")))


def shipped_met_models() -> list[str]:
    """Names of the MET models shipped with the package (model cards in met/weights)."""
    return card_names(_weights_dir())


def model_card(name: str) -> dict[str, Any]:
    return read_model_card(_weights_dir(), name, "MET")


def shipped_met_model(name: str, device: str = "auto", precision: str = "auto") -> METWrapper:
    """The wrapper of a shipped MET model, e.g. ``shipped_met_model("perceiver_pu60")``."""
    card = model_card(name)
    return METWrapper(
        card_backend(_weights_dir(), card),
        device=device,
        precision=precision,
        response_scale=card.get("response_scale", 1.0),
    )
