"""Generator-level truth targets from NanoAOD ``GenPart``, ``GenMET`` and ``GenVisTau``.

Every reconstruction task (MET, tt̄ jet-parton assignment, m_ττ) compares against the targets built here.
Conventions: momenta and masses in GeV, angles in radians, Δφ wrapped into [−π, π). Indices into
``GenPart`` are local (per event), −1 meaning "not found". Works on eager and virtual NanoEvents
(``NanoAODSchema``; for dask-awkward call the functions through ``dask_awkward.map_partitions``); per-event
graph walks are numba loops over the flat offsets/content arrays.

NanoAOD's ``GenPart`` is pruned: ``genPartIdxMother`` points to the nearest *kept* ancestor, a particle can
appear as several copies (t → t after radiation, W → W (recoil) → q q̄′), and the stored masses of light
particles are 0. So a resonance is identified by its *copy chain*: the chain's root is the earliest kept copy
(walk mothers while the pdgId stays the same), and a daughter of a resonance is a chain root whose mother
belongs to the resonance's chain.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

import awkward as ak
import numba
import numpy as np
from coffea.nanoevents.methods import vector as coffea_vector

from coffea_mlreco.core.constants import M_ELECTRON, M_MUON, M_PION, M_TAU, NEUTRINO_IDS, PARTON_JET_DR

__all__ = [
    "SEMILEP_PARTONS",
    "VIS_TAU_DR",
    "TTbarChannel",
    "TauDecay",
    "delta_phi",
    "delta_r",
    "gen_met",
    "last_copy",
    "match_partons_to_jets",
    "neutrino_met",
    "reconstructable",
    "stack_partons",
    "tau_decays",
    "ttbar_indices",
    "ttbar_partons",
]

# CMS GenStatusFlags bits (same order as coffea's GenParticle.FLAGS)
_IS_TAU_DECAY_PRODUCT, _IS_DIRECT_TAU_DECAY_PRODUCT, _FROM_HARD_PROCESS, _IS_LAST_COPY = 2, 4, 8, 13
# masses missing from constants.py (PDG 2024), used where NanoAOD stores 0 for a light particle
_M_PI0, _M_KAON, _M_K0 = 0.1349768, 0.493677, 0.497611
_LIGHT_MASSES = {
    11: M_ELECTRON,
    13: M_MUON,
    15: M_TAU,
    111: _M_PI0,
    211: M_PION,
    321: _M_KAON,
    311: _M_K0,
    310: _M_K0,
    130: _M_K0,
}
VIS_TAU_DR = 0.2
"""Maximum ΔR between a ``GenVisTau`` and the visible daughters of the tau it is assigned to."""
SEMILEP_PARTONS = ("had_b", "had_q1", "had_q2", "lep_b")
"""The four partons of a semileptonic tt̄ event that are matched to jets (SPANet order)."""


class TTbarChannel(IntEnum):
    """tt̄ decay channel by the number of leptonic W decays (τ counts as a lepton)."""

    UNKNOWN = -1  # no last-copy t and t̄, or a W whose two daughters were not found
    ALLHAD = 0
    SEMILEP = 1
    DILEP = 2


class TauDecay(IntEnum):
    """Tau decay class, from the tau's daughters."""

    UNKNOWN = -1  # no decay products kept
    HADRONIC = 0
    ELECTRON = 1
    MUON = 2


def delta_phi(phi1: Any, phi2: Any) -> Any:
    """φ1 − φ2 wrapped into [−π, π) (rad); numpy or awkward arrays, broadcasting."""
    return (phi1 - phi2 + np.pi) % (2 * np.pi) - np.pi


def delta_r(eta1: Any, phi1: Any, eta2: Any, phi2: Any) -> Any:
    """ΔR = sqrt(Δη² + Δφ²) with Δφ wrapped into [−π, π)."""
    return np.hypot(eta1 - eta2, delta_phi(phi1, phi2))


