"""Physics constants used across coffea-mlreco (PDG 2024 values).

Masses and widths are in GeV. Every module takes its constants from here, so a change of
convention happens in one place.
"""

from __future__ import annotations

__all__ = [
    "M_TOP", "W_TOP", "M_W", "W_W", "M_Z", "W_Z", "M_H", "M_TAU", "M_B",
    "M_ELECTRON", "M_MUON", "M_PION", "SIN2_THETA_W", "ALPHA_EM_MZ", "GEV2_TO_PB",
    "PDG", "NEUTRINO_IDS", "MET_BINS_GEV", "PARTON_JET_DR",
]

M_TOP = 172.57
W_TOP = 1.42
M_W = 80.369
W_W = 2.085
M_Z = 91.1880
W_Z = 2.4955
M_H = 125.20
M_TAU = 1.77693
M_B = 4.78
M_ELECTRON = 0.000511
M_MUON = 0.105658
M_PION = 0.13957
SIN2_THETA_W = 0.23122
ALPHA_EM_MZ = 1.0 / 127.951
GEV2_TO_PB = 0.3893793721e9
"""Conversion of a cross-section from GeV^-2 to pb."""

PDG = {
    "d": 1, "u": 2, "s": 3, "c": 4, "b": 5, "t": 6,
    "e": 11, "nu_e": 12, "mu": 13, "nu_mu": 14, "tau": 15, "nu_tau": 16,
    "g": 21, "gamma": 22, "Z": 23, "W": 24, "H": 25,
    "pi0": 111, "pi+": 211, "K0L": 130, "n": 2112, "p": 2212,
}
NEUTRINO_IDS = (12, 14, 16)

MET_BINS_GEV = (0.0, 45.0, 70.0, 100.0, 150.0, float("inf"))
"""Gen-MET bin edges (GeV) in which MET bias and resolution are reported (DESIGN.md)."""

PARTON_JET_DR = 0.4
"""Maximum ΔR for a unique parton-jet match (SPANet convention)."""
