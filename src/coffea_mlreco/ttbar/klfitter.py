"""KLFitter-style kinematic likelihood fit for semileptonic tt̄ jet-parton assignment, in numba.

Follows KLFitter's ``LikelihoodTopLeptonJets`` (Erdmann et al., NIM A 748 (2014) 18, arXiv:1312.5595). For
each permutation (had_b, had_q1, had_q2, lep_b) of the first ``max_jets`` jets, maximise over
θ = (E_bhad, E_q1, E_q2, E_blep, E_ℓ, p_ν,x, p_ν,y, p_ν,z), with the top mass fixed at M_TOP::

    log L = Σ_jets log W_jet(E_meas | E) + log W_ℓ(x_meas | x) + log W_miss(MET | p_ν,T)
            + log BW(m_q1q2 | M_W, Γ_W) + log BW(m_ℓν | M_W, Γ_W)
            + log BW(m_bq1q2 | M_t, Γ_t) + log BW(m_ℓνb | M_t, Γ_t)   [+ log b-tag weight]

- BW(m | M, Γ) = 1/((m² − M²)² + M²Γ²), the relativistic Breit-Wigner as BCMath's ``LogBreitWignerRel``.
  The fit keeps the jets' measured directions, so the widths are effective ones that fold in the mass
  spread that direction errors cause (``TTbarParameters.bw_width_w/top``, ≈ 11 and 12 GeV in our
  simulation, fitted in ``ttbar_resolutions``). With the natural widths (2.1, 1.4 GeV: pass parameters with
  ``bw_width_w=W_W, bw_width_top=W_TOP`` to get KLFitter exactly) the fit converges less often and its
  efficiency drops by 3–4 points on our validation sample.
- W_jet, W_ℓ: KLFitter's double Gaussians in r = x_meas/x − 1 (``ResDoubleGaussE_4`` form; light and b jets
  in |η| bins, electrons in energy, muons in pT), normalised in r as KLFitter does. A density in x_meas would
  carry a further 1/x; with five or more jets, permutations built from different jets then compare badly
  (−5 points of efficiency), so it is left out as in KLFitter.
- Jets keep their measured direction and mass; the fitted energy E rescales |p| = √(E² − m²). The lepton's
  four-momentum scales with E_ℓ. The neutrino is massless.
- W_miss: a two-dimensional Gaussian of (p_ν,T − MET) with covariance k²·MET_cov where the inputs carry
  ``covXX/covXY/covYY`` (k fitted, 2.6 at pileup 60), else σ = a + b·√ΣET with ``met.sumEt``, else a
  fitted constant σ.
- b tagging (``btag``): ``"workingpoint"`` (default; KLFitter's kWorkingPoint) multiplies L by ε_b or
  1 − ε_b for the jets at the two b positions, ε_light or 1 − ε_light at the light positions and — beyond
  KLFitter, so that permutations that leave a tagged jet out do not get it for free — ε_other or
  1 − ε_other for each considered jet left unassigned (all rates measured on our simulation).
  ``"veto"`` (kVetoNoFit) does not fit permutations that break the χ²'s b-tag rule
  (``ttbar_chi2.btag_allowed``, which always leaves some): ~2× faster but 2 points less efficient, and the
  probabilities only cover the fitted permutations. ``"none"`` ignores tagging.

The likelihood separates into a hadronic part in (E_bhad, E_q1, E_q2) and a leptonic part in (E_blep, E_ℓ,
p_ν), so each part is maximised once per jet combination (60 hadronic and 6 leptonic fits for the 180
permutations of six jets) and a permutation's log L is the sum of its two maxima — the same maximum as the
joint eight-parameter fit. Minimiser: Levenberg-Marquardt with the analytic gradient and a negative-definite
curvature for the Breit-Wigner terms (Gauss-Newton plus the exact curvature of m²(θ)) and one-dimensional
central differences for the transfer functions; steps stay inside E ∈ [max(m + 0.1, E_meas/4), 4·E_meas]
(jets), [E_meas/2, 2·E_meas] (lepton). Starts: the measured energies, p_ν,T = MET and each W-constrained
neutrino p_z root (real part when complex; both roots are fitted and the better kept). Permutation
probabilities are L_p/Σ L over the fitted permutations of the event (:func:`klfitter_permutations`).

Validation sample (``val_pu60.root``, 1466 selected events, 540 with all four partons matched), event
efficiency on the matched events, N_jets = 4 / 5 / ≥6 / all::

    method                          4      5      ≥6     all    (events: 229 / 180 / 131 / 540)
    KLFitter-style, workingpoint    82.5   66.1   48.1   68.7 %
    KLFitter-style, veto            83.0   61.7   45.0   66.7 %
    KLFitter-style, none            62.9   38.3   24.4   45.4 %
    χ² (ttbar_chi2), b-tag rule     80.8   56.7   44.3   63.9 %
    χ², no b tagging                57.2   30.6   23.7   40.2 %

Throughput on one core (numba, front end included, ``max_jets=6``, selected events at pileup 60): ~1.7k ev/s
(workingpoint, none), ~3.4k ev/s (veto), measured on a shared, loaded 2-core machine.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import awkward as ak
import numba
import numpy as np

from coffea_mlreco.core.columns import to_numpy
from coffea_mlreco.core.constants import M_TOP, M_W
from coffea_mlreco.ttbar.chi2 import FitInputs, PermutationTable, btag_allowed, fit_inputs
from coffea_mlreco.ttbar.neutrino import neutrino_pz_roots
from coffea_mlreco.ttbar.permutations import PERMUTATION_FIELDS
from coffea_mlreco.ttbar.resolutions import BASES, TTbarParameters, load_ttbar_parameters

__all__ = ["BTAG_MODES", "FITTED_MASSES", "klfitter_assignment", "klfitter_permutations"]

BTAG_MODES = {"none": 0, "workingpoint": 1, "veto": 2}
"""b-tag treatment: ignore, KLFitter's kWorkingPoint weights, or KLFitter's kVetoNoFit."""
FITTED_MASSES = ("m_whad", "m_thad", "m_wlep", "m_tlep")
"""Fitted masses reported for the chosen permutation (GeV)."""
_MAX_ITERATIONS = 50
_TOLERANCE = 1e-5
"""Convergence: a step that gains less than this in log L, with the quadratic model predicting no more."""
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


# -------------------------------------------------------------------------------- kernel arguments
# Grouped arguments of the numba functions. The innermost helpers (run per minimiser step) take the arrays
# they read instead: numba increfs every array of a tuple argument on each call.


class _TransferFunctions(NamedTuple):
    """The transfer functions as arrays, one row each: light jets per |η| bin, b jets per bin, electron, muon.

    ``coefficients (T, 5, 2)``: each double-Gaussian parameter (μ₁, σ₁, A₂, μ₂, σ₂) is c₀ + c₁·basis(x);
    ``bases (T, 5)``: each parameter's basis (index in ``BASES``); ``x_range (T, 2)``: x is clipped to it (GeV).
    """

    coefficients: np.ndarray
    bases: np.ndarray
    x_range: np.ndarray


class _LikelihoodParameters(NamedTuple):
    """The likelihood's parameters: ``transfer`` functions; Breit-Wigner ``widths (4,)`` of W_had, t_had,
    W_lep, t_lep (GeV); ``log_btag_rates (3, 2)``: log(1 − ε), log ε at a b position, at a light position
    and for an unassigned jet; ``btag_mode`` (:data:`BTAG_MODES`)."""

    transfer: _TransferFunctions
    widths: np.ndarray
    log_btag_rates: np.ndarray
    btag_mode: int


class _ObjectResolutions(NamedTuple):
    """The resolution model of each measured object: transfer-function rows ``jet_tf_light``, ``jet_tf_b (J,)``
    of a jet at a light or b position and ``lepton_tf (N,)``; ``lepton_kappa (N,)``: the lepton's transfer
    function is in κ·E (κ = pT/E for muons, 1 for electrons); ``met_inverse_covariance (N, 3)``: XX, XY, YY
    in GeV⁻²."""

    jet_tf_light: np.ndarray
    jet_tf_b: np.ndarray
    lepton_tf: np.ndarray
    lepton_kappa: np.ndarray
    met_inverse_covariance: np.ndarray


class _SideInputs(NamedTuple):
    """The measured objects of the side being fitted (GeV).

    Jets (hadronic side: b, q1, q2; leptonic side: b in row 0): ``jet_dir (3, 3)`` unit momentum, ``jet_mass``,
    ``jet_e``, ``jet_tf (3,)`` transfer-function row; the lepton's ``lep_dir (4,)`` = p/E, ``lep_e``,
    ``lep_kappa``, ``lep_tf``; the event's ``met (2,)`` px, py and ``met_inv (3,)`` inverse covariance.
    """

    jet_dir: np.ndarray
    jet_mass: np.ndarray
    jet_e: np.ndarray
    jet_tf: np.ndarray
    lep_dir: np.ndarray
    lep_e: float
    lep_kappa: float
    lep_tf: int
    met: np.ndarray
    met_inv: np.ndarray


class _Bounds(NamedTuple):
    """The fit parameters' ``start``, ``lower`` and ``upper (5,)`` values (GeV)."""

    start: np.ndarray
    lower: np.ndarray
    upper: np.ndarray


