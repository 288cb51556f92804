"""coffea processors of coffea-mlreco, one module per reconstruction task (installed as
``coffea_mlreco.processors``).

- :mod:`.met` — PF, PUPPI, DeepMET-style and Perceiver MET and the file's MET against GenMET (:class:`METProcessor`).
- :mod:`.ttbar` — semileptonic tt̄ jet-parton assignment: χ², KLFitter-style fit, permutation DNN, SPANet
  (:class:`TTbarProcessor`).
- :mod:`.ditau` — di-tau mass m_ττ: visible, collinear and FastMTT-style (:class:`DiTauProcessor`).
- :mod:`.mem` — Matrix Element Method weights, integrated and DeepMEM, and their discriminant (:class:`MEMProcessor`).
- :mod:`.mlpf` — machine-learned particle flow against rule-based PF (:class:`MLPFProcessor`).

Each is built on its task's ``coffea_mlreco.<task>.reconstruct`` and runs under ``processor.Runner`` and as a
dask-awkward graph (``coffea.dataset_tools.apply_to_fileset``) with identical histograms.
"""

from __future__ import annotations

from coffea_mlreco.processors.ditau import DiTauProcessor
from coffea_mlreco.processors.mem import MEMProcessor
from coffea_mlreco.processors.met import METProcessor
from coffea_mlreco.processors.mlpf import MLPFProcessor
from coffea_mlreco.processors.ttbar import TTbarProcessor

__all__ = ["DiTauProcessor", "MEMProcessor", "METProcessor", "MLPFProcessor", "TTbarProcessor"]
