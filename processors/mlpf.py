"""MLPF processor: machine-learned particle flow against rule-based PF, on files made with ``--elements``.

For each chunk it

- runs the shipped MLPF model (`coffea_mlreco.mlpf.wrapper.MLPFWrapper`) and appends ``MLPFCands`` to the
  events (PFCands' fields; `coffea_mlreco.mlpf.candidates`);
- gives every element its reconstructed class under each method — rule-based PF (``pf``): the class of the
  ``PFCands`` entry made from it (``trackIdx``/``clusterIdx``), MLPF (``mlpf``): its predicted class — and
  fills, against the element's truth target (``PFTarget``): efficiency (``"efficiency"``: targets by class,
  true pT and η, matched or not), fake rate (``"fake"``: candidates by class, reco pT and η, fake or not)
  and the pT response pT_reco/pT_true of matched elements (``"response"``); definitions in
  `coffea_mlreco.mlpf.performance`;
- computes PUPPI weights (`coffea_mlreco.baselines.puppi`, Run-3 tune, npv = PV_npvsGood) for each method's
  candidates;
- clusters anti-kT R = 0.4 jets (FastJet, E-scheme; pT > 10 GeV) on the charged-hadron-subtracted candidates
  of each method (charged ones need fromPV ≥ 1, as the simulation's jets; ``pf``, ``mlpf``) and on the
  PUPPI-weighted candidates (pT and mass × w, w = 0 dropped; ``pf_puppi``, ``mlpf_puppi``) and fills
  pT_reco/pT_gen of each ``GenJet`` with pT > 20 GeV and |η| < 2.5 matched to the nearest jet within ΔR < 0.2
  (``"jet_response"``, in bins of generator-jet pT); no pileup offset or response correction, the same for
  both methods;
- computes MET = −Σ pT of each method's candidates, without (``pf``, ``mlpf``) and with the PUPPI weights
  (``pf_puppi``, ``mlpf_puppi``) and fills the
  residuals Δ = p_miss,reco − p_miss,gen (``upar``, ``uperp``, ``dpx``, ``dpy``; GeV, 0.5 GeV bins in ±400)
  (``"met"``).

Output: ``histograms`` (above), ``events``, ``elements`` and ``seconds`` (``mlpf``: the model and decoding;
the only executor-dependent numbers). The report is `coffea_mlreco.evaluation.mlpf_report.mlpf_section`.
"""

from __future__ import annotations

import time
from typing import Any

import awkward as ak
import hist
import numpy as np
from coffea import processor

from coffea_mlreco.baselines.pf_met import missing_transverse_momentum
from coffea_mlreco.baselines.puppi import puppi_weights
from coffea_mlreco.inference.model_cards import closest_pileup, names_by_pileup
from coffea_mlreco.metrics import met_residuals
from coffea_mlreco.mlpf.inputs import element_order
from coffea_mlreco.mlpf.performance import CLASS_NAMES, pdgid_class
from coffea_mlreco.mlpf.targets import target_table
from coffea_mlreco.mlpf.wrapper import shipped_mlpf_model, shipped_mlpf_models

__all__ = [
    "JET_PT_EDGES",
    "METHODS",
    "MET_METHODS",
    "PT_EDGES",
    "MLPFProcessor",
    "element_classes",
    "required_branches",
]

METHODS = ("pf", "mlpf")
"""Particle-flow algorithms compared: rule-based PF (the file's PFCands) and MLPF."""
MET_METHODS = ("pf", "mlpf", "pf_puppi", "mlpf_puppi")
PT_EDGES = (0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0, 1000.0)
"""GeV: pT bins of the efficiency and fake-rate histograms."""
ETA_EDGES = (-5.0, -3.0, -2.5, -1.5, -0.75, 0.0, 0.75, 1.5, 2.5, 3.0, 5.0)
JET_PT_EDGES = (20.0, 30.0, 50.0, 100.0, 200.0, 1000.0)
_JET_RADIUS, _JET_PT_MIN, _GENJET_PT_MIN, _JET_MATCH_DR = 0.4, 10.0, 20.0, 0.2


