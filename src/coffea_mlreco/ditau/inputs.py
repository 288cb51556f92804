"""Di-tau candidate selection from NanoAOD: one visible tau pair per event, and the MET with its covariance.

Conventions: momenta and masses in GeV, angles in radians. Every function is vectorised over events with
awkward (no Python loop over events) and works on eager or virtual NanoEvents (``NanoAODSchema``).

Objects (cuts in :class:`DiTauSelection`)
    hadronic taus ``Tau``: pT > 20 GeV, |η| < 2.3, ``decayMode`` in {0, 1, 2, 10, 11} when the branch
    exists, and, only where the file has the branch, DeepTau ≥ Medium against jets, ≥ VVLoose against
    electrons and ≥ VLoose against muons (``idDeepTau2018v2p5VS*``, else ``idDeepTau2017v2p1VS*``:
    :func:`coffea_mlreco.core.nanoaod.tau_id_branches`; our simulation writes no DeepTau branch, and its taus
    are taken without that cut, a documented choice);
    electrons: pT > 15 GeV, |η| < 2.5, ``pfRelIso03_all`` < 0.15 (and ``mvaNoIso_WP90`` /
    ``mvaFall17V2noIso_WP90`` when present); muons: pT > 15 GeV, |η| < 2.4, ``pfRelIso04_all`` < 0.15
    (and ``mediumId`` when present).
Pairs
    opposite charge and ΔR > 0.5. Within a channel the pair with the largest scalar sum pT1 + pT2 is kept;
    across channels the first non-empty one in the priority order eμ, μτh, eτh, τhτh, μμ, ee (the CMS H→ττ
    order: the purest channel first, the Drell-Yan-dominated ℓℓ channels last).
Leg order
    eμ: leg1 = e, leg2 = μ; ℓτh: leg1 = ℓ, leg2 = τh; τhτh, μμ, ee: leg1 = the higher-pT object.
DeepTau working points
    NanoAOD stores them either as an integer (1 = VVVLoose … 5 = Medium … 8 = VVTight; v2p5 always, v2p1
    from NanoAODv10) or, before v10, as a cumulative bitmask (bit k−1 set for working point k). A
    ``…2017v2p1…`` branch is read as a bitmask when any value in the chunk exceeds 8, else as an integer
    (a bitmask chunk whose best tau is VLoose, value 7, would then pass Medium: rare and harmless).
MET covariance
    The PF MET collection is ``MET``, ``PFMET`` on NanoAODv15 (:func:`coffea_mlreco.core.nanoaod.met_collection`;
    written ``MET`` here). ``MET_covXX``, ``MET_covXY``, ``MET_covYY`` (GeV²) when the file has all three (real
    NanoAOD; our simulation writes the detector-model covariance there); otherwise σ²(MET_x) = σ²(MET_y) =
    :data:`MET_SIGMA0_GEV`² + :data:`MET_SIGMA_SUMET`² · ``MET_sumEt`` (GeV²), covXY = 0, a stochastic
    PF-MET parametrisation; a file with neither raises a ValueError naming the missing branches. The fits can
    read, instead, a reconstructed MET column with its calibrated covariance (``PuppiMETReco``, ``MLMET``:
    :func:`met_with_covariance`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any, NamedTuple

import awkward as ak
import numpy as np

from coffea_mlreco.core.nanoaod import met_collection, tau_id_branches
from coffea_mlreco.core.truth import delta_r

__all__ = [
    "CHANNEL_PRIORITY",
    "DEFAULT_SELECTION",
    "FILE_MET",
    "MET_COVARIANCE",
    "MET_SIGMA0_GEV",
    "MET_SIGMA_SUMET",
    "Channel",
    "DiTauSelection",
    "KernelArrays",
    "LegKind",
    "channel_name",
    "ditau_candidates",
    "has_pair",
    "kernel_arrays",
    "met_with_covariance",
    "require_met_column",
]

MET_COVARIANCE = ("covXX", "covXY", "covYY")
"""The fields of a MET covariance (GeV²), in a NanoAOD MET collection and in a reconstructed MET column."""
FILE_MET = "file"
"""Names the file's own MET where a MET method could be named (``ditau.reconstruct(met=...)``, model cards'
``met_input``)."""
MET_SIGMA0_GEV = 8.0
"""Noise term of the fallback MET resolution parametrisation (GeV, per component)."""
MET_SIGMA_SUMET = 0.6
"""Stochastic term of the fallback MET resolution (GeV^½, per component): σ = MET_SIGMA_SUMET·√sumEt."""


class LegKind(IntEnum):
    """What a visible tau leg is."""

    HADRONIC = 0
    ELECTRON = 1
    MUON = 2


class Channel(IntEnum):
    """Di-tau decay channel of the selected pair (−1: no pair)."""

    NONE = -1
    TAUTAU = 0  # τh τh
    MUTAU = 1  # τμ τh
    ETAU = 2  # τe τh
    EMU = 3  # τe τμ
    MUMU = 4  # τμ τμ
    EE = 5  # τe τe


CHANNEL_PRIORITY = (Channel.EMU, Channel.MUTAU, Channel.ETAU, Channel.TAUTAU, Channel.MUMU, Channel.EE)
"""The first channel of this tuple with a valid pair is chosen."""


@dataclass(frozen=True)
class DiTauSelection:
    """Object and pair cuts (GeV, rad). See the module docstring."""

    tau_pt_min: float = 20.0
    tau_eta_max: float = 2.3
    tau_decay_modes: tuple[int, ...] = (0, 1, 2, 10, 11)
    tau_vs_jet_wp: int = 5  # Medium
    tau_vs_e_wp: int = 2  # VVLoose
    tau_vs_mu_wp: int = 1  # VLoose
    electron_pt_min: float = 15.0
    electron_eta_max: float = 2.5
    electron_iso_max: float = 0.15
    muon_pt_min: float = 15.0
    muon_eta_max: float = 2.4
    muon_iso_max: float = 0.15
    min_delta_r: float = 0.5

    def __post_init__(self) -> None:
        for wp in (self.tau_vs_jet_wp, self.tau_vs_e_wp, self.tau_vs_mu_wp):
            if not 0 <= wp <= 8:
                raise ValueError(f"DeepTau working point {wp} is outside 0..8")
        if self.min_delta_r < 0:
            raise ValueError("min_delta_r must be ≥ 0")


DEFAULT_SELECTION = DiTauSelection()

_LEG_FIELDS = ("pt", "eta", "phi", "mass")


def _collection(events: ak.Array, name: str, fields: tuple[str, ...]) -> ak.Array:
    """``events[name]``, or a ValueError naming the missing branches."""
    if name not in ak.fields(events):
        raise ValueError(
            f"di-tau inputs need the {name} collection (branches n{name}, "
            f"{', '.join(f'{name}_{f}' for f in fields)}); the file has none"
        )
    coll = events[name]
    missing = [f"{name}_{f}" for f in fields if f not in ak.fields(coll)]
    if missing:
        raise ValueError(f"di-tau inputs need the branch(es) {', '.join(missing)}, absent from the file")
    return coll


def _deeptau_pass(taus: ak.Array, name: str | None, wp: int) -> ak.Array | None:
    """Mask of taus at or above working point ``wp`` of the DeepTau field ``name`` (None: no such field)."""
    if wp <= 0 or name is None:
        return None
    value = ak.values_astype(taus[name], np.int64)
    flat = ak.to_numpy(ak.flatten(value, axis=None))
    bitmask = "2017v2p1" in name and flat.size > 0 and int(flat.max()) > 8
    return (value & (1 << (wp - 1))) > 0 if bitmask else value >= wp


def _legs(coll: ak.Array, kind: LegKind, mask: ak.Array) -> ak.Array:
    """Common leg record, pT-ordered: pt, eta, phi, mass, charge, kind, decayMode (−1 for e/μ) and ``index``,
    the object's position in its collection (``Tau``, ``Electron`` or ``Muon``) of the event."""
    sel = coll[mask]
    fields = {f: ak.without_parameters(ak.values_astype(sel[f], np.float64)) for f in _LEG_FIELDS}
    fields["mass"] = np.maximum(fields["mass"], 0.0)  # real NanoAOD stores slightly negative electron masses
    fields["charge"] = ak.without_parameters(ak.values_astype(sel.charge, np.int64))
    zeros = ak.without_parameters(ak.values_astype(ak.zeros_like(sel.pt), np.int64))
    fields["kind"] = zeros + int(kind)
    if kind == LegKind.HADRONIC and "decayMode" in ak.fields(sel):
        fields["decayMode"] = ak.without_parameters(ak.values_astype(sel.decayMode, np.int64))
    else:
        fields["decayMode"] = zeros - 1
    fields["index"] = ak.local_index(coll.pt, axis=1)[mask]
    legs = ak.zip(fields)
    return legs[ak.argsort(legs.pt, axis=1, ascending=False)]


