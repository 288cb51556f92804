"""Whether an assignment is right, per top quark, in the SPANet convention (DESIGN.md).

A top is *reconstructable* when each of its partons is matched to a distinct selected jet (ΔR < 0.4);
the hadronic top is *correct* when b_had is right and {q1, q2} is right as a set (q ↔ q′ symmetric), the
leptonic top when b_lep is right. An event is correct when every reconstructable top in it is (events with
none are not counted); a fully reconstructable event has both tops reconstructable.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["TopOutcomes", "event_efficiency", "top_outcomes"]


class TopOutcomes(NamedTuple):
    """[N] bool arrays."""

    thad_reco: np.ndarray
    thad_ok: np.ndarray
    tlep_reco: np.ndarray
    tlep_ok: np.ndarray

    @property
    def any_reco(self) -> np.ndarray:
        return self.thad_reco | self.tlep_reco

    @property
    def full_reco(self) -> np.ndarray:
        return self.thad_reco & self.tlep_reco

    @property
    def event_ok(self) -> np.ndarray:
        """Every reconstructable top correct (meaningful where ``any_reco``)."""
        return (~self.thad_reco | self.thad_ok) & (~self.tlep_reco | self.tlep_ok)


def top_outcomes(predicted: np.ndarray, target: np.ndarray) -> TopOutcomes:
    """Outcomes from [N, 4] jet positions (had_b, had_q1, had_q2, lep_b); ``target`` −1 = unmatched parton."""
    predicted = np.asarray(predicted, np.int64)
    target = np.asarray(target, np.int64)
    if predicted.shape != target.shape or predicted.ndim != 2 or predicted.shape[1] != 4:
        raise ValueError(f"assignments must both be [N, 4]; got {predicted.shape} and {target.shape}")
    thad_reco = np.all(target[:, :3] >= 0, axis=1)
    tlep_reco = target[:, 3] >= 0
    same_pair = np.sort(predicted[:, 1:3], axis=1) == np.sort(target[:, 1:3], axis=1)
    thad_ok = thad_reco & (predicted[:, 0] == target[:, 0]) & same_pair.all(axis=1)
    tlep_ok = tlep_reco & (predicted[:, 3] == target[:, 3])
    return TopOutcomes(thad_reco, thad_ok, tlep_reco, tlep_ok)


def event_efficiency(outcomes: TopOutcomes, full_only: bool = False) -> float:
    """Fraction of correct events among those with a reconstructable top (or with both, ``full_only``)."""
    counted = outcomes.full_reco if full_only else outcomes.any_reco
    return float(outcomes.event_ok[counted].mean()) if counted.any() else float("nan")
