"""Parton densities from LHAPDF6 ``lhagrid1`` files, read and interpolated with numpy (no LHAPDF needed).

The grids are the ones that ship inside the ``pythia8mc`` install (``<prefix>/share/Pythia8/pdfdata``,
e.g. ``NNPDF31_lo_as_0118_0000.dat``); nothing is downloaded.

Two interpolation schemes, both on knots in ln x and ln Q², within one Q subgrid at a time (subgrids meet
at the heavy-quark thresholds; a Q² on a shared edge uses the upper subgrid):

``"lagrange"`` (default)
    4-point Lagrange (cubic polynomial) interpolation of x·f in ln x on the knots i−1 … i+2 around x, then
    the same in ln Q² on the four x-interpolated values around Q² (windows shifted inwards at the subgrid
    edges; a subgrid of fewer than four Q knots is interpolated linearly). This is the algorithm of
    Pythia 8's internal ``LHAGrid1`` reader (``PDF:pSet = 17/18`` for NNPDF3.1 LO), which our values
    reproduce to machine precision, so cross-sections compare with Pythia's without an interpolation
    difference.
``"logbicubic"``
    LHAPDF 6's default: cubic Hermite in ln x with knot derivatives from the mean of the adjacent
    finite-difference slopes (one-sided at the edges), then cubic Hermite in ln Q² on four Q knots with
    derivatives formed the same way. It differs from ``"lagrange"`` by the interpolation error of the
    grid: for x·f > 0.01 at 1e-4 < x < 0.8, 10 < Q < 1000 GeV, median 1e-5, 99 % below 1.3e-3, at most
    3.6e-3 relative (``tests/mem/test_mem_pdf.py``).

Negative interpolated x·f are set to 0 by default (``clip_negative``), as Pythia does: the NNPDF3.1 LO
grid has negative s, s̄, ū, d̄ in places (mostly x < 1e-5 or Q < 10 GeV); the MEM weight is a density.

Outside the grid the densities are *frozen* (the "nearest" extrapolation of LHAPDF and the default of
Pythia's ``LHAGrid1``): x below x_min is evaluated at x_min, Q² outside [Q²_min, Q²_max] at the nearest edge.
x ≥ 1 gives 0. For the Drell-Yan kinematics of this package (√s = 13.6 TeV, μ_F = m_ℓℓ > 2 GeV) no
freezing happens: the NNPDF3.1 grids span x ∈ [1e-9, 1], Q ∈ [1.65, 1e5] GeV.

Reference: A. Buckley et al., "LHAPDF6: parton density access in the LHC precision era",
Eur. Phys. J. C 75 (2015) 132, arXiv:1412.7420.
"""

from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numba
import numpy as np

__all__ = ["PDF_PIDS", "PartonDensity", "load_pdf", "pdf_data_dir"]

PDF_PIDS: tuple[int, ...] = (-5, -4, -3, -2, -1, 21, 1, 2, 3, 4, 5)
"""Parton ids of the columns returned by :meth:`PartonDensity.xfx_all` (PDG codes; 21 = gluon)."""


def pdf_data_dir() -> Path:
    """Directory of the PDF grids shipped with Pythia 8.

    ``$PYTHIA8DATA`` points at Pythia's ``xmldoc`` directory; the grids are in its sibling ``pdfdata``.
    Without it, ``<sys.prefix>/share/Pythia8/pdfdata`` (where the ``pythia8mc`` wheel installs them).

    Raises:
        FileNotFoundError: neither directory exists.
    """
    candidates = []
    if os.environ.get("PYTHIA8DATA"):
        candidates.append(Path(os.environ["PYTHIA8DATA"]).resolve().parent / "pdfdata")
    candidates.append(Path(sys.prefix) / "share" / "Pythia8" / "pdfdata")
    for path in candidates:
        if path.is_dir():
            return path
    raise FileNotFoundError(
        f"no Pythia 8 pdfdata directory among {[str(c) for c in candidates]}; install pythia8mc or set PYTHIA8DATA"
    )


Interpolation = Literal["lagrange", "logbicubic"]


@dataclass(frozen=True)
class _Subgrid:
    logq2: np.ndarray  # (nq,)
    values: np.ndarray  # (nq, nx, nflav): x·f on the knots, flavours in PDF_PIDS order
    hermite: np.ndarray | None  # (nq, nx - 1, 4, nflav): ln-x cubic coefficients ("logbicubic" only)