class _Workspace(NamedTuple):
    """Scratch arrays of the likelihood: the side's four-momenta ``p (3, 4)`` and their derivatives
    ``dp (5, 4)`` in each parameter, a resonance's summed four-momentum ``total (4,)`` and its ∂m²/∂θ
    ``ds (5,)``, log L's ``grad (5,)`` and ``hess (5, 5)``."""

    p: np.ndarray
    dp: np.ndarray
    total: np.ndarray
    ds: np.ndarray
    grad: np.ndarray
    hess: np.ndarray


class _StepScratch(NamedTuple):
    """Scratch arrays of the minimiser: the ``step``, the ``trial`` point (5,) and the Cholesky factor
    ``chol (5, 5)``."""

    step: np.ndarray
    trial: np.ndarray
    chol: np.ndarray


class _Outputs(NamedTuple):
    """Kernel outputs (see :func:`klfitter_assignment`): per event jet ``positions (N, 4)``, ``log_likelihood``,
    ``event_probability``, ``nu_pz`` (GeV), ``nu_eta``, ``converged (N,)`` and ``masses (N, 4)``
    (:data:`FITTED_MASSES`); per permutation ``permutation_log_likelihood (P,)``."""

    positions: np.ndarray
    log_likelihood: np.ndarray
    event_probability: np.ndarray
    nu_pz: np.ndarray
    nu_eta: np.ndarray
    converged: np.ndarray
    masses: np.ndarray
    permutation_log_likelihood: np.ndarray


