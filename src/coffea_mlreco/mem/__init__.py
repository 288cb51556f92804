"""Matrix Element Method for q q̄ → ℓ⁺ℓ⁻: LO matrix elements, offline PDFs, transfer functions, VEGAS weights.

Modules, one job each:

- :mod:`.pdf` — LHAPDF6 ``lhagrid1`` grids (shipped with Pythia 8) read and interpolated with numpy/numba;
- :mod:`.hypothesis` — hypotheses (mediators, couplings, PDF) as validated YAML (``hypotheses/*.yaml``);
- :mod:`.matrix_elements` — analytic spin- and colour-averaged |M̄|²;
- :mod:`.cross_section` — LO hadronic σ, total and fiducial (the weights' normalisation);
- :mod:`.transfer_functions` — Gaussian lepton p_T and MET resolutions of the simulated detector;
- :mod:`.phase_space` — MoMEMta-style Drell-Yan parametrisation (x₁, x₂, ŝ, cos θ*, Jacobian);
- :mod:`.integration` — per-event weights log₁₀ P(y|α) with VEGAS, in parallel over events;
- :mod:`.pythia_reference` — Pythia 8 cross-sections and PDFs for validation;
- :mod:`.inputs` — the dilepton selection and the integration and network inputs;
- :mod:`.datasets` — which datasets are the discriminant's signal and which its background, by name;
- :mod:`.tables` — ``coffea-mlreco mem-weights``: integrated weight tables, the DeepMEM training data;
- :mod:`.deepmem`, :mod:`.wrappers` — the DeepMEM network and its model wrapper; ``weights/`` — the shipped model;
- :mod:`.columns` — :func:`reconstruct`: the ``MEMReco`` column (integrated and DeepMEM weights, discriminant)
  appended to an analyst's NanoEvents in every coffea mode;
- :mod:`.training` — ``coffea-mlreco train mem``; :mod:`.report` — the report section; the coffea processor is
  ``processors/mem.py``.

Entry points: :func:`mem_log_weights` (definition, units and conventions in :mod:`.integration`) and
:func:`reconstruct` (columns, inputs and seeding in :mod:`.columns`).
"""

from __future__ import annotations

from coffea_mlreco.mem.columns import METHODS, input_columns, reconstruct, supported_methods
from coffea_mlreco.mem.cross_section import (
    FULL_PHASE_SPACE,
    FiducialRegion,
    fiducial_cross_section_gev2,
    hadronic_cross_section,
)
from coffea_mlreco.mem.hypothesis import Hypothesis, Mediator, load_hypothesis, shipped_hypotheses
from coffea_mlreco.mem.integration import IntegrationSettings, MEMResult, mem_log_weights
from coffea_mlreco.mem.matrix_elements import MatrixElement, partonic_cross_section, squared_matrix_element
from coffea_mlreco.mem.pdf import PDF_PIDS, PartonDensity, load_pdf
from coffea_mlreco.mem.transfer_functions import ElectronResolution, MetResolution, MuonResolution, TransferFunctions

__all__ = [
    "FULL_PHASE_SPACE",
    "METHODS",
    "PDF_PIDS",
    "ElectronResolution",
    "FiducialRegion",
    "Hypothesis",
    "IntegrationSettings",
    "MEMResult",
    "MatrixElement",
    "Mediator",
    "MetResolution",
    "MuonResolution",
    "PartonDensity",
    "TransferFunctions",
    "fiducial_cross_section_gev2",
    "hadronic_cross_section",
    "input_columns",
    "load_hypothesis",
    "load_pdf",
    "mem_log_weights",
    "partonic_cross_section",
    "reconstruct",
    "shipped_hypotheses",
    "squared_matrix_element",
    "supported_methods",
]
