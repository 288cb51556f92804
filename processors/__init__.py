"""coffea processors of coffea-mlreco, one module per reconstruction task (installed as
``coffea_mlreco.processors``).

- :mod:`.met` — PF MET from candidates and the file's MET against GenMET (:class:`METProcessor`).
- :mod:`.ttbar` — semileptonic tt̄ jet-parton assignment: χ², KLFitter-style fit, permutation DNN, SPANet
  (:class:`TTbarProcessor`).
- :mod:`.ditau` — di-tau mass m_ττ: visible, collinear and FastMTT-style (:class:`DiTauProcessor`).
- :mod:`.mem` — Matrix Element Method weights, integrated and DeepMEM, and their discriminant (:class:`MEMProcessor`).
"""

from __future__ import annotations

from coffea_mlreco.processors.ditau import DiTauProcessor
from coffea_mlreco.processors.mem import MEMProcessor
from coffea_mlreco.processors.met import METProcessor
from coffea_mlreco.processors.ttbar import TTbarProcessor

__all__ = ["DiTauProcessor", "MEMProcessor", "METProcessor", "TTbarProcessor"]
