"""Inputs of the di-tau mass transformer: token features of each tau's decay products, the jets and the MET.

Conventions: GeV and radians. Every azimuth is measured from the first visible leg's azimuth (``phi_ref``), so
the inputs are invariant under a global rotation about the beam, which the physics is; the transformer's
outputs are in the same frame. All functions are vectorised over events with awkward.

Token groups (the transformer attends within and across them)
    ``products1``, ``products2``: the visible decay products of each leg, pT-ordered, at most
    :data:`MAX_PRODUCTS`. A hadronic tau's products are its ``TauProd`` entries (``TauProd_tauIdx`` = the
    tau's index in ``Tau``; our simulation writes them, CMS NanoAOD has them in some productions); a
    leptonic leg's only product is the lepton. **Fallback**: a hadronic tau without ``TauProd`` entries (a
    real file without the collection, or a tau without linked candidates) is one token, its visible
    four-momentum, flagged by the ``is_tau_visible`` feature, so the model still runs, with the
    information NanoAOD's ``Tau`` record carries.
    ``jets``: up to :data:`MAX_JETS` leading jets with pT > 20 GeV, |η| < 4.7 and ΔR > 0.5 from both legs.
    ``legs`` (dense): each leg's visible four-momentum, kind and decay mode.
    ``met`` (dense): MET and its covariance in the rotated frame, plus log m_vis and ΔR(leg1, leg2), and the
    FastMTT-style fit of the event (:func:`coffea_mlreco.ditau.fastmtt.fastmtt_mass`): log(1/x) of each leg
    (the collinear tau pT over the visible pT) and log of its mass in units of m_vis. A model built with
    ``fastmtt_prior`` regresses its log-pT output as a residual on the first two (the physics answer as the
    starting point); the others read the first :data:`N_MET_BASE` features only.

The feature order is the module's ``*_FEATURES`` tuples; ``*_ETA_ODD`` and ``*_PHI_ODD`` list the features
that change sign under η → −η and under the reflection φ → −φ, the two exact symmetries the training
augments with.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import awkward as ak
import numpy as np

from coffea_mlreco.core.columns import to_numpy
from coffea_mlreco.core.truth import delta_phi, delta_r
from coffea_mlreco.ditau.fastmtt import fastmtt_mass
from coffea_mlreco.ditau.inputs import LegKind

__all__ = [
    "JET_FEATURES",
    "LEG_FEATURES",
    "MAX_JETS",
    "MAX_PRODUCTS",
    "MET_FEATURES",
    "N_MET_BASE",
    "PRODUCT_FEATURES",
    "TransformerInputs",
    "symmetry_signs",
    "transformer_inputs",
]

MAX_PRODUCTS = 10
"""Decay products kept per tau (the highest-pT ones)."""
MAX_JETS = 3
"""Jets kept per event (the leading ones not overlapping the legs)."""
JET_PT_MIN, JET_ETA_MAX, JET_LEG_DR = 20.0, 4.7, 0.5
MET_SCALE_GEV = 50.0
"""MET components and resolutions enter divided by this (GeV)."""

PRODUCT_FEATURES = (
    "log_pt",
    "deta_leg",
    "dphi_leg",
    "pt_fraction",
    "eta",
    "is_charged_hadron",
    "is_photon",
    "is_neutral_hadron",
    "is_electron",
    "is_muon",
    "is_tau_visible",
)
_LEG_ONE = (
    "log_pt",
    "eta",
    "cos_phi",
    "sin_phi",
    "mass",
    "is_hadronic",
    "is_electron",
    "is_muon",
    "dm0",
    "dm1",
    "dm10",
    "dm11",
    "dm_other",
)
LEG_FEATURES = tuple(f"leg1_{f}" for f in _LEG_ONE) + tuple(f"leg2_{f}" for f in _LEG_ONE)
JET_FEATURES = ("log_pt", "eta", "cos_phi", "sin_phi", "log1p_mass", "btag")
MET_FEATURES = (
    "px",
    "py",
    "sigma_x",
    "sigma_y",
    "rho_xy",
    "log_mvis",
    "dr_legs",
    "fastmtt_log_inv_x1",
    "fastmtt_log_inv_x2",
    "fastmtt_log_mass_ratio",
)
N_MET_BASE = 7
"""MET features before the FastMTT ones (what a model without the FastMTT prior reads)."""

_ODD = {
    "products": ({"deta_leg", "eta"}, {"dphi_leg"}),
    "legs": ({"leg1_eta", "leg2_eta"}, {"leg1_sin_phi", "leg2_sin_phi"}),
    "jets": ({"eta"}, {"sin_phi"}),
    "met": (set(), {"py", "rho_xy"}),
}
_NAMES = {"products": PRODUCT_FEATURES, "legs": LEG_FEATURES, "jets": JET_FEATURES, "met": MET_FEATURES}


def symmetry_signs(group: str, flip_eta: bool, flip_phi: bool) -> np.ndarray:
    """Per-feature factors (±1) of ``group`` under η → −η (``flip_eta``) and/or φ → −φ (``flip_phi``)."""
    eta_odd, phi_odd = _ODD[group]
    return np.array(
        [
            (-1.0 if (flip_eta and n in eta_odd) else 1.0) * (-1.0 if (flip_phi and n in phi_odd) else 1.0)
            for n in _NAMES[group]
        ],
        np.float32,
    )


class TransformerInputs(NamedTuple):
    """Per-event model inputs (awkward records whose fields are the features, in the module's order)."""

    products1: ak.Array
    products2: ak.Array
    jets: ak.Array
    legs: ak.Array
    met: ak.Array


def _f64(x: Any) -> Any:
    return ak.without_parameters(ak.values_astype(x, np.float64))


def _product_tokens(pt: Any, eta: Any, phi: Any, pdg: Any, leg: ak.Array, fallback: bool) -> ak.Array:
    apdg = abs(pdg)
    one = ak.ones_like(pt)
    return ak.zip(
        {
            "log_pt": np.log(pt),
            "deta_leg": eta - leg.eta,
            "dphi_leg": delta_phi(phi, leg.phi),
            "pt_fraction": pt / leg.pt,
            "eta": eta,
            "is_charged_hadron": one * ((apdg == 211) | (apdg == 321) | (apdg == 2212)),
            "is_photon": one * ((apdg == 22) | (apdg == 2)),
            "is_neutral_hadron": one * ((apdg == 130) | (apdg == 1) | (apdg == 2112) | (apdg == 310)),
            "is_electron": one * (apdg == 11),
            "is_muon": one * (apdg == 13),
            "is_tau_visible": one * float(fallback),
        }
    )


def _leg_products(events: ak.Array, leg: ak.Array) -> ak.Array:
    """Decay-product tokens of one leg (see the module docstring), pT-ordered, at most MAX_PRODUCTS."""
    hadronic = ak.fill_none(leg.kind == int(LegKind.HADRONIC), False)
    index = ak.fill_none(leg.index, -1)
    if "TauProd" in ak.fields(events):
        prods = events.TauProd
        mine = prods[(prods.tauIdx == index) & hadronic]
        mine = mine[ak.argsort(mine.pt, axis=1, ascending=False)][:, :MAX_PRODUCTS]
        tokens = _product_tokens(_f64(mine.pt), _f64(mine.eta), _f64(mine.phi), mine.pdgId, leg, False)
        n_products = ak.num(mine, axis=1)
    else:
        tokens, n_products = None, ak.zeros_like(index)
    # a lepton is its own only product; a hadronic tau without products falls back to its visible p4
    lepton = ~hadronic
    fallback = hadronic & (n_products == 0)
    single = ak.zip(
        {
            "pt": leg.pt,
            "eta": leg.eta,
            "phi": leg.phi,
            "pdg": ak.where(leg.kind == int(LegKind.ELECTRON), 11, ak.where(lepton, 13, 15)),
        }
    )
    singles = []
    for kind, is_fallback in ((lepton, False), (fallback, True)):
        use = to_numpy(ak.fill_none(kind, False) & ~ak.is_none(leg.pt), bool)
        s = single[use]
        token = _product_tokens(_f64(s.pt), _f64(s.eta), _f64(s.phi), s.pdg, leg[use], is_fallback)
        singles.append(ak.unflatten(token, use.astype(np.int64)))
    parts = ([tokens] if tokens is not None else []) + singles
    return ak.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]