def _hermite_slopes(values: np.ndarray, knots: np.ndarray, axis: int) -> np.ndarray:
    """Knot derivatives d values / d knots along ``axis``: mean of the adjacent slopes, one-sided at edges."""
    v = np.moveaxis(values, axis, 0)
    h = np.diff(knots).reshape((-1,) + (1,) * (v.ndim - 1))
    slopes = np.diff(v, axis=0) / h
    d = np.empty_like(v)
    d[0], d[-1] = slopes[0], slopes[-1]
    d[1:-1] = 0.5 * (slopes[:-1] + slopes[1:])
    return np.moveaxis(d, 0, axis)


def _x_cubic_coefficients(values: np.ndarray, logx: np.ndarray) -> np.ndarray:
    """Coefficients (a, b, c, d) of x·f = a + b t + c t² + d t³, t ∈ [0, 1], on each ln x interval.

    ``values`` has shape (nq, nx, nflav); the result (nq, nx - 1, 4, nflav).
    """
    deriv = _hermite_slopes(values, logx, axis=1)
    h = np.diff(logx)[None, :, None]
    v0, v1 = values[:, :-1], values[:, 1:]
    m0, m1 = deriv[:, :-1] * h, deriv[:, 1:] * h
    return np.ascontiguousarray(np.stack([v0, m0, -3 * v0 - 2 * m0 + 3 * v1 - m1, 2 * v0 + m0 - 2 * v1 + m1], axis=2))


def _parse_lhagrid1(path: Path) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]], tuple[int, ...]]:
    """Read an lhagrid1 member file: the x knots, per subgrid (Q knots, xf (nx, nq, nflav)), and the pids."""
    text = path.read_text()
    blocks = [b for b in text.split("---") if b.strip()]
    header, subgrids = blocks[0], blocks[1:]
    if "lhagrid1" not in header.replace(" ", "").lower():
        raise ValueError(f"{path}: not an LHAPDF6 'lhagrid1' file (header {header.strip()!r})")
    x_ref: np.ndarray | None = None
    pids: tuple[int, ...] | None = None
    grids = []
    for block in subgrids:
        lines = block.strip().splitlines()
        x = np.array(lines[0].split(), dtype=float)
        q = np.array(lines[1].split(), dtype=float)
        ids = tuple(int(v) for v in lines[2].split())
        data = np.array(" ".join(lines[3:]).split(), dtype=float)
        if data.size != x.size * q.size * len(ids):
            raise ValueError(f"{path}: subgrid has {data.size} values, expected {x.size}×{q.size}×{len(ids)}")
        if x_ref is not None and (x.shape != x_ref.shape or not np.allclose(x, x_ref, rtol=1e-12)):
            raise ValueError(f"{path}: subgrids with different x knots are not supported")
        if pids is not None and ids != pids:
            raise ValueError(f"{path}: subgrids with different flavour lists are not supported")
        x_ref, pids = x, ids
        grids.append((q, data.reshape(x.size, q.size, len(ids))))  # x outer, Q inner
    if x_ref is None or pids is None:
        raise ValueError(f"{path}: no subgrid found")
    return x_ref, grids, pids