def required_branches() -> tuple[str, ...]:
    """Branches the processor cannot run without (element collections, their targets, links, truth)."""
    return ("PFTrack_pt", "PFTrack_etaCalo", "PFTrack_fromPV", "PFCluster_energy", "PFCluster_width",
            "PFTarget_cls", "PFCands_trackIdx", "PFCands_clusterIdx", "GenMET_pt", "GenMET_phi", "GenJet_pt",
            "PV_npvsGood")


def _flat(x: Any, dtype: type = np.float64) -> np.ndarray:
    return np.asarray(ak.to_numpy(ak.flatten(x, axis=1)), dtype)


def element_classes(events: Any) -> dict[str, np.ndarray]:
    """Per element (flat, tracks then clusters per event): the class and pT of the rule-based PF candidate
    made from it (0 / NaN when none), and the element counts. Uses ``PFCands_trackIdx``/``clusterIdx``."""
    n_t = np.asarray(ak.to_numpy(ak.num(events.PFTrack.pt, axis=1)), np.int64)
    n_c = np.asarray(ak.to_numpy(ak.num(events.PFCluster.energy, axis=1)), np.int64)
    t_rows, c_rows, counts = element_order(n_t, n_c)
    pf = events.PFCands
    cand_event = np.repeat(np.arange(len(n_t)), np.asarray(ak.to_numpy(ak.num(pf.pt, axis=1)), np.int64))
    t_start = np.concatenate([[0], np.cumsum(n_t)[:-1]]).astype(np.int64)
    c_start = np.concatenate([[0], np.cumsum(n_c)[:-1]]).astype(np.int64)
    track_idx, cluster_idx = _flat(pf.trackIdx, np.int64), _flat(pf.clusterIdx, np.int64)
    row = np.where(track_idx >= 0, t_rows[t_start[cand_event] + np.maximum(track_idx, 0)],
                   c_rows[c_start[cand_event] + np.maximum(cluster_idx, 0)])
    cls = np.zeros(int(counts.sum()), np.int64)
    pt = np.full(cls.size, np.nan)
    cls[row] = pdgid_class(_flat(pf.pdgId, np.int64))
    pt[row] = _flat(pf.pt)
    return {"cls": cls, "pt": pt, "eta": _flat_element_eta(events, t_rows, c_rows, cls.size), "counts": counts}


def _flat_element_eta(events: Any, t_rows: np.ndarray, c_rows: np.ndarray, n: int) -> np.ndarray:
    eta = np.zeros(n)
    eta[t_rows] = _flat(events.PFTrack.eta)
    eta[c_rows] = _flat(events.PFCluster.eta)
    return eta