def _hadronic_taus(events: ak.Array, cuts: DiTauSelection) -> ak.Array:
    taus = _collection(events, "Tau", (*_LEG_FIELDS, "charge"))
    mask = (taus.pt > cuts.tau_pt_min) & (abs(taus.eta) < cuts.tau_eta_max)
    if "decayMode" in ak.fields(taus):
        dm_ok = ak.zeros_like(taus.pt, dtype=bool)
        for mode in cuts.tau_decay_modes:
            dm_ok = dm_ok | (taus.decayMode == mode)
        mask = mask & dm_ok
    deeptau = tau_id_branches(events)
    for target, wp in (("jet", cuts.tau_vs_jet_wp), ("e", cuts.tau_vs_e_wp), ("mu", cuts.tau_vs_mu_wp)):
        passed = _deeptau_pass(taus, deeptau.get(target), wp)
        if passed is not None:
            mask = mask & passed
    return _legs(taus, LegKind.HADRONIC, mask)


def _electrons(events: ak.Array, cuts: DiTauSelection) -> ak.Array:
    ele = _collection(events, "Electron", (*_LEG_FIELDS, "charge", "pfRelIso03_all"))
    mask = (
        (ele.pt > cuts.electron_pt_min)
        & (abs(ele.eta) < cuts.electron_eta_max)
        & (ele.pfRelIso03_all < cuts.electron_iso_max)
    )
    for name in ("mvaNoIso_WP90", "mvaFall17V2noIso_WP90"):
        if name in ak.fields(ele):
            mask = mask & (ele[name] > 0)
            break
    return _legs(ele, LegKind.ELECTRON, mask)