# ----------------------------------------------------------------------------------- transfer functions


@numba.njit(cache=True)
def _basis(code: int, x: float) -> float:
    if code == 0:
        return 1.0 / x
    if code == 1:
        return 1.0 / math.sqrt(x)
    return x


@numba.njit(cache=True)
def _tf_log(tf: int, x_fit: float, x_meas: float, transfer: _TransferFunctions) -> float:
    """log W(x_meas | x_fit) of transfer function ``tf``: the double Gaussian density in r = x_meas/x_fit − 1."""
    coeff, basis, x_range = transfer.coefficients, transfer.bases, transfer.x_range
    x = min(max(x_fit, x_range[tf, 0]), x_range[tf, 1])
    m1 = coeff[tf, 0, 0] + coeff[tf, 0, 1] * _basis(basis[tf, 0], x)
    s1 = max(coeff[tf, 1, 0] + coeff[tf, 1, 1] * _basis(basis[tf, 1], x), 0.005)
    a2 = max(coeff[tf, 2, 0] + coeff[tf, 2, 1] * _basis(basis[tf, 2], x), 0.0)
    m2 = coeff[tf, 3, 0] + coeff[tf, 3, 1] * _basis(basis[tf, 3], x)
    s2 = max(coeff[tf, 4, 0] + coeff[tf, 4, 1] * _basis(basis[tf, 4], x), 0.005)
    r = x_meas / x_fit - 1.0
    z1 = -0.5 * ((r - m1) / s1) ** 2
    if a2 > 0.0:
        z2 = math.log(a2) - 0.5 * ((r - m2) / s2) ** 2
        top = max(z1, z2)
        z1 = top + math.log1p(math.exp(min(z1, z2) - top))
    return z1 - math.log(s1 + a2 * s2) - _LOG_SQRT_2PI


@numba.njit(cache=True)
def _tf_derivatives(tf: int, x_fit: float, x_meas: float, transfer: _TransferFunctions) -> tuple[float, float, float]:
    """log W and its first and second derivatives in x_fit (central differences)."""
    h = 1e-4 * x_fit
    f0 = _tf_log(tf, x_fit, x_meas, transfer)
    fp = _tf_log(tf, x_fit + h, x_meas, transfer)
    fm = _tf_log(tf, x_fit - h, x_meas, transfer)
    return f0, (fp - fm) / (2 * h), (fp - 2 * f0 + fm) / (h * h)


# ------------------------------------------------------------------------------------- likelihood
# The log-likelihood separates: the hadronic side (side 0) depends on (E_bhad, E_q1, E_q2) only, the leptonic
# side (side 1) on (E_blep, E_ℓ, p_ν) only. Each side is fitted once per jet combination and permutations add
# the two maxima.


@numba.njit(cache=True)
def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """Minkowski product (px, py, pz, E) with metric (−, −, −, +)."""
    return a[3] * b[3] - a[0] * b[0] - a[1] * b[1] - a[2] * b[2]


@numba.njit(cache=True)
def _bw(s: float, mass: float, width: float) -> tuple[float, float, float]:
    """log BW_rel as a function of s = m², its derivative d/ds, and the Gauss-Newton curvature −2/den.

    The exact second derivative, −2/den + 4u²/den², is positive (convex) in the tails |u| > MΓ, where Newton
    steps would stall; the Gauss-Newton (Cauchy IRLS) curvature is always negative.
    """
    u = s - mass * mass
    den = u * u + mass * mass * width * width
    return -math.log(den), -2.0 * u / den, -2.0 / den


@numba.njit(cache=True)
def _four_momenta(  # type: ignore[no-untyped-def]
    side, theta, jet_dir, jet_mass, lep_dir, p, dp
):
    """Fitted four-momenta ``p`` and their derivatives ``dp[k]`` in parameter k (each parameter moves one
    particle); returns the neutrino energy (0 on the hadronic side). Hadronic side: p = (b, q1, q2);
    leptonic: p = (b, ℓ, ν) with parameters (E_b, E_ℓ, p_ν)."""
    n_jets = 3 if side == 0 else 1
    for k in range(n_jets):
        e = theta[k]
        beta = math.sqrt(max(e * e - jet_mass[k] ** 2, 1e-12))
        for c in range(3):
            p[k, c] = beta * jet_dir[k, c]
            dp[k, c] = e / beta * jet_dir[k, c]
        p[k, 3], dp[k, 3] = e, 1.0
    if side == 0:
        return 0.0
    for c in range(4):
        dp[1, c] = lep_dir[c]
        p[1, c] = theta[1] * lep_dir[c]
    nx, ny, nz = theta[2], theta[3], theta[4]
    en = max(math.sqrt(nx * nx + ny * ny + nz * nz), 1e-9)
    p[2, 0], p[2, 1], p[2, 2], p[2, 3] = nx, ny, nz, en
    for a in range(3):
        for c in range(3):
            dp[2 + a, c] = 1.0 if a == c else 0.0
        dp[2 + a, 3] = theta[2 + a] / en
    return en


