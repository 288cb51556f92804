"""Registry of the reconstruction tasks ``coffea-mlreco evaluate`` knows.

A task names its coffea processor, the branches it cannot run without, and the report section that
turns the processor's output into metrics, plots and tables. Processors and sections are given as
``"module:attribute"`` strings and imported only when the task runs, so a task whose optional stack
(torch, ...) is heavy costs nothing when it is not selected. A later task (ttbar, ditau, mem, mlpf) plugs in
by adding one entry to :data:`TASKS`.

Selection: with ``--tasks`` left out, every registered task whose required branches exist in all files
runs, and the others are skipped with a note naming the file and branch; a task asked for explicitly
whose branches are absent is an error naming the file and branch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import hist

from coffea_mlreco.evaluation.inputs import InputError, InputFile, first_missing_branch

__all__ = ["EVENT_ID_BRANCHES", "TASKS", "Task", "TaskOptions", "TaskReport", "select_tasks"]

EVENT_ID_BRANCHES = ("run", "luminosityBlock", "event")
"""Branches coffea's NanoAODSchema refuses to read a file without."""


@dataclass(frozen=True)
class TaskOptions:
    """Settings every task's processor may use.

    Attributes:
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` for the networks.
        models: per task, per method, the model to use instead of the shipped default: a shipped name or a
            model directory (``{"met": {"perceiver": "/my/dir"}}``; ``evaluate --model met.perceiver=DIR``).
    """

    device: str = "cpu"
    models: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def models_for(self, task: str) -> dict[str, str]:
        """``{method: model}`` given for ``task`` (empty: the shipped defaults)."""
        return dict(self.models.get(task, {}))


class TaskReport(NamedTuple):
    """What a task's report section produces from the processor output.

    Attributes:
        metrics: the task's entry in metrics.json (``{METHOD: {...}}``; methods that did not run absent).
        throughput: ``{"task/method": events per second}``.
        html: an HTML fragment (tables, ``<img>`` tags of PNGs written next to index.html).
        root_histograms: 1-D/2-D histograms for histograms.root, keyed by path (``"met/pf/upar"``).
        histograms: the full ``hist.Hist`` objects for histograms.pkl, keyed ``"task/name"``.
    """

    metrics: dict[str, Any]
    throughput: dict[str, float]
    html: str
    root_histograms: dict[str, hist.Hist]
    histograms: dict[str, hist.Hist]


def _load(spec: str) -> Any:
    module_name, _, attribute = spec.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


@dataclass(frozen=True)
class Task:
    """One reconstruction task: its processor, required branches and report section."""

    name: str
    title: str
    processor: str
    """``"module:Class"`` of a ``ProcessorABC`` whose constructor takes ``options=TaskOptions`` or nothing."""
    section: str
    """``"module:function"`` with signature ``(output: dict, outdir: Path) -> TaskReport``."""
    required_branches: tuple[str, ...]
    accepts_options: bool = field(default=False)

    def make_processor(self, options: TaskOptions) -> Any:
        """A new processor instance for this task."""
        cls = _load(self.processor)
        return cls(options=options) if self.accepts_options else cls()

    def report(self, output: dict[str, Any], outdir: Path) -> TaskReport:
        """Run the report section on the processor ``output``, writing plots into ``outdir``."""
        section: Callable[[dict[str, Any], Path], TaskReport] = _load(self.section)
        return section(output, outdir)


