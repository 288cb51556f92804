"""Semileptonic tt̄ jet-parton assignment: χ², KLFitter-style fit, permutation DNN and SPANet; ``reconstruct``
appends their ``TTbarReco`` column to an analyst's events.

Where things live:

- :mod:`.inputs` — the ℓ+jets selection and the assignment inputs; :mod:`.columns` — :func:`reconstruct`;
- :mod:`.topology` (+ ``topologies/*.yaml``) — the event topology as data; :mod:`.permutations`,
  :mod:`.assignment`, :mod:`.outcomes` — permutations, extracted assignments, truth outcomes;
- :mod:`.neutrino` — the W-mass constraint on p_z,ν;
- :mod:`.chi2`, :mod:`.klfitter`, :mod:`.resolutions` (+ ``resolutions.json``) — the baselines and the widths and
  transfer functions they use, fitted on our simulation;
- :mod:`.permutation_features`, :mod:`.permutation_dnn`, :mod:`.spanet` — the networks; :mod:`.wrappers` — their
  model wrappers; ``weights/`` — the shipped models with their cards;
- :mod:`.training` — ``coffea-mlreco train ttbar``; :mod:`.report` — the report section;
- the coffea processor is ``processors/ttbar.py``.
"""

from coffea_mlreco.ttbar.columns import COLUMN, METHODS, input_columns, reconstruct, supported_methods

__all__ = ["COLUMN", "METHODS", "input_columns", "reconstruct", "supported_methods"]
