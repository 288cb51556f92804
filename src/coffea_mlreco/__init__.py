"""coffea-mlreco: machine-learned event reconstruction inside coffea columnar analyses.

``coffea_mlreco.<task>.reconstruct(events)`` (``met``, ``ttbar``, ``ditau``, ``mem``, ``mlpf``) appends a task's
columns to coffea NanoEvents; ``coffea_mlreco.reconstruct(events, tasks)`` appends several tasks' at once.
"""

from __future__ import annotations

from coffea_mlreco.core.version import __version__
from coffea_mlreco.reconstruction import TASKS, reconstruct

__all__ = ["TASKS", "__version__", "reconstruct"]
