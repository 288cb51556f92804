"""Per-permutation features for the permutation DNN (after Erdmann et al., JINST 14 (2019) P11015).

For each permutation ``(had_b, had_q1, had_q2, lep_b)`` of an event's first ``max_jets`` selected jets
(:mod:`coffea_mlreco.ttbar.permutations`) the network sees the four assigned jets and the reconstructed
top-quark system they imply:

- per assigned jet: log(pT/GeV), η, b-tag score, position in the pT-ordered jet list (4 × 4);
- masses in units of 100 GeV: m(q q′), m(b q q′), m(b_ℓ ℓ), and m(b_ℓ ℓ ν) for each of the two W-constraint
  neutrino solutions (:mod:`coffea_mlreco.ttbar.neutrino`), ordered by |m − m_t|;
- angles: ΔR(q, q′), ΔR(b_had, W_had), ΔR(b_ℓ, ℓ), |Δφ(t_had, t_lep)|;
- log pT of both tops (the better neutrino solution), and the number of jets.

:data:`FEATURE_NAMES` lists them in order (28 features).
"""

from __future__ import annotations

from typing import Any

import awkward as ak
import numba
import numpy as np

from coffea_mlreco.core.columns import to_numpy
from coffea_mlreco.core.constants import M_TOP, M_W
from coffea_mlreco.ttbar.neutrino import neutrino_pz_roots
from coffea_mlreco.ttbar.permutations import flat_permutations

__all__ = ["FEATURE_NAMES", "permutation_features"]

_JET_FIELDS = ("log_pt", "eta", "btag", "rank")
_ROLES = ("had_b", "had_q1", "had_q2", "lep_b")
FEATURE_NAMES: tuple[str, ...] = (
    *(f"{role}_{f}" for role in _ROLES for f in _JET_FIELDS),
    "m_w_had",
    "m_top_had",
    "m_b_lep",
    "m_top_lep_best",
    "m_top_lep_other",
    "dr_qq",
    "dr_b_w_had",
    "dr_b_lep",
    "dphi_tops",
    "log_pt_top_had",
    "log_pt_top_lep",
    "n_jets",
)


@numba.njit(cache=True)
def _mass(px, py, pz, e):  # type: ignore[no-untyped-def]
    m2 = e * e - px * px - py * py - pz * pz
    return np.sqrt(m2) if m2 > 0.0 else 0.0


@numba.njit(cache=True)
def _dr(eta1, phi1, eta2, phi2):  # type: ignore[no-untyped-def]
    dphi = (phi1 - phi2 + np.pi) % (2 * np.pi) - np.pi
    return np.sqrt((eta1 - eta2) ** 2 + dphi * dphi)


@numba.njit(cache=True)
def _eta(px, py, pz):  # type: ignore[no-untyped-def]
    pt = np.hypot(px, py)
    return np.arcsinh(pz / pt) if pt > 0 else 0.0


