"""Particle-flow performance against the per-element truth targets (rule-based PF and MLPF alike).

Every element has a target class (``PFTarget_cls``; definition in `coffea_mlreco.simulation.element_targets`)
and, for each algorithm, a reconstructed class: the class of the candidate the algorithm made from that
element, "none" if it made none (rule-based PF: ``PFCands_trackIdx``/``clusterIdx`` link candidates to
elements; MLPF: one prediction per element). Matching is therefore by element, not by ΔR:

- efficiency(c) = #{elements with target c and reconstructed c} / #{elements with target c};
- fake rate(c) = #{elements reconstructed as c whose target is not c} / #{elements reconstructed as c}
  (a misidentified particle counts as a fake of the class it was given and an inefficiency of its own);
- pT response of class c: pT_reco / pT_true over elements with target c reconstructed as c; reported as its
  median and inter-quartile range (P75 − P25), as in the MLPF papers.

Efficiencies are binned in the target's pT and η, fake rates in the candidate's. The summary numbers count
targets (for efficiency) or candidates (for fake rate) with pT > `SUMMARY_PT_MIN`, and also without cut.
PF pdgIds map to classes by `pdgid_class` (HF hadronic 1 → neutral hadron, HF EM 2 → photon).
"""

from __future__ import annotations

import numpy as np

__all__ = ["CLASS_NAMES", "SUMMARY_PT_MIN", "class_rates", "pdgid_class", "quantiles"]

CLASS_NAMES = ("none", "charged_hadron", "neutral_hadron", "photon", "electron", "muon")
"""`coffea_mlreco.mlpf.model.PARTICLE_CLASSES` (no torch import here)."""
SUMMARY_PT_MIN = 1.0
"""GeV: the summary efficiency / fake rate count targets / candidates above this pT."""


def pdgid_class(pdg_id: np.ndarray) -> np.ndarray:
    """Class index (`CLASS_NAMES`) of PF candidates by pdgId."""
    a = np.abs(np.asarray(pdg_id))
    return np.select(
        [a == 211, (a == 130) | (a == 1), (a == 22) | (a == 2), a == 11, a == 13], [1, 2, 3, 4, 5], 0
    ).astype(np.int64)


def class_rates(
    target: np.ndarray,
    reco: np.ndarray,
    target_pt: np.ndarray | None = None,
    reco_pt: np.ndarray | None = None,
    pt_min: float = 0.0,
) -> dict[str, dict[str, float | None]]:
    """Per-class efficiency and fake rate (module docstring) over elements; classes without entries get None.

    With ``target_pt``/``reco_pt`` and ``pt_min``, efficiency counts targets with pT > pt_min and fake rate
    candidates with pT > pt_min.
    """
    target, reco = np.asarray(target), np.asarray(reco)
    eff_sel = np.ones(target.size, bool) if target_pt is None else np.asarray(target_pt) > pt_min
    fake_sel = np.ones(target.size, bool) if reco_pt is None else np.asarray(reco_pt) > pt_min
    out: dict[str, dict[str, float | None]] = {"efficiency": {}, "fake_rate": {}}
    for c, name in enumerate(CLASS_NAMES[1:], start=1):
        t = (target == c) & eff_sel
        r = (reco == c) & fake_sel
        out["efficiency"][name] = float((reco[t] == c).mean()) if t.any() else None
        out["fake_rate"][name] = float((target[r] != c).mean()) if r.any() else None
    return out


def quantiles(values: np.ndarray, q: tuple[float, ...] = (0.25, 0.5, 0.75)) -> tuple[float, ...]:
    """Quantiles of ``values`` (NaN for an empty array)."""
    values = np.asarray(values, np.float64)
    if values.size == 0:
        return tuple(float("nan") for _ in q)
    return tuple(float(x) for x in np.quantile(values, q))
