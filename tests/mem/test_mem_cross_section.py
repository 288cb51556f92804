"""Hadronic LO cross-sections: quadrature convergence, phase-space closure, and Pythia 8's σ."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from coffea_mlreco.core.constants import GEV2_TO_PB
from coffea_mlreco.mem.cross_section import (
    FULL_PHASE_SPACE,
    FiducialRegion,
    fiducial_cross_section_gev2,
    hadronic_cross_section,
    parton_luminosities,
)
from coffea_mlreco.mem.hypothesis import Hypothesis, load_hypothesis
from coffea_mlreco.mem.matrix_elements import MatrixElement
from coffea_mlreco.mem.pdf import load_pdf
from coffea_mlreco.mem.phase_space import dilepton_kinematics, phase_space_factor

SQRT_S = 13600.0


def _with_z_width(width: float) -> Hypothesis:
    sm = load_hypothesis("dy_sm")
    return dataclasses.replace(
        sm, mediators=tuple(dataclasses.replace(m, width=width) if m.name == "Z" else m for m in sm.mediators)
    )


@pytest.mark.parametrize("name", ["dy_sm", "zprime", "scalar"])
def test_quadrature_converged(name: str) -> None:
    hyp = load_hypothesis(name)
    for region in (FiducialRegion(), dataclasses.replace(FULL_PHASE_SPACE, mll_min=60.0, mll_max=120.0)):
        coarse = hadronic_cross_section(hyp, region)
        fine = hadronic_cross_section(hyp, region, n_mass=24, n_y=48)
        assert coarse == pytest.approx(fine, rel=1e-4)
        assert coarse > 0


def test_fiducial_cuts_reduce_the_cross_section() -> None:
    hyp = load_hypothesis("dy_sm")
    full = hadronic_cross_section(hyp, FULL_PHASE_SPACE)
    fid = hadronic_cross_section(hyp, FiducialRegion())
    tighter = hadronic_cross_section(hyp, FiducialRegion(lepton_pt_min=25.0))
    assert 0 < tighter < fid < full
    assert fiducial_cross_section_gev2(hyp, FiducialRegion()) * GEV2_TO_PB == pytest.approx(fid, rel=1e-12)
    with pytest.raises(ValueError, match="invalid fiducial region"):
        FiducialRegion(mll_min=100.0, mll_max=50.0)


def test_event_phase_space_closes_on_the_cross_section() -> None:
    """The event-level measure of the MEM, (2π)⁻²(p_a p_b/4)(2/s) dp_a dp_b per dη dφ of each lepton with the
    flux 1/(2x₁x₂s), the x₁, x₂ and Collins–Soper cos θ* of :mod:`phase_space`, integrated over LO
    (back-to-back) configurations with the transverse δ² done (p_b = p_a, φ_b = φ_a + π: factor 1/p_b),
    reproduces σ computed in the independent variables (m, y, cos θ*). Region: |η| < 2.5, 60 < m < 120."""
    hyp = load_hypothesis("dy_sm")
    pdf = load_pdf(hyp.pdf)
    region = FiducialRegion(lepton_pt_min=0.0, lepton_abs_eta_max=2.5, mll_min=60.0, mll_max=120.0)
    expected = fiducial_cross_section_gev2(hyp, region, 13, SQRT_S)
    # m (with nodes dense around the Z), η_a, η_b; p_a = m / √(2 (1 + cosh Δη)), dp_a = dm / √(2 (1 + cosh Δη))
    edges = np.unique(np.concatenate([np.linspace(60, 120, 13), 91.188 + 2.5 * np.array([-4, -2, -1, 0, 1, 2, 4])]))
    t, w = np.polynomial.legendre.leggauss(12)
    m = (0.5 * np.diff(edges)[:, None] * t + 0.5 * (edges[1:] + edges[:-1])[:, None]).ravel()
    wm = (0.5 * np.diff(edges)[:, None] * w).ravel()
    te, we = np.polynomial.legendre.leggauss(40)
    eta, weta = 2.5 * te, 2.5 * we
    mm, ea, eb = np.meshgrid(m, eta, eta, indexing="ij")
    weight = wm[:, None, None] * weta[None, :, None] * weta[None, None, :]
    dpdm = 1.0 / np.sqrt(2.0 * (1.0 + np.cosh(ea - eb)))
    pt = mm * dpdm
    kin = dilepton_kinematics(pt.ravel(), ea.ravel(), 0.0, pt.ravel(), eb.ravel(), math.pi, SQRT_S)
    assert np.allclose(kin.s_hat, mm.ravel() ** 2) and np.allclose(kin.qt2, 0.0, atol=1e-6)
    forward, backward = parton_luminosities(pdf, kin.x1, kin.x2, kin.s_hat)
    a, b, c = MatrixElement(hyp).coefficients(kin.s_hat, 13)
    cos = kin.cos_theta[:, None]
    hard = (forward * (a * (1 + cos**2) + b * cos + c) + backward * (a * (1 + cos**2) - b * cos + c)).sum(axis=1)
    flux = 1.0 / (2.0 * kin.x1 * kin.x2 * SQRT_S**2)
    density = hard * flux * phase_space_factor(pt.ravel(), pt.ravel(), SQRT_S) / pt.ravel() * 2 * math.pi
    print(np.sum(density * dpdm.ravel() * weight.ravel()) / expected - 1)
    assert np.sum(density * dpdm.ravel() * weight.ravel()) == pytest.approx(expected, rel=2e-4)


def test_pythia_nnpdf31_lo_cross_section() -> None:
    """σ(pp → γ*/Z → μμ, 60 < m < 120 GeV, 13.6 TeV) from our ME ⊗ PDF equals Pythia's sigmaGen with the same
    PDF (PDF:pSet = 18), α_EM, sin²θ_W, M_Z and the Z width Pythia computes (it cannot be forced with
    γ*/Z interference): within 3σ of Pythia's statistical error plus 0.2 %."""
    reference = pytest.importorskip("coffea_mlreco.mem.pythia_reference")
    pytest.importorskip("pythia8mc")
    pythia = reference.pythia_drell_yan_cross_section(mll_min=60.0, mll_max=120.0, pdf_set="18", n_events=60_000)
    ours = hadronic_cross_section(
        _with_z_width(pythia.z_width), dataclasses.replace(FULL_PHASE_SPACE, mll_min=60.0, mll_max=120.0)
    )
    assert abs(pythia.z_width - 2.5) < 0.05
    assert abs(ours - pythia.sigma_pb) < 3 * pythia.error_pb + 0.002 * ours
    assert 1400 < ours < 1800  # pb, LO NNPDF3.1 at 13.6 TeV


def test_pythia_cteq5l_cross_section() -> None:
    """The same with CTEQ5L (Pythia's parametrisation, called through PythiaPDF): tests our matrix element
    and quadrature independently of our grid reader, m_ℓℓ > 50 GeV."""
    reference = pytest.importorskip("coffea_mlreco.mem.pythia_reference")
    pytest.importorskip("pythia8mc")
    pythia = reference.pythia_drell_yan_cross_section(mll_min=50.0, mll_max=1000.0, pdf_set="2", n_events=60_000)
    ours = hadronic_cross_section(
        _with_z_width(pythia.z_width), FULL_PHASE_SPACE, pdf=reference.PythiaPDF(), n_mass=8, n_y=16
    )
    assert abs(ours - pythia.sigma_pb) < 3 * pythia.error_pb + 0.002 * ours
