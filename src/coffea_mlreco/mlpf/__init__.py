"""Machine-learned particle flow on the simulation's detector elements: model inputs, truth targets, the
`MLPFWrapper` producing ``MLPFCands``, the shipped models (``mlpf/weights``), and ``reconstruct``, which
appends ``MLPFCands`` and ``MLPFReco`` to an analyst's events (`coffea_mlreco.mlpf.columns`).

The model itself is `coffea_mlreco.mlpf.model.MLPF`; the elements and their truth targets are written by
``coffea-mlreco generate --elements`` (`coffea_mlreco.simulation.element_targets`).
"""

from __future__ import annotations

from coffea_mlreco.mlpf.columns import METHODS, input_columns, reconstruct, supported_methods
from coffea_mlreco.mlpf.inputs import ELEMENT_BRANCHES, element_table, mlpf_elements
from coffea_mlreco.mlpf.targets import TARGET_FIELDS, target_table

__all__ = [
    "ELEMENT_BRANCHES",
    "METHODS",
    "TARGET_FIELDS",
    "element_table",
    "input_columns",
    "mlpf_elements",
    "reconstruct",
    "supported_methods",
    "target_table",
]
