"""Pythia 8 as an independent reference for the MEM physics core (validation only; not used by the weights).

``pythia_drell_yan_cross_section`` runs Pythia's own LO q q̄ → γ*/Z → ℓ⁺ℓ⁻ (``WeakSingleBoson:ffbar2gmZ``)
with showers, MPI and hadronisation off, so ``Info::sigmaGen`` converges to the LO integral within its
quoted statistical error. The electroweak inputs are set to ours:

- ``SigmaProcess:alphaEMorder = -1``: α_EM fixed at ``StandardModel:alphaEMmZ`` (= our α_EM);
- ``StandardModel:sin2thetaW`` and ``sin2thetaWbar`` both = our sin²θ_W (Pythia uses the second in the
  vector couplings of the Z);
- ``23:m0`` = our M_Z. Pythia recomputes the Z width from its couplings at initialisation
  (``doForceWidth`` is not allowed with γ*/Z interference), so the width it used is returned and the
  comparison must give our hypothesis the same width (Pythia's propagator has the running width ŝΓ/M,
  the ``running`` scheme of ``dy_sm``);
- the factorisation scale of a 2 → 1 process is ŝ = m_ℓℓ², as ours.

``PythiaPDF`` wraps one of Pythia's PDF objects (e.g. the CTEQ5L parametrisation) in the
``xfx_all`` interface of :class:`coffea_mlreco.mem.pdf.PartonDensity` (a Python loop: slow, for checks).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from coffea_mlreco.core.constants import ALPHA_EM_MZ, M_Z, SIN2_THETA_W
from coffea_mlreco.mem.pdf import PDF_PIDS

__all__ = ["PythiaCrossSection", "PythiaPDF", "pythia_drell_yan_cross_section"]


def _pythia(settings: list[str]) -> Any:
    import pythia8mc

    xmldoc = os.environ.get("PYTHIA8DATA") or os.path.join(sys.prefix, "share", "Pythia8", "xmldoc")
    pythia = pythia8mc.Pythia(xmldoc if os.path.isdir(xmldoc) else "", False)
    for line in ["Print:quiet = on", *settings]:
        if not pythia.readString(line):
            raise RuntimeError(f"Pythia rejected the setting {line!r}")
    if not pythia.init():
        raise RuntimeError("Pythia failed to initialise")
    return pythia


@dataclass(frozen=True)
class PythiaCrossSection:
    """Pythia's LO cross-section: ``sigma_pb`` ± ``error_pb`` (statistical), the Z width it used (GeV)."""

    sigma_pb: float
    error_pb: float
    z_width: float
    n_events: int


def pythia_drell_yan_cross_section(
    *,
    sqrt_s: float = 13600.0,
    mll_min: float = 60.0,
    mll_max: float = 120.0,
    lepton: int = 13,
    pdf_set: str = "18",
    n_events: int = 100_000,
    seed: int = 1,
    alpha_em: float = ALPHA_EM_MZ,
    sin2_theta_w: float = SIN2_THETA_W,
    m_z: float = M_Z,
) -> PythiaCrossSection:
    """σ(pp → γ*/Z → ℓ⁺ℓ⁻) at LO from Pythia 8, in pb, for mll_min < m_ℓℓ < mll_max (GeV).

    ``pdf_set`` is a ``PDF:pSet`` value: ``"18"`` is NNPDF3.1 QCD LO α_s = 0.118 (Pythia's internal
    LHAGrid1 reader of the same grid file we read), ``"2"`` CTEQ5L.
    """
    pythia = _pythia(
        [
            f"Beams:eCM = {sqrt_s}",
            f"PDF:pSet = {pdf_set}",
            "WeakSingleBoson:ffbar2gmZ = on",
            "23:onMode = off",
            f"23:onIfAny = {abs(lepton)}",
            f"23:m0 = {m_z}",
            f"PhaseSpace:mHatMin = {mll_min}",
            f"PhaseSpace:mHatMax = {mll_max}",
            "PartonLevel:all = off",
            "HadronLevel:all = off",
            "ProcessLevel:resonanceDecays = on",
            "SigmaProcess:alphaEMorder = -1",
            f"StandardModel:alphaEMmZ = {alpha_em}",
            f"StandardModel:sin2thetaW = {sin2_theta_w}",
            f"StandardModel:sin2thetaWbar = {sin2_theta_w}",
            "Random:setSeed = on",
            f"Random:seed = {seed}",
            "Next:numberCount = 0",
        ]
    )
    for _ in range(n_events):
        pythia.next()
    info = pythia.infoPython()
    mb_to_pb = 1e9
    return PythiaCrossSection(
        info.sigmaGen() * mb_to_pb, info.sigmaErr() * mb_to_pb, float(pythia.particleData.mWidth(23)), n_events
    )


class PythiaPDF:
    """A Pythia 8 proton PDF (``pythia8mc.CTEQ5L(2212)`` by default) behind ``xfx_all``; slow, for checks."""

    def __init__(self, pdf: Any = None) -> None:
        if pdf is None:
            import pythia8mc

            pdf = pythia8mc.CTEQ5L(2212)
        self._pdf = pdf
        self.name = type(pdf).__name__

    def xfx_all(self, x: np.ndarray, q2: np.ndarray) -> np.ndarray:
        """x·f for the flavours of :data:`~coffea_mlreco.mem.pdf.PDF_PIDS`, shape ``broadcast(x, q2).shape + (11,)``."""
        xb, qb = np.broadcast_arrays(np.asarray(x, dtype=float), np.asarray(q2, dtype=float))
        out = np.empty((*xb.shape, len(PDF_PIDS)))
        flat_out = out.reshape(-1, len(PDF_PIDS))
        xf = self._pdf.xf
        for n, (xv, qv) in enumerate(zip(xb.ravel().tolist(), qb.ravel().tolist(), strict=True)):
            flat_out[n] = [xf(pid, xv, qv) if xv < 1.0 else 0.0 for pid in PDF_PIDS]
        return out
