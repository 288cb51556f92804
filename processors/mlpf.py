"""MLPF processor: machine-learned particle flow against rule-based PF, on files made with ``--elements``.

For each chunk (eager, virtual or dask-awkward events alike) it

- appends ``MLPFCands`` and ``MLPFReco`` with `coffea_mlreco.mlpf.reconstruct` (the shipped ``mlpf_pu<N>``
  closest to the chunk's pileup, or the model given in ``models``); events whose inputs hold NaN/inf
  (``MLPFReco.valid`` False) are counted (``events_invalid``) and left out of every histogram, for both methods;
- computes every fill value in one per-chunk kernel (`coffea_mlreco.core.map_events`, `MLPFFillValues`), so the
  heavy work — PUPPI and jet clustering on both methods' candidates — runs eagerly per chunk, also inside a
  dask graph;
- gives every element its reconstructed class under each method — rule-based PF (``pf``): the class of the
  ``PFCands`` entry made from it (``trackIdx``/``clusterIdx``), MLPF (``mlpf``): the class of the
  ``MLPFCands`` entry made from it (none when the model made none) — and fills, against the element's truth
  target (``PFTarget``): efficiency (``"efficiency"``: targets by class, true pT and η, matched or not), fake
  rate (``"fake"``: candidates by class, reco pT and element η, fake or not) and the pT response
  pT_reco/pT_true of matched elements (``"response"``); definitions in `coffea_mlreco.mlpf.performance`;
- computes PUPPI weights (`coffea_mlreco.met.puppi`, Run-3 tune, npv = PV_npvsGood) for each method's
  candidates;
- clusters anti-kT R = 0.4 jets (FastJet, E-scheme; pT > 10 GeV) on the charged-hadron-subtracted candidates
  of each method (charged ones need fromPV ≥ 1, as the simulation's jets; ``pf``, ``mlpf``) and on the
  PUPPI-weighted candidates (pT and mass × w, w = 0 dropped; ``pf_puppi``, ``mlpf_puppi``) and fills
  pT_reco/pT_gen of each ``GenJet`` with pT > 20 GeV and |η| < 2.5 matched to the nearest jet within ΔR < 0.2
  (``"jet_response"``, in bins of generator-jet pT); no pileup offset or response correction, the same for
  both methods;
- computes MET = −Σ pT of each method's candidates, without (``pf``, ``mlpf``) and with the PUPPI weights
  (``pf_puppi``, ``mlpf_puppi``) and fills the residuals Δ = p_miss,reco − p_miss,gen (``upar``, ``uperp``,
  ``dpx``, ``dpy``; GeV, 0.5 GeV bins in ±400) (``"met"``).

Output: ``histograms`` (above; ``hist.Hist``, or ``hist.dask.Hist`` on dask-awkward events, computed later with
the graph), ``events`` (``{dataset: events}``), ``events_invalid``, ``events_per_method`` (events filled, per
method), ``elements`` (elements of the filled events) and, on eager/virtual events only, ``seconds``
(``mlpf``: the reconstruction; the only executor-dependent number). Histograms hold integer counts, so
``processor.Runner`` and ``coffea.dataset_tools.apply_to_fileset`` give identical ones on the same chunks. The
report is `coffea_mlreco.mlpf.report.mlpf_section`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import awkward as ak
import hist
import numpy as np
from coffea import processor

from coffea_mlreco.core import count_true, event_count, is_dask, map_events, new_hist, timed
from coffea_mlreco.core.columns import to_numpy
from coffea_mlreco.core.metrics import met_residuals
from coffea_mlreco.met.pf_met import missing_transverse_momentum
from coffea_mlreco.met.puppi import PuppiTune, load_tune, puppi_weights
from coffea_mlreco.mlpf.columns import mlpf_models, reconstruct
from coffea_mlreco.mlpf.inputs import element_order
from coffea_mlreco.mlpf.performance import CLASS_NAMES, pdgid_class

__all__ = [
    "FILL_COLUMNS",
    "JET_PT_EDGES",
    "METHODS",
    "MET_METHODS",
    "PT_EDGES",
    "MLPFFillValues",
    "MLPFProcessor",
    "element_classes",
    "mlpf_element_classes",
]

METHODS = ("pf", "mlpf")
"""Particle-flow algorithms compared: rule-based PF (the file's PFCands) and MLPF."""
MET_METHODS = ("pf", "mlpf", "pf_puppi", "mlpf_puppi")
MET_COMPONENTS = ("upar", "uperp", "dpx", "dpy")
PT_EDGES = (0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0, 1000.0)
"""GeV: pT bins of the efficiency and fake-rate histograms."""
ETA_EDGES = (-5.0, -3.0, -2.5, -1.5, -0.75, 0.0, 0.75, 1.5, 2.5, 3.0, 5.0)
JET_PT_EDGES = (20.0, 30.0, 50.0, 100.0, 200.0, 1000.0)
_JET_RADIUS, _JET_PT_MIN, _GENJET_PT_MIN, _GENJET_ETA_MAX, _JET_MATCH_DR = 0.4, 10.0, 20.0, 2.5, 0.2

FILL_COLUMNS: dict[str, tuple[str, ...] | None] = {
    "PFTrack": ("pt", "eta"),
    "PFCluster": ("energy", "eta"),
    "PFTarget": ("cls", "pt", "eta"),
    "PFCands": ("pt", "eta", "phi", "mass", "charge", "pdgId", "fromPV", "dz", "trackIdx", "clusterIdx"),
    "MLPFCands": None,
    "GenJet": ("pt", "eta", "phi"),
    "GenMET": ("pt", "phi"),
    "PV": ("npvsGood",),
}
"""What the fill kernel reads from the events with ``MLPFCands`` appended: element counts and η, the truth
targets, rule-based PF candidates, generator jets and MET, and the vertex count PUPPI needs."""


def _flat(x: Any, dtype: type = np.float64) -> np.ndarray:
    return to_numpy(ak.flatten(x, axis=1), dtype)


def _counts(x: Any) -> np.ndarray:
    return to_numpy(ak.num(x, axis=1), np.int64)


def _starts(counts: np.ndarray) -> np.ndarray:
    return (np.cumsum(counts) - counts).astype(np.int64)


def element_classes(events: Any) -> dict[str, np.ndarray]:
    """Per element (flat, tracks then clusters per event): the class and pT of the rule-based PF candidate
    made from it (0 / NaN when none), the element η, and the element counts. Uses ``PFCands_trackIdx``/
    ``clusterIdx``."""
    n_t, n_c = _counts(events.PFTrack.pt), _counts(events.PFCluster.energy)
    t_rows, c_rows, counts = element_order(n_t, n_c)
    pf = events.PFCands
    cand_event = np.repeat(np.arange(n_t.size), _counts(pf.pt))
    track_idx, cluster_idx = _flat(pf.trackIdx, np.int64), _flat(pf.clusterIdx, np.int64)
    row = np.where(
        track_idx >= 0,
        t_rows[_starts(n_t)[cand_event] + np.maximum(track_idx, 0)],
        c_rows[_starts(n_c)[cand_event] + np.maximum(cluster_idx, 0)],
    )
    cls = np.zeros(int(counts.sum()), np.int64)
    pt = np.full(cls.size, np.nan)
    cls[row] = pdgid_class(_flat(pf.pdgId, np.int64))
    pt[row] = _flat(pf.pt)
    eta = np.zeros(cls.size)
    eta[t_rows] = _flat(events.PFTrack.eta)
    eta[c_rows] = _flat(events.PFCluster.eta)
    return {"cls": cls, "pt": pt, "eta": eta, "counts": counts}


def mlpf_element_classes(events: Any, counts: np.ndarray) -> dict[str, np.ndarray]:
    """Per element (flat, element order): the class (``MLPFCands.cls``) and pT of the MLPF candidate made from
    it (0 / NaN when the model classed it "none")."""
    cands = events.MLPFCands
    n_t = _counts(events.PFTrack.pt)
    cand_event = np.repeat(np.arange(counts.size), _counts(cands.pt))
    start = _starts(counts)[cand_event]
    track_idx, cluster_idx = _flat(cands.trackIdx, np.int64), _flat(cands.clusterIdx, np.int64)
    row = np.where(track_idx >= 0, start + track_idx, start + n_t[cand_event] + cluster_idx)
    cls = np.zeros(int(counts.sum()), np.int64)
    pt = np.full(cls.size, np.nan)
    cls[row] = _flat(cands.cls, np.int64)
    pt[row] = _flat(cands.pt)
    return {"cls": cls, "pt": pt}


def _per_event(event: np.ndarray, n_events: int, columns: Mapping[str, np.ndarray]) -> ak.Array:
    """Flat ``columns`` of objects sorted by ``event`` as a jagged record array with one list per event."""
    counts = np.bincount(event, minlength=n_events).astype(np.int64)
    return ak.unflatten(ak.zip({k: np.asarray(v) for k, v in columns.items()}), counts)


class MLPFFillValues:
    """Per-chunk fill values of every histogram (module docstring), one entry per event:
    ``efficiency_<m>``, ``fake_<m>``, ``response_<m>`` (jagged per element), ``jets_<m>`` (jagged per matched
    generator jet), ``met_<m>`` (per event) and ``n_elements``. Reads exactly :data:`FILL_COLUMNS`."""

    def __init__(self, puppi_tune: PuppiTune) -> None:
        self.puppi_tune = puppi_tune

    def __call__(self, events: Any) -> ak.Array:
        n = len(events)
        targets = {
            "cls": _flat(events.PFTarget.cls, np.int64),
            "pt": _flat(events.PFTarget.pt),
            "eta": _flat(events.PFTarget.eta),
        }
        pf = element_classes(events)
        element_event = np.repeat(np.arange(n), pf["counts"])
        reco = {"pf": (pf["cls"], pf["pt"]), "mlpf": tuple(mlpf_element_classes(events, pf["counts"]).values())}
        out: dict[str, ak.Array] = {}
        for method, (cls, pt) in reco.items():
            out.update(_rate_values(method, targets, cls, pt, pf["eta"], element_event, n))
        cands = {"pf": events.PFCands, "mlpf": events.MLPFCands}
        npv = to_numpy(events.PV.npvsGood, np.float64)
        weights = {m: puppi_weights(c, self.puppi_tune, npv=npv) for m, c in cands.items()}
        out.update(_jet_values(events, cands, weights))
        out.update(_met_values(events, cands, weights))
        out["n_elements"] = pf["counts"]
        return ak.zip(out, depth_limit=1)


def _rate_values(
    method: str,
    targets: dict[str, np.ndarray],
    reco_cls: np.ndarray,
    reco_pt: np.ndarray,
    element_eta: np.ndarray,
    element_event: np.ndarray,
    n: int,
) -> dict[str, ak.Array]:
    t_cls = targets["cls"]
    has_target = t_cls > 0
    matched = (reco_cls == t_cls) & has_target
    made = reco_cls > 0
    ok = matched & (targets["pt"] > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = reco_pt / targets["pt"]
    return {
        f"efficiency_{method}": _per_event(
            element_event[has_target],
            n,
            {
                "cls": t_cls[has_target],
                "pt": targets["pt"][has_target],
                "eta": targets["eta"][has_target],
                "matched": matched[has_target].astype(np.int64),
            },
        ),
        f"fake_{method}": _per_event(
            element_event[made],
            n,
            {
                "cls": reco_cls[made],
                "pt": reco_pt[made],
                "eta": element_eta[made],
                "fake": (reco_cls[made] != t_cls[made]).astype(np.int64),
            },
        ),
        f"response_{method}": _per_event(element_event[ok], n, {"cls": t_cls[ok], "ratio": ratio[ok]}),
    }


def _jet_values(events: Any, methods: dict[str, Any], weights: dict[str, Any]) -> dict[str, ak.Array]:
    from coffea_mlreco.simulation.objects import Collection, cluster_jets, nearest_match

    n = len(events)
    gen = events.GenJet
    gen = gen[(gen.pt > _GENJET_PT_MIN) & (abs(gen.eta) < _GENJET_ETA_MAX)]
    gen_counts = _counts(gen.pt)
    gen_coll = Collection(gen_counts, {f: _flat(gen[f]) for f in ("pt", "eta", "phi")})
    gen_event = np.repeat(np.arange(n), gen_counts)
    out = {}
    for method, cands in methods.items():
        chs = (cands.charge == 0) | (cands.fromPV >= 1)
        for name, keep, scale in ((method, chs, None), (f"{method}_puppi", weights[method] > 0, weights[method])):
            c = cands[keep]
            pt, mass = _flat(c.pt), _flat(c.mass)
            if scale is not None:
                w = _flat(scale[keep])
                pt, mass = pt * w, mass * w
            counts = _counts(c.pt)
            genpt, ratio = np.zeros(0), np.zeros(0)
            ok = np.zeros(0, bool)
            if n and counts.sum():
                jets = cluster_jets(counts, pt, _flat(c.eta), _flat(c.phi), mass, _JET_RADIUS, _JET_PT_MIN)
                match = nearest_match(gen_coll, jets, _JET_MATCH_DR)
                ok = match >= 0
                jet_pt = np.asarray(jets.columns["pt"], np.float64)[_starts(jets.counts)[gen_event[ok]] + match[ok]]
                genpt = gen_coll.columns["pt"][ok]
                ratio = jet_pt / genpt
            out[f"jets_{name}"] = _per_event(
                gen_event[ok] if ok.size else np.zeros(0, np.int64), n, {"genpt": genpt, "ratio": ratio}
            )
    return out


def _met_values(events: Any, methods: dict[str, Any], weights: dict[str, Any]) -> dict[str, ak.Array]:
    gen_pt, gen_phi = (to_numpy(events.GenMET[f], np.float64) for f in ("pt", "phi"))
    out = {}
    for method, cands in methods.items():
        for suffix, w in (("", None), ("_puppi", weights[method])):
            pt, phi = missing_transverse_momentum(cands, w)
            res = met_residuals(to_numpy(pt), to_numpy(phi), gen_pt, gen_phi)
            out[f"met_{method}{suffix}"] = ak.zip({c: np.asarray(getattr(res, c), np.float64) for c in MET_COMPONENTS})
    return out


def _flatten(values: Any) -> Any:
    """Fill values of one field: a jagged field flattened (dask-awkward stays lazy), per-event ones as they are."""
    if is_dask(values):
        import dask_awkward as dak

        return dak.flatten(values, axis=1) if values.ndim > 1 else values
    flat = ak.flatten(values, axis=1) if values.ndim > 1 else values
    return to_numpy(flat)


def _total(values: Any) -> Any:
    """Sum of a per-event integer array: an ``int`` eagerly, a lazy dask scalar in dask mode."""
    if is_dask(values):
        import dask_awkward as dak

        return dak.sum(values, axis=None)
    return int(ak.sum(values, axis=None))


class MLPFProcessor(processor.ProcessorABC):
    """MLPF vs rule-based PF (module docstring).

    Args:
        models: ``{"mlpf": NAME_OR_DIR}``: a shipped model name or a model directory (card + weights); by
            default, per chunk, the shipped ``mlpf_pu<N>`` trained at the pileup closest to the chunk's mean
            ``Pileup_nTrueInt`` (the highest-pileup one without that branch). Overrides ``options.models``.
        options: evaluate's task options (``device``; ``models_for("mlpf")``).
        puppi_tune: PUPPI parameter set for the ``*_puppi`` jets and MET (default ``"run3"``).
    """

    def __init__(self, models: Mapping[str, Any] | None = None, options: Any = None, puppi_tune: str = "run3") -> None:
        chosen = dict(options.models_for("mlpf")) if options is not None else {}
        chosen.update(models or {})
        self.models = chosen
        self.device = getattr(options, "device", "auto")
        mlpf_models(self.models, self.device)  # fails here, not per chunk, on an unknown name or a bad directory
        self.puppi_tune = load_tune(puppi_tune)

    def _empty_histograms(self, like: Any) -> dict[str, Any]:
        def method_axis(methods: tuple[str, ...]) -> hist.axis.StrCategory:
            return hist.axis.StrCategory(list(methods), name="method")

        def cls() -> hist.axis.IntCategory:
            return hist.axis.IntCategory(list(range(1, len(CLASS_NAMES))), name="cls", label="class")

        def pt() -> hist.axis.Variable:
            return hist.axis.Variable(PT_EDGES, name="pt", label=r"$p_T$ [GeV]")

        def eta() -> hist.axis.Variable:
            return hist.axis.Variable(ETA_EDGES, name="eta", label=r"$\eta$")

        return {
            "efficiency": new_hist(
                method_axis(METHODS), cls(), pt(), eta(), hist.axis.IntCategory([0, 1], name="matched"), like=like
            ),
            "fake": new_hist(
                method_axis(METHODS), cls(), pt(), eta(), hist.axis.IntCategory([0, 1], name="fake"), like=like
            ),
            "response": new_hist(
                method_axis(METHODS),
                cls(),
                hist.axis.Regular(400, 0.0, 4.0, name="ratio", label=r"$p_T^{reco}/p_T^{true}$"),
                like=like,
            ),
            "jet_response": new_hist(
                method_axis(MET_METHODS),
                hist.axis.Variable(JET_PT_EDGES, name="genpt", label=r"generator jet $p_T$ [GeV]"),
                hist.axis.Regular(300, 0.0, 3.0, name="ratio", label=r"$p_T^{jet}/p_T^{gen jet}$"),
                like=like,
            ),
            "met": new_hist(
                method_axis(MET_METHODS),
                hist.axis.StrCategory(list(MET_COMPONENTS), name="component"),
                hist.axis.Regular(1600, -400.0, 400.0, name="residual", label=r"$\Delta$ [GeV]"),
                like=like,
            ),
        }

    def process(self, events: Any) -> dict[str, Any]:
        """Fill the histograms for one chunk (or build the dask graph that does); see the module docstring."""
        dataset = events.metadata.get("dataset", "default")
        lazy = is_dask(events)
        seconds: dict[str, float] = {}
        with timed(seconds, "mlpf"):
            events = reconstruct(events, models=self.models or None, device=self.device)
        valid = events.MLPFReco.valid
        fills = map_events(MLPFFillValues(self.puppi_tune), events[valid], FILL_COLUMNS, label="mlpf-fill")
        hists = self._empty_histograms(events)
        for method in METHODS:
            eff, fake, resp = fills[f"efficiency_{method}"], fills[f"fake_{method}"], fills[f"response_{method}"]
            hists["efficiency"].fill(
                method=method,
                cls=_flatten(eff.cls),
                pt=_flatten(eff.pt),
                eta=_flatten(eff.eta),
                matched=_flatten(eff.matched),
            )
            hists["fake"].fill(
                method=method,
                cls=_flatten(fake.cls),
                pt=_flatten(fake.pt),
                eta=_flatten(fake.eta),
                fake=_flatten(fake.fake),
            )
            hists["response"].fill(method=method, cls=_flatten(resp.cls), ratio=_flatten(resp.ratio))
        for name in MET_METHODS:
            jets = fills[f"jets_{name}"]
            hists["jet_response"].fill(method=name, genpt=_flatten(jets.genpt), ratio=_flatten(jets.ratio))
            met = fills[f"met_{name}"]
            for component in MET_COMPONENTS:
                hists["met"].fill(method=name, component=component, residual=_flatten(met[component]))
        n_valid = count_true(valid)
        out: dict[str, Any] = {
            "histograms": hists,
            "events": {dataset: event_count(events)},
            "events_invalid": count_true(~valid),
            "events_per_method": dict.fromkeys(METHODS, n_valid),
            "elements": _total(fills.n_elements),
        }
        if not lazy:
            out["seconds"] = seconds
        return out

    def postprocess(self, accumulator: Any) -> Any:
        return accumulator
