"""Generator truth of the di-tau transformer: which generator tau each visible leg comes from, and its momentum.

Each selected leg is matched uniquely (greedy in ΔR, < :data:`LEG_TAU_DR`) to the visible part of a prompt
generator tau (:func:`coffea_mlreco.core.truth.tau_decays`: the GenVisTau of a hadronic decay, the lepton of a
leptonic one). The regression target of a matched leg is the tau's (log(pT_τ/pT_vis), η_τ − η_vis,
φ_τ − φ_vis), with the visible quantities those of the *reconstructed* leg (the inputs the model sees).
"""

from __future__ import annotations

from typing import NamedTuple

import awkward as ak
import numpy as np

from coffea_mlreco.core.columns import to_numpy
from coffea_mlreco.core.constants import M_TAU
from coffea_mlreco.core.truth import delta_phi, match_partons_to_jets, tau_decays

__all__ = ["LEG_TAU_DR", "TauTargets", "pair_mass", "tau_targets"]

LEG_TAU_DR = 0.3
"""Largest ΔR between a reconstructed leg and the visible generator tau it is matched to."""


class TauTargets(NamedTuple):
    """Per event: ``target`` [N, 2, 3] (NaN where unmatched), ``tau`` [N, 2, 3] the matched generator taus'
    (pT, η, φ) (GeV, rad), ``matched`` [N] (both legs matched to distinct taus) and ``mass`` [N], m(τ1 + τ2) of
    the matched taus (GeV, NaN unless ``matched``)."""

    target: np.ndarray
    tau: np.ndarray
    matched: np.ndarray
    mass: np.ndarray


def _leg_array(leg: ak.Array, field: str) -> np.ndarray:
    return to_numpy(ak.fill_none(leg[field], np.nan), np.float64)


def tau_targets(events: ak.Array, leg1: ak.Array, leg2: ak.Array) -> TauTargets:
    """Match the legs (option records with ``pt``, ``eta``, ``phi``; one per event) to generator taus.

    Raises:
        ValueError: the events have no ``GenPart`` (real data): there is no truth to train on.
    """
    if "GenPart" not in ak.fields(events):
        raise ValueError("di-tau training targets need the generator record (GenPart branches)")
    taus = tau_decays(events)
    vis = taus.visible
    vis_pt = np.hypot(vis.x, vis.y)
    vis_eta = ak.where(vis_pt > 0, np.arcsinh(vis.z / ak.where(vis_pt > 0, vis_pt, 1.0)), np.nan)
    vis_phi = np.arctan2(vis.y, vis.x)
    legs_eta = ak.concatenate([ak.singletons(leg1.eta), ak.singletons(leg2.eta)], axis=1)
    legs_phi = ak.concatenate([ak.singletons(leg1.phi), ak.singletons(leg2.phi)], axis=1)
    legs_eta = ak.pad_none(legs_eta, 2, axis=1)
    legs_phi = ak.pad_none(legs_phi, 2, axis=1)
    match = to_numpy(match_partons_to_jets(legs_eta, legs_phi, vis_eta, vis_phi, LEG_TAU_DR), np.int64)
    matched = (match >= 0).all(axis=1)
    gen = taus.tau
    starts = np.concatenate([[0], np.cumsum(to_numpy(ak.num(gen, axis=1), np.int64))[:-1]])
    flat = np.where(match >= 0, starts[:, None] + match, 0)
    picked = {}
    for f in ("pt", "eta", "phi"):
        values = to_numpy(ak.flatten(gen[f]), np.float64)
        picked[f] = np.where(match >= 0, values[flat] if values.size else np.nan, np.nan)
    tau = np.stack([picked["pt"], picked["eta"], picked["phi"]], axis=-1)
    vis_reco = np.stack([np.stack([_leg_array(leg, f) for f in ("pt", "eta", "phi")], -1) for leg in (leg1, leg2)], 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        target = np.stack(
            [
                np.log(tau[..., 0] / vis_reco[..., 0]),
                tau[..., 1] - vis_reco[..., 1],
                delta_phi(tau[..., 2], vis_reco[..., 2]),
            ],
            axis=-1,
        )
    target[~matched] = np.nan
    return TauTargets(target, tau, np.asarray(matched), np.where(matched, pair_mass(tau), np.nan))


def pair_mass(tau: np.ndarray) -> np.ndarray:
    """m(τ1 + τ2) (GeV) of taus given as (pT, η, φ) [N, 2, 3] (GeV, rad), each with mass m_τ."""
    pt, eta, phi = tau[..., 0], tau[..., 1], tau[..., 2]
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    energy = np.sqrt(px**2 + py**2 + pz**2 + M_TAU**2)
    total = [x.sum(axis=1) for x in (px, py, pz, energy)]
    return np.sqrt(np.maximum(total[3] ** 2 - total[0] ** 2 - total[1] ** 2 - total[2] ** 2, 0.0))