class MLPFProcessor(processor.ProcessorABC):
    """MLPF vs rule-based PF (module docstring).

    Args:
        model: name of the shipped MLPF model; by default, per chunk, the shipped ``mlpf_pu<N>`` trained at the
            pileup closest to the chunk's mean ``Pileup_nTrueInt`` (the highest-pileup one without that branch).
        options: evaluate's task options (``device``).
        puppi_tune: PUPPI parameter set for the ``*_puppi`` MET (default ``"run3"``).
    """

    def __init__(self, model: str | None = None, options: Any = None, puppi_tune: str = "run3") -> None:
        shipped = shipped_mlpf_models()
        if model is not None and model not in shipped:
            raise ValueError(f"no shipped MLPF model {model!r}; shipped: {', '.join(shipped) or 'none'}")
        self.choices = {0: model} if model is not None else names_by_pileup(shipped, "mlpf")
        if not self.choices:
            raise ValueError(f"no shipped mlpf_pu<N> model to choose from; shipped: {', '.join(shipped) or 'none'}")
        self.device = getattr(options, "device", "cpu")
        self.puppi_tune = puppi_tune
        self._wrappers: dict[str, Any] = {}

    def model_for(self, events: Any) -> Any:
        """The MLPF wrapper for this chunk (built once per model name)."""
        name = closest_pileup(self.choices, events)
        if name not in self._wrappers:
            self._wrappers[name] = shipped_mlpf_model(name, device=self.device)
        return self._wrappers[name]

    @staticmethod
    def _empty_histograms() -> dict[str, hist.Hist]:
        method = hist.axis.StrCategory(list(METHODS), name="method")
        cls = hist.axis.IntCategory(list(range(1, len(CLASS_NAMES))), name="cls", label="class")
        pt = hist.axis.Variable(PT_EDGES, name="pt", label=r"$p_T$ [GeV]")
        eta = hist.axis.Variable(ETA_EDGES, name="eta", label=r"$\eta$")
        return {
            "efficiency": hist.Hist(method, cls, pt, eta, hist.axis.IntCategory([0, 1], name="matched"),
                                    storage=hist.storage.Double()),
            "fake": hist.Hist(method, cls, pt, eta, hist.axis.IntCategory([0, 1], name="fake"),
                              storage=hist.storage.Double()),
            "response": hist.Hist(method, cls, hist.axis.Regular(400, 0.0, 4.0, name="ratio",
                                                                 label=r"$p_T^{reco}/p_T^{true}$"),
                                  storage=hist.storage.Double()),
            "jet_response": hist.Hist(hist.axis.StrCategory(list(MET_METHODS), name="method"),
                                      hist.axis.Variable(JET_PT_EDGES, name="genpt",
                                                                 label=r"generator jet $p_T$ [GeV]"),
                                      hist.axis.Regular(300, 0.0, 3.0, name="ratio",
                                                        label=r"$p_T^{jet}/p_T^{gen jet}$"),
                                      storage=hist.storage.Double()),
            "met": hist.Hist(hist.axis.StrCategory(list(MET_METHODS), name="method"),
                             hist.axis.StrCategory(["upar", "uperp", "dpx", "dpy"], name="component"),
                             hist.axis.Regular(1600, -400.0, 400.0, name="residual", label=r"$\Delta$ [GeV]"),
                             storage=hist.storage.Double()),
        }

    def process(self, events: Any) -> dict[str, Any]:
        """Fill the histograms for one chunk; see the module docstring."""
        hists = self._empty_histograms()
        n = len(events)
        out: dict[str, Any] = {"histograms": hists, "events": n, "elements": 0, "seconds": {"mlpf": 0.0}}
        if n == 0:
            return out
        targets = target_table(events)
        pf = element_classes(events)
        tic = time.perf_counter()
        model = self.model_for(events)
        mlpf_cands = model(events)
        out["seconds"]["mlpf"] = time.perf_counter() - tic
        events["MLPFCands"] = mlpf_cands
        ml_cls = model.last_element_class
        ml_pt = np.full(ml_cls.size, np.nan)
        rows = _candidate_rows(events, mlpf_cands, pf["counts"])
        ml_pt[rows] = _flat(mlpf_cands.pt)
        out["elements"] = int(pf["counts"].sum())
        for method, (cls, pt) in {"pf": (pf["cls"], pf["pt"]), "mlpf": (ml_cls, ml_pt)}.items():
            _fill_rates(hists, method, targets, cls, pt, pf["eta"])
        methods = {"pf": events.PFCands, "mlpf": mlpf_cands}
        weights = {m: puppi_weights(c, self.puppi_tune, npv=events.PV.npvsGood) for m, c in methods.items()}
        _fill_jets(hists, events, methods, weights)
        _fill_met(hists, events, methods, weights)
        return out

    def postprocess(self, accumulator: Any) -> Any:
        return accumulator


