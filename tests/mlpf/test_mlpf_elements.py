"""Detector elements in the simulation: propagation, links, energies, truth targets, and the rule-based PF."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot

from coffea_mlreco.core.columns import to_numpy
from coffea_mlreco.simulation import generate_sample
from coffea_mlreco.simulation.detector import DEFAULT_DETECTOR, calorimeter_entry
from coffea_mlreco.simulation.objects import Collection
from coffea_mlreco.simulation.pfcands import CLUSTER_FIELDS, TRACK_FIELDS, rule_based_pf


def _flat(x: Any, dtype: type = np.float64) -> np.ndarray:
    return to_numpy(ak.flatten(x, axis=1), dtype)


def _stepped_helix(pt: float, eta: float, phi: float, q: int, z0_cm: float, step: float = 1e-4) -> tuple[float, float]:
    """(η, φ) of the point where a helix meets r = 1.29 m or |z| = 3.15 m, by small straight steps whose direction
    turns by −q·step/ρ (B along +z): an independent reference for `calorimeter_entry`."""
    det = DEFAULT_DETECTOR
    rho = pt / (0.299792458 * det.solenoid_field)
    x = y = 0.0
    z = z0_cm / 100
    direction = phi
    dz = math.sinh(eta) * step
    while math.hypot(x, y) < det.calo_radius and abs(z) < det.calo_endcap_z:
        x += math.cos(direction - 0.5 * q * step / rho) * step  # midpoint direction: second order
        y += math.sin(direction - 0.5 * q * step / rho) * step
        z += dz
        direction -= q * step / rho
    return math.asinh(z / math.hypot(x, y)), math.atan2(y, x)


def test_calorimeter_entry_matches_a_stepped_helix() -> None:
    cases = [
        (1.0, 0.0, 0.3, 1, 0.0),
        (1.0, 0.0, 0.3, -1, 0.0),
        (5.0, 1.2, -2.0, 1, 3.0),
        (20.0, -1.4, 3.0, -1, -5.0),
        (2.0, 2.3, 1.0, 1, 0.0),
        (0.9, -2.0, -1.0, -1, 2.0),
    ]  # barrel, both charges; endcap (last two)
    pt, eta, phi, q, z0 = (np.array(c, dtype=float) for c in zip(*cases, strict=True))
    eta_c, phi_c = calorimeter_entry(pt, eta, phi, q, z0)
    for k, case in enumerate(cases):
        ref_eta, ref_phi = _stepped_helix(*case)
        assert abs(eta_c[k] - ref_eta) < 2e-3, case
        assert abs((phi_c[k] - ref_phi + math.pi) % (2 * math.pi) - math.pi) < 2e-3, case
    # a 1 GeV track bends by asin(R/2ρ) = 0.826 rad before the barrel ECAL: the 3.8 T, 1.29 m numbers
    assert abs((phi_c[0] - 0.3) + 0.8255) < 1e-3


def test_every_pf_candidate_comes_from_one_element(element_events: Any) -> None:
    pf = element_events.PFCands
    track_idx, cluster_idx = _flat(pf.trackIdx, np.int64), _flat(pf.clusterIdx, np.int64)
    assert np.all((track_idx >= 0) ^ (cluster_idx >= 0))
    n_tracks = np.asarray(ak.num(element_events.PFTrack.pt, axis=1))
    n_clusters = np.asarray(ak.num(element_events.PFCluster.energy, axis=1))
    event = np.repeat(np.arange(len(n_tracks)), np.asarray(ak.num(pf.pt, axis=1)))
    assert np.all(track_idx < n_tracks[event]) and np.all(cluster_idx < n_clusters[event])
    # every track makes exactly one candidate, no cluster more than one
    t = track_idx >= 0
    assert np.unique(event[t] * 100_000 + track_idx[t]).size == t.sum() == n_tracks.sum()
    c = ~t
    assert np.unique(event[c] * 100_000 + cluster_idx[c]).size == c.sum()


def test_charged_candidates_carry_their_track(element_events: Any) -> None:
    pf = element_events.PFCands[element_events.PFCands.trackIdx >= 0]
    track = element_events.PFTrack[pf.trackIdx]
    for field in ("pt", "eta", "phi", "charge", "dz", "fromPV", "pvAssocQuality"):
        assert np.array_equal(_flat(pf[field]), _flat(track[field])), field
    assert np.all(_flat(pf.charge) != 0)
    neutral = element_events.PFCands[element_events.PFCands.clusterIdx >= 0]
    assert np.all(_flat(neutral.charge) == 0)


def test_cluster_energy_is_neutral_energy_plus_linked_track_deposits(element_events: Any) -> None:
    """E(cluster) = E_neutral + Σ pT·cosh η of its linked tracks, E_neutral ≥ 0, and a cluster whose target is
    'none' holds only track deposits; over the sample the neutral part measures the true neutral energy."""
    tracks, clusters, targets = element_events.PFTrack, element_events.PFCluster, element_events.PFTarget
    n_c = np.asarray(ak.num(clusters.energy, axis=1))
    c_start = np.concatenate([[0], np.cumsum(n_c)[:-1]])
    t_event = np.repeat(np.arange(len(n_c)), np.asarray(ak.num(tracks.pt, axis=1)))
    link = _flat(tracks.clusterIdx, np.int64)
    linked = link >= 0
    energy = _flat(clusters.energy)
    deposits = np.bincount(
        (c_start[t_event] + link)[linked],
        weights=(_flat(tracks.pt) * np.cosh(_flat(tracks.eta)))[linked],
        minlength=energy.size,
    )
    neutral = energy - deposits
    assert np.all(neutral > -1e-5 * energy)
    n_t = np.asarray(ak.num(tracks.pt, axis=1))
    cluster_targets = targets[ak.local_index(targets.cls, axis=1) >= n_t]
    t_cls = _flat(cluster_targets.cls, np.int64)
    assert np.all(np.abs(neutral[t_cls == 0]) < 1e-5 * energy[t_cls == 0] + 1e-6)
    assert np.all(deposits[t_cls == 0] > 0)  # a cluster without a track always has a particle of its own
    # muons never deposit; electrons and hadrons above the looper cut always do
    pdg = np.abs(_flat(tracks.genPdgId, np.int64))
    assert not np.any(linked[pdg == 13])
    # calibration: the summed neutral energy of clusters with a target is the true energy within a few %
    has = t_cls > 0
    true_e = _flat(cluster_targets.e)[has]
    assert abs(neutral[has].sum() / true_e.sum() - 1) < 0.05


def test_charged_hadron_tracks_target_their_particle(element_events: Any) -> None:
    tracks = element_events.PFTrack
    n_t = ak.num(tracks.pt, axis=1)
    track_targets = element_events.PFTarget[ak.local_index(element_events.PFTarget.cls, axis=1) < n_t]
    pdg = np.abs(_flat(tracks.genPdgId, np.int64))
    hadron = (pdg != 11) & (pdg != 13)
    cls = _flat(track_targets.cls, np.int64)
    assert np.all(cls[hadron] == 1) and np.all(cls[pdg == 11] == 4) and np.all(cls[pdg == 13] == 5)
    assert np.array_equal(_flat(track_targets.charge, np.int64), _flat(tracks.charge, np.int64))
    assert np.array_equal(_flat(track_targets.genVertex, np.int64), _flat(tracks.genVertex, np.int64))
    # the target is the true particle: track pT scatters around it with the tracker resolution (~1 %)
    ratio = _flat(tracks.pt)[hadron] / _flat(track_targets.pt)[hadron]
    assert abs(np.median(ratio) - 1) < 2e-3
    assert 0.003 < (np.quantile(ratio, 0.84) - np.quantile(ratio, 0.16)) / 2 < 0.03
    assert np.allclose(_flat(track_targets.eta), _flat(tracks.eta), atol=1e-6)


def test_cluster_targets_are_neutral_or_none(element_events: Any) -> None:
    n_t = ak.num(element_events.PFTrack.pt, axis=1)
    targets = element_events.PFTarget[ak.local_index(element_events.PFTarget.cls, axis=1) >= n_t]
    cls = _flat(targets.cls, np.int64)
    assert set(np.unique(cls)) <= {0, 2, 3}
    assert np.all(_flat(targets.charge, np.int64) == 0)
    layer = _flat(element_events.PFCluster.layer, np.int64)
    assert np.all(cls[layer == 0] != 2)  # ECAL cells hold photons and untracked electrons only
    assert np.all(cls[layer == 1] != 3)
    assert (cls == 2).sum() > 1000 and (cls == 3).sum() > 1000 and (cls == 0).sum() > 100


def _collection(events: Any, name: str, fields: tuple[str, ...]) -> Collection:
    coll = events[name]
    counts = np.asarray(ak.num(coll[fields[0]], axis=1), np.int64)
    return Collection(counts, {f: to_numpy(ak.flatten(coll[f], axis=1)) for f in fields})


def test_rule_based_pf_on_the_files_elements_reproduces_pfcands(element_events: Any) -> None:
    pf = rule_based_pf(
        _collection(element_events, "PFTrack", TRACK_FIELDS), _collection(element_events, "PFCluster", CLUSTER_FIELDS)
    )
    ref = _collection(element_events, "PFCands", (*pf.columns, "trackIdx", "clusterIdx"))
    assert np.array_equal(pf.counts, ref.counts)
    for field, values in pf.columns.items():
        assert np.array_equal(values.astype(ref.columns[field].dtype), ref.columns[field]), field
    n_t = _collection(element_events, "PFTrack", ("pt",)).counts
    t_start = np.repeat(np.concatenate([[0], np.cumsum(n_t)[:-1]]), ref.counts)
    assert np.array_equal(np.where(pf.track >= 0, pf.track - t_start, -1), ref.columns["trackIdx"])


def test_elements_do_not_change_the_ordinary_file(mlpf_dir: Path) -> None:
    """Same seed with and without --elements: every branch of the ordinary file is identical."""
    plain = generate_sample("dy-ll", 30, 5, seed=8302, output=mlpf_dir / "plain.root", progress=False)
    rich = generate_sample("dy-ll", 30, 5, seed=8302, output=mlpf_dir / "rich.root", progress=False, elements=True)
    with uproot.open(plain) as a, uproot.open(rich) as b:
        ta, tb = a["Events"], b["Events"]
        extra = set(tb.keys()) - set(ta.keys())
        assert {k.split("_")[0] for k in extra} == {
            "PFTrack",
            "PFCluster",
            "PFTarget",
            "nPFTrack",
            "nPFCluster",
            "nPFTarget",
            "PFCands",
        }
        assert extra & {k for k in extra if k.startswith("PFCands")} == {"PFCands_trackIdx", "PFCands_clusterIdx"}
        for key in ta.keys():  # noqa: SIM118 (uproot: the branch names)
            assert ak.all(ta[key].array() == tb[key].array(), axis=None), key
    assert plain.stat().st_size < 0.5 * rich.stat().st_size
