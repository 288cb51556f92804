"""coffea processors of coffea-mlreco, one module per reconstruction task (installed as
``coffea_mlreco.processors``).

- :mod:`.met` — PF MET from candidates and the file's MET against GenMET (:class:`METProcessor`).
"""

from __future__ import annotations

from coffea_mlreco.processors.met import METProcessor

__all__ = ["METProcessor"]