@numba.njit
def _delta_r(eta1: float, phi1: float, eta2: float, phi2: float) -> float:
    dphi = (phi1 - phi2 + np.pi) % (2 * np.pi) - np.pi
    return np.sqrt((eta1 - eta2) ** 2 + dphi**2)


def _offsets(array: ak.Array) -> np.ndarray:
    counts = ak.to_numpy(ak.num(array, axis=1)).astype(np.int64)
    return np.concatenate([np.zeros(1, np.int64), np.cumsum(counts)])


def _flat(array: ak.Array, dtype: type) -> np.ndarray:
    return np.ascontiguousarray(ak.to_numpy(ak.flatten(array, axis=1)), dtype=dtype)


def _cartesian(pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, mass: np.ndarray) -> np.ndarray:
    """(n, 4) array of px, py, pz, E. Incoming partons (pt = 0, |η| ~ 10⁴) give NaN, harmlessly."""
    with np.errstate(over="ignore", invalid="ignore"):
        pz = pt * np.sinh(eta)
        px, py = pt * np.cos(phi), pt * np.sin(phi)
        return np.stack([px, py, pz, np.sqrt(px**2 + py**2 + pz**2 + mass**2)], axis=1)


def _met_record(px: Any, py: Any) -> ak.Array:
    return ak.zip({"pt": np.hypot(px, py), "phi": np.arctan2(py, px), "px": px, "py": py})


def gen_met(events: ak.Array) -> ak.Array:
    """Generator MET from ``GenMET``: a record with ``pt``, ``phi``, ``px``, ``py`` (GeV, rad)."""
    met = events.GenMET
    return ak.zip({"pt": met.pt, "phi": met.phi, "px": met.pt * np.cos(met.phi), "py": met.pt * np.sin(met.phi)})


def neutrino_met(events: ak.Array) -> ak.Array:
    """Vector sum of the final-state (status 1) neutrinos in ``GenPart``, as in :func:`gen_met`.

    ``GenPart`` is pruned, so this only checks ``GenMET`` (neutrinos from most hadron decays are gone).
    """
    gp = events.GenPart
    apdg = abs(gp.pdgId)
    is_nu = (apdg == NEUTRINO_IDS[0]) | (apdg == NEUTRINO_IDS[1]) | (apdg == NEUTRINO_IDS[2])
    nu = gp[(gp.status == 1) & is_nu]
    return _met_record(ak.sum(nu.pt * np.cos(nu.phi), axis=1), ak.sum(nu.pt * np.sin(nu.phi), axis=1))


def last_copy(genpart: ak.Array, pdg_id: int, *, charge_conjugate: bool = True) -> ak.Array:
    """Last copies (``isLastCopy``) of ``pdg_id`` in ``genpart`` (also ``-pdg_id`` if ``charge_conjugate``)."""
    pdg = abs(genpart.pdgId) if charge_conjugate else genpart.pdgId
    target = abs(pdg_id) if charge_conjugate else pdg_id
    return genpart[(pdg == target) & genpart.hasFlags("isLastCopy")]


_TT_FIELDS = ("top", "antitop", "b", "bbar", "w_plus", "w_minus", "w_plus_d1", "w_plus_d2", "w_minus_d1", "w_minus_d2")


@numba.njit
def _chain_roots(s: int, n: int, pdg: np.ndarray, mother: np.ndarray, root: np.ndarray, parent: np.ndarray) -> None:
    """root[i]: earliest kept copy of particle i; parent[i]: root of the chain its root descends from."""
    for i in range(n):
        j = i
        for _ in range(n):  # bounded walk: a corrupt cyclic record cannot hang
            m = mother[s + j]
            if m < 0 or m >= n or pdg[s + m] != pdg[s + i]:
                break
            j = m
        root[i] = j
    for i in range(n):
        m = mother[s + root[i]]
        parent[i] = root[m] if 0 <= m < n else -1


@numba.njit
def _is_upper(apdg: int) -> bool:
    """Up-type quark or charged lepton: the first member of a W's daughter pair."""
    return (apdg <= 5 and apdg % 2 == 0) or (apdg >= 11 and apdg % 2 == 1)


