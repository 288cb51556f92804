"""Model wrapper of the DeepMEM network and the shipped trained model.

:class:`DeepMEMWrapper` takes dilepton candidates of *selected* events
(:func:`coffea_mlreco.mem.inputs.dilepton_candidates` restricted to ``selected``) and returns one record per event
with ``logw_<hypothesis>`` = log₁₀ P(x|α) per hypothesis of the model (P in GeV⁻², the units of
:func:`coffea_mlreco.mem.mem_log_weights`). ``prepare`` builds the dense ``features`` input
(:func:`coffea_mlreco.mem.inputs.network_features`: 14 DeepMEM inputs, plus the flavour column for models trained
with it); ``postprocess`` negates the network's −log₁₀ P. bf16 autocast is off (``amp_safe = False``): a 1 % MAPE
needs log₁₀ P to 0.004 absolute, while bf16 activations carry ~3 significant digits (relative 2⁻⁸).

Shipped models: ``mem/weights/<name>.json`` (model card: training command, samples, seeds, held-out metrics) +
``<name>.safetensors``; :func:`shipped_mem_model` builds the wrapper of one.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from coffea_mlreco.inference import Dense, Jagged, ModelWrapper
from coffea_mlreco.inference.backends import Backend
from coffea_mlreco.inference.model_cards import card_backend, card_names, read_model_card
from coffea_mlreco.mem.inputs import network_features

__all__ = ["DEFAULT_MEM_MODEL", "DeepMEMWrapper", "mem_model_card", "shipped_mem_model", "shipped_mem_models"]

DEFAULT_MEM_MODEL = "deepmem"
"""Name of the shipped DeepMEM model (hypotheses ``dy_sm`` and ``zprime``)."""
_PREFIX = "neg_log10_weight_"


class DeepMEMWrapper(ModelWrapper):
    """Runs a DeepMEM model on selected dilepton candidates (module docstring).

    Args:
        backend: the model (e.g. from a model card, :func:`shipped_mem_model`).
        hypotheses: the model's hypotheses, in output order (``config["hypotheses"]`` of its card).
        flavour_input: whether the model takes the 15th (flavour) input (``config["flavour_input"]``).
        device, precision, max_tokens, max_batch: as :class:`~coffea_mlreco.inference.ModelWrapper`.
    """

    amp_safe = False

    def __init__(
        self, backend: Backend, hypotheses: tuple[str, ...] | list[str], flavour_input: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(backend, **kwargs)
        self.hypotheses = tuple(hypotheses)
        self.flavour_input = bool(flavour_input)

    def prepare(self, events: Any) -> dict[str, Jagged | Dense]:
        """``features`` [N, 14|15] of selected candidates (``lep1``, ``lep2``, ``jets``, ``met``)."""
        return {"features": Dense(network_features(events, flavour=self.flavour_input))}

    def postprocess(self, outputs: ak.Array, events: Any) -> ak.Array:
        """``logw_<hypothesis>`` (float64) per event from the network's ``neg_log10_weight_<hypothesis>``."""
        missing = [h for h in self.hypotheses if _PREFIX + h not in ak.fields(outputs)]
        if missing:
            raise ValueError(f"the model has no output for hypothesis(es) {missing}; outputs: {ak.fields(outputs)}")
        return ak.zip(
            {f"logw_{h}": -np.asarray(ak.to_numpy(outputs[_PREFIX + h]), np.float64) for h in self.hypotheses},
            depth_limit=1,
        )


def _weights_dir() -> Path:
    return Path(str(resources.files(__package__).joinpath("weights")))


def shipped_mem_models() -> list[str]:
    """Names of the shipped DeepMEM models (model cards in mem/weights)."""
    return card_names(_weights_dir())


def mem_model_card(name: str = DEFAULT_MEM_MODEL) -> dict[str, Any]:
    """The model card of a shipped DeepMEM model (architecture, training command, samples, metrics)."""
    return read_model_card(_weights_dir(), name, "MEM")


def shipped_mem_model(
    name: str = DEFAULT_MEM_MODEL, device: str = "auto", precision: str = "auto", **kwargs: Any
) -> DeepMEMWrapper:
    """The wrapper of a shipped model, e.g. ``shipped_mem_model("deepmem")``."""
    card = mem_model_card(name)
    config = card["config"]
    return DeepMEMWrapper(
        card_backend(_weights_dir(), card),
        config["hypotheses"],
        bool(config.get("flavour_input", False)),
        device=device,
        precision=precision,
        **kwargs,
    )
