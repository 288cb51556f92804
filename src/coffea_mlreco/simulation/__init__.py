"""Fast simulation: Pythia 8 hard processes, pileup overlay, a parametric detector, NanoAOD-like output.

Entry points: `generate_sample` (also `coffea-mlreco generate`) and `default_sample`, the embedded
default sample `coffea-mlreco evaluate` runs on when given no files.
"""

from __future__ import annotations

from coffea_mlreco.simulation.default_sample import DEFAULT_SAMPLES, default_sample
from coffea_mlreco.simulation.generate import generate_sample
from coffea_mlreco.simulation.processes import PROCESSES

__all__ = ["DEFAULT_SAMPLES", "PROCESSES", "default_sample", "generate_sample"]