@numba.njit
def _ttbar_kernel(offsets, pdg, mother, flags, out):  # type: ignore[no-untyped-def]
    nmax = 0
    for e in range(len(offsets) - 1):
        nmax = max(nmax, offsets[e + 1] - offsets[e])
    root = np.empty(nmax, np.int64)
    parent = np.empty(nmax, np.int64)
    last, hard = 1 << _IS_LAST_COPY, 1 << _FROM_HARD_PROCESS
    for e in range(len(offsets) - 1):
        s, n = offsets[e], offsets[e + 1] - offsets[e]
        _chain_roots(s, n, pdg, mother, root, parent)
        n_lep = 0
        for side in range(2):  # 0: t -> W+ b, 1: tbar -> W- bbar
            sign = 1 if side == 0 else -1
            t, w, b = -1, -1, -1
            for i in range(n):
                if t < 0 and pdg[s + i] == 6 * sign and flags[s + i] & last:
                    t = i
            if t < 0:
                n_lep = -99
                continue
            for i in range(n):
                if parent[i] != root[t]:
                    continue
                if pdg[s + i] == 24 * sign and flags[s + i] & last:
                    w = i
                elif (
                    root[i] == i
                    and flags[s + i] & hard
                    and pdg[s + i] * sign in (1, 3, 5)
                    and (b < 0 or abs(pdg[s + i]) > abs(pdg[s + b]))
                ):
                    b = i  # down-type quark from t (b unless the rare t -> W s/d)
            d1, d2, nd = -1, -1, 0
            if w >= 0:
                for i in range(n):
                    a = abs(pdg[s + i])
                    if parent[i] == root[w] and root[i] == i and flags[s + i] & hard and (a <= 5 or 11 <= a <= 16):
                        nd += 1
                        if _is_upper(a):
                            d1 = i
                        else:
                            d2 = i
            if nd != 2 or d1 < 0 or d2 < 0:
                d1, d2, n_lep = -1, -1, -99
            elif abs(pdg[s + d1]) >= 11:
                n_lep += 1
            out[e, side], out[e, 2 + side], out[e, 4 + side] = t, b, w
            out[e, 6 + 2 * side], out[e, 7 + 2 * side] = d1, d2
        out[e, 10] = n_lep if n_lep >= 0 else -1


def ttbar_indices(genpart: ak.Array) -> ak.Array:
    """Local ``GenPart`` indices of the tt̄ decay tree, per event (−1 where not found).

    Fields ``top``, ``antitop`` (last copies), ``b``, ``bbar`` (first kept copy of the down-type quark from
    each top, ``fromHardProcess``), ``w_plus``, ``w_minus`` (last copies, after any recoil copies), their
    daughters ``w_plus_d1``, ``w_plus_d2`` … (first kept copies; ``d1`` is the up-type quark or the charged
    lepton, ``d2`` the down-type quark or the neutrino), and ``channel`` (a :class:`TTbarChannel` code).
    "First kept copy" is read from the mother links rather than the ``isFirstCopy`` flag, which is false
    on the surviving copy when NanoAOD pruned the first one.
    """
    out = np.full((len(genpart), 11), -1, np.int64)
    _ttbar_kernel(
        _offsets(genpart),
        _flat(genpart.pdgId, np.int64),
        _flat(genpart.genPartIdxMother, np.int64),
        _flat(genpart.statusFlags, np.int64),
        out,
    )
    return ak.zip({name: out[:, k] for k, name in enumerate((*_TT_FIELDS, "channel"))})


def _pick(genpart: ak.Array, index: np.ndarray) -> ak.Array:
    """One ``GenPart`` record per event at local ``index``, None where ``index`` < 0."""
    return ak.firsts(genpart[ak.singletons(ak.mask(ak.Array(index), index >= 0))])