@numba.njit(cache=True)
def _resonance(  # type: ignore[no-untyped-def]
    side, members, free, mass, width, theta, en, jet_mass, ws, with_derivatives
):
    """Add log BW(m² of the sum of the particles ``members`` | ``mass``, ``width``), with its gradient and
    Hessian in the parameters ``free`` when asked; ``en``: the neutrino energy (GeV)."""
    n_jets = 3 if side == 0 else 1  # parameters 0 … n_jets − 1 are jet energies
    nu_first = 5 if side == 0 else 2  # parameters from nu_first on are the neutrino momentum
    p, dp, total, dsv = ws.p, ws.dp, ws.total, ws.ds
    for c in range(4):
        total[c] = 0.0
    for m in members:
        for c in range(4):
            total[c] += p[m, c]
    s = _dot(total, total)
    f, f1, curv = _bw(s, mass, width)
    if not with_derivatives:
        return f
    grad, hess = ws.grad, ws.hess
    n_params = len(free)
    for a in range(n_params):
        dsv[a] = 2.0 * _dot(total, dp[free[a]])
    # Hessian f_GN''·∇s∇sᵀ + f'·∇²s: the Gauss-Newton curvature of the Breit-Wigner plus the exact
    # curvature of s(θ) (what lets the steps follow the curved valley where the masses sit at their poles)
    for a in range(n_params):
        i = free[a]
        grad[i] += f1 * dsv[a]
        for b in range(a, n_params):
            j = free[b]
            d2 = 2.0 * _dot(dp[i], dp[j])
            if i == j and i < n_jets and jet_mass[i] > 0.0:  # curvature of |p| = √(E² − m²)
                beta = math.sqrt(max(theta[i] ** 2 - jet_mass[i] ** 2, 1e-12))
                d2 += (
                    2.0
                    * jet_mass[i] ** 2
                    / beta**3
                    * (total[0] * p[i, 0] + total[1] * p[i, 1] + total[2] * p[i, 2])
                    / beta
                )
            if i >= nu_first and j >= nu_first:  # curvature of E_ν = |p_ν|
                d2 += 2.0 * total[3] * ((1.0 if i == j else 0.0) - theta[i] * theta[j] / (en * en)) / en
            h = curv * dsv[a] * dsv[b] + f1 * d2
            hess[i, j] += h
            if i != j:
                hess[j, i] += h
    return f


@numba.njit(cache=True)
def _add_tf(  # type: ignore[no-untyped-def]
    k, tf, x_fit, x_meas, kappa, transfer, grad, hess, with_derivatives
):
    """log W of parameter k's transfer function (x = κ·θ_k), with its derivatives when asked."""
    if not with_derivatives:
        return _tf_log(tf, kappa * x_fit, kappa * x_meas, transfer)
    f0, f1, f2 = _tf_derivatives(tf, kappa * x_fit, kappa * x_meas, transfer)
    grad[k] += kappa * f1
    hess[k, k] += kappa * kappa * min(f2, -1e-6)  # tails can be convex: keep the curvature negative
    return f0


@numba.njit(cache=True)
def _side_log_likelihood(  # type: ignore[no-untyped-def]
    side, theta, measured, params, ws, with_derivatives
):
    """log L of one side at ``theta`` (see the module docstring); fills ``ws.grad``/``ws.hess`` when asked."""
    grad, hess, transfer, widths = ws.grad, ws.hess, params.transfer, params.widths
    n = 3 if side == 0 else 5
    if with_derivatives:
        for i in range(n):
            grad[i] = 0.0
            for j in range(n):
                hess[i, j] = 0.0
    jet_mass, jet_tf, jet_e = measured.jet_mass, measured.jet_tf, measured.jet_e
    en = _four_momenta(side, theta, measured.jet_dir, jet_mass, measured.lep_dir, ws.p, ws.dp)
    if side == 0:
        value = 0.0
        for k in range(3):
            value += _add_tf(k, jet_tf[k], theta[k], jet_e[k], 1.0, transfer, grad, hess, with_derivatives)
        value += _resonance(0, (1, 2), (1, 2), M_W, widths[0], theta, en, jet_mass, ws, with_derivatives)
        value += _resonance(0, (0, 1, 2), (0, 1, 2), M_TOP, widths[1], theta, en, jet_mass, ws, with_derivatives)
        return value
    value = _add_tf(0, jet_tf[0], theta[0], jet_e[0], 1.0, transfer, grad, hess, with_derivatives)
    value += _add_tf(
        1, measured.lep_tf, theta[1], measured.lep_e, measured.lep_kappa, transfer, grad, hess, with_derivatives
    )
    met, met_inv = measured.met, measured.met_inv
    dx, dy = theta[2] - met[0], theta[3] - met[1]
    value -= 0.5 * (met_inv[0] * dx * dx + 2.0 * met_inv[1] * dx * dy + met_inv[2] * dy * dy)
    if with_derivatives:
        grad[2] -= met_inv[0] * dx + met_inv[1] * dy
        grad[3] -= met_inv[1] * dx + met_inv[2] * dy
        hess[2, 2] -= met_inv[0]
        hess[2, 3] -= met_inv[1]
        hess[3, 2] -= met_inv[1]
        hess[3, 3] -= met_inv[2]
    value += _resonance(1, (1, 2), (1, 2, 3, 4), M_W, widths[2], theta, en, jet_mass, ws, with_derivatives)
    value += _resonance(1, (0, 1, 2), (0, 1, 2, 3, 4), M_TOP, widths[3], theta, en, jet_mass, ws, with_derivatives)
    return value


