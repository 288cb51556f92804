"""MLPF truth targets from ``PFTarget`` (definition: `coffea_mlreco.simulation.element_targets`).

One row per element, in the element order of `coffea_mlreco.mlpf.inputs` (tracks then clusters per event).
"""

from __future__ import annotations

from typing import Any

import awkward as ak
import numpy as np

from coffea_mlreco.core.columns import Events, to_numpy

__all__ = ["TARGET_FIELDS", "target_table", "target_table_from_tree"]

TARGET_FIELDS = ("cls", "pt", "eta", "phi", "e", "charge", "genVertex")
"""``PFTarget`` fields: class index (`PARTICLE_CLASSES`), true pT, η, φ, E (GeV, rad), charge, and the vertex
of the target's leading particle (0 hard scatter, k ≥ 1 pileup, −1 for class none)."""


def target_table(events: Events) -> dict[str, np.ndarray]:
    """Flat ``PFTarget`` columns of NanoEvents (``cls``, ``charge``, ``genVertex`` int64, the rest float32)."""
    return {f: _flat(events.PFTarget[f], f) for f in TARGET_FIELDS}


def target_table_from_tree(
    tree: Any, entry_start: int | None = None, entry_stop: int | None = None
) -> dict[str, np.ndarray]:
    """`target_table` from an uproot ``Events`` tree."""
    arrays = tree.arrays([f"PFTarget_{f}" for f in TARGET_FIELDS], entry_start=entry_start, entry_stop=entry_stop)
    return {f: _flat(arrays[f"PFTarget_{f}"], f) for f in TARGET_FIELDS}


def _flat(values: Any, field: str) -> np.ndarray:
    flat = to_numpy(ak.flatten(values, axis=1))
    return flat.astype(np.int64 if field in ("cls", "charge", "genVertex") else np.float32)
