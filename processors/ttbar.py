"""tt̄ jet-parton assignment processor: χ², KLFitter-style fit, permutation DNN and SPANet on the same events.

For each chunk it

- appends ``TTbarReco`` with :func:`coffea_mlreco.ttbar.reconstruct` (the selection of semileptonic tt̄
  candidates, one isolated e/μ and ≥ 4 jets, and every method's assignment as indices into ``Jet``; see
  :mod:`coffea_mlreco.ttbar.columns`);
- computes the fill values per event with :func:`coffea_mlreco.core.map_events` from those events: where the
  file has ``GenPart``, the partons matched to the selected jets (ΔR < 0.4,
  :func:`coffea_mlreco.ttbar.inputs.assignment_targets`) give each method's outcome (whether each top is
  reconstructable and correctly assigned); the neutrino η of SPANet, of the KLFitter-style fit and of the
  W-mass constraint (the smaller-|p_z| root) are compared with the generated neutrino's;
- fills the outcome histogram (per method and selected-jet multiplicity N_jets, 6 = ≥ 6), the SPANet
  assignment and detection probabilities (split by correct / reconstructable) and the neutrino-η
  residuals, from selected events whose inputs are finite. Events with NaN/inf inputs (``TTbarReco.valid``
  False) are counted under ``"events_invalid"`` and left out of every histogram;
- fills ``"mass"`` (per method and ``quantity``, 0–500 GeV in 2 GeV bins), with or without truth: the hadronic
  top mass m(b + q1 + q2) (``t_had``) and the hadronic W mass m(q1 + q2) (``w_had``) of the jets each method
  assigned (the file's ``Jet`` p_T, η, φ, mass), on selected valid events where the three jets are assigned.

On collision data (no generator branches) the outcome flags are all 0 and the truth histograms stay empty;
``"events_collision_data"`` (:func:`coffea_mlreco.core.collision_data_events`: the events' count on collision
data, else 0) tells the report section to show the mass distributions and no efficiency.

Eager and virtual events (``processor.Runner``) fill ``hist.Hist``; dask-awkward events (``apply_to_fileset``)
fill ``hist.dask.Hist`` from the same per-event values, so both give identical histograms (integer counts).
The output dict is what :func:`coffea_mlreco.ttbar.report.ttbar_section` reads; ``"seconds"``
(each method's assignment time) is only there in eager mode.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import awkward as ak
import hist
import numpy as np
from coffea import processor

from coffea_mlreco.core import (
    choose_methods,
    collision_data_events,
    count_true,
    event_count,
    is_dask,
    map_events,
    new_hist,
)
from coffea_mlreco.core.columns import InputColumns, to_numpy, with_finite_inputs
from coffea_mlreco.core.truth import ttbar_partons
from coffea_mlreco.ttbar.columns import (
    COLUMN,
    METHODS,
    ML_METHODS,
    declared_view,
    default_models,
    input_columns,
    jet_indices,
    reconstruct,
    ttbar_models,
)
from coffea_mlreco.ttbar.inputs import assignment_targets, semileptonic_inputs
from coffea_mlreco.ttbar.methods import TTBAR_METHODS
from coffea_mlreco.ttbar.neutrino import neutrino_pz_solutions
from coffea_mlreco.ttbar.outcomes import top_outcomes
from coffea_mlreco.ttbar.permutations import PERMUTATION_FIELDS

__all__ = [
    "GEN_FIELDS",
    "MASS_QUANTITIES",
    "METHODS",
    "ML_METHODS",
    "NU_ETA_METHODS",
    "TTbarFillValues",
    "TTbarProcessor",
    "default_models",
]

GEN_FIELDS: tuple[str, ...] = ("eta", "phi", "pdgId", "genPartIdxMother", "statusFlags")
"""``GenPart`` fields the truth matching reads."""
NU_ETA_METHODS: tuple[str, ...] = ("spanet", "klfitter", "w_constraint")
"""Neutrino-η estimates compared with the generated neutrino."""
MASS_QUANTITIES: dict[str, tuple[str, ...]] = {"t_had": ("had_b", "had_q1", "had_q2"), "w_had": ("had_q1", "had_q2")}
"""The ``quantity`` axis of the ``"mass"`` histogram: the assigned jets whose invariant mass it is."""
_NJETS = (4, 5, 6)  # 6 = six or more
_FLAGS = ("thad_reco", "thad_ok", "tlep_reco", "tlep_ok")
_TOPS = ("t_had", "t_lep")


def _assigned_mass(jets: ak.Array, indices: Sequence[np.ndarray]) -> np.ndarray:
    """Invariant mass (GeV) of the jets ``jets[i, indices[k][i]]`` of each event (``jets``: per event records
    with ``pt``, ``eta``, ``phi``, ``mass``; indices into them); NaN where an index is −1 (or, in the placeholder
    events dask-awkward traces the kernel with, beyond the event's jets)."""
    counts = to_numpy(ak.num(jets, axis=1), np.int64)
    starts = np.cumsum(counts) - counts
    flat = {f: to_numpy(ak.flatten(jets[f]), np.float64) for f in ("pt", "eta", "phi", "mass")}
    assigned = np.logical_and.reduce([(index >= 0) & (index < counts) for index in indices])
    total = np.zeros((int(assigned.sum()), 4))
    for index in indices:
        row = starts[assigned] + index[assigned]
        pt, eta, phi, mass = (flat[f][row] for f in ("pt", "eta", "phi", "mass"))
        pz = pt * np.sinh(eta)
        total += np.stack([pt * np.cos(phi), pt * np.sin(phi), pz, np.sqrt(pt**2 + pz**2 + mass**2)], axis=1)
    out = np.full(len(counts), np.nan)
    out[assigned] = np.sqrt(np.maximum(total[:, 3] ** 2 - (total[:, :3] ** 2).sum(axis=1), 0.0))
    return out


def _w_constraint_eta(inputs: ak.Array) -> np.ndarray:
    """η of the neutrino from the W-mass constraint (smaller-|p_z| root), MET as its transverse momentum."""
    lep = inputs.lepton
    pt, eta, phi, mass = (to_numpy(lep[f], np.float64) for f in ("pt", "eta", "phi", "mass"))
    p4 = np.stack(
        [pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), np.sqrt((pt * np.cosh(eta)) ** 2 + mass**2)], axis=1
    )
    met_px = to_numpy(inputs.met.px, np.float64)
    met_py = to_numpy(inputs.met.py, np.float64)
    pz = neutrino_pz_solutions(p4, met_px, met_py).first
    return np.arcsinh(pz / np.maximum(np.hypot(met_px, met_py), 1e-9))


