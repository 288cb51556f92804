"""Di-tau mass m_ττ: ``reconstruct`` appends ``DiTauReco`` (visible, collinear, FastMTT-style and transformer
masses) to an analyst's events.

Where things live:

- :mod:`.inputs` — τhτh, ℓτh and ℓℓ candidate selection from NanoAOD; :mod:`.targets` — generator-level targets;
- :mod:`.collinear_mass`, :mod:`.fastmtt` — the baselines (numba);
- :mod:`.transformer_inputs`, :mod:`.transformer` — the network's inputs and the network; :mod:`.wrappers` — its
  model wrapper; ``weights/`` — the shipped models with their cards (:func:`shipped_model` picks one per chunk);
- :mod:`.columns` — :func:`reconstruct`; :mod:`.training` — ``coffea-mlreco train ditau``; :mod:`.report` — the
  report section; the coffea processor is ``processors/ditau.py``.
"""

from __future__ import annotations

from coffea_mlreco.ditau.columns import (
    COLUMN,
    MASS_FIELDS,
    METHODS,
    input_columns,
    met_columns,
    reconstruct,
    shipped_model,
    supported_methods,
)

__all__ = [
    "COLUMN",
    "MASS_FIELDS",
    "METHODS",
    "input_columns",
    "met_columns",
    "reconstruct",
    "shipped_model",
    "supported_methods",
]