def _candidate_rows(events: Any, cands: Any, counts: np.ndarray) -> np.ndarray:
    """Element row (flat, element order) of every MLPF candidate."""
    n_t = np.asarray(ak.to_numpy(ak.num(events.PFTrack.pt, axis=1)), np.int64)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    cand_event = np.repeat(np.arange(counts.size), np.asarray(ak.to_numpy(ak.num(cands.pt, axis=1)), np.int64))
    track_idx, cluster_idx = _flat(cands.trackIdx, np.int64), _flat(cands.clusterIdx, np.int64)
    return np.where(track_idx >= 0, start[cand_event] + track_idx,
                    start[cand_event] + n_t[cand_event] + cluster_idx)


def _fill_rates(hists: dict[str, hist.Hist], method: str, targets: dict[str, np.ndarray], reco_cls: np.ndarray,
                reco_pt: np.ndarray, element_eta: np.ndarray) -> None:
    t_cls = targets["cls"]
    has_target = t_cls > 0
    matched = (reco_cls == t_cls) & has_target
    hists["efficiency"].fill(method=method, cls=t_cls[has_target], pt=targets["pt"][has_target],
                             eta=targets["eta"][has_target], matched=matched[has_target].astype(int))
    reco = reco_cls > 0
    hists["fake"].fill(method=method, cls=reco_cls[reco], pt=reco_pt[reco], eta=element_eta[reco],
                       fake=(reco_cls[reco] != t_cls[reco]).astype(int))
    ok = matched & (targets["pt"] > 0)
    hists["response"].fill(method=method, cls=t_cls[ok], ratio=reco_pt[ok] / targets["pt"][ok])


def _fill_jets(hists: dict[str, hist.Hist], events: Any, methods: dict[str, Any], weights: dict[str, Any]) -> None:
    from coffea_mlreco.simulation.objects import Collection, cluster_jets, nearest_match

    gen = events.GenJet
    gen = gen[(gen.pt > _GENJET_PT_MIN) & (abs(gen.eta) < 2.5)]
    gen_counts = np.asarray(ak.to_numpy(ak.num(gen.pt, axis=1)), np.int64)
    gen_coll = Collection(gen_counts, {f: _flat(gen[f]) for f in ("pt", "eta", "phi")})
    gen_event = np.repeat(np.arange(gen_counts.size), gen_counts)
    for method, cands in methods.items():
        chs = (cands.charge == 0) | (cands.fromPV >= 1)
        for name, keep, scale in ((method, chs, None), (f"{method}_puppi", weights[method] > 0, weights[method])):
            c = cands[keep]
            w = np.ones(0) if scale is None else _flat(scale[keep])
            pt, mass = _flat(c.pt), _flat(c.mass)
            if scale is not None:
                pt, mass = pt * w, mass * w
            counts = np.asarray(ak.to_numpy(ak.num(c.pt, axis=1)), np.int64)
            jets = cluster_jets(counts, pt, _flat(c.eta), _flat(c.phi), mass, _JET_RADIUS, _JET_PT_MIN)
            match = nearest_match(gen_coll, jets, _JET_MATCH_DR)
            ok = match >= 0
            jet_start = np.concatenate([[0], np.cumsum(jets.counts)[:-1]]).astype(np.int64)
            jet_pt = jets.columns["pt"][jet_start[gen_event[ok]] + match[ok]]
            hists["jet_response"].fill(method=name, genpt=gen_coll.columns["pt"][ok],
                                       ratio=jet_pt / gen_coll.columns["pt"][ok])


def _fill_met(hists: dict[str, hist.Hist], events: Any, methods: dict[str, Any], weights: dict[str, Any]) -> None:
    gen_pt, gen_phi = (np.asarray(ak.to_numpy(events.GenMET[f]), np.float64) for f in ("pt", "phi"))
    for method, cands in methods.items():
        for suffix, w in (("", None), ("_puppi", weights[method])):
            pt, phi = missing_transverse_momentum(cands, w)
            res = met_residuals(np.asarray(ak.to_numpy(pt)), np.asarray(ak.to_numpy(phi)), gen_pt, gen_phi)
            for component in ("upar", "uperp", "dpx", "dpy"):
                hists["met"].fill(method=method + suffix, component=component, residual=getattr(res, component))
