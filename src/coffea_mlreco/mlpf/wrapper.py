"""`MLPFWrapper`: run MLPF on NanoEvents with detector elements and return ``MLPFCands`` per event.

Input: ``events.PFTrack`` and ``events.PFCluster`` (files made with ``coffea-mlreco generate --elements``),
turned into the element rows of `coffea_mlreco.mlpf.inputs`. The model's per-element heads come back jagged
(``per_object_outputs``) and are decoded into the ``MLPFCands`` collection (`coffea_mlreco.mlpf.candidates`:
PFCands' fields, so ``puppi_weights(MLPFCands, npv=...)`` and PF MET run on it).

Shipped models: ``mlpf/weights/<name>.json`` (model card) + ``<name>.safetensors``. A card may hold
``"decision": {"class_logit_offsets": [6 numbers], "neutral_pt_scale": [[6], [6]], ...}``: offsets added to the
class logits before the arg-max and the response correction of neutral candidates (|η| < 3, HF), chosen on
validation events (the card says how); `shipped_mlpf_model` applies them.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import awkward as ak
import numpy as np

from coffea_mlreco.inference import Dense, Jagged, ModelWrapper
from coffea_mlreco.inference.model_cards import card_backend, card_names, read_model_card
from coffea_mlreco.mlpf.candidates import candidate_columns
from coffea_mlreco.mlpf.inputs import FEATURES, element_table

__all__ = ["MLPFWrapper", "mlpf_model_card", "shipped_mlpf_model", "shipped_mlpf_models"]


class MLPFWrapper(ModelWrapper):
    """Elements → ``MLPFCands`` (jagged record array, one list per event). ``postprocess`` also keeps the
    per-element predicted class of the last call in ``last_element_class`` (flat, element order) for
    performance studies."""

    output_names: ClassVar[tuple[str, ...]] = ("class_logits", "momentum", "charge_logit")
    per_object_outputs: ClassVar[dict[str, str]] = {
        "class_logits": "elements",
        "momentum": "elements",
        "charge_logit": "elements",
    }

    def __init__(
        self,
        *args: Any,
        class_logit_offsets: Sequence[float] | None = None,
        neutral_pt_scale: Sequence[Sequence[float]] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("max_tokens", 1 << 14)
        super().__init__(*args, **kwargs)
        if class_logit_offsets is not None and len(class_logit_offsets) != 6:
            raise ValueError(f"class_logit_offsets needs one value per class (6), not {len(class_logit_offsets)}")
        self.class_logit_offsets = None if class_logit_offsets is None else np.asarray(class_logit_offsets, np.float32)
        self.neutral_pt_scale = None if neutral_pt_scale is None else np.asarray(neutral_pt_scale, np.float32)
        if self.neutral_pt_scale is not None and self.neutral_pt_scale.shape != (2, 6):
            raise ValueError(
                f"neutral_pt_scale must be [2, 6] (|η| < 3, HF; per class), not {self.neutral_pt_scale.shape}"
            )
        self.last_element_class: np.ndarray | None = None

    def prepare(self, events: Any) -> dict[str, Jagged | Dense]:
        table, counts = element_table(events)
        record = ak.zip({name: table[:, i] for i, name in enumerate(FEATURES)})
        return {"elements": Jagged(ak.unflatten(record, counts))}

    def postprocess(self, outputs: Any, events: Any) -> ak.Array:
        table, counts = element_table(events)

        def flat(name: str) -> np.ndarray:
            return np.asarray(ak.to_numpy(ak.flatten(outputs[name], axis=1)), np.float32)

        tracks = events.PFTrack

        def track_field(name: str, dtype: type) -> np.ndarray:
            return np.asarray(ak.to_numpy(ak.flatten(tracks[name], axis=1)), dtype)

        columns, out_counts, cls = candidate_columns(
            table,
            counts,
            flat("class_logits").reshape(-1, 6),
            flat("momentum").reshape(-1, 5),
            flat("charge_logit"),
            track_field("fromPV", np.int32),
            track_field("pvAssocQuality", np.int32),
            track_field("dzErr", np.float32),
            self.class_logit_offsets,
            self.neutral_pt_scale,
        )
        self.last_element_class = cls
        return ak.unflatten(ak.zip(columns), out_counts)

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["last_element_class"] = None
        return state


def _weights_dir() -> Path:
    return Path(str(resources.files(__package__).joinpath("weights")))


def shipped_mlpf_models() -> list[str]:
    """Names of the shipped MLPF models (model cards in mlpf/weights)."""
    return card_names(_weights_dir())


def mlpf_model_card(name: str) -> dict[str, Any]:
    return read_model_card(_weights_dir(), name, "MLPF")


def shipped_mlpf_model(name: str = "mlpf_pu60", device: str = "auto", precision: str = "fp32") -> MLPFWrapper:
    """The wrapper of a shipped model, e.g. ``shipped_mlpf_model("mlpf_pu60")``."""
    card = mlpf_model_card(name)
    decision = card.get("decision", {})
    return MLPFWrapper(
        card_backend(_weights_dir(), card),
        device=device,
        precision=precision,
        class_logit_offsets=decision.get("class_logit_offsets"),
        neutral_pt_scale=decision.get("neutral_pt_scale"),
    )