def ttbar_partons(events: ak.Array) -> ak.Array:
    """The semileptonic tt̄ partons per event, as ``GenPart`` records (None unless the event is semileptonic).

    Fields: ``had_b``, ``had_q1`` (up-type), ``had_q2`` (down-type), ``lep_b``, ``lepton`` (e, μ or τ from
    the W), ``neutrino``, ``had_top``, ``lep_top``, ``had_w``, ``lep_w``; and ``channel`` (int,
    :class:`TTbarChannel`: −1 unknown, 0 all-hadronic, 1 semileptonic, 2 dileptonic) for every event.
    """
    gp = events.GenPart
    idx = ttbar_indices(gp)
    col = {f: ak.to_numpy(idx[f]) for f in ak.fields(idx)}
    channel = col["channel"]
    pdg = _flat(gp.pdgId, np.int64)
    start = _offsets(gp)[:-1]
    found = col["w_plus_d1"] >= 0
    plus_lep = np.zeros(len(channel), bool)  # the W+ decays to a charged lepton
    plus_lep[found] = np.abs(pdg[start[found] + col["w_plus_d1"][found]]) >= 11
    semi = channel == TTbarChannel.SEMILEP

    def role(if_w_plus_leptonic: str, if_w_minus_leptonic: str) -> ak.Array:
        chosen = np.where(plus_lep, col[if_w_plus_leptonic], col[if_w_minus_leptonic])
        return _pick(gp, np.where(semi, chosen, -1))

    fields = {
        "had_b": role("bbar", "b"),
        "had_q1": role("w_minus_d1", "w_plus_d1"),
        "had_q2": role("w_minus_d2", "w_plus_d2"),
        "lep_b": role("b", "bbar"),
        "lepton": role("w_plus_d1", "w_minus_d1"),
        "neutrino": role("w_plus_d2", "w_minus_d2"),
        "had_top": role("antitop", "top"),
        "lep_top": role("top", "antitop"),
        "had_w": role("w_minus", "w_plus"),
        "lep_w": role("w_plus", "w_minus"),
    }
    return ak.zip({**fields, "channel": ak.Array(channel)}, depth_limit=1)


def stack_partons(partons: ak.Array, fields: tuple[str, ...] = SEMILEP_PARTONS) -> ak.Array:
    """Stack per-event parton records into ``N * len(fields) * ?GenParticle`` (None kept in place)."""
    return ak.concatenate([partons[f][:, np.newaxis] for f in fields], axis=1)


@numba.njit
def _tau_kernel(  # type: ignore[no-untyped-def]
    gp_off,
    pdg,
    mother,
    flags,
    p4,
    tau_off,
    tau_idx,
    vis_off,
    vis_p4,
    vis_eta,
    vis_phi,
    vis_charge,
    vis_link,
    max_dr,
    out_vis,
    out_decay,
    out_genvis,
):
    claimed = np.zeros(len(vis_p4), np.bool_)
    product = 1 << _IS_TAU_DECAY_PRODUCT
    direct = 1 << _IS_DIRECT_TAU_DECAY_PRODUCT
    for e in range(len(tau_off) - 1):
        s, n = gp_off[e], gp_off[e + 1] - gp_off[e]
        for k in range(tau_off[e], tau_off[e + 1]):
            t = tau_idx[k]
            n_children, decay = 0, 0
            for j in range(n):
                if mother[s + j] != t or not flags[s + j] & product:
                    continue
                n_children += 1
                a = abs(pdg[s + j])
                if a in (12, 14, 16):  # a tuple: numba would build a set literal on every pass
                    continue
                if flags[s + j] & direct:  # e/μ from a π⁰ Dalitz decay or a photon conversion do not count
                    decay = 1 if a == 11 else (2 if a == 13 else decay)
                out_vis[k] += p4[s + j]
            out_decay[k] = decay if n_children > 0 else -1
            if decay > 0:
                continue  # leptonic: GenVisTau only holds hadronic taus
            px, py, pz = out_vis[k, 0], out_vis[k, 1], out_vis[k, 2]
            pt = np.sqrt(px**2 + py**2)
            eta, phi = (np.arcsinh(pz / pt), np.arctan2(py, px)) if pt > 0 else (0.0, 0.0)
            best, best_dr = -1, max_dr
            for v in range(vis_off[e], vis_off[e + 1]):
                if claimed[v] or vis_charge[v] != (-1 if pdg[s + t] > 0 else 1):
                    continue
                dr = _delta_r(eta, phi, vis_eta[v], vis_phi[v]) if pt > 0 else np.inf
                if vis_link[v] == t and (pt == 0 or dr < max_dr):
                    best = v
                    break
                if dr < best_dr:
                    best, best_dr = v, dr
            if best >= 0:
                claimed[best] = True
                out_vis[k] = vis_p4[best]
                out_genvis[k] = True
                out_decay[k] = 0