def _leg_features(leg: ak.Array, phi_ref: Any, prefix: str) -> dict[str, Any]:
    dphi = delta_phi(leg.phi, phi_ref)
    kind, dm = leg.kind, leg.decayMode
    hadronic = kind == int(LegKind.HADRONIC)
    one = ak.ones_like(leg.pt)
    values = {
        "log_pt": np.log(leg.pt),
        "eta": leg.eta,
        "cos_phi": np.cos(dphi),
        "sin_phi": np.sin(dphi),
        "mass": leg.mass,
        "is_hadronic": one * hadronic,
        "is_electron": one * (kind == int(LegKind.ELECTRON)),
        "is_muon": one * (kind == int(LegKind.MUON)),
        "dm0": one * (hadronic & (dm == 0)),
        "dm1": one * (hadronic & ((dm == 1) | (dm == 2))),
        "dm10": one * (hadronic & (dm == 10)),
        "dm11": one * (hadronic & (dm == 11)),
        "dm_other": one * (hadronic & (dm != 0) & (dm != 1) & (dm != 2) & (dm != 10) & (dm != 11)),
    }
    return {f"{prefix}_{k}": v for k, v in values.items()}


def _jets(events: ak.Array, leg1: ak.Array, leg2: ak.Array, phi_ref: Any) -> ak.Array:
    if "Jet" not in ak.fields(events):
        raise ValueError("the di-tau transformer needs the Jet collection (Jet_pt, Jet_eta, Jet_phi, Jet_mass)")
    jets = events.Jet
    pt, eta, phi, mass = (_f64(jets[f]) for f in ("pt", "eta", "phi", "mass"))
    keep = (
        (pt > JET_PT_MIN)
        & (abs(eta) < JET_ETA_MAX)
        & (delta_r(eta, phi, leg1.eta, leg1.phi) > JET_LEG_DR)
        & (delta_r(eta, phi, leg2.eta, leg2.phi) > JET_LEG_DR)
    )
    keep = ak.fill_none(keep, False)
    btag = _f64(jets.btagDeepFlavB) if "btagDeepFlavB" in ak.fields(jets) else 0.0 * pt
    order = ak.argsort(pt[keep], axis=1, ascending=False)
    pt, eta, phi, mass, btag = (x[keep][order][:, :MAX_JETS] for x in (pt, eta, phi, mass, btag))
    dphi = delta_phi(phi, phi_ref)
    return ak.zip(
        {
            "log_pt": np.log(pt),
            "eta": eta,
            "cos_phi": np.cos(dphi),
            "sin_phi": np.sin(dphi),
            "log1p_mass": np.log1p(np.maximum(mass, 0.0)),
            "btag": np.minimum(np.maximum(btag, 0.0), 1.0),
        }
    )