def _muons(events: ak.Array, cuts: DiTauSelection) -> ak.Array:
    mu = _collection(events, "Muon", (*_LEG_FIELDS, "charge", "pfRelIso04_all"))
    mask = (mu.pt > cuts.muon_pt_min) & (abs(mu.eta) < cuts.muon_eta_max) & (mu.pfRelIso04_all < cuts.muon_iso_max)
    if "mediumId" in ak.fields(mu):
        mask = mask & (mu.mediumId > 0)
    return _legs(mu, LegKind.MUON, mask)


def _best_pair(first: ak.Array, second: ak.Array | None, channel: Channel, min_dr: float) -> ak.Array:
    """Per event the opposite-charge pair with ΔR > ``min_dr`` and the largest pT sum (None if none).

    ``second`` None: pairs within ``first`` (leg1 the higher-pT object).
    """
    if second is None:
        pairs = ak.combinations(first, 2, fields=["leg1", "leg2"])
    else:
        pairs = ak.cartesian({"leg1": first, "leg2": second})
    ok = (pairs.leg1.charge * pairs.leg2.charge < 0) & (
        delta_r(pairs.leg1.eta, pairs.leg1.phi, pairs.leg2.eta, pairs.leg2.phi) > min_dr
    )
    pairs = pairs[ok]
    best = ak.firsts(pairs[ak.argmax(pairs.leg1.pt + pairs.leg2.pt, axis=1, keepdims=True)])
    return ak.zip(
        {"leg1": best.leg1, "leg2": best.leg2, "channel": ak.where(ak.is_none(best), -1, int(channel))}, depth_limit=1
    )


