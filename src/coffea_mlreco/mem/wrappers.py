"""Model wrapper of the DeepMEM network and the shipped trained model.

:class:`DeepMEMWrapper` takes dilepton candidates of *selected* events
(:func:`coffea_mlreco.mem.inputs.dilepton_candidates` restricted to ``selected``) and returns one record per event
with ``logw_<hypothesis>`` = log₁₀ P(x|α) per hypothesis of the model (P in GeV⁻², the units of
:func:`coffea_mlreco.mem.mem_log_weights`). ``prepare`` builds the dense ``features`` input
(:func:`coffea_mlreco.mem.inputs.network_features`: 14 DeepMEM inputs, plus the flavour column and the event's
ΣE_T for models trained with them: a model with a per-event MET width, ``config.met_sum_et_resolution``, needs the
candidates' ``met.sumEt``); ``postprocess`` negates the network's −log₁₀ P. bf16 autocast is off
(``amp_safe = False``): a 1 % MAPE needs log₁₀ P to 0.004 absolute, while bf16 activations carry ~3 significant
digits (relative 2⁻⁸).

Shipped models: ``mem/weights/<name>.json`` (model card: training command, samples, seeds, held-out metrics) +
``<name>.safetensors``; :data:`MEM_MODELS` builds the wrapper of one (or of a model directory).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import awkward as ak
import numpy as np

from coffea_mlreco.core.columns import Events, to_numpy
from coffea_mlreco.inference import Dense, Jagged, ModelRegistry, ModelWrapper
from coffea_mlreco.inference.backends import Backend
from coffea_mlreco.mem.inputs import network_features

__all__ = ["DEFAULT_MEM_MODEL", "MEM_MODELS", "DeepMEMWrapper"]

DEFAULT_MEM_MODEL = "deepmem"
"""Name of the shipped DeepMEM model (hypotheses ``dy_sm`` and ``zprime``)."""
_PREFIX = "neg_log10_weight_"


class DeepMEMWrapper(ModelWrapper):
    """Runs a DeepMEM model on selected dilepton candidates (module docstring).

    Args:
        backend: the model (e.g. from a model card, :meth:`from_card`).
        hypotheses: the model's hypotheses, in output order (``config["hypotheses"]`` of its card).
        flavour_input: whether the model takes the 15th (flavour) input (``config["flavour_input"]``).
        sum_et_input: whether the model takes the event's ΣE_T as its last input (a per-event MET width,
            ``config["met_sum_et_resolution"]``): it was trained on weights integrated with each event's MET
            resolution (``mem-weights --use-sum-et``).
        device, precision, max_tokens, max_batch: as :class:`~coffea_mlreco.inference.ModelWrapper`.
    """

    amp_safe = False

    def __init__(
        self,
        backend: Backend,
        hypotheses: tuple[str, ...] | list[str],
        flavour_input: bool = False,
        sum_et_input: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(backend, **kwargs)
        self.hypotheses = tuple(hypotheses)
        self.flavour_input = bool(flavour_input)
        self.sum_et_input = bool(sum_et_input)

    @classmethod
    def from_card(cls, backend: Backend, card: Mapping[str, Any], **kwargs: Any) -> DeepMEMWrapper:
        """The wrapper with the card's ``config.hypotheses``, ``config.flavour_input`` (False when absent) and
        ΣE_T input (when ``config.met_sum_et_resolution`` is set)."""
        config = card["config"]
        return cls(
            backend,
            config["hypotheses"],
            bool(config.get("flavour_input", False)),
            config.get("met_sum_et_resolution") is not None,
            **kwargs,
        )

    def prepare(self, events: Events) -> dict[str, Jagged | Dense]:
        """``features`` [N, 14–16] of selected candidates (``lep1``, ``lep2``, ``jets``, ``met``)."""
        return {"features": Dense(network_features(events, flavour=self.flavour_input, sum_et=self.sum_et_input))}

    def postprocess(self, outputs: ak.Array, events: Events) -> ak.Array:
        """``logw_<hypothesis>`` (float64) per event from the network's ``neg_log10_weight_<hypothesis>``."""
        missing = [h for h in self.hypotheses if _PREFIX + h not in ak.fields(outputs)]
        if missing:
            raise ValueError(f"the model has no output for hypothesis(es) {missing}; outputs: {ak.fields(outputs)}")
        return ak.zip(
            {f"logw_{h}": -to_numpy(outputs[_PREFIX + h], np.float64) for h in self.hypotheses},
            depth_limit=1,
        )


MEM_MODELS = ModelRegistry("coffea_mlreco.mem", "MEM", {"coffea_mlreco.mem.deepmem:DeepMEM": DeepMEMWrapper})
"""The DeepMEM models: the shipped :data:`DEFAULT_MEM_MODEL` (``MEM_MODELS.load(DEFAULT_MEM_MODEL)``) or model
directories."""
