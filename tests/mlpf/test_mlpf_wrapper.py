"""MLPF inputs, the shipped model's wrapper (MLPFCands) and what runs on its output (PUPPI, MET)."""

from __future__ import annotations

from typing import Any

import awkward as ak
import numpy as np

from coffea_mlreco.met.pf_met import missing_transverse_momentum
from coffea_mlreco.met.puppi import puppi_weights
from coffea_mlreco.mlpf.candidates import allowed_class_logits
from coffea_mlreco.mlpf.inputs import FEATURES, element_table
from coffea_mlreco.mlpf.model import ELEMENT_FEATURES, PARTICLE_CLASSES
from coffea_mlreco.mlpf.targets import target_table
from coffea_mlreco.simulation.element_targets import TARGET_CLASSES

PUPPI_MET_FIELDS = ("pt", "eta", "phi", "mass", "charge", "pdgId", "fromPV", "pvAssocQuality", "dz", "dzErr")
"""What PUPPI (pv_class: charge, fromPV, dz) and the MET models (met/features.py) read from PFCands."""


def test_feature_and_class_lists_match_the_model() -> None:
    assert FEATURES == ELEMENT_FEATURES
    assert TARGET_CLASSES == PARTICLE_CLASSES


def test_element_table_follows_the_target_order(element_events: Any) -> None:
    table, counts = element_table(element_events)
    targets = target_table(element_events)
    assert np.array_equal(counts, np.asarray(ak.num(element_events.PFTarget.cls, axis=1)))
    assert table.shape == (targets["cls"].size, len(FEATURES))
    is_track = table[:, 0] == 1
    assert np.all(targets["cls"][~is_track] != 1) and np.all(np.isin(targets["cls"][is_track], (1, 4, 5)))
    # tracks first within each event, then clusters
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    n_t = np.asarray(ak.num(element_events.PFTrack.pt, axis=1))
    assert np.all(table[first[n_t > 0], 0] == 1)
    assert np.allclose(table[is_track, 1], np.asarray(ak.flatten(element_events.PFTrack.pt)))
    assert np.allclose(table[~is_track, 4], np.asarray(ak.flatten(element_events.PFCluster.energy)))


def test_class_mask_follows_element_type() -> None:
    logits = np.zeros((2, 6), np.float32)
    logits[:, 2] = logits[:, 1] = 5.0  # neutral and charged hadron both favoured
    masked = allowed_class_logits(logits, np.array([1, 2]))
    assert masked[0].argmax() == 1 and masked[1].argmax() == 2


def test_mlpfcands_have_the_pfcands_fields_and_track_information(mlpf_processed: tuple[dict[str, Any], Any]) -> None:
    element_events = mlpf_processed[1]
    cands = element_events.MLPFCands
    assert len(cands) == len(element_events)
    assert set(PUPPI_MET_FIELDS) <= set(ak.fields(cands))
    assert set(ak.fields(cands)) >= set(PUPPI_MET_FIELDS) & set(ak.fields(element_events.PFCands))
    charged = cands[cands.charge != 0]
    track = element_events.PFTrack[charged.trackIdx]
    assert ak.all(charged.trackIdx >= 0)
    assert ak.all(charged.fromPV == track.fromPV) and ak.all(abs(charged.dz - track.dz) < 1e-6)
    assert ak.all(charged.charge == track.charge)
    neutral = cands[cands.charge == 0]
    assert ak.all(neutral.clusterIdx >= 0) and ak.all(neutral.fromPV == 3) and ak.all(neutral.dz == 0)
    assert ak.all(np.isfinite(cands.pt)) and ak.all(cands.pt > 0)


