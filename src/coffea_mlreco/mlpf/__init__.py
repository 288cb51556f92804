"""Machine-learned particle flow on the simulation's detector elements; ``reconstruct`` appends ``MLPFCands``
and ``MLPFReco`` to an analyst's events.

Where things live:

- :mod:`.inputs` — the model inputs from ``PFTrack``/``PFCluster`` (written by ``coffea-mlreco generate --elements``);
  :mod:`.targets` — the ``PFTarget`` truth targets; :mod:`.performance` — particle classes and efficiency definitions;
- :mod:`.model`, :mod:`.losses` — the network and its training losses; :mod:`.candidates` — decoding candidates;
- :mod:`.wrapper` — the model wrapper; ``weights/`` — the shipped models with their cards;
- :mod:`.columns` — :func:`reconstruct`; :mod:`.training` — ``coffea-mlreco train mlpf``; :mod:`.report` — the report
  section (rule-based PF, the file's ``PFCands``, is the baseline); the coffea processor is ``processors/mlpf.py``.
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