# ------------------------------------------------------------------------------------------- minimiser


@numba.njit(cache=True)
def _solve_damped(n, hess, grad, lam, step, chol):  # type: ignore[no-untyped-def]
    """Solve (−H + λ·diag(|H_ii| + 1e-6)) step = grad (first n rows) by Cholesky; False if not positive
    definite."""
    for i in range(n):
        for j in range(i + 1):
            chol[i, j] = -hess[i, j]
        chol[i, i] += lam * (abs(hess[i, i]) + 1e-6)
    for j in range(n):
        d = chol[j, j]
        for k in range(j):
            d -= chol[j, k] ** 2
        if d <= 0.0:
            return False
        chol[j, j] = math.sqrt(d)
        for i in range(j + 1, n):
            v = chol[i, j]
            for k in range(j):
                v -= chol[i, k] * chol[j, k]
            chol[i, j] = v / chol[j, j]
    for i in range(n):
        v = grad[i]
        for k in range(i):
            v -= chol[i, k] * step[k]
        step[i] = v / chol[i, i]
    for i in range(n - 1, -1, -1):
        v = step[i]
        for k in range(i + 1, n):
            v -= chol[k, i] * step[k]
        step[i] = v / chol[i, i]
    return True


@numba.njit(cache=True)
def _fit(  # type: ignore[no-untyped-def]
    side, theta, bounds, measured, params, ws, scratch
):
    """Levenberg-Marquardt maximisation of one side's log L from ``theta`` (modified in place), within
    ``bounds.lower``/``upper``.

    Damping update of Nielsen (1999): a step with gain ratio ρ = actual/predicted > 0 is taken and
    λ ← λ·max(1/3, 1 − (2ρ − 1)³), else λ ← λ·ν, ν ← 2ν. Converged when a step gains less than
    ``_TOLERANCE`` and the quadratic model predicted no more. Returns (log L, converged).
    """
    grad, hess, step, trial = ws.grad, ws.hess, scratch.step, scratch.trial
    lower, upper = bounds.lower, bounds.upper
    n = 3 if side == 0 else 5
    value = _side_log_likelihood(side, theta, measured, params, ws, True)
    lam, nu = 1e-3, 2.0
    for _ in range(_MAX_ITERATIONS):
        if not _solve_damped(n, hess, grad, lam, step, scratch.chol):
            lam, nu = max(lam * nu, 1e-2), 2.0 * nu
            continue
        for i in range(n):
            trial[i] = min(max(theta[i] + step[i], lower[i]), upper[i])
            step[i] = trial[i] - theta[i]
        predicted = 0.0
        for i in range(n):
            quad = 0.0
            for j in range(n):
                quad += hess[i, j] * step[j]
            predicted += step[i] * (grad[i] + 0.5 * quad)
        new = _side_log_likelihood(side, trial, measured, params, ws, False)
        gain = new - value
        if predicted <= _TOLERANCE and abs(gain) <= _TOLERANCE:
            if gain > 0.0:
                theta[:n] = trial[:n]
                value = new
            return value, True
        rho = gain / predicted if predicted > 0.0 else -1.0
        if rho > 0.0:
            theta[:n] = trial[:n]
            value = _side_log_likelihood(side, theta, measured, params, ws, True)
            lam *= max(1.0 / 3.0, 1.0 - (2.0 * rho - 1.0) ** 3)
            nu = 2.0
        else:
            lam, nu = lam * nu, 2.0 * nu
    return value, False


# ------------------------------------------------------------------------------------ event loop


@numba.njit(cache=True)
def _load_jet(k: int, jet_p4: np.ndarray, j: int, tf: int, measured: _SideInputs, bounds: _Bounds) -> None:
    """Measured jet ``j`` (row of ``jet_p4``) as fit input ``k``: direction, mass, energy, transfer function,
    start and bounds."""
    e = jet_p4[j, 3]
    mom = max(math.sqrt(jet_p4[j, 0] ** 2 + jet_p4[j, 1] ** 2 + jet_p4[j, 2] ** 2), 1e-9)
    for c in range(3):
        measured.jet_dir[k, c] = jet_p4[j, c] / mom
    measured.jet_mass[k] = math.sqrt(max(e * e - mom * mom, 0.0))
    measured.jet_e[k] = e
    measured.jet_tf[k] = tf
    bounds.start[k] = e
    bounds.lower[k] = max(measured.jet_mass[k] + 0.1, 0.25 * e)
    bounds.upper[k] = 4.0 * e


