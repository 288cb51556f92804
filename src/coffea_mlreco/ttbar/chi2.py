"""χ² jet-parton assignment for semileptonic tt̄ (the classic mass-constraint baseline).

For every permutation (had_b, had_q1, had_q2, lep_b) of the first ``max_jets`` selected jets
(:func:`coffea_mlreco.ttbar.permutations.flat_permutations`)::

    χ² = ((m_jj − m̂_W)/σ_W)² + ((m_jjb − m̂_t,had)/σ_t,had)² + ((m_ℓνb − m̂_t,lep)/σ_t,lep)²

and the permutation with the smallest χ² is the assignment. Jets enter with their measured four-momenta.
The neutrino is (MET_x, MET_y, p_z) with p_z from the W-mass constraint m(ℓν) = M_W: both roots are tried
and the one with the smaller χ² is kept; when the discriminant is negative (the measured MET is too large
for an on-shell W) the real part of the complex roots is taken, the common practice (e.g. CMS top-quark
analyses). Peaks m̂ and widths σ are the median and (P84 − P16)/2 of the three masses for correctly
assigned jets in our simulation (``ttbar_resolutions.json``): analyses centre the χ² on the reconstructed
peaks rather than on the pole masses, because jets measure partons ~7 % low (out-of-cone radiation,
neutrinos in b decays) and the pole masses would then favour wrong, higher-mass combinations.

b tagging (``btag=True``, medium working point of :mod:`coffea_mlreco.ttbar.inputs`), counting the tags
n_t among the considered jets:

- n_t ≥ 2: both b positions must be tagged; the light positions must be untagged when at least two
  untagged jets are available (with 3+ tags among 4–5 jets a tagged jet may then fill a light position);
- n_t < 2: the tagged jet, if any, must sit at a b position (tagged b positions = n_t).

This is the usual "b-tagged jets are the b candidates" rule of l+jets analyses. On the validation sample
(``val_pu60.root``, 540 selected events with all four partons matched) it raises the event efficiency from
40.2 % to 63.9 % (N_jets = 4 / 5 / ≥6: 80.8 / 56.7 / 44.3 %); centring on the pole masses instead of the
reconstructed peaks gives 59.4 %. ``klfitter``'s module docs compare with the likelihood fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import awkward as ak
import numba
import numpy as np

from coffea_mlreco.core.columns import to_numpy
from coffea_mlreco.core.constants import M_W
from coffea_mlreco.ttbar.inputs import BTAG_MEDIUM_WP
from coffea_mlreco.ttbar.neutrino import neutrino_pz_roots
from coffea_mlreco.ttbar.permutations import PERMUTATION_FIELDS, flat_permutations
from coffea_mlreco.ttbar.resolutions import TTbarParameters, load_ttbar_parameters

__all__ = [
    "Chi2Constraints",
    "FitEvents",
    "FitInputs",
    "PermutationTable",
    "btag_allowed",
    "chi2_assignment",
    "fit_inputs",
]


@numba.njit(cache=True)
def btag_allowed(tag_had_b: bool, tag_q1: bool, tag_q2: bool, tag_lep_b: bool, n_tagged: int, n_untagged: int) -> bool:
    """The χ²'s b-tag rule for one permutation (see the module docstring); counts over the considered jets."""
    n_b = int(tag_had_b) + int(tag_lep_b)
    if n_tagged >= 2:
        if n_b < 2:
            return False
        return not (n_untagged >= 2 and (tag_q1 or tag_q2))
    return n_b == n_tagged


class FitEvents(NamedTuple):
    """Flat event arrays the numba kernels read (GeV): jets as offsets into their content arrays.

    Shapes: ``jet_offsets (N+1,)``; ``jet_p4 (J, 4)`` px, py, pz, E; ``jet_tagged (J,)`` above the b-tag
    working point; ``lepton_p4 (N, 4)`` (zero for inactive events); ``met (N, 2)`` px, py.
    """

    jet_offsets: np.ndarray
    jet_p4: np.ndarray
    jet_tagged: np.ndarray
    lepton_p4: np.ndarray
    met: np.ndarray


class PermutationTable(NamedTuple):
    """Jet permutations (had_b, had_q1, had_q2, lep_b) of each event, as from ``flat_permutations``:
    ``offsets (N+1,)`` into ``table (P, 4)`` (positions within the event's jets); only the first
    ``max_jets`` jets are permuted (and counted for the b-tag rule)."""

    offsets: np.ndarray
    table: np.ndarray
    max_jets: int


