"""Model wrappers of the tt̄ assignment networks and the shipped trained models.

Both wrappers take the *selected* events' inputs (:func:`coffea_mlreco.ttbar.inputs.semileptonic_inputs`
restricted to ``selected``) and return per event the jet positions ``had_b, had_q1, had_q2, lep_b`` in the
selected-jet list (−1 when not assigned).

- :class:`SPANetWrapper` adds, per top (``t_had``, ``t_lep``), the assignment probability (of the chosen jets,
  summed over symmetric orderings), the detection probability and their product, the marginal probability;
  and ``nu_eta``.
- :class:`PermutationDNNWrapper` scores every permutation of the first ``max_jets`` jets; the event's
  assignment is the best-scoring one, with its softmax probability over the event's permutations.

Shipped models: ``ttbar/weights/<name>.json`` (model card) + ``<name>.safetensors``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import awkward as ak
import numpy as np

from coffea_mlreco.inference import Dense, Jagged, ModelWrapper
from coffea_mlreco.inference.model_cards import card_backend, card_names, read_model_card
from coffea_mlreco.ttbar.assignment import extract_assignments
from coffea_mlreco.ttbar.permutation_features import FEATURE_NAMES, permutation_features
from coffea_mlreco.ttbar.permutations import PERMUTATION_FIELDS, best_permutation, flat_permutations
from coffea_mlreco.ttbar.topology import load_topology

__all__ = ["PermutationDNNWrapper", "SPANetWrapper", "shipped_ttbar_model", "shipped_ttbar_models", "ttbar_model_card"]


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

    def prepare(self, inputs: Any) -> dict[str, Jagged | Dense]:
        jets = inputs.jets[["pt", "eta", "phi", "mass", "btag"]]
        return {
            "jets": Jagged(jets, max_objects=self.max_jets, keep_highest="pt"),
            "lepton": Dense(_lepton_record(inputs)),
            "met": Dense(inputs.met[["pt", "phi"]]),
        }

    def postprocess(self, outputs: ak.Array, inputs: Any) -> ak.Array:
        n_jets = np.asarray(ak.to_numpy(ak.num(inputs.jets, axis=1)), np.int64)
        logps = [np.asarray(ak.to_numpy(outputs[f"{p.name}_logp"]), np.float64) for p in self.topology.particles]
        result = extract_assignments(logps, self.topology, n_jets)
        fields: dict[str, Any] = {}
        for column, (particle, daughter) in self.topology.outputs:
            p_index, d_index = self.topology.output_slot(column)
            start = sum(p.n_jets for p in self.topology.particles[:p_index])
            fields[column] = result.jets[:, start + d_index]
        probs: dict[str, dict[str, np.ndarray]] = {"assignment_prob": {}, "detection_prob": {}, "marginal_prob": {}}
        for k, p in enumerate(self.topology.particles):
            detection = np.asarray(ak.to_numpy(outputs[f"{p.name}_detection"]), np.float64)
            probs["assignment_prob"][p.name] = result.assignment_prob[:, k]
            probs["detection_prob"][p.name] = detection
            probs["marginal_prob"][p.name] = result.assignment_prob[:, k] * detection
        for name, per_top in probs.items():
            fields[name] = ak.zip(per_top)
        fields["nu_eta"] = np.asarray(ak.to_numpy(outputs["nu_eta"]), np.float64)
        return ak.zip(fields, depth_limit=1)


class PermutationDNNWrapper(ModelWrapper):
    """Runs the permutation DNN over every permutation of the first ``max_jets`` jets."""

    output_names: ClassVar[tuple[str, ...]] = ("score",)
    per_object_outputs: ClassVar[dict[str, str]] = {"score": "perms"}

    def __init__(self, *args: Any, max_jets: int = 6, **kwargs: Any) -> None:
        kwargs.setdefault("max_tokens", 1 << 16)  # an MLP per permutation: large batches are cheap
        super().__init__(*args, **kwargs)
        self.max_jets = int(max_jets)

    def prepare(self, inputs: Any) -> dict[str, Jagged | Dense]:
        offsets, _, features = permutation_features(inputs, self.max_jets)
        record = ak.zip({name: features[:, i] for i, name in enumerate(FEATURE_NAMES)})
        return {"perms": Jagged(ak.unflatten(record, np.diff(offsets)))}

    def postprocess(self, outputs: ak.Array, inputs: Any) -> ak.Array:
        n_jets = np.asarray(ak.to_numpy(ak.num(inputs.jets, axis=1)), np.int64)
        offsets, perms = flat_permutations(n_jets, self.max_jets)
        best, prob = best_permutation(offsets, perms, ak.to_numpy(ak.flatten(outputs.score)))
        fields = {name: best[:, i] for i, name in enumerate(PERMUTATION_FIELDS)}
        fields["probability"] = prob
        return ak.zip(fields)


def _weights_dir() -> Path:
    return Path(str(resources.files(__package__).joinpath("weights")))


def shipped_ttbar_models() -> list[str]:
    """Names of the shipped tt̄ assignment models (model cards in ttbar/weights)."""
    return card_names(_weights_dir())


def ttbar_model_card(name: str) -> dict[str, Any]:
    return read_model_card(_weights_dir(), name, "tt̄")


def shipped_ttbar_model(name: str, device: str = "auto", precision: str = "auto") -> ModelWrapper:
    """The wrapper of a shipped model, e.g. ``shipped_ttbar_model("spanet_pu60")``."""
    card = ttbar_model_card(name)
    backend = card_backend(_weights_dir(), card)
    if card["model"].endswith(":SPANet"):
        config = card["config"]
        return SPANetWrapper(
            backend,
            device=device,
            precision=precision,
            topology=config.get("topology", "semileptonic_ttbar"),
            max_jets=config.get("max_jets", 10),
        )
    return PermutationDNNWrapper(
        backend, device=device, precision=precision, max_jets=card["config"].get("max_jets", 6)
    )
