"""Physics constants used across coffea-mlreco (PDG 2024 values).

Masses and widths are in GeV. Every module takes its constants from here, so a change of
convention happens in one place.
"""

from __future__ import annotations

__all__ = [
    "ALPHA_EM_MZ",
    "FERMION_CHARGE",
    "FERMION_WEAK_ISOSPIN",
    "GEV2_TO_PB",
    "MET_BINS_GEV",
    "M_B",
    "M_ELECTRON",
    "M_H",
    "M_MUON",
    "M_PION",
    "M_TAU",
    "M_TOP",
    "M_W",
    "M_Z",
    "NEUTRINO_IDS",
    "PARTON_JET_DR",
    "PDG",
    "SIN2_THETA_W",
    "W_TOP",
    "W_W",
    "W_Z",
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
    "d": 1,
    "u": 2,
    "s": 3,
    "c": 4,
    "b": 5,
    "t": 6,
    "e": 11,
    "nu_e": 12,
    "mu": 13,
    "nu_mu": 14,
    "tau": 15,
    "nu_tau": 16,
    "g": 21,
    "gamma": 22,
    "Z": 23,
    "W": 24,
    "H": 25,
    "pi0": 111,
    "pi+": 211,
    "K0L": 130,
    "n": 2112,
    "p": 2212,
}
NEUTRINO_IDS = (12, 14, 16)

MET_BINS_GEV = (0.0, 45.0, 70.0, 100.0, 150.0, float("inf"))
"""Gen-MET bin edges (GeV) in which MET bias and resolution are reported (DESIGN.md)."""

PARTON_JET_DR = 0.4
"""Maximum ΔR for a unique parton-jet match (SPANet convention)."""

FERMION_CHARGE = {
    1: -1.0 / 3.0,
    2: 2.0 / 3.0,
    3: -1.0 / 3.0,
    4: 2.0 / 3.0,
    5: -1.0 / 3.0,
    6: 2.0 / 3.0,
    11: -1.0,
    12: 0.0,
    13: -1.0,
    14: 0.0,
    15: -1.0,
    16: 0.0,
}
"""Electric charge (units of e) of the fermion with this PDG id (the particle; antiparticles have the opposite)."""

FERMION_WEAK_ISOSPIN = {
    1: -0.5,
    2: 0.5,
    3: -0.5,
    4: 0.5,
    5: -0.5,
    6: 0.5,
    11: -0.5,
    12: 0.5,
    13: -0.5,
    14: 0.5,
    15: -0.5,
    16: 0.5,
}
"""Third component T3 of the weak isospin of the left-handed fermion with this PDG id."""