@dataclass(frozen=True)
class FitInputs:
    """Flat numpy view of :func:`coffea_mlreco.ttbar.inputs.semileptonic_inputs` for the χ² and likelihood fits.

    ``events`` and ``permutations`` go to the numba kernels as they are; the front ends derive their
    resolution inputs from ``jet_abs_eta (J,)``, ``lepton_flavour (N,)`` (11, 13 or 0) and ``met_cov (N, 3)``
    (XX, XY, YY in GeV², NaN when absent). ``active (N,)``: the events that get an assignment.
    """

    events: FitEvents
    permutations: PermutationTable
    jet_abs_eta: np.ndarray
    lepton_flavour: np.ndarray
    met_cov: np.ndarray
    active: np.ndarray


class Chi2Constraints(NamedTuple):
    """The χ²'s mass windows (GeV): ``peaks`` and ``sigmas`` of m_jj, m_jjb and m_ℓνb, the W mass of the
    neutrino p_z constraint, and whether the b-tag rule applies."""

    peaks: np.ndarray
    sigmas: np.ndarray
    w_mass: float
    use_btag: bool


class _Chi2Outputs(NamedTuple):
    """Kernel outputs per event: ``positions (N, 4)`` of the chosen jets, ``chi2 (N,)``, ``nu_pz (N,)`` (GeV)."""

    positions: np.ndarray
    chi2: np.ndarray
    nu_pz: np.ndarray


def _finite(values: Any, name: str, where: np.ndarray | None = None) -> np.ndarray:
    array = to_numpy(values, np.float64)
    bad = ~np.isfinite(array) if where is None else (~np.isfinite(array) & where)
    if bad.any():
        raise ValueError(
            f"inputs field {name!r} holds a non-finite value (NaN or inf) at flat position "
            f"{int(np.flatnonzero(bad)[0])}; the tt̄ assignment needs finite momenta"
        )
    return array


def fit_inputs(inputs: ak.Array, max_jets: int, working_point: float = BTAG_MEDIUM_WP) -> FitInputs:
    """Flatten ``semileptonic_inputs`` output; raise ``ValueError`` naming a field with NaN/inf momenta."""
    if max_jets < 4:
        raise ValueError(f"max_jets must be at least 4, got {max_jets}")
    jets = inputs.jets
    counts = ak.to_numpy(ak.num(jets, axis=1)).astype(np.int64)
    offsets = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    pt, eta, phi, mass = (_finite(ak.flatten(jets[f], axis=1), f"jets.{f}") for f in ("pt", "eta", "phi", "mass"))
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    jet_p4 = np.stack([px, py, pz, np.sqrt(px**2 + py**2 + pz**2 + mass**2)], axis=1)
    tagged = to_numpy(ak.flatten(jets.btag, axis=1), np.float64) > working_point

    has_lepton = ak.to_numpy(~ak.is_none(inputs.lepton)).astype(bool)
    active = ak.to_numpy(inputs.selected).astype(bool) & has_lepton & (counts >= 4)
    lep = ak.fill_none(inputs.lepton, {"pt": 0.0, "eta": 0.0, "phi": 0.0, "mass": 0.0, "charge": 0, "pdgId": 0})
    lpt, leta, lphi, lmass = (_finite(lep[f], f"lepton.{f}", active) for f in ("pt", "eta", "phi", "mass"))
    lpx, lpy, lpz = lpt * np.cos(lphi), lpt * np.sin(lphi), lpt * np.sinh(leta)
    lepton_p4 = np.stack([lpx, lpy, lpz, np.sqrt(lpx**2 + lpy**2 + lpz**2 + lmass**2)], axis=1)
    lepton_p4[~active] = 0.0
    flavour = np.abs(to_numpy(lep.pdgId, np.int64))
    met = np.stack([_finite(inputs.met[f], f"met.{f}", active) for f in ("px", "py")], axis=1)
    met[~active] = 0.0
    met_cov = np.full((len(counts), 3), np.nan)
    if all(c in inputs.met.fields for c in ("covXX", "covXY", "covYY")):
        met_cov = np.stack([_finite(inputs.met[f], f"met.{f}", active) for f in ("covXX", "covXY", "covYY")], axis=1)
    perm_offsets, perm_table = flat_permutations(np.where(active, counts, 0), max_jets)
    return FitInputs(
        FitEvents(offsets, np.ascontiguousarray(jet_p4), tagged, lepton_p4, np.ascontiguousarray(met)),
        PermutationTable(perm_offsets, perm_table, int(max_jets)),
        np.abs(eta),
        flavour,
        np.ascontiguousarray(met_cov),
        active,
    )


@numba.njit(cache=True)
def _mass(e: float, px: float, py: float, pz: float) -> float:
    return np.sqrt(max(e * e - px * px - py * py - pz * pz, 0.0))