def _light_mass(pdg: np.ndarray, mass: np.ndarray) -> np.ndarray:
    """Stored mass, or the PDG mass where NanoAOD stored 0 for a light particle."""
    table = np.zeros(len(pdg))
    for code, value in _LIGHT_MASSES.items():
        table[np.abs(pdg) == code] = value
    return np.where(mass > 0, mass, table)


def _lorentz(p4: np.ndarray, counts: np.ndarray) -> ak.Array:
    rec = ak.zip(
        {c: p4[:, k] for k, c in enumerate("xyzt")}, with_name="LorentzVector", behavior=coffea_vector.behavior
    )
    return ak.unflatten(rec, counts)


def tau_decays(events: ak.Array, max_dr: float = VIS_TAU_DR, *, use_genvistau: bool = True) -> ak.Array:
    """Prompt taus (``isPrompt`` & ``isLastCopy``, |pdgId| 15) with their visible and invisible momenta.

    Returns ``N * var * record`` with ``tau`` (the GenPart record), ``visible`` and ``invisible``
    (``LorentzVector`` x, y, z, t in GeV; invisible = tau − visible, the tau taken with mass M_TAU),
    ``decay`` (:class:`TauDecay`: −1 unknown, 0 hadronic, 1 e, 2 μ) and ``vis_from_genvistau`` (bool).
    The visible part is the ``GenVisTau`` of the tau's charge assigned to it, where one exists; else the sum
    of the tau's kept non-neutrino decay products whose nearest kept ancestor is the tau. The
    ``GenVisTau_genPartIdxMother`` link is preferred but checked by charge and ΔR < ``max_dr`` to the
    daughters' sum, because older NanoAOD stored it as an index into the unpruned collection.
    ``use_genvistau=False`` always takes the daughters' sum.
    """
    gp = events.GenPart
    is_tau = (abs(gp.pdgId) == 15) & gp.hasFlags("isPrompt", "isLastCopy")
    taus, tau_idx = gp[is_tau], ak.local_index(gp.pdgId, axis=1)[is_tau]
    pdg = _flat(gp.pdgId, np.int64)
    p4 = _cartesian(
        _flat(gp.pt, np.float64),
        _flat(gp.eta, np.float64),
        _flat(gp.phi, np.float64),
        _light_mass(pdg, _flat(gp.mass, np.float64)),
    )
    if use_genvistau and "GenVisTau" in ak.fields(events):
        vt = events.GenVisTau
        vis_off = _offsets(vt)
        vis = [_flat(vt[f], np.float64) for f in ("pt", "eta", "phi", "mass")]
        vis_p4 = _cartesian(*vis)
        vis_charge, vis_link = _flat(vt.charge, np.int64), _flat(vt.genPartIdxMother, np.int64)
    else:
        vis_off, vis_p4 = np.zeros(len(gp) + 1, np.int64), np.zeros((0, 4))
        vis, vis_charge, vis_link = [np.zeros(0)] * 4, np.zeros(0, np.int64), np.zeros(0, np.int64)
    flat_idx, counts = _flat(tau_idx, np.int64), ak.to_numpy(ak.num(tau_idx, axis=1))
    out_vis = np.zeros((len(flat_idx), 4))
    out_decay = np.full(len(flat_idx), -1, np.int64)
    out_genvis = np.zeros(len(flat_idx), np.bool_)
    _tau_kernel(
        _offsets(gp),
        pdg,
        _flat(gp.genPartIdxMother, np.int64),
        _flat(gp.statusFlags, np.int64),
        p4,
        _offsets(tau_idx),
        flat_idx,
        vis_off,
        vis_p4,
        vis[1],
        vis[2],
        vis_charge,
        vis_link,
        max_dr,
        out_vis,
        out_decay,
        out_genvis,
    )
    flat_taus = ak.flatten(taus, axis=1)
    tau_p4 = _cartesian(
        ak.to_numpy(flat_taus.pt).astype(np.float64),
        ak.to_numpy(flat_taus.eta).astype(np.float64),
        ak.to_numpy(flat_taus.phi).astype(np.float64),
        np.full(len(flat_idx), M_TAU),
    )
    return ak.zip(
        {
            "tau": taus,
            "visible": _lorentz(out_vis, counts),
            "invisible": _lorentz(tau_p4 - out_vis, counts),
            "decay": ak.unflatten(out_decay, counts),
            "vis_from_genvistau": ak.unflatten(out_genvis, counts),
        },
        depth_limit=2,
    )