class PartonDensity:
    """One member of an LHAPDF6 grid set: x·f(x, Q²) for quarks, antiquarks and the gluon of the proton.

    Args:
        path: the member's ``.dat`` file (``lhagrid1`` format).
        name: a label (default: the file name without ``_0000.dat``).
        interpolation: ``"lagrange"`` (Pythia 8 ``LHAGrid1``) or ``"logbicubic"`` (LHAPDF 6); see the
            module docstring.
        clip_negative: set negative interpolated x·f to 0 (default; Pythia does the same). NNPDF3.1 LO has
            slightly negative s, s̄ and ū at some low-Q, moderate-x knots; the MEM weight is a probability
            density and must not go negative.

    Parton ids follow the PDG (1 d, 2 u, 3 s, 4 c, 5 b, negative for antiquarks, 21 gluon; 0 is accepted
    for the gluon as in LHAPDF). Flavours absent from the grid (e.g. the top) have x·f = 0.
    """

    def __init__(
        self,
        path: str | Path,
        name: str | None = None,
        interpolation: Interpolation = "lagrange",
        clip_negative: bool = True,
    ) -> None:
        if interpolation not in ("lagrange", "logbicubic"):
            raise ValueError(f"unknown PDF interpolation {interpolation!r}; choose 'lagrange' or 'logbicubic'")
        self.path = Path(path)
        self.name = name or self.path.name.removesuffix(".dat").removesuffix("_0000")
        self.interpolation: Interpolation = interpolation
        self.clip_negative = clip_negative
        x, grids, pids = _parse_lhagrid1(self.path)
        if x.size < 4:
            raise ValueError(f"{self.path}: at least four x knots are needed")
        self._logx = np.log(x)
        self.x_min, self.x_max = float(x[0]), float(x[-1])
        column = {pid: i for i, pid in enumerate(pids)}
        order = [column.get(pid, len(pids)) for pid in PDF_PIDS]  # flavours missing from the file: zero column
        self._subgrids: list[_Subgrid] = []
        for q, xf in grids:
            values = np.concatenate([xf, np.zeros((*xf.shape[:2], 1))], axis=2)[:, :, order]
            values = np.ascontiguousarray(np.transpose(values, (1, 0, 2)))  # (nq, nx, nflav)
            hermite = _x_cubic_coefficients(values, self._logx) if interpolation == "logbicubic" else None
            self._subgrids.append(_Subgrid(2.0 * np.log(q), values, hermite))
        self._subgrid_lower = np.array([sub.logq2[0] for sub in self._subgrids])
        self.q2_min = float(np.exp(self._subgrids[0].logq2[0]))
        self.q2_max = float(np.exp(self._subgrids[-1].logq2[-1]))
        self._pid_column = {pid: i for i, pid in enumerate(PDF_PIDS)}
        self._pid_column[0] = self._pid_column[21]

    def __repr__(self) -> str:
        return (
            f"PartonDensity({self.name!r}, {self.interpolation}, x ∈ [{self.x_min:g}, {self.x_max:g}], "
            f"Q² ∈ [{self.q2_min:g}, {self.q2_max:g}] GeV²)"
        )

    def __reduce__(self) -> tuple[object, tuple[str, str, str, bool]]:
        # process-pool workers re-read the file (~0.05 s) instead of receiving the arrays
        return (PartonDensity, (str(self.path), self.name, self.interpolation, self.clip_negative))

    def xfx_all(self, x: np.ndarray | float, q2: np.ndarray | float) -> np.ndarray:
        """x·f(x, Q²) of every flavour at once.

        Args:
            x: momentum fractions in (0, 1] (x ≥ 1 gives 0), any shape; broadcast with ``q2``.
            q2: factorisation scales squared, GeV², positive.

        Returns:
            Array of shape ``broadcast(x, q2).shape + (11,)``, columns in the order of :data:`PDF_PIDS`.

        Raises:
            ValueError: a non-finite or non-positive x or Q².
        """
        x_b, q2_b = np.broadcast_arrays(np.asarray(x, dtype=float), np.asarray(q2, dtype=float))
        shape = x_b.shape
        xs, q2s = x_b.ravel(), q2_b.ravel()
        if not (np.all(np.isfinite(xs)) and np.all(np.isfinite(q2s)) and np.all(xs > 0) and np.all(q2s > 0)):
            raise ValueError("PartonDensity: x and Q² must be finite and positive")
        out = np.zeros((xs.size, len(PDF_PIDS)))
        inside = np.flatnonzero(xs < 1.0)
        logx = np.log(np.clip(xs[inside], self.x_min, self.x_max))
        logq2 = np.log(np.clip(q2s[inside], self.q2_min, self.q2_max))
        which = np.clip(np.searchsorted(self._subgrid_lower, logq2, side="right") - 1, 0, len(self._subgrids) - 1)
        for k, sub in enumerate(self._subgrids):
            sel = np.flatnonzero(which == k)
            if not sel.size:
                continue
            if self.interpolation == "lagrange":
                values = np.empty((sel.size, len(PDF_PIDS)))
                _lagrange_kernel(self._logx, sub.logq2, sub.values, logx[sel], logq2[sel], 0, values)
            else:
                values = _logbicubic(sub, self._logx, logx[sel], logq2[sel])
            out[inside[sel]] = values
        if self.clip_negative:
            np.maximum(out, 0.0, out=out)
        return out.reshape((*shape, len(PDF_PIDS)))

    def xfx(self, pid: int, x: np.ndarray | float, q2: np.ndarray | float) -> np.ndarray:
        """x·f(x, Q²) of parton ``pid`` (PDG id; 21 or 0 for the gluon) at momentum fraction x, scale Q² (GeV²)."""
        if pid not in self._pid_column:
            if abs(pid) == 6:
                return np.zeros(np.broadcast(np.asarray(x), np.asarray(q2)).shape)
            raise ValueError(f"unknown parton id {pid}")
        return self.xfx_all(x, q2)[..., self._pid_column[pid]]


@numba.njit(cache=True)
def _lagrange4(nodes: np.ndarray, first: int, npoints: int, value: float, out: np.ndarray) -> None:  # pragma: no cover
    for i in range(npoints):
        w = 1.0
        for j in range(npoints):
            if i != j:
                w *= (value - nodes[first + j]) / (nodes[first + i] - nodes[first + j])
        out[i] = w


