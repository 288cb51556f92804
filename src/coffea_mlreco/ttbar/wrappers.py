"""Model wrappers of the tt̄ assignment networks and the shipped trained models.

Both wrappers take the *selected* events' inputs (:func:`coffea_mlreco.ttbar.inputs.semileptonic_inputs`
restricted to ``selected``) and return per event the jet positions ``had_b, had_q1, had_q2, lep_b`` in the
selected-jet list (−1 when not assigned).

- :class:`SPANetWrapper` adds, per top (``t_had``, ``t_lep``), the assignment probability (of the chosen jets,
  summed over symmetric orderings), the detection probability and their product, the marginal probability;
  and ``nu_eta``.
- :class:`PermutationDNNWrapper` scores every permutation of the first ``max_jets`` jets; the event's
  assignment is the best-scoring one, with its softmax probability over the event's permutations.

Shipped models: ``ttbar/weights/<name>.json`` (model card) + ``<name>.safetensors``; :data:`TTBAR_MODELS` loads
them (or a model directory) with the wrapper of their architecture.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import awkward as ak
import numpy as np

from coffea_mlreco.core.columns import to_numpy
from coffea_mlreco.inference import Dense, Jagged, ModelRegistry, ModelWrapper
from coffea_mlreco.inference.backends import Backend
from coffea_mlreco.ttbar.assignment import extract_assignments
from coffea_mlreco.ttbar.permutation_features import FEATURE_NAMES, permutation_features
from coffea_mlreco.ttbar.permutations import PERMUTATION_FIELDS, best_permutation, flat_permutations
from coffea_mlreco.ttbar.topology import load_topology

__all__ = ["TTBAR_MODELS", "PermutationDNNWrapper", "SPANetWrapper"]


def _lepton_record(inputs: Any) -> ak.Array:
    lep = inputs.lepton
    return ak.zip(
        {
            "pt": lep.pt,
            "eta": lep.eta,
            "phi": lep.phi,
            "mass": lep.mass,
            "is_muon": ak.values_astype(abs(lep.pdgId) == 13, np.float32),
        }
    )


class SPANetWrapper(ModelWrapper):
    """Runs the SPANet-style model; see the module docstring for the output record."""

    def __init__(self, *args: Any, topology: str = "semileptonic_ttbar", max_jets: int = 10, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.topology = load_topology(topology)
        self.max_jets = int(max_jets)

    @classmethod
    def from_card(cls, backend: Backend, card: Mapping[str, Any], **kwargs: Any) -> SPANetWrapper:
        """The wrapper with the card's ``config.topology`` and ``config.max_jets``."""
        config = card["config"]
        return cls(
            backend,
            topology=config.get("topology", "semileptonic_ttbar"),
            max_jets=config.get("max_jets", 10),
            **kwargs,
        )

    def prepare(self, inputs: Any) -> dict[str, Jagged | Dense]:
        jets = inputs.jets[["pt", "eta", "phi", "mass", "btag"]]
        return {
            "jets": Jagged(jets, max_objects=self.max_jets, keep_highest="pt"),
            "lepton": Dense(_lepton_record(inputs)),
            "met": Dense(inputs.met[["pt", "phi"]]),
        }

    def postprocess(self, outputs: ak.Array, inputs: Any) -> ak.Array:
        n_jets = to_numpy(ak.num(inputs.jets, axis=1), np.int64)
        logps = [to_numpy(outputs[f"{p.name}_logp"], np.float64) for p in self.topology.particles]
        result = extract_assignments(logps, self.topology, n_jets)
        fields: dict[str, Any] = {}
        for column in self.topology.output_names:
            p_index, d_index = self.topology.output_slot(column)
            start = sum(p.n_jets for p in self.topology.particles[:p_index])
            fields[column] = result.jets[:, start + d_index]
        probs: dict[str, dict[str, np.ndarray]] = {"assignment_prob": {}, "detection_prob": {}, "marginal_prob": {}}
        for k, p in enumerate(self.topology.particles):
            detection = to_numpy(outputs[f"{p.name}_detection"], np.float64)
            probs["assignment_prob"][p.name] = result.assignment_prob[:, k]
            probs["detection_prob"][p.name] = detection
            probs["marginal_prob"][p.name] = result.assignment_prob[:, k] * detection
        for name, per_top in probs.items():
            fields[name] = ak.zip(per_top)
        fields["nu_eta"] = to_numpy(outputs["nu_eta"], np.float64)
        return ak.zip(fields, depth_limit=1)


class PermutationDNNWrapper(ModelWrapper):
    """Runs the permutation DNN over every permutation of the first ``max_jets`` jets."""

    output_names: ClassVar[tuple[str, ...]] = ("score",)
    per_object_outputs: ClassVar[dict[str, str]] = {"score": "perms"}

    def __init__(self, *args: Any, max_jets: int = 6, **kwargs: Any) -> None:
        kwargs.setdefault("max_tokens", 1 << 16)  # an MLP per permutation: large batches are cheap
        super().__init__(*args, **kwargs)
        self.max_jets = int(max_jets)

    @classmethod
    def from_card(cls, backend: Backend, card: Mapping[str, Any], **kwargs: Any) -> PermutationDNNWrapper:
        """The wrapper with the card's ``config.max_jets``."""
        return cls(backend, max_jets=card["config"].get("max_jets", 6), **kwargs)

    def prepare(self, inputs: Any) -> dict[str, Jagged | Dense]:
        offsets, _, features = permutation_features(inputs, self.max_jets)
        record = ak.zip({name: features[:, i] for i, name in enumerate(FEATURE_NAMES)})
        return {"perms": Jagged(ak.unflatten(record, np.diff(offsets)))}

    def postprocess(self, outputs: ak.Array, inputs: Any) -> ak.Array:
        n_jets = to_numpy(ak.num(inputs.jets, axis=1), np.int64)
        offsets, perms = flat_permutations(n_jets, self.max_jets)
        best, prob = best_permutation(offsets, perms, ak.to_numpy(ak.flatten(outputs.score)))
        fields = {name: best[:, i] for i, name in enumerate(PERMUTATION_FIELDS)}
        fields["probability"] = prob
        return ak.zip(fields)


TTBAR_MODELS: ModelRegistry[ModelWrapper] = ModelRegistry(
    "coffea_mlreco.ttbar",
    "tt̄",
    {
        "coffea_mlreco.ttbar.spanet:SPANet": SPANetWrapper,
        "coffea_mlreco.ttbar.permutation_dnn:PermutationDNN": PermutationDNNWrapper,
    },
)
"""The tt̄ assignment models: shipped ``spanet_pu<N>``, ``pdnn_pu<N>`` (``TTBAR_MODELS.load("spanet_pu60")``) or
model directories."""
