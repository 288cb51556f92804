"""Layers shared by the task models (no task imports): shape-agnostic attention, a per-candidate MLP.

The models themselves live with their task (``met/perceiver.py``, ``ttbar/spanet.py``, ...).
"""

from coffea_mlreco.nn.attention import attend

__all__ = ["attend"]