@numba.njit(cache=True)
def _lagrange_kernel(
    knots_logx: np.ndarray,
    knots_logq2: np.ndarray,
    values: np.ndarray,
    logx: np.ndarray,
    logq2: np.ndarray,
    first_row: int,
    out: np.ndarray,
) -> None:  # pragma: no cover
    """4-point Lagrange in ln x then ln Q² on one subgrid (rows ``first_row`` … of ``values``), per point."""
    nx, nq, nf = knots_logx.size, knots_logq2.size, values.shape[2]
    nqp = 4 if nq >= 4 else 2
    wx = np.empty(4)
    wq = np.empty(4)
    for n in range(logx.size):
        ix = min(max(np.searchsorted(knots_logx, logx[n], side="right") - 1, 0), nx - 2)
        x0 = min(max(ix - 1, 0), nx - 4)
        _lagrange4(knots_logx, x0, 4, logx[n], wx)
        iq = min(max(np.searchsorted(knots_logq2, logq2[n], side="right") - 1, 0), nq - 2)
        q0 = min(max(iq - 1, 0), nq - 4) if nqp == 4 else iq
        _lagrange4(knots_logq2, q0, nqp, logq2[n], wq)
        for f in range(nf):
            acc = 0.0
            for a in range(nqp):
                row = 0.0
                for b in range(4):
                    row += wx[b] * values[first_row + q0 + a, x0 + b, f]
                acc += wq[a] * row
            out[n, f] = acc


def _logbicubic(sub: _Subgrid, knots_logx: np.ndarray, logx: np.ndarray, logq2: np.ndarray) -> np.ndarray:
    """LHAPDF's log-bicubic: cubic Hermite in ln x, then cubic Hermite in ln Q² on four Q knots."""
    nq, hermite = sub.logq2.size, sub.hermite
    assert hermite is not None, "built without log-bicubic coefficients"
    ix = np.clip(np.searchsorted(knots_logx, logx, side="right") - 1, 0, knots_logx.size - 2)
    t = (logx - knots_logx[ix]) / (knots_logx[ix + 1] - knots_logx[ix])
    tpow = np.stack([np.ones_like(t), t, t * t, t * t * t], axis=1)  # (n, 4)
    iq = np.clip(np.searchsorted(sub.logq2, logq2, side="right") - 1, 0, nq - 2)

    def at(j: np.ndarray) -> np.ndarray:  # x-interpolated x·f at Q knot j: (n, nflav)
        return np.einsum("nkf,nk->nf", hermite[j, ix], tpow)

    lo, hi = at(iq), at(iq + 1)
    has_left, has_right = iq > 0, iq + 2 < nq
    lq = sub.logq2
    h0 = (lq[iq + 1] - lq[iq])[:, None]
    s0 = (hi - lo) / h0
    d_lo, d_hi = s0, s0
    if np.any(has_left):
        j = np.where(has_left, iq - 1, iq)
        s_left = (lo - at(j)) / np.where(has_left, lq[iq] - lq[j], 1.0)[:, None]
        d_lo = np.where(has_left[:, None], 0.5 * (s_left + s0), s0)
    if np.any(has_right):
        j = np.where(has_right, iq + 2, iq + 1)
        s_right = (at(j) - hi) / np.where(has_right, lq[j] - lq[iq + 1], 1.0)[:, None]
        d_hi = np.where(has_right[:, None], 0.5 * (s0 + s_right), s0)
    u = ((logq2 - lq[iq]) / h0[:, 0])[:, None]
    u2, u3 = u * u, u * u * u
    return (2 * u3 - 3 * u2 + 1) * lo + (u3 - 2 * u2 + u) * h0 * d_lo + (-2 * u3 + 3 * u2) * hi + (u3 - u2) * h0 * d_hi


@functools.lru_cache(maxsize=8)
def load_pdf(
    name: str = "NNPDF31_lo_as_0118", member: int = 0, interpolation: Interpolation = "lagrange"
) -> PartonDensity:
    """The PDF set ``name`` (member ``member``) from Pythia's shipped grids, or a path to an lhagrid1 file.

    Cached per process: repeated calls return the same object.

    Raises:
        FileNotFoundError: no such grid; the message lists the lhagrid1 sets that are available.
    """
    path = Path(name)
    if path.suffix == ".dat" and path.is_file():
        return PartonDensity(path, interpolation=interpolation)
    directory = pdf_data_dir()
    for candidate in (directory / f"{name}_{member:04d}.dat", directory / name / f"{name}_{member:04d}.dat"):
        if candidate.is_file():
            return PartonDensity(candidate, name=name, interpolation=interpolation)
    available = sorted(p.name.removesuffix("_0000.dat") for p in directory.glob("*_0000.dat"))
    raise FileNotFoundError(f"no PDF grid {name!r} (member {member}) in {directory}; available: {', '.join(available)}")
