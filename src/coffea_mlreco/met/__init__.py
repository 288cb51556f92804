"""MET at high pileup: PF and PUPPI MET, the DeepMET-style and Perceiver networks; ``reconstruct`` appends their
columns (``PFMETReco``, ``PuppiMETReco``, ``PFCands.puppiWeightReco``, ``DeepMETReco``, ``MLMET``) to an analyst's
events.

Where things live:

- :mod:`.columns` — :func:`reconstruct`, its declared input branches and per-chunk model choice;
- :mod:`.pf_met`, :mod:`.puppi` (+ ``puppi_tunes.json``) — the baselines: weighted MET sum, numba PUPPI (CMS algorithm);
- :mod:`.resolution` (+ ``met_resolution.json``) — the per-event MET covariance of each method, calibrated on
  generated events; :mod:`.calibration` — ``coffea-mlreco calibrate-met``, which refits it;
- :mod:`.features` — per-candidate and per-event network inputs; :mod:`.neighbourhood` — the neutral, charged-PV and
  charged-pileup p_T around each candidate (the inputs of a model trained with ``train met --neighbourhood``);
- :mod:`.embedding`, :mod:`.deepmet`, :mod:`.perceiver` — the networks; :mod:`.wrappers` — their model wrappers;
- ``weights/`` — the shipped models, each with its model card;
- :mod:`.training` — ``coffea-mlreco train met``; :mod:`.report` — the report section (resolution per gen-MET bin);
- the coffea processor is ``processors/met.py`` (``coffea_mlreco.processors.met``).
"""

from coffea_mlreco.met.columns import COLUMNS, METHODS, input_columns, reconstruct, supported_methods

__all__ = ["COLUMNS", "METHODS", "input_columns", "reconstruct", "supported_methods"]