def met_with_covariance(events: ak.Array, column: str | None = None) -> ak.Array:
    """MET record: ``px``, ``py``, ``pt``, ``phi``, ``covXX``, ``covXY``, ``covYY`` (GeV, GeV², rad).

    ``column`` None: the file's MET (``PFMET`` on NanoAODv15) with the file's ``MET_cov*`` or the fallback
    parametrisation (module docstring). Otherwise a reconstructed MET column of the events with its covariance,
    such as ``PuppiMETReco`` or ``MLMET`` (:data:`coffea_mlreco.core.columns.MET_COLUMNS`, appended by
    ``coffea_mlreco.met.reconstruct``); a column the events lack is a ValueError saying so.
    """
    if column is not None:
        require_met_column(events, column, "the fit")
        met = _collection(events, column, ("pt", "phi", *MET_COVARIANCE))
    else:
        met = _collection(events, met_collection(events), ("pt", "phi"))
    fields = ak.fields(met)
    pt = _f64(met.pt)
    phi = _f64(met.phi)
    if all(c in fields for c in MET_COVARIANCE):
        cov = {c: _f64(met[c]) for c in MET_COVARIANCE}
    elif "sumEt" in fields:
        var = MET_SIGMA0_GEV**2 + MET_SIGMA_SUMET**2 * _f64(met.sumEt)
        cov = {"covXX": var, "covXY": 0.0 * var, "covYY": var}
    else:
        raise ValueError(
            "the MET covariance needs MET_covXX, MET_covXY, MET_covYY or, for the fallback "
            "parametrisation, MET_sumEt; the file has none of them"
        )
    return ak.zip({"px": pt * np.cos(phi), "py": pt * np.sin(phi), "pt": pt, "phi": phi, **cov})


def _f64(values: Any) -> Any:
    return ak.without_parameters(ak.values_astype(values, np.float64))


def require_met_column(events: Any, column: str, reader: str) -> None:
    """A ValueError unless ``events`` carry the reconstructed MET column ``column`` that ``reader`` (a method, or
    "the fit") reads: it says to append it with ``coffea_mlreco.met.reconstruct``."""
    if column not in events.fields:
        raise ValueError(
            f"di-tau: {reader} reads the MET column {column}, which the events lack; append it first with "
            "coffea_mlreco.met.reconstruct (it needs PF candidates)"
        )


def ditau_candidates(
    events: ak.Array, cuts: DiTauSelection = DEFAULT_SELECTION, met_column: str | None = None
) -> ak.Array:
    """Select one visible di-tau pair per event.

    Args:
        events: NanoEvents with ``Tau``, ``Electron``, ``Muon`` and ``MET`` (see the module docstring for
            the branches each needs).
        cuts: object and pair cuts.
        met_column: the MET of the ``met`` field: None the file's, else a reconstructed MET column
            (:func:`met_with_covariance`).

    Returns:
        One record per event: ``leg1``, ``leg2`` (option records, None when no pair: ``pt``, ``eta``,
        ``phi``, ``mass`` in GeV/rad, ``charge``, ``kind`` a :class:`LegKind` code, ``decayMode`` or −1 for
        e/μ, ``index`` in the object's own collection), ``met`` (:func:`met_with_covariance`), ``channel`` (int,
        :class:`Channel`, −1 without a pair) and ``selected`` (bool).
    """
    chosen, channel = _chosen_pair(events, cuts)
    return ak.zip(
        {
            "leg1": chosen.leg1,
            "leg2": chosen.leg2,
            "met": met_with_covariance(events, met_column),
            "channel": ak.values_astype(channel, np.int64),
            "selected": channel >= 0,
        },
        depth_limit=1,
    )


def _chosen_pair(events: ak.Array, cuts: DiTauSelection) -> tuple[ak.Array, ak.Array]:
    """The chosen pair (option records ``leg1``, ``leg2``) and its channel code (−1 without a pair)."""
    taus, ele, mu = _hadronic_taus(events, cuts), _electrons(events, cuts), _muons(events, cuts)
    groups: dict[Channel, tuple[ak.Array, ak.Array | None]] = {
        Channel.EMU: (ele, mu),
        Channel.MUTAU: (mu, taus),
        Channel.ETAU: (ele, taus),
        Channel.TAUTAU: (taus, None),
        Channel.MUMU: (mu, None),
        Channel.EE: (ele, None),
    }
    best = [_best_pair(*groups[ch], ch, cuts.min_delta_r)[:, np.newaxis] for ch in CHANNEL_PRIORITY]
    candidates = ak.from_regular(ak.concatenate(best, axis=1), axis=1)  # jagged: a regular mask flattens
    chosen = ak.firsts(candidates[candidates.channel >= 0], axis=1)
    return chosen, ak.fill_none(chosen.channel, -1)


def has_pair(events: ak.Array, cuts: DiTauSelection = DEFAULT_SELECTION) -> ak.Array:
    """Per event, whether it has a selected di-tau pair (the selection of :func:`ditau_candidates`; no MET read)."""
    return _chosen_pair(events, cuts)[1] >= 0


def channel_name(code: Any) -> str:
    """Readable name of a :class:`Channel` code (``"tautau"``, ``"mutau"``, …, ``"none"``)."""
    return Channel(int(code)).name.lower()


