"""Machine-learned particle flow on the simulation's detector elements: model inputs, truth targets, the
`MLPFWrapper` producing ``MLPFCands``, and the shipped models (``mlpf/weights``).

The model itself is `coffea_mlreco.models.mlpf.MLPF`; the elements and their truth targets are written by
``coffea-mlreco generate --elements`` (`coffea_mlreco.simulation.element_targets`).
"""

from __future__ import annotations

from .inputs import ELEMENT_BRANCHES, element_table, mlpf_elements
from .targets import TARGET_FIELDS, target_table

__all__ = ["ELEMENT_BRANCHES", "TARGET_FIELDS", "element_table", "mlpf_elements", "target_table"]