class TTbarFillValues:
    """Per-event fill values from events carrying ``TTbarReco`` (a :func:`map_events` kernel).

    Output record: ``use`` (selected and valid), ``invalid``, ``njets`` (selected jets, capped at 6); per
    method a record of the four outcome flags (int 0/1; all 0 without truth) and, per :data:`MASS_QUANTITIES`
    entry, ``m_<quantity>`` (GeV; NaN unless used and its jets assigned); with truth, ``spanet_prob``
    (per top: ``assignment``, ``detection``, ``reco``, ``ok``) when SPANet ran, and ``nu_eta`` (per estimate:
    ``residual``, reco − gen, and ``ok``, where both are defined and the event is used).
    """

    def __init__(
        self, methods: Sequence[str], columns: InputColumns, reco_inputs: InputColumns, has_truth: bool
    ) -> None:
        self.methods = tuple(methods)
        self.columns = dict(columns)
        self.reco_inputs = dict(reco_inputs)
        self.has_truth = bool(has_truth)

    def __call__(self, events: Any) -> ak.Array:
        # the selection sees what the reconstruction saw: NaN/inf inputs as 0 (those events are not used)
        view = with_finite_inputs(declared_view(events, self.columns), self.reco_inputs)
        reco = view[COLUMN]
        inputs = semileptonic_inputs(view)
        valid = to_numpy(reco.valid, bool)
        selected = to_numpy(inputs.selected, bool)
        use = selected & valid
        n_jets = np.minimum(to_numpy(inputs.n_jets, np.int64), _NJETS[-1])
        target = np.full((len(view), 4), -1, np.int64)
        if self.has_truth:
            positions = to_numpy(assignment_targets(view, inputs.jets), np.int64).reshape(-1, 4)
            target = jet_indices(positions, inputs.jets)
        out: dict[str, Any] = {"use": use, "invalid": ~valid, "njets": n_jets}
        outcomes = {}
        for method in self.methods:
            predicted = np.stack([to_numpy(reco[method][f], np.int64) for f in PERMUTATION_FIELDS], axis=1)
            outcomes[method] = top_outcomes(predicted, target)
            fields = {f: getattr(outcomes[method], f).astype(np.int64) for f in _FLAGS}
            for quantity, jets in MASS_QUANTITIES.items():
                mass = _assigned_mass(view.Jet, [predicted[:, PERMUTATION_FIELDS.index(j)] for j in jets])
                fields[f"m_{quantity}"] = np.where(use, mass, np.nan)
            out[method] = ak.zip(fields)
        if self.has_truth:
            if "spanet" in self.methods:
                spanet, outcome = reco.spanet, outcomes["spanet"]
                flags = {"t_had": (outcome.thad_reco, outcome.thad_ok), "t_lep": (outcome.tlep_reco, outcome.tlep_ok)}
                out["spanet_prob"] = ak.zip(
                    {
                        top: ak.zip(
                            {
                                "assignment": to_numpy(spanet.assignment_prob[top], np.float64),
                                "detection": to_numpy(spanet.detection_prob[top], np.float64),
                                "reco": flags[top][0].astype(np.int64),
                                "ok": flags[top][1].astype(np.int64),
                            }
                        )
                        for top in _TOPS
                    },
                    depth_limit=1,
                )
            out["nu_eta"] = self._nu_eta(view, reco, inputs, selected, use)
        return ak.zip(out, depth_limit=1)

    def _nu_eta(
        self, view: ak.Array, reco: ak.Array, inputs: ak.Array, selected: np.ndarray, use: np.ndarray
    ) -> ak.Array:
        gen = to_numpy(ak.fill_none(ttbar_partons(view).neutrino.eta, np.nan), np.float64)
        w_eta = np.full(len(view), np.nan)
        w_eta[selected] = _w_constraint_eta(inputs[selected])
        estimates = {"w_constraint": w_eta}
        for method in ("spanet", "klfitter"):
            if method in self.methods:
                estimates[method] = to_numpy(reco[method].nu_eta, np.float64)
        records = {}
        for method in NU_ETA_METHODS:
            residual = estimates.get(method, np.full(len(view), np.nan)) - gen
            records[method] = ak.zip({"residual": residual, "ok": use & np.isfinite(residual)})
        return ak.zip(records, depth_limit=1)