def _met_features(met: ak.Array, leg1: ak.Array, leg2: ak.Array, phi_ref: Any, fit: ak.Array) -> ak.Array:
    c, s = np.cos(phi_ref), np.sin(phi_ref)
    px, py = c * met.px + s * met.py, -s * met.px + c * met.py
    cxx = c * c * met.covXX + 2 * c * s * met.covXY + s * s * met.covYY
    cyy = s * s * met.covXX - 2 * c * s * met.covXY + c * c * met.covYY
    cxy = -c * s * met.covXX + (c * c - s * s) * met.covXY + c * s * met.covYY
    sx, sy = np.sqrt(np.maximum(cxx, 1e-6)), np.sqrt(np.maximum(cyy, 1e-6))
    p1 = _cartesian(leg1)
    p2 = _cartesian(leg2)
    total = [a + b for a, b in zip(p1, p2, strict=True)]
    mvis = np.sqrt(np.maximum(total[3] ** 2 - total[0] ** 2 - total[1] ** 2 - total[2] ** 2, 1e-6))
    x1, x2 = np.clip(_f64(fit.x1), 1e-3, 1.0), np.clip(_f64(fit.x2), 1e-3, 1.0)
    return ak.zip(
        {
            "px": px / MET_SCALE_GEV,
            "py": py / MET_SCALE_GEV,
            "sigma_x": sx / MET_SCALE_GEV,
            "sigma_y": sy / MET_SCALE_GEV,
            "rho_xy": cxy / (sx * sy),
            "log_mvis": np.log(mvis),
            "dr_legs": delta_r(leg1.eta, leg1.phi, leg2.eta, leg2.phi),
            "fastmtt_log_inv_x1": -np.log(x1),
            "fastmtt_log_inv_x2": -np.log(x2),
            "fastmtt_log_mass_ratio": np.log(np.maximum(_f64(fit.mass), 1e-3) / mvis),
        }
    )


def _cartesian(leg: ak.Array) -> tuple[Any, Any, Any, Any]:
    px, py, pz = leg.pt * np.cos(leg.phi), leg.pt * np.sin(leg.phi), leg.pt * np.sinh(leg.eta)
    return px, py, pz, np.sqrt(px**2 + py**2 + pz**2 + np.maximum(leg.mass, 0.0) ** 2)


def transformer_inputs(events: ak.Array, candidates: ak.Array) -> TransformerInputs:
    """Model inputs of the events whose di-tau pair ``candidates`` found (call it on selected events).

    Args:
        events: NanoEvents with ``Jet`` and, optionally, ``TauProd`` (module docstring).
        candidates: :func:`coffea_mlreco.ditau.inputs.ditau_candidates` of the same events; every event must
            have a pair (``selected``), else a ValueError. A ``fastmtt`` field (the
            :func:`~coffea_mlreco.ditau.fastmtt.fastmtt_mass` record of these pairs, as the processor has
            already computed it) is used instead of fitting again.
    """
    if len(events) != len(candidates):
        raise ValueError(f"{len(events)} events but {len(candidates)} di-tau candidates")
    if len(candidates) and not bool(ak.all(candidates.selected)):
        raise ValueError("transformer_inputs needs events with a di-tau pair: restrict to candidates.selected")
    leg1, leg2 = ak.without_parameters(candidates.leg1), ak.without_parameters(candidates.leg2)
    for name in ("pt", "eta", "phi", "mass"):
        leg1 = ak.with_field(leg1, _f64(leg1[name]), name)
        leg2 = ak.with_field(leg2, _f64(leg2[name]), name)
    phi_ref = leg1.phi
    fit = candidates.fastmtt if "fastmtt" in ak.fields(candidates) else fastmtt_mass(leg1, leg2, candidates.met)
    legs = ak.zip({**_leg_features(leg1, phi_ref, "leg1"), **_leg_features(leg2, phi_ref, "leg2")})
    return TransformerInputs(
        products1=_leg_products(events, leg1),
        products2=_leg_products(events, leg2),
        jets=_jets(events, leg1, leg2, phi_ref),
        legs=legs,
        met=_met_features(candidates.met, leg1, leg2, phi_ref, fit),
    )