@numba.njit(cache=True)
def _chi2_kernel(  # type: ignore[no-untyped-def]
    events, permutations, constraints, out
):
    """Smallest χ² over each event's permutations (:class:`FitEvents`, :class:`PermutationTable`,
    :class:`Chi2Constraints`) into ``out`` (:class:`_Chi2Outputs`, filled for events with permutations)."""
    jet_off, jet_p4, tagged = events.jet_offsets, events.jet_p4, events.jet_tagged
    lep, met = events.lepton_p4, events.met
    perm_off, perm = permutations.offsets, permutations.table
    peaks, sigmas = constraints.peaks, constraints.sigmas
    for i in range(len(perm_off) - 1):
        if perm_off[i + 1] == perm_off[i]:
            continue
        j0 = jet_off[i]
        n_used = min(jet_off[i + 1] - j0, permutations.max_jets)
        n_tagged = 0
        for k in range(n_used):
            n_tagged += tagged[j0 + k]
        pz1, pz2, _ = neutrino_pz_roots(
            lep[i, 0], lep[i, 1], lep[i, 2], lep[i, 3], met[i, 0], met[i, 1], constraints.w_mass
        )
        best = np.inf
        for p in range(perm_off[i], perm_off[i + 1]):
            b, q1, q2, bl = j0 + perm[p, 0], j0 + perm[p, 1], j0 + perm[p, 2], j0 + perm[p, 3]
            if constraints.use_btag and not btag_allowed(
                tagged[b], tagged[q1], tagged[q2], tagged[bl], n_tagged, n_used - n_tagged
            ):
                continue
            w = jet_p4[q1] + jet_p4[q2]
            t = w + jet_p4[b]
            c = ((_mass(w[3], w[0], w[1], w[2]) - peaks[0]) / sigmas[0]) ** 2 + (
                (_mass(t[3], t[0], t[1], t[2]) - peaks[1]) / sigmas[1]
            ) ** 2
            if c >= best:
                continue
            for root in range(2):
                pz = pz1 if root == 0 else pz2
                ex = lep[i, 3] + jet_p4[bl, 3] + np.sqrt(met[i, 0] ** 2 + met[i, 1] ** 2 + pz * pz)
                mt = _mass(
                    ex,
                    lep[i, 0] + jet_p4[bl, 0] + met[i, 0],
                    lep[i, 1] + jet_p4[bl, 1] + met[i, 1],
                    lep[i, 2] + jet_p4[bl, 2] + pz,
                )
                total = c + ((mt - peaks[2]) / sigmas[2]) ** 2
                if total < best:
                    best = total
                    for k in range(4):
                        out.positions[i, k] = perm[p, k]
                    out.nu_pz[i] = pz
        out.chi2[i] = best if best < np.inf else np.nan


def chi2_assignment(
    inputs: ak.Array, max_jets: int = 6, btag: bool = True, parameters: TTbarParameters | None = None
) -> ak.Array:
    """χ² assignment of the semileptonic tt̄ jets (see the module docstring).

    Args:
        inputs: ``coffea_mlreco.ttbar.inputs.semileptonic_inputs(events)`` (N events).
        max_jets: only the first (highest-pT) ``max_jets`` selected jets are permuted.
        btag: apply the b-tag rule of the module docstring.
        parameters: mass windows; default the shipped ``ttbar_resolutions.json``.

    Returns:
        ``N * {had_b, had_q1, had_q2, lep_b: int64, chi2: float64, nu_pz: float64}``: positions in
        ``inputs.jets`` (−1 for events that are not ``selected`` or have no permutation), the smallest χ²
        and the chosen neutrino p_z in GeV (NaN without an assignment).
    """
    params = load_ttbar_parameters() if parameters is None else parameters
    arrays = fit_inputs(inputs, max_jets, params.btag_working_point)
    n = len(arrays.active)
    out = _Chi2Outputs(np.full((n, 4), -1, np.int64), np.full(n, np.nan), np.full(n, np.nan))
    constraints = Chi2Constraints(
        np.array([params.m_w.peak, params.m_top_had.peak, params.m_top_lep.peak]),
        np.array([params.m_w.sigma, params.m_top_had.sigma, params.m_top_lep.sigma]),
        M_W,
        bool(btag),
    )
    _chi2_kernel(arrays.events, arrays.permutations, constraints, out)
    fields: dict[str, Any] = {name: out.positions[:, k] for k, name in enumerate(PERMUTATION_FIELDS)}
    return ak.zip({**fields, "chi2": out.chi2, "nu_pz": out.nu_pz})