@numba.njit(cache=True)
def _side_masses(side: int, theta: np.ndarray, measured: _SideInputs, ws: _Workspace) -> tuple[float, float]:
    """Fitted (m_W, m_t) of one side (GeV): m(q1 q2), m(b q1 q2) or m(ℓ ν), m(b ℓ ν)."""
    p, total = ws.p, ws.total
    _four_momenta(side, theta, measured.jet_dir, measured.jet_mass, measured.lep_dir, p, ws.dp)
    for c in range(4):
        total[c] = p[1, c] + p[2, c]
    m_w = math.sqrt(max(_dot(total, total), 0.0))
    for c in range(4):
        total[c] += p[0, c]
    return m_w, math.sqrt(max(_dot(total, total), 0.0))


@numba.njit(cache=True)
def _klfitter_kernel(  # type: ignore[no-untyped-def]
    events, permutations, objects, params, out
):
    """Fit every permutation of every event (:class:`~coffea_mlreco.ttbar.chi2.FitEvents`,
    :class:`~coffea_mlreco.ttbar.chi2.PermutationTable`, :class:`_ObjectResolutions`,
    :class:`_LikelihoodParameters`) into ``out`` (:class:`_Outputs`, filled where a permutation was fitted)."""
    jet_off, jet_p4, tagged, lep, met = (
        events.jet_offsets,
        events.jet_p4,
        events.jet_tagged,
        events.lepton_p4,
        events.met,
    )
    perm_off, perm, max_jets = permutations.offsets, permutations.table, permutations.max_jets
    btag_mode, log_eff = params.btag_mode, params.log_btag_rates
    ws = _Workspace(np.empty((3, 4)), np.empty((5, 4)), np.empty(4), np.empty(5), np.empty(5), np.empty((5, 5)))
    scratch = _StepScratch(np.empty(5), np.empty(5), np.empty((5, 5)))
    theta, start, lower, upper = np.empty(5), np.empty(5), np.empty(5), np.empty(5)
    bounds = _Bounds(start, lower, upper)
    jet_dir, jet_mass, jet_e = np.empty((3, 3)), np.empty(3), np.empty(3)
    jet_tf = np.empty(3, np.int64)
    lep_dir = np.empty(4)
    had = np.empty((max_jets, max_jets, max_jets))
    had_conv = np.empty((max_jets, max_jets, max_jets), np.bool_)
    had_masses = np.empty((max_jets, max_jets, max_jets, 2))
    lep_fit = np.empty((max_jets, 5))  # log L, fitted p_z and η of the neutrino, m_W, m_t
    lep_conv = np.empty(max_jets, np.bool_)
    for i in range(len(perm_off) - 1):
        if perm_off[i + 1] == perm_off[i]:
            continue
        j0 = jet_off[i]
        n_used = min(jet_off[i + 1] - j0, max_jets)
        n_tagged = 0
        for k in range(n_used):
            n_tagged += tagged[j0 + k]
        log_other = n_tagged * log_eff[2, 1] + (n_used - n_tagged) * log_eff[2, 0]
        lep_e = lep[i, 3]
        for c in range(4):
            lep_dir[c] = lep[i, c] / lep_e
        measured = _SideInputs(
            jet_dir,
            jet_mass,
            jet_e,
            jet_tf,
            lep_dir,
            lep_e,
            objects.lepton_kappa[i],
            objects.lepton_tf[i],
            met[i],
            objects.met_inverse_covariance[i],
        )
        pz1, pz2, real = neutrino_pz_roots(lep[i, 0], lep[i, 1], lep[i, 2], lep_e, met[i, 0], met[i, 1], M_W)
        had[:n_used, :n_used, :n_used] = np.nan
        lep_fit[:n_used, 0] = np.nan
        best, norm = -np.inf, -np.inf
        for q in range(perm_off[i], perm_off[i + 1]):
            b, q1, q2, bl = perm[q, 0], perm[q, 1], perm[q, 2], perm[q, 3]
            if btag_mode == 2 and not btag_allowed(
                tagged[j0 + b], tagged[j0 + q1], tagged[j0 + q2], tagged[j0 + bl], n_tagged, n_used - n_tagged
            ):
                continue
            if np.isnan(had[b, q1, q2]):
                for k, j in enumerate((b, q1, q2)):
                    tf = objects.jet_tf_b[j0 + j] if k == 0 else objects.jet_tf_light[j0 + j]
                    _load_jet(k, jet_p4, j0 + j, tf, measured, bounds)
                theta[:3] = start[:3]
                had[b, q1, q2], had_conv[b, q1, q2] = _fit(0, theta, bounds, measured, params, ws, scratch)
                had_masses[b, q1, q2, 0], had_masses[b, q1, q2, 1] = _side_masses(0, theta, measured, ws)
            if np.isnan(lep_fit[bl, 0]):
                _load_jet(0, jet_p4, j0 + bl, objects.jet_tf_b[j0 + bl], measured, bounds)
                start[1], lower[1], upper[1] = lep_e, 0.5 * lep_e, 2.0 * lep_e
                start[2], start[3] = met[i, 0], met[i, 1]
                for k in range(2, 5):
                    lower[k], upper[k] = -1e5, 1e5
                lep_fit[bl, 0] = -np.inf
                for root in range(2 if real else 1):
                    theta[:5] = start[:5]
                    theta[4] = pz1 if root == 0 else pz2
                    value, conv = _fit(1, theta, bounds, measured, params, ws, scratch)
                    if value > lep_fit[bl, 0]:
                        pt = max(math.hypot(theta[2], theta[3]), 1e-9)
                        lep_fit[bl, 0], lep_fit[bl, 1], lep_fit[bl, 2] = value, theta[4], math.asinh(theta[4] / pt)
                        lep_fit[bl, 3], lep_fit[bl, 4] = _side_masses(1, theta, measured, ws)
                        lep_conv[bl] = conv
            value = had[b, q1, q2] + lep_fit[bl, 0]
            if btag_mode == 1:  # positions' rates for the four jets, the "other" rate for the unused ones
                value += log_other
                for k in range(4):
                    tag = 1 if tagged[j0 + perm[q, k]] else 0
                    value += log_eff[1 if 1 <= k <= 2 else 0, tag] - log_eff[2, tag]  # k = 1, 2: light
            if not np.isfinite(value):
                continue
            out.permutation_log_likelihood[q] = value
            top = max(norm, value)
            norm = top + math.log(math.exp(norm - top) + math.exp(value - top))
            if value > best:
                best = value
                for k in range(4):
                    out.positions[i, k] = perm[q, k]
                out.nu_pz[i], out.nu_eta[i] = lep_fit[bl, 1], lep_fit[bl, 2]
                out.masses[i, 0], out.masses[i, 1] = had_masses[b, q1, q2, 0], had_masses[b, q1, q2, 1]
                out.masses[i, 2], out.masses[i, 3] = lep_fit[bl, 3], lep_fit[bl, 4]
                out.converged[i] = had_conv[b, q1, q2] and lep_conv[bl]
        if best > -np.inf:
            out.log_likelihood[i] = best
            out.event_probability[i] = math.exp(best - norm)


