"""`MLPFWrapper`: run MLPF on NanoEvents with detector elements and return ``MLPFCands`` per event.

Input: ``events.PFTrack`` and ``events.PFCluster`` (files made with ``coffea-mlreco generate --elements``),
turned into the element rows of `coffea_mlreco.mlpf.inputs`. The model's per-element heads come back jagged
(``per_object_outputs``) and are decoded into the ``MLPFCands`` collection (`coffea_mlreco.mlpf.candidates`:
PFCands' fields, so ``puppi_weights(MLPFCands, npv=...)`` and PF MET run on it).

Shipped models: ``mlpf/weights/<name>.json`` (model card) + ``<name>.safetensors``. A card may hold
``"decision": {"class_logit_offsets": [6 numbers], "neutral_pt_scale": [[6], [6]], ...}``: offsets added to the
class logits before the arg-max and the response correction of neutral candidates (|η| < 3, HF), chosen on
validation events (the card says how); `MLPFWrapper.from_card` (so ``MLPF_MODELS.load``) applies them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import awkward as ak
import numpy as np

from coffea_mlreco.core.columns import Events, to_numpy
from coffea_mlreco.inference import Dense, Jagged, ModelRegistry, ModelWrapper
from coffea_mlreco.inference.backends import Backend
from coffea_mlreco.mlpf.candidates import candidate_columns
from coffea_mlreco.mlpf.inputs import FEATURES, element_table

__all__ = ["MLPF_MODELS", "MLPFWrapper"]


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

    @classmethod
    def from_card(cls, backend: Backend, card: Mapping[str, Any], **kwargs: Any) -> MLPFWrapper:
        """The wrapper with the card's ``decision`` (class-logit offsets, neutral response; none when absent)."""
        decision = card.get("decision", {})
        return cls(
            backend,
            class_logit_offsets=decision.get("class_logit_offsets"),
            neutral_pt_scale=decision.get("neutral_pt_scale"),
            **kwargs,
        )

    def prepare(self, events: Events) -> dict[str, Jagged | Dense]:
        table, counts = element_table(events)
        record = ak.zip({name: table[:, i] for i, name in enumerate(FEATURES)})
        return {"elements": Jagged(ak.unflatten(record, counts))}

    def postprocess(self, outputs: Any, events: Events) -> ak.Array:
        table, counts = element_table(events)

        def flat(name: str) -> np.ndarray:
            return to_numpy(ak.flatten(outputs[name], axis=1), np.float32)

        tracks = events.PFTrack

        def track_field(name: str, dtype: type) -> np.ndarray:
            return to_numpy(ak.flatten(tracks[name], axis=1), dtype)

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


MLPF_MODELS = ModelRegistry("coffea_mlreco.mlpf", "MLPF", {"coffea_mlreco.mlpf.model:MLPF": MLPFWrapper})
"""The MLPF models: shipped ``mlpf_pu<N>`` (``MLPF_MODELS.load("mlpf_pu60")``) or model directories."""