class KernelArrays(NamedTuple):
    """Flat float64/int64 numpy inputs of the numba mass kernels, one row per event.

    ``valid`` (bool) is False where a leg is missing (None); those rows hold zeros. ``leg1``/``leg2``:
    (n, 4) px, py, pz, E (GeV, leg masses ≥ 0); ``mass1``/``mass2``: visible masses (GeV); ``kind1``/``kind2``:
    :class:`LegKind` codes; ``met``: (n, 5) px, py, covXX, covXY, covYY (GeV, GeV²).
    """

    valid: np.ndarray
    leg1: np.ndarray
    leg2: np.ndarray
    mass1: np.ndarray
    mass2: np.ndarray
    kind1: np.ndarray
    kind2: np.ndarray
    met: np.ndarray


_MET_FIELDS = ("px", "py", "covXX", "covXY", "covYY")


def _column(record: ak.Array, name: str, field: str, dtype: type) -> np.ndarray:
    if field not in ak.fields(record):
        raise ValueError(f"{name} lacks the field {field!r} (has {', '.join(ak.fields(record)) or 'none'})")
    fill = np.nan if dtype is np.float64 else 0
    return np.ascontiguousarray(ak.to_numpy(ak.fill_none(record[field], fill)), dtype=dtype)


def _check_finite(values: np.ndarray, valid: np.ndarray, label: str) -> None:
    bad = valid & ~np.isfinite(values)
    if bad.any():
        raise ValueError(
            f"{label} is not finite (NaN or inf) in {int(bad.sum())} of {int(valid.sum())} events "
            f"with a di-tau pair (first: event {int(np.flatnonzero(bad)[0])})"
        )


def kernel_arrays(leg1: ak.Array, leg2: ak.Array, met: ak.Array) -> KernelArrays:
    """Validate the di-tau inputs and flatten them for the numba kernels.

    Args:
        leg1, leg2: one (option) record per event with ``pt``, ``eta``, ``phi``, ``mass`` (GeV, rad) and
            ``kind`` (:class:`LegKind`), e.g. from :func:`ditau_candidates`.
        met: one record per event with ``px``, ``py``, ``covXX``, ``covXY``, ``covYY`` (GeV, GeV²).

    Raises:
        ValueError: different lengths, a missing field, or a non-finite value (or pT ≤ 0) in an event whose
            two legs are present; the message names the field.
    """
    if not len(leg1) == len(leg2) == len(met):
        raise ValueError(f"leg1, leg2 and met have different lengths ({len(leg1)}, {len(leg2)}, {len(met)})")
    for name, leg in (("leg1", leg1), ("leg2", leg2)):
        if "pt" not in ak.fields(leg):
            raise ValueError(f"{name} lacks the field 'pt' (has {', '.join(ak.fields(leg)) or 'none'})")
    valid = ~(ak.to_numpy(ak.is_none(leg1.pt)) | ak.to_numpy(ak.is_none(leg2.pt)))  # a missing leg is None
    p4s, masses, kinds = [], [], []
    for name, leg in (("leg1", leg1), ("leg2", leg2)):
        pt, eta, phi, mass = (_column(leg, name, f, np.float64) for f in _LEG_FIELDS)
        for field, values in zip(_LEG_FIELDS, (pt, eta, phi, mass), strict=True):
            _check_finite(values, valid, f"{name}.{field}")
        if (valid & (pt <= 0)).any():
            raise ValueError(f"{name}.pt must be > 0 for every event with a di-tau pair")
        kind = _column(leg, name, "kind", np.int64)
        pt, eta, phi, mass = (np.where(valid, v, 0.0) for v in (pt, eta, phi, mass))
        mass = np.maximum(mass, 0.0)
        px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
        p4s.append(np.stack([px, py, pz, np.sqrt(px**2 + py**2 + pz**2 + mass**2)], axis=1))
        masses.append(mass)
        kinds.append(np.where(valid, kind, 0))
    columns = []
    for field in _MET_FIELDS:
        values = _column(met, "met", field, np.float64)
        _check_finite(values, valid, f"met.{field}")
        columns.append(np.where(valid, values, 0.0))
    return KernelArrays(
        valid, p4s[0], p4s[1], masses[0], masses[1], kinds[0], kinds[1], np.ascontiguousarray(np.stack(columns, axis=1))
    )