TASKS: dict[str, Task] = {
    "met": Task(
        name="met",
        title="Missing transverse momentum",
        processor="coffea_mlreco.processors.met:METProcessor",
        section="coffea_mlreco.evaluation.met_report:met_section",
        required_branches=("GenMET_pt", "GenMET_phi", "MET_pt", "MET_phi"),
        accepts_options=True,
    ),
    "ttbar": Task(
        name="ttbar",
        title="tt̄ jet-parton assignment",
        processor="coffea_mlreco.processors.ttbar:TTbarProcessor",
        section="coffea_mlreco.evaluation.ttbar_report:ttbar_section",
        required_branches=("Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass", "Jet_btagDeepFlavB", "MET_pt", "MET_phi",
                           "Electron_pt", "Electron_pfRelIso03_all", "Muon_pt", "Muon_pfRelIso04_all"),
        accepts_options=True,
    ),
    "ditau": Task(
        name="ditau",
        title="Di-tau mass m_ττ",
        processor="coffea_mlreco.processors.ditau:DiTauProcessor",
        section="coffea_mlreco.evaluation.ditau_report:ditau_section",
        required_branches=("Tau_pt", "Tau_eta", "Tau_phi", "Tau_mass", "Tau_charge",
                           "Electron_pt", "Electron_eta", "Electron_phi", "Electron_mass", "Electron_charge",
                           "Electron_pfRelIso03_all", "Muon_pt", "Muon_eta", "Muon_phi", "Muon_mass",
                           "Muon_charge", "Muon_pfRelIso04_all", "MET_pt", "MET_phi"),
        accepts_options=True,
    ),
    "mem": Task(
        name="mem",
        title="Matrix Element Method (integrated and DeepMEM weights)",
        processor="coffea_mlreco.processors.mem:MEMProcessor",
        section="coffea_mlreco.evaluation.mem_report:mem_section",
        required_branches=("Electron_pt", "Electron_eta", "Electron_phi", "Electron_mass", "Electron_charge",
                           "Muon_pt", "Muon_eta", "Muon_phi", "Muon_mass", "Muon_charge",
                           "Jet_pt", "Jet_eta", "Jet_phi", "MET_pt", "MET_phi"),
        accepts_options=True,
    ),
    "mlpf": Task(
        name="mlpf",
        title="Machine-learned particle flow vs rule-based PF",
        processor="coffea_mlreco.processors.mlpf:MLPFProcessor",
        section="coffea_mlreco.evaluation.mlpf_report:mlpf_section",
        required_branches=("PFTrack_pt", "PFTrack_etaCalo", "PFTrack_fromPV", "PFCluster_energy", "PFCluster_width",
                           "PFTarget_cls", "PFCands_trackIdx", "PFCands_clusterIdx", "GenMET_pt", "GenMET_phi",
                           "GenJet_pt", "PV_npvsGood"),
        accepts_options=True,
    ),
}
"""Every task ``evaluate`` can run, by name (the ``--tasks`` values and metrics.json keys)."""


def select_tasks(requested: Sequence[str] | None, files: Sequence[InputFile]) -> tuple[list[Task], list[str]]:
    """The tasks to run on ``files`` and notes about skipped ones.

    Raises:
        InputError: an unknown task name; a requested task (or, with ``requested=None``, every task)
            lacking a branch in some file — the message names the file and the branch; a file without
            the NanoAOD event-ID branches.
    """
    missing_id = first_missing_branch(files, EVENT_ID_BRANCHES)
    if missing_id is not None:
        path, branch = missing_id
        raise InputError(
            f"{path}: branch {branch!r} is missing (NanoAOD files need run/luminosityBlock/event)"
        )
    if requested is not None:
        unknown = [name for name in requested if name not in TASKS]
        if unknown:
            raise InputError(f"unknown task(s) {', '.join(unknown)}; known tasks: {', '.join(TASKS)}")
        chosen = []
        for name in dict.fromkeys(requested):
            task = TASKS[name]
            missing = first_missing_branch(files, task.required_branches)
            if missing is not None:
                path, branch = missing
                raise InputError(f"{path}: branch {branch!r} is missing (needed by task {name!r})")
            chosen.append(task)
        return chosen, []
    chosen, reasons = [], []
    for name, task in TASKS.items():
        missing = first_missing_branch(files, task.required_branches)
        if missing is None:
            chosen.append(task)
        else:
            path, branch = missing
            reasons.append(f"task {name!r} needs branch {branch!r}, which {path} lacks")
    if not chosen:
        raise InputError("no task can run on these files: " + "; ".join(reasons))
    return chosen, [f"skipping {reason}" for reason in reasons]