def _has_truth(events: Any) -> bool:
    return "GenPart" in events.fields and set(GEN_FIELDS) <= set(events.GenPart.fields)


class TTbarProcessor(processor.ProcessorABC):
    """Assignment efficiencies of every method and the masses of the jets it assigns, on the same selected events
    (see the module docstring).

    Args:
        methods: the methods to run, among :data:`METHODS` (default all four).
        models: per network method, a shipped name, a model directory or card, or a wrapper; these take
            precedence over ``options.models_for("ttbar")``; default the shipped models.
        max_jets: the leading selected jets the χ² and KLFitter-style fits permute.
        options: evaluate's task options (``device`` for the networks, ``models_for("ttbar")``).
    """

    def __init__(
        self,
        methods: Sequence[str] = METHODS,
        models: Mapping[str, Any] | None = None,
        max_jets: int = 6,
        options: Any = None,
    ) -> None:
        self.methods = choose_methods(methods, TTBAR_METHODS)
        device = getattr(options, "device", "auto")
        given = dict(options.models_for("ttbar")) if hasattr(options, "models_for") else {}
        given.update(models or {})
        self.models = ttbar_models(self.methods, given, device)
        self.max_jets = int(max_jets)

    @staticmethod
    def _empty_histograms(like: Any) -> dict[str, Any]:
        def flag(name: str) -> hist.axis.IntCategory:
            return hist.axis.IntCategory([0, 1], name=name)

        def prob(label: str) -> hist.axis.Regular:
            return hist.axis.Regular(50, 0, 1, name="prob", label=label)

        def tops() -> hist.axis.StrCategory:
            return hist.axis.StrCategory(list(_TOPS), name="top")

        return {
            "outcome": new_hist(
                hist.axis.StrCategory(list(METHODS), name="method"),
                hist.axis.IntCategory(list(_NJETS), name="njets", label="selected jets (6 = ≥ 6)"),
                *(flag(name) for name in _FLAGS),
                like=like,
            ),
            "assignment_prob": new_hist(tops(), flag("correct"), prob("assignment probability"), like=like),
            "detection_prob": new_hist(tops(), flag("reconstructable"), prob("detection probability"), like=like),
            "nu_eta_residual": new_hist(
                hist.axis.StrCategory(list(NU_ETA_METHODS), name="method"),
                hist.axis.Regular(120, -6, 6, name="residual", label=r"$\eta_\nu$ reco $-$ gen"),
                like=like,
            ),
            "mass": new_hist(
                hist.axis.StrCategory(list(METHODS), name="method"),
                hist.axis.StrCategory(list(MASS_QUANTITIES), name="quantity"),
                hist.axis.Regular(250, 0, 500, name="mass", label="Mass [GeV]"),
                like=like,
            ),
        }

    def process(self, events: Any) -> dict[str, Any]:
        """Fill the histograms for one chunk (eager, virtual or dask-awkward events); see the module docstring."""
        dataset = str(events.metadata.get("dataset", "default"))
        eager = not is_dask(events)
        seconds: dict[str, float] = {}
        with_reco = reconstruct(
            events, methods=self.methods, models=self.models, max_jets=self.max_jets, timings=seconds if eager else None
        )
        has_truth = _has_truth(events)
        reco_inputs = input_columns(events, self.methods)
        columns = {**reco_inputs, COLUMN: None}
        if has_truth:
            columns["GenPart"] = GEN_FIELDS
        values = map_events(
            TTbarFillValues(self.methods, columns, reco_inputs, has_truth),
            with_reco,
            columns,
            label="ttbar-fill-values",
        )
        hists = self._empty_histograms(events)
        use = values.use
        njets = values.njets[use]
        for method in self.methods:
            flags = values[method]
            hists["outcome"].fill(method=method, njets=njets, **{f: flags[f][use] for f in _FLAGS})
            for quantity in MASS_QUANTITIES:
                mass = flags[f"m_{quantity}"]
                hists["mass"].fill(method=method, quantity=quantity, mass=mass[~np.isnan(mass)])
        if has_truth:
            if "spanet" in self.methods:
                for top in _TOPS:
                    prob = values.spanet_prob[top]
                    with_top = use & (prob.reco == 1)
                    hists["assignment_prob"].fill(top=top, correct=prob.ok[with_top], prob=prob.assignment[with_top])
                    hists["detection_prob"].fill(top=top, reconstructable=prob.reco[use], prob=prob.detection[use])
            for method in NU_ETA_METHODS:
                nu = values.nu_eta[method]
                hists["nu_eta_residual"].fill(method=method, residual=nu.residual[nu.ok])
        n_used = count_true(use)
        out: dict[str, Any] = {
            "histograms": hists,
            "events": {dataset: event_count(events)},
            "events_invalid": count_true(values.invalid),
            "events_selected": n_used,
            "events_per_method": dict.fromkeys(self.methods, n_used),
            "events_collision_data": collision_data_events(events),
        }
        if eager:
            out["seconds"] = seconds
        return out

    def postprocess(self, accumulator: dict[str, Any]) -> dict[str, Any]:
        """Nothing to do after merging; the accumulator is returned as is."""
        return accumulator
