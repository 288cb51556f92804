"""Pythia 8 settings of the physics processes `coffea-mlreco generate` knows.

The processes are data: each is a list of Pythia `readString` settings, plus, for tt̄ → ℓ+jets, the
charge-conjugate pair of settings that is mixed 50/50 (Pythia can force one W to leptons only by
charge, so each instance makes one lepton charge). Leptons are e and μ unless the name says τ.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["COMMON_SETTINGS", "PROCESSES", "ProcessSpec", "process_spec"]

COMMON_SETTINGS: tuple[str, ...] = (
    "Next:numberCount = 0",
    "Next:numberShowEvent = 0",
    "Next:numberShowInfo = 0",
    "Next:numberShowProcess = 0",
    "Init:showChangedSettings = off",
    "Init:showChangedParticleData = off",
    "Init:showProcesses = off",
    "Print:quiet = on",
    # the detector sees K0S and Lambda decay products at their (displaced) origin: let them decay
    "ParticleDecays:limitTau0 = off",
)

_TTBAR = ("Top:gg2ttbar = on", "Top:qqbar2ttbar = on", "6:m0 = 172.5")
_LIGHT_OR_CHARM = "1 2 3 4 5"
_SCALAR_MASSES_GEV = (60.0, 80.0, 100.0, 125.0, 150.0, 185.0, 230.0, 300.0)


def _scalar_tautau(mass: float) -> tuple[str, ...]:
    """gg → H → ττ with the Higgs mass set to ``mass`` (GeV) and a forced Breit-Wigner width of 10 %."""
    return (
        "HiggsSM:gg2H = on",
        f"25:m0 = {mass}",
        "25:doForceWidth = on",
        f"25:mWidth = {0.1 * mass}",
        f"25:mMin = {0.6 * mass}",
        f"25:mMax = {1.4 * mass}",
        "25:onMode = off",
        "25:onIfMatch = 15 -15",
    )


@dataclass(frozen=True)
class ProcessSpec:
    """One generated process: Pythia settings for each of its (equally mixed) sub-samples."""

    name: str
    description: str
    variants: tuple[tuple[str, ...], ...]


PROCESSES: dict[str, ProcessSpec] = {
    spec.name: spec
    for spec in (
        ProcessSpec(
            "ttbar-semilep",
            "tt̄ → b ℓν b q q′ (ℓ = e, μ), gg and qq̄ initial states",
            (
                (*_TTBAR, "24:onMode = off", "24:onPosIfAny = 11 13", f"24:onNegIfAny = {_LIGHT_OR_CHARM}"),
                (*_TTBAR, "24:onMode = off", "24:onNegIfAny = 11 13", f"24:onPosIfAny = {_LIGHT_OR_CHARM}"),
            ),
        ),
        ProcessSpec(
            "ttbar-dilep",
            "tt̄ → b ℓν b ℓν (ℓ = e, μ)",
            ((*_TTBAR, "24:onMode = off", "24:onIfAny = 11 13"),),
        ),
        ProcessSpec(
            "dy-ll",
            "Drell-Yan γ*/Z → ee, μμ with m_ℓℓ > 50 GeV",
            (("WeakSingleBoson:ffbar2gmZ = on", "23:onMode = off", "23:onIfAny = 11 13", "PhaseSpace:mHatMin = 50."),),
        ),
        ProcessSpec(
            "zprime-ll",
            "q q̄ → Z′ → ee, μμ: a sequential-SM-like Z′ of 200 GeV with Γ = 6 GeV and no γ*/Z (the signal of "
            "the MEM hypothesis mem/hypotheses/zprime.yaml)",
            (
                (
                    "NewGaugeBoson:ffbar2gmZZprime = on",
                    "Zprime:gmZmode = 3",
                    "32:m0 = 200.",
                    "32:doForceWidth = on",
                    "32:mWidth = 6.0",
                    "32:onMode = off",
                    "32:onIfAny = 11 13",
                ),
            ),
        ),
        ProcessSpec(
            "ztautau",
            "Drell-Yan γ*/Z → ττ with m_ττ > 50 GeV, all tau decays",
            (("WeakSingleBoson:ffbar2gmZ = on", "23:onMode = off", "23:onIfAny = 15", "PhaseSpace:mHatMin = 50."),),
        ),
        ProcessSpec(
            "htautau",
            "gg → H(125) → ττ, all tau decays",
            (("HiggsSM:gg2H = on", "25:m0 = 125.2", "25:onMode = off", "25:onIfMatch = 15 -15"),),
        ),
        ProcessSpec(
            "scalar-tautau",
            "gg → φ → ττ, a spin-0 resonance at one of 8 masses from 60 to 300 GeV (width 10 % of the mass, "
            "so the spectrum is continuous), all tau decays: the broad mass spectrum m_ττ regression trains on",
            tuple(_scalar_tautau(mass) for mass in _SCALAR_MASSES_GEV),
        ),
        ProcessSpec(
            "minbias",
            "inelastic pp (non-diffractive and diffractive), also the pileup library",
            (("SoftQCD:inelastic = on",),),
        ),
    )
}


def process_spec(name: str) -> ProcessSpec:
    """Look up a process by name; an unknown name is an error listing the known ones."""
    try:
        return PROCESSES[name]
    except KeyError:
        raise ValueError(f"unknown process {name!r}; known: {', '.join(PROCESSES)}") from None