def test_puppi_and_met_run_on_mlpfcands(mlpf_processed: tuple[dict[str, Any], Any]) -> None:
    element_events = mlpf_processed[1]
    cands = element_events.MLPFCands
    weights = puppi_weights(cands, "run3", npv=element_events.PV.npvsGood)
    assert ak.all(ak.num(weights, axis=1) == ak.num(cands, axis=1))
    flat = np.asarray(ak.flatten(weights))
    assert np.all((flat >= 0) & (flat <= 1))
    charged = np.asarray(ak.flatten(cands.charge != 0))
    from_pv = np.asarray(ak.flatten(cands.fromPV == 3))
    assert np.all(flat[charged & from_pv] == 1)  # charged from the PV keep weight 1
    assert 0.02 < flat[~charged].mean() < 0.98  # neutrals are weighted, not all kept or all dropped
    met, _ = missing_transverse_momentum(cands, weights)
    gen = np.asarray(element_events.GenMET.pt)
    # PUPPI MET from MLPF candidates follows the generator MET (tt̄ at PU 20)
    assert np.corrcoef(np.asarray(met), gen)[0, 1] > 0.5


def test_position_binning_puts_tracks_with_their_clusters(element_events: Any) -> None:
    """The LSH bins of ``binning="position"`` group each track with the cluster holding its deposit (the
    track–cluster link of PF), which hashing the learned projection does not do."""
    import torch

    from coffea_mlreco.mlpf.model import BinnedGraphLayer, element_features, element_position, lsh_order

    event = element_events[0]
    table, counts = element_table(element_events[:1])
    link = np.asarray(event.PFTrack.clusterIdx)
    tracks = np.flatnonzero(link >= 0)
    clusters = link.size + link[tracks]
    x = torch.from_numpy(table)[None]
    mask = torch.ones(1, int(counts[0]), dtype=torch.bool)
    layer = BinnedGraphLayer(32, 2, 64, 16, 256, seed=0, binning="position")
    position = element_position(element_features(x))

    def same_bin(key: torch.Tensor, codebook: torch.Tensor) -> float:
        order = lsh_order(key, mask, codebook, 64)[0].numpy()
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        return float(np.mean(rank[tracks] // 64 == rank[clusters] // 64))

    assert same_bin(position, layer.codebook[-3:]) > 0.85
    learned = torch.cat([layer.distance(layer.norm1(torch.randn(1, int(counts[0]), 32))).detach(), position], -1)
    assert same_bin(learned, layer.codebook) < 0.5


def test_link_columns_carry_the_detector_links(element_events: Any) -> None:
    """A cluster's e_linked is the energy of the tracks linked to it, so E − e_linked is its neutral excess:
    the rule-based PF neutral made from it carries exactly that energy; a linked track sees its cluster."""
    table, _ = element_table(element_events)
    col = {name: i for i, name in enumerate(FEATURES)}
    clusters, tracks = table[table[:, 0] == 2], table[table[:, 0] == 1]
    link = np.asarray(ak.flatten(element_events.PFTrack.clusterIdx))
    assert np.array_equal(tracks[:, col["n_linked"]] > 0, link >= 0)
    n_tracks_linked = np.count_nonzero(link >= 0)
    assert clusters[:, col["n_linked"]].sum() == n_tracks_linked  # every link counted once, on its cluster
    excess = clusters[:, col["e"]] - clusters[:, col["e_linked"]]
    assert np.all(excess > -1e-4 * clusters[:, col["e"]])  # the detector deposits a track's energy
    assert np.all(tracks[link >= 0, col["e_linked"]] > 0)
    # rule-based PF: the neutral candidate of a linked cluster has the excess energy
    pf = element_events.PFCands
    from_cluster = pf[(pf.clusterIdx >= 0) & (pf.charge == 0)]
    n_c = np.asarray(ak.num(element_events.PFCluster.energy, axis=1))
    c_start = np.concatenate([[0], np.cumsum(n_c)[:-1]])
    flat = np.repeat(c_start, np.asarray(ak.num(from_cluster.pt, axis=1))) + np.asarray(
        ak.flatten(from_cluster.clusterIdx)
    )
    energy = np.asarray(ak.flatten(from_cluster.pt * np.cosh(from_cluster.eta)))
    linked = clusters[flat, col["n_linked"]] > 0
    assert linked.sum() > 10
    assert np.allclose(energy[linked], excess[flat][linked], rtol=1e-3, atol=1e-3)
