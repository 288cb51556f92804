"""coffea processors of coffea-mlreco, one module per reconstruction task (installed as
``coffea_mlreco.processors``).

- :mod:`.met` — PF MET from candidates and the file's MET against GenMET (:class:`METProcessor`).
- :mod:`.ttbar` — semileptonic tt̄ jet-parton assignment: χ², KLFitter-style fit, permutation DNN, SPANet
  (:class:`TTbarProcessor`).
"""

from __future__ import annotations

from coffea_mlreco.processors.met import METProcessor
from coffea_mlreco.processors.ttbar import TTbarProcessor

__all__ = ["METProcessor", "TTbarProcessor"]