@numba.njit
def _match_kernel(p_off, p_eta, p_phi, j_off, j_eta, j_phi, max_dr, out):  # type: ignore[no-untyped-def]
    nmax = 0
    for e in range(len(j_off) - 1):
        nmax = max(nmax, j_off[e + 1] - j_off[e])
    used = np.zeros(nmax, np.bool_)
    for e in range(len(p_off) - 1):
        p0, n_p = p_off[e], p_off[e + 1] - p_off[e]
        j0, n_j = j_off[e], j_off[e + 1] - j_off[e]
        while True:  # greedy: take the globally closest free (parton, jet) pair until none is < max_dr
            best, bi, bj = max_dr, -1, -1
            for i in range(n_p):
                if out[p0 + i] >= 0 or np.isnan(p_eta[p0 + i]) or np.isnan(p_phi[p0 + i]):
                    continue
                for j in range(n_j):
                    if not used[j]:
                        dr = _delta_r(p_eta[p0 + i], p_phi[p0 + i], j_eta[j0 + j], j_phi[j0 + j])
                        if dr < best:
                            best, bi, bj = dr, i, j
            if bi < 0:
                break
            out[p0 + bi] = bj
            used[bj] = True
        used[:n_j] = False


def match_partons_to_jets(
    partons_eta: ak.Array, partons_phi: ak.Array, jets_eta: ak.Array, jets_phi: ak.Array, max_dr: float = PARTON_JET_DR
) -> ak.Array:
    """Unique ΔR matching of partons to jets, per event.

    Greedy over all parton-jet pairs of an event: the pair with the smallest ΔR (< ``max_dr``) is matched,
    both are removed, and so on. Partons are ``N * P * ?float`` (regular or jagged; None = missing parton),
    jets ``N * var * float``. Returns ``N * P * int64``: the index of the matched jet in the event's jet
    list, −1 for a missing or unmatched parton; each jet is used at most once.
    """
    if len(partons_eta) != len(jets_eta):
        raise ValueError(f"partons for {len(partons_eta)} events but jets for {len(jets_eta)}")
    eta = ak.fill_none(partons_eta, np.nan, axis=-1)
    phi = ak.fill_none(partons_phi, np.nan, axis=-1)
    counts = ak.to_numpy(ak.num(eta, axis=1))
    out = np.full(int(counts.sum()), -1, np.int64)
    _match_kernel(
        _offsets(eta),
        _flat(eta, np.float64),
        _flat(phi, np.float64),
        _offsets(jets_eta),
        _flat(jets_eta, np.float64),
        _flat(jets_phi, np.float64),
        float(max_dr),
        out,
    )
    return ak.unflatten(out, counts)


def reconstructable(indices: ak.Array) -> ak.Array:
    """True per event when every parton is matched (index ≥ 0) and all matched jets are distinct."""
    ordered = ak.sort(indices, axis=1)
    return ak.all(indices >= 0, axis=1) & ak.all(ordered[:, 1:] != ordered[:, :-1], axis=1)
