"""coffea-mlreco: machine-learned event reconstruction inside coffea columnar analyses.

``coffea_mlreco.<task>.reconstruct(events)`` (``met``, ``ttbar``, ``ditau``, ``mem``, ``mlpf``) appends a task's
columns to coffea NanoEvents; ``coffea_mlreco.reconstruct(events, tasks)`` appends several tasks' at once.
"""

from __future__ import annotations

from .reconstruction import TASKS, reconstruct

__version__ = "0.1.0"
__all__ = ["TASKS", "__version__", "reconstruct"]