@numba.njit(cache=True)
def _features_kernel(  # type: ignore[no-untyped-def]
    jet_offsets,
    jet_p4,
    jet_pt,
    jet_eta,
    jet_phi,
    jet_btag,
    lep_p4,
    lep_eta,
    lep_phi,
    met_px,
    met_py,
    n_jets,
    perm_offsets,
    perms,
    m_top,
    m_w,
    out,
):
    for i in range(n_jets.size):
        j0 = jet_offsets[i]
        nu_a, nu_b, _ = neutrino_pz_roots(
            lep_p4[i, 0], lep_p4[i, 1], lep_p4[i, 2], lep_p4[i, 3], met_px[i], met_py[i], m_w
        )
        for r in range(perm_offsets[i], perm_offsets[i + 1]):
            f = out[r]
            c = 0
            for role in range(4):
                j = j0 + perms[r, role]
                f[c] = np.log(max(jet_pt[j], 1.0))
                f[c + 1] = jet_eta[j]
                f[c + 2] = jet_btag[j]
                f[c + 3] = perms[r, role]
                c += 4
            b, q1, q2, bl = j0 + perms[r, 0], j0 + perms[r, 1], j0 + perms[r, 2], j0 + perms[r, 3]
            w = jet_p4[q1] + jet_p4[q2]
            th = w + jet_p4[b]
            bl_l = jet_p4[bl] + lep_p4[i]
            best_m, other_m = 0.0, 0.0
            for k in range(2):
                pz = nu_a if k == 0 else nu_b
                e_nu = np.sqrt(met_px[i] ** 2 + met_py[i] ** 2 + pz * pz)
                m = _mass(bl_l[0] + met_px[i], bl_l[1] + met_py[i], bl_l[2] + pz, bl_l[3] + e_nu)
                if k == 0 or abs(m - m_top) < abs(best_m - m_top):
                    other_m = best_m if k > 0 else 0.0
                    best_m = m
                else:
                    other_m = m
            tl_px, tl_py = bl_l[0] + met_px[i], bl_l[1] + met_py[i]
            f[16] = _mass(w[0], w[1], w[2], w[3]) / 100.0
            f[17] = _mass(th[0], th[1], th[2], th[3]) / 100.0
            f[18] = _mass(bl_l[0], bl_l[1], bl_l[2], bl_l[3]) / 100.0
            f[19] = best_m / 100.0
            f[20] = other_m / 100.0
            f[21] = _dr(jet_eta[q1], jet_phi[q1], jet_eta[q2], jet_phi[q2])
            f[22] = _dr(jet_eta[b], jet_phi[b], _eta(w[0], w[1], w[2]), np.arctan2(w[1], w[0]))
            f[23] = _dr(jet_eta[bl], jet_phi[bl], lep_eta[i], lep_phi[i])
            dphi = (np.arctan2(th[1], th[0]) - np.arctan2(tl_py, tl_px) + np.pi) % (2 * np.pi) - np.pi
            f[24] = abs(dphi)
            f[25] = np.log(max(np.hypot(th[0], th[1]), 1.0))
            f[26] = np.log(max(np.hypot(tl_px, tl_py), 1.0))
            f[27] = n_jets[i]


def _p4(pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, mass: np.ndarray) -> np.ndarray:
    px, py = pt * np.cos(phi), pt * np.sin(phi)
    pz = pt * np.sinh(eta)
    return np.stack([px, py, pz, np.sqrt(px**2 + py**2 + pz**2 + mass**2)], axis=1)


def _flat(array: Any) -> np.ndarray:
    return to_numpy(ak.flatten(array, axis=None), np.float64)


def permutation_features(inputs: ak.Array, max_jets: int = 6) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features of every permutation of every event.

    Args:
        inputs: :func:`coffea_mlreco.ttbar.inputs.semileptonic_inputs` output, restricted to events with a
            lepton (``lepton`` not None).
        max_jets: permutations use the first ``max_jets`` selected jets.

    Returns:
        ``(offsets, permutations, features)``: event ``i`` owns rows ``offsets[i]:offsets[i+1]`` of
        ``permutations`` ([P, 4] jet positions) and ``features`` ([P, len(FEATURE_NAMES)] float32).
    """
    jets = inputs.jets
    if ak.any(ak.is_none(inputs.lepton.pt)):
        raise ValueError("permutation_features needs one lepton per event; select events first")
    n_jets = to_numpy(ak.num(jets, axis=1), np.int64)
    offsets, perms = flat_permutations(n_jets, max_jets)
    jet_offsets = np.zeros(n_jets.size + 1, np.int64)
    np.cumsum(n_jets, out=jet_offsets[1:])
    pt, eta, phi, mass = (_flat(jets[f]) for f in ("pt", "eta", "phi", "mass"))
    btag = _flat(jets.btag)
    lep = inputs.lepton
    lep_pt, lep_eta, lep_phi, lep_mass = (to_numpy(lep[f], np.float64) for f in ("pt", "eta", "phi", "mass"))
    for name, values in (
        ("jet pt", pt),
        ("jet eta", eta),
        ("jet phi", phi),
        ("jet mass", mass),
        ("lepton pt", lep_pt),
        ("MET pt", to_numpy(inputs.met.pt, np.float64)),
    ):
        if not np.all(np.isfinite(values)):
            raise ValueError(f"{name} has non-finite values (NaN/inf); the tt̄ permutation features need finite inputs")
    features = np.zeros((perms.shape[0], len(FEATURE_NAMES)), np.float64)
    _features_kernel(
        jet_offsets,
        _p4(pt, eta, phi, mass),
        pt,
        eta,
        phi,
        btag,
        _p4(lep_pt, lep_eta, lep_phi, lep_mass),
        lep_eta,
        lep_phi,
        to_numpy(inputs.met.px, np.float64),
        to_numpy(inputs.met.py, np.float64),
        n_jets,
        offsets,
        perms,
        float(M_TOP),
        float(M_W),
        features,
    )
    return offsets, perms, features.astype(np.float32)