# ------------------------------------------------------------------------------------------ front end


def _tf_tables(params: TTbarParameters) -> _TransferFunctions:
    """Transfer functions as arrays: light jets per |η| bin, b jets per bin, electron, muon."""
    tfs = [*params.light_jet, *params.b_jet, params.electron, params.muon]
    return _TransferFunctions(
        np.array([tf.coefficients for tf in tfs], np.float64),
        np.array([[BASES.index(b) for b in tf.bases] for tf in tfs], np.int64),
        np.array([tf.x_range for tf in tfs], np.float64),
    )


def _likelihood_parameters(params: TTbarParameters, btag: str) -> _LikelihoodParameters:
    """The kernel's parameters: transfer functions, Breit-Wigner widths, b-tag rates and mode."""
    if btag not in BTAG_MODES:
        raise ValueError(f"btag must be one of {sorted(BTAG_MODES)}, not {btag!r}")
    rates = np.array([params.btag_eff_b, params.btag_eff_light, params.btag_eff_other])
    return _LikelihoodParameters(
        _tf_tables(params),
        np.array([params.bw_width_w, params.bw_width_top, params.bw_width_w, params.bw_width_top]),
        np.log(np.stack([1 - rates, rates], axis=1)),  # rows: b position, light position, unused jet
        BTAG_MODES[btag],
    )


def _met_inverse_covariance(params: TTbarParameters, inputs: ak.Array, met_cov: np.ndarray) -> np.ndarray:
    """(N, 3) inverse MET covariance (XX, XY, YY) in GeV⁻²: k²·MET_cov where the inputs have a valid one,
    else σ = a + b·√ΣET (``met.sumEt``), else the constant σ."""
    n = len(met_cov)
    if "sumEt" in inputs.met.fields:
        sumet = to_numpy(inputs.met.sumEt, np.float64)
        sigma = np.maximum(params.met.sumet[0] + params.met.sumet[1] * np.sqrt(np.maximum(sumet, 0.0)), 1.0)
        sigma = np.where(np.isfinite(sigma), sigma, params.met.constant)
    else:
        sigma = np.full(n, params.met.constant)
    cov = np.stack([sigma**2, np.zeros(n), sigma**2], axis=1)
    scaled = met_cov * params.met.cov_scale**2
    valid = np.all(np.isfinite(scaled), axis=1) & (scaled[:, 0] > 0) & (scaled[:, 0] * scaled[:, 2] > scaled[:, 1] ** 2)
    cov[valid] = scaled[valid]
    det = cov[:, 0] * cov[:, 2] - cov[:, 1] ** 2
    return np.ascontiguousarray(np.stack([cov[:, 2], -cov[:, 1], cov[:, 0]], axis=1) / det[:, None])


