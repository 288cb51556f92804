"""The offline PDF reader against Pythia 8's own PDF objects, and physics sum rules."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from coffea_mlreco.mem.pdf import PDF_PIDS, PartonDensity, load_pdf, pdf_data_dir

X = np.geomspace(1e-4, 0.8, 41)
Q = np.geomspace(10.0, 1000.0, 21)


def _grid() -> tuple[np.ndarray, np.ndarray]:
    xx, qq = np.meshgrid(X, Q, indexing="ij")
    return xx.ravel(), (qq**2).ravel()


def _reference(pdf: object, x: np.ndarray, q2: np.ndarray) -> np.ndarray:
    return np.array([[pdf.xf(pid, a, b) for pid in PDF_PIDS] for a, b in zip(x, q2, strict=True)])  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def pythia_nnpdf31() -> object:
    """Pythia's internal LHAGrid1 reader of the same NNPDF3.1 LO (α_s = 0.118) grid (PDF:pSet = 18)."""
    pythia8mc = pytest.importorskip("pythia8mc")
    pythia = pythia8mc.Pythia("", False)
    for line in ("PDF:pSet = 18", "Print:quiet = on", "ProcessLevel:all = off"):
        assert pythia.readString(line)
    assert pythia.init()
    return pythia.getPDFPtr(2212)


def test_grid_is_found_offline() -> None:
    pdf = load_pdf("NNPDF31_lo_as_0118")
    assert pdf.path.parent == pdf_data_dir()
    assert pdf.x_min == pytest.approx(1e-9) and pdf.q2_max == pytest.approx(1e10)
    with pytest.raises(FileNotFoundError, match="NNPDF31_lo_as_0118"):
        load_pdf("NoSuchSet")


def test_lagrange_matches_pythia_lhagrid1(pythia_nnpdf31: object) -> None:
    """x ∈ [1e-4, 0.8], Q ∈ [10, 1000] GeV, all 11 partons: the same algorithm, so equal to rounding."""
    x, q2 = _grid()
    ours = load_pdf("NNPDF31_lo_as_0118").xfx_all(x, q2)
    ref = _reference(pythia_nnpdf31, x, q2)
    assert np.all(np.abs(ours - ref) <= 1e-12 * np.maximum(np.abs(ref), 1e-3))


def test_logbicubic_within_interpolation_error_of_pythia(pythia_nnpdf31: object) -> None:
    """LHAPDF's log-bicubic differs from the 4-point Lagrange scheme only by the grid's interpolation error."""
    x, q2 = _grid()
    ours = load_pdf("NNPDF31_lo_as_0118", interpolation="logbicubic").xfx_all(x, q2)
    ref = _reference(pythia_nnpdf31, x, q2)
    big = np.abs(ref) > 1e-2
    rel = np.abs(ours - ref)[big] / np.abs(ref)[big]
    assert rel.max() < 5e-3
    assert np.median(rel) < 2e-4


@pytest.mark.parametrize("q", [10.0, 91.19, 1000.0])
def test_sum_rules(q: float) -> None:
    """Momentum Σ ∫ x f dx = 1 and valence ∫ (u − ū) dx = 2, ∫ (d − d̄) dx = 1, which NNPDF3.1 imposes:
    checks the flavour columns, the x·f convention and the interpolation over the whole grid (1 %: grid
    and x < 1e-9 tail). Unclipped: the LO grid is negative at very small x (clipping adds up to 0.5 %)."""
    pdf = PartonDensity(load_pdf("NNPDF31_lo_as_0118").path, clip_negative=False)
    logx = np.linspace(np.log(1e-9), 0.0, 20001)
    x = np.exp(logx)
    xf = pdf.xfx_all(x, q * q)
    col = {pid: i for i, pid in enumerate(PDF_PIDS)}
    assert np.trapezoid(xf.sum(axis=1) * x, logx) == pytest.approx(1.0, abs=0.01)  # ∫ xf dx = ∫ xf · x d ln x
    assert np.trapezoid(xf[:, col[2]] - xf[:, col[-2]], logx) == pytest.approx(2.0, abs=0.02)
    assert np.trapezoid(xf[:, col[1]] - xf[:, col[-1]], logx) == pytest.approx(1.0, abs=0.01)
    assert np.trapezoid(xf[:, col[3]] - xf[:, col[-3]], logx) == pytest.approx(0.0, abs=0.01)


def test_cteq5l_cross_check() -> None:
    """An independent LO fit (Pythia's CTEQ5L parametrisation) agrees with NNPDF3.1 LO for d, u and the
    gluon to 20 % at Q = M_Z, 1e-3 < x < 0.2 (they differ by up to 15 % there; more at larger x) — a
    swapped or mislabelled flavour column would be far off."""
    pythia8mc = pytest.importorskip("pythia8mc")
    cteq = pythia8mc.CTEQ5L(2212)
    x = np.geomspace(1e-3, 0.2, 25)
    q2 = np.full_like(x, 91.19**2)
    ours = load_pdf("NNPDF31_lo_as_0118").xfx_all(x, q2)
    ref = _reference(cteq, x, q2)
    for pid in (1, 2, 21):
        i = PDF_PIDS.index(pid)
        assert np.all(np.abs(ours[:, i] / ref[:, i] - 1) < 0.20), pid
    u, d = PDF_PIDS.index(2), PDF_PIDS.index(1)
    assert np.all(ours[x > 0.1, u] > 1.5 * ours[x > 0.1, d])  # u_v ≈ 2 d_v dominates at large x


def test_boundaries_and_errors() -> None:
    pdf = load_pdf("NNPDF31_lo_as_0118")
    # frozen outside the grid: x below x_min and Q² above Q²_max take the edge values
    assert np.allclose(pdf.xfx_all(1e-12, 100.0), pdf.xfx_all(pdf.x_min, 100.0))
    assert np.allclose(pdf.xfx_all(0.1, 1e12), pdf.xfx_all(0.1, pdf.q2_max))
    assert np.all(pdf.xfx_all(1.0, 100.0) == 0.0)
    assert np.all(pdf.xfx_all(np.geomspace(1e-6, 0.99, 50), 50.0**2) >= 0.0)  # negative knots clipped
    assert pdf.xfx(21, 0.01, 100.0) == pdf.xfx(0, 0.01, 100.0)
    assert pdf.xfx(6, 0.01, 100.0) == 0.0
    assert pdf.xfx_all(np.full((3, 4), 0.01), 100.0).shape == (3, 4, 11)
    for bad in (np.nan, -0.1, 0.0):
        with pytest.raises(ValueError, match="finite and positive"):
            pdf.xfx_all(bad, 100.0)
    with pytest.raises(ValueError, match="interpolation"):
        PartonDensity(pdf.path, interpolation="linear")  # type: ignore[arg-type]


def test_pickles_for_worker_processes() -> None:
    pdf = load_pdf("NNPDF31_lo_as_0118")
    clone = pickle.loads(pickle.dumps(pdf))
    assert np.array_equal(clone.xfx_all([1e-3, 0.2], [100.0, 1e4]), pdf.xfx_all([1e-3, 0.2], [100.0, 1e4]))
