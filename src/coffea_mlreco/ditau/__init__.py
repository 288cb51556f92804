"""Di-tau (m_ττ) reconstruction: candidate selection from NanoAOD, the inputs of the mass estimators, and
``reconstruct``, which appends ``DiTauReco`` (visible, collinear, FastMTT-style and transformer masses) to an
analyst's events (:mod:`coffea_mlreco.ditau.columns`).

The column functions are imported on first use: the baselines import :mod:`.inputs` from this package, and
importing them (and torch, for the transformer) here would make that circular.
"""

from __future__ import annotations

from typing import Any

__all__ = ["COLUMN", "METHODS", "input_columns", "reconstruct", "supported_methods"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from coffea_mlreco.ditau import columns

        return getattr(columns, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