def _object_resolutions(params: TTbarParameters, inputs: ak.Array, arrays: FitInputs) -> _ObjectResolutions:
    """Each jet's transfer function by |η| bin, the lepton's by flavour, the MET's inverse covariance."""
    n_eta = len(params.eta_edges) - 1
    eta_bin = np.clip(
        np.searchsorted(np.asarray(params.eta_edges), arrays.jet_abs_eta, side="right") - 1, 0, n_eta - 1
    ).astype(np.int64)
    lepton_p4 = arrays.events.lepton_p4
    muon = arrays.lepton_flavour == 13
    lep_e = np.maximum(lepton_p4[:, 3], 1e-9)
    return _ObjectResolutions(
        eta_bin,
        eta_bin + n_eta,
        np.where(muon, 2 * n_eta + 1, 2 * n_eta).astype(np.int64),
        np.where(muon, np.hypot(lepton_p4[:, 0], lepton_p4[:, 1]) / lep_e, 1.0),
        _met_inverse_covariance(params, inputs, arrays.met_cov),
    )


def _run(
    inputs: ak.Array, max_jets: int, btag: str, parameters: TTbarParameters | None
) -> tuple[_Outputs, PermutationTable]:
    """Run the kernel: its outputs per event and per permutation (see the two public functions) and the
    permutation table."""
    params = load_ttbar_parameters() if parameters is None else parameters
    likelihood = _likelihood_parameters(params, btag)
    arrays = fit_inputs(inputs, max_jets, params.btag_working_point)
    n, n_perm = len(arrays.active), len(arrays.permutations.table)
    out = _Outputs(
        np.full((n, 4), -1, np.int64),
        np.full(n, np.nan),
        np.full(n, np.nan),
        np.full(n, np.nan),
        np.full(n, np.nan),
        np.zeros(n, np.bool_),
        np.full((n, 4), np.nan),
        np.full(n_perm, np.nan),
    )
    objects = _object_resolutions(params, inputs, arrays)
    _klfitter_kernel(arrays.events, arrays.permutations, objects, likelihood, out)
    return out, arrays.permutations


def klfitter_assignment(
    inputs: ak.Array, max_jets: int = 6, btag: str = "workingpoint", parameters: TTbarParameters | None = None
) -> ak.Array:
    """KLFitter-style likelihood assignment of the semileptonic tt̄ jets (see the module docstring).

    Args:
        inputs: ``coffea_mlreco.ttbar.inputs.semileptonic_inputs(events)`` (N events).
        max_jets: only the first (highest-pT) ``max_jets`` selected jets are permuted.
        btag: ``"workingpoint"`` (default), ``"veto"`` or ``"none"`` (:data:`BTAG_MODES`).
        parameters: transfer functions, widths and b-tag rates; default the shipped ``ttbar_resolutions.json``.

    Returns:
        ``N * {had_b, had_q1, had_q2, lep_b: int64, log_likelihood, event_probability, nu_pz, nu_eta: float64,
        converged: bool, m_whad, m_thad, m_wlep, m_tlep: float64}``: positions in ``inputs.jets`` of the most
        likely permutation (−1 for events that are not ``selected``), its log L (b-tag term included), its
        probability L_p/Σ_p L_p, the fitted neutrino p_z (GeV) and η, whether both of its fits converged, and
        the fitted W and top masses (GeV). NaN/False without an assignment.
    """
    out, _ = _run(inputs, max_jets, btag, parameters)
    fields: dict[str, Any] = {name: out.positions[:, k] for k, name in enumerate(PERMUTATION_FIELDS)}
    masses = {name: out.masses[:, k] for k, name in enumerate(FITTED_MASSES)}
    scalars = ("log_likelihood", "event_probability", "nu_pz", "nu_eta", "converged")
    return ak.zip({**fields, **{f: getattr(out, f) for f in scalars}, **masses})


def klfitter_permutations(
    inputs: ak.Array, max_jets: int = 6, btag: str = "workingpoint", parameters: TTbarParameters | None = None
) -> ak.Array:
    """Every permutation's fit, as KLFitter reports them: ``N * var * {had_b, had_q1, had_q2, lep_b: int64,
    log_likelihood, probability: float64}`` (probability = L_p/Σ L over the event's permutations; NaN for
    permutations the ``"veto"`` mode did not fit). Arguments as :func:`klfitter_assignment`.
    """
    out, permutations = _run(inputs, max_jets, btag, parameters)
    logl = out.permutation_log_likelihood
    counts = np.diff(permutations.offsets)
    event = np.repeat(np.arange(len(counts)), counts)
    finite = np.isfinite(logl)
    top = np.full(len(counts), -np.inf)
    np.maximum.at(top, event[finite], logl[finite])
    weight = np.where(finite, np.exp(np.where(finite, logl, 0.0) - top[event]), 0.0)
    norm = np.bincount(event, weight, minlength=len(counts))
    prob = np.where(finite, weight / np.maximum(norm[event], 1e-300), np.nan)
    fields: dict[str, Any] = {name: permutations.table[:, k] for k, name in enumerate(PERMUTATION_FIELDS)}
    record = ak.zip({**fields, "log_likelihood": logl, "probability": prob})
    return ak.unflatten(record, counts)
