"""LO matrix elements against textbook results, and the hypothesis YAML loader."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from coffea_mlreco.core.constants import ALPHA_EM_MZ, FERMION_CHARGE, FERMION_WEAK_ISOSPIN, M_Z, SIN2_THETA_W, W_Z
from coffea_mlreco.mem.hypothesis import hypothesis_from_dict, load_hypothesis, shipped_hypotheses
from coffea_mlreco.mem.matrix_elements import partonic_cross_section, squared_matrix_element

S2 = SIN2_THETA_W


def _chiral(f: int) -> tuple[float, float]:
    """SM (g_L, g_R)/(e/(s_W c_W)) = (T3 − Q s², −Q s²) of fermion f."""
    return FERMION_WEAK_ISOSPIN[f] - FERMION_CHARGE[f] * S2, -FERMION_CHARGE[f] * S2


def _partial_width(f: int, colours: int) -> float:
    """Tree-level Γ(Z → f f̄) = N_c α M_Z (g_L² + g_R²)/(6 s² c²), with (g_L, g_R) from _chiral (GeV)."""
    gl, gr = _chiral(f)
    return colours * ALPHA_EM_MZ * M_Z * (gl**2 + gr**2) / (6 * S2 * (1 - S2))


def _z_only() -> object:
    sm = load_hypothesis("dy_sm")
    return dataclasses.replace(sm, mediators=tuple(m for m in sm.mediators if m.name == "Z"))


@pytest.mark.parametrize("quark", [1, 2])
def test_z_peak_cross_section(quark: int) -> None:
    """σ̂(q q̄ → Z → μμ) at √ŝ = M_Z = 12π Γ_qq Γ_μμ/(M_Z² Γ_Z²) × 1/3, Γ_qq per quark colour (so 1/N_c² with
    the colour-summed Γ); exact for the Z alone, and the full γ*/Z within 1 % (photon ≈ 0.2 %)."""
    peak = 12 * math.pi * _partial_width(quark, 1) * _partial_width(13, 1) / (M_Z**2 * W_Z**2) / 3
    assert partonic_cross_section(_z_only(), quark, 13, M_Z**2) == pytest.approx(peak, rel=1e-10)
    assert partonic_cross_section(load_hypothesis("dy_sm"), quark, 13, M_Z**2) == pytest.approx(peak, rel=0.01)


@pytest.mark.parametrize("quark", [1, 2, 3, 4, 5])
def test_forward_backward_asymmetry_at_the_pole(quark: int) -> None:
    """A_FB(√ŝ = M_Z) = ¾ A_q A_ℓ, A_f = (g_L² − g_R²)/(g_L² + g_R²), diluted by the (non-interfering at the
    pole) photon: A_FB = ¾ A_q A_ℓ σ_Z/(σ_Z + σ_γ)."""
    hyp = load_hypothesis("dy_sm")
    c = np.linspace(-1.0, 1.0, 20001)
    dsig = squared_matrix_element(hyp, quark, 13, M_Z**2, c)
    forward, backward = np.trapezoid(dsig[c >= 0], c[c >= 0]), np.trapezoid(dsig[c <= 0], c[c <= 0])
    asym = {}
    for f in (quark, 13):
        gl, gr = _chiral(f)
        asym[f] = (gl**2 - gr**2) / (gl**2 + gr**2)
    sigma_z = partonic_cross_section(_z_only(), quark, 13, M_Z**2)
    sigma_gamma = 4 * math.pi * ALPHA_EM_MZ**2 * FERMION_CHARGE[quark] ** 2 / (3 * M_Z**2) / 3
    expected = 0.75 * asym[quark] * asym[13] * sigma_z / (sigma_z + sigma_gamma)
    assert (forward - backward) / (forward + backward) == pytest.approx(expected, rel=1e-4)
    assert 0.05 < expected < 0.12


def test_photon_only_is_qed() -> None:
    """q q̄ → γ* → ℓℓ: |M̄|² = e⁴ Q_q² (1 + c²)/3 and σ̂ = 4πα² Q_q²/(3ŝ)/3, with no Z."""
    sm = load_hypothesis("dy_sm")
    photon = dataclasses.replace(sm, mediators=sm.mediators[:1])
    s, c = 200.0**2, np.array([-0.7, 0.0, 0.4])
    e4 = (4 * math.pi * ALPHA_EM_MZ) ** 2
    assert squared_matrix_element(photon, 2, 11, s, c) == pytest.approx(e4 * (4 / 9) * (1 + c**2) / 3, rel=1e-12)
    assert partonic_cross_section(photon, 1, 13, s) == pytest.approx(
        4 * math.pi * ALPHA_EM_MZ**2 / 9 / (3 * s) / 3, rel=1e-12
    )


def test_interference_switch() -> None:
    """γ*–Z interference ∝ Re(1/D_Z) vanishes at the pole and changes sign across it."""
    sm = load_hypothesis("dy_sm")
    incoherent = dataclasses.replace(sm, interference=False)
    for s, sign in ((80.0**2, -1), (M_Z**2, 0), (110.0**2, 1)):
        diff = partonic_cross_section(sm, 2, 13, s) - partonic_cross_section(incoherent, 2, 13, s)
        if sign == 0:
            assert abs(diff) < 1e-12 * partonic_cross_section(sm, 2, 13, s)
        else:
            assert np.sign(diff) == sign


def test_scalar_resonance() -> None:
    """Spin 0: flat in cos θ*, and σ̂(M²) = y_q² y_ℓ²/(48π Γ²) = 4π Γ_q Γ_ℓ/(3 M² Γ²) with Γ_f = y² M/(8π)."""
    hyp = load_hypothesis("scalar")
    med = hyp.mediators[0]
    y_q, y_l = med.coupling(2)[0], med.coupling(13)[0]
    c = np.linspace(-1, 1, 5)
    me = squared_matrix_element(hyp, 2, 13, med.mass**2, c)
    assert np.allclose(me, me[0], rtol=1e-12)
    gamma_q, gamma_l = (y**2 * med.mass / (8 * math.pi) for y in (y_q, y_l))
    expected = 4 * math.pi * gamma_q * gamma_l / (3 * med.mass**2 * med.width**2)
    assert partonic_cross_section(hyp, 2, 13, med.mass**2) == pytest.approx(expected, rel=1e-12)


def test_zprime_peaks_at_its_mass() -> None:
    hyp = load_hypothesis("zprime")
    m = np.linspace(150, 250, 1001)
    sigma = partonic_cross_section(hyp, 2, 13, m**2)
    assert m[np.argmax(sigma)] == pytest.approx(200.0, abs=0.2)
    # half maximum at M ± Γ/2 (fixed width; PDFs not included here)
    half = m[sigma > sigma.max() / 2]
    assert half[-1] - half[0] == pytest.approx(6.0, abs=0.3)


def test_shipped_hypotheses_load() -> None:
    assert {"dy_sm", "zprime", "zprime_sm", "scalar"} <= set(shipped_hypotheses())
    zp = load_hypothesis("zprime").mediators[0]
    z = load_hypothesis("dy_sm").mediators[1]
    assert zp.g_left == z.g_left and zp.g_right == z.g_right  # the sequential preset = SM Z couplings
    assert (z.mass, z.width, z.width_scheme) == (M_Z, W_Z, "running")


def test_vector_axial_convention() -> None:
    couplings = {
        "up": {"vector": 0.3, "axial": 0.1},
        "down": {"left": 0.2, "right": -0.1},
        "lepton": {"vector": 0.0, "axial": 0.5},
    }
    spec = {
        "name": "x",
        "mediators": [{"name": "V", "type": "vector", "mass": 500, "width": 10, "couplings": couplings}],
    }
    med = hypothesis_from_dict(spec).mediators[0]
    assert med.coupling(2) == pytest.approx((0.4, 0.2))  # g_L = g_V + g_A, g_R = g_V − g_A
    assert med.coupling(5) == pytest.approx((0.2, -0.1))
    assert med.coupling(11) == pytest.approx((0.5, -0.5))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": "red"}, "unknown key"),
        ({"mediators": []}, "non-empty"),
        ({"mediators": [{"name": "Z", "type": "z_boson", "width_scheme": "complex"}]}, "width_scheme"),
        ({"mediators": [{"name": "Z", "type": "w_boson"}]}, "unknown type"),
        ({"mediators": [{"name": "V", "type": "vector", "mass": 100, "width": 1}]}, "'couplings' is required"),
        (
            {
                "mediators": [
                    {"name": "V", "type": "vector", "mass": -1, "width": 1, "couplings": {"preset": "sequential"}}
                ]
            },
            "positive",
        ),
        (
            {"mediators": [{"name": "V", "type": "vector", "mass": 100, "width": 1, "couplings": {"preset": "E6"}}]},
            "unknown preset",
        ),
        (
            {"mediators": [{"name": "S", "type": "scalar", "mass": 100, "width": 1, "couplings": {"up": 0.1}}]},
            "need all",
        ),
        ({"electroweak": {"alpha": 0.0078}}, "unknown key"),
        ({"interference": "yes"}, "true or false"),
        ({"name": "not an identifier"}, "identifier"),
    ],
)
def test_invalid_hypotheses_are_errors(change: dict, message: str) -> None:
    spec = {"name": "h", "mediators": [{"name": "photon", "type": "photon"}], **change}
    with pytest.raises(ValueError, match=message):
        hypothesis_from_dict(spec)


def test_load_from_file_and_unknown_name(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(
        "name: mine\nmediators:\n  - {name: S, type: scalar, mass: 300, width: 3, "
        "couplings: {up: 0.2, down: 0.2, lepton: 0.1}}\n"
    )
    assert load_hypothesis(path).mediators[0].mass == 300.0
    with pytest.raises(ValueError, match="shipped"):
        load_hypothesis("no_such_hypothesis")
