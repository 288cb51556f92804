"""The reconstruction tasks: the one registry that knows every task package.

Each entry names, as ``"module:attribute"`` strings imported only when used, a task's column function
(``coffea_mlreco.<task>.reconstruct``), its coffea processor, its report section, its trainer and its methods (the
:class:`~coffea_mlreco.core.methods.MethodSet` of ``coffea_mlreco.<task>.methods``, which says which of them run
a trained network), plus the branches it cannot run without: each entry a branch or a group of alternatives
``"MET_pt|PFMET_pt"`` (any one will do), so one entry serves NanoAOD v9 to v15 (:mod:`coffea_mlreco.core.nanoaod`
names them by version). ``coffea_mlreco.reconstruct``,
``coffea-mlreco evaluate`` and ``coffea-mlreco train`` read this registry; the layers below them (``core``,
``inference``, ``nn``, ``training``, ``evaluation``, ``simulation``) import no task package.

A new task is a package ``coffea_mlreco.<name>`` with those pieces, a processor in ``processors/<name>.py``
and one entry here.
"""

from __future__ import annotations

from coffea_mlreco.core.nanoaod import JET_ID_BRANCHES, MET_BRANCHES
from coffea_mlreco.evaluation.tasks import Task

__all__ = ["TASKS"]


def _task(name: str, title: str, processor: str, methods: str, required_branches: tuple[str, ...], needs: str) -> Task:
    return Task(
        name=name,
        title=title,
        reconstruct=f"coffea_mlreco.{name}:reconstruct",
        processor=f"coffea_mlreco.processors.{name}:{processor}",
        section=f"coffea_mlreco.{name}.report:{name}_section",
        trainer=f"coffea_mlreco.{name}.training",
        methods=f"coffea_mlreco.{name}.methods:{methods}",
        required_branches=required_branches,
        needs=needs,
    )


_LEPTONS = (
    "Electron_pt",
    "Electron_eta",
    "Electron_phi",
    "Electron_mass",
    "Electron_charge",
    "Muon_pt",
    "Muon_eta",
    "Muon_phi",
    "Muon_mass",
    "Muon_charge",
)

TASKS: dict[str, Task] = {
    "met": _task(
        "met",
        "Missing transverse momentum",
        "METProcessor",
        "MET_METHODS",
        MET_BRANCHES,
        "the file's MET; PF candidates (PFNano's PFCands) for our reconstructions, GenMET for truth metrics",
    ),
    "ttbar": _task(
        "ttbar",
        "tt̄ jet-parton assignment",
        "TTbarProcessor",
        "TTBAR_METHODS",
        (
            "Jet_pt",
            "Jet_eta",
            "Jet_phi",
            "Jet_mass",
            "Jet_btagDeepFlavB",
            *JET_ID_BRANCHES,
            *MET_BRANCHES,
            "Electron_pt",
            "Electron_pfRelIso03_all",
            "Muon_pt",
            "Muon_pfRelIso04_all",
        ),
        "jets with DeepJet b tagging and jet ID, isolated electrons and muons, and MET",
    ),
    "ditau": _task(
        "ditau",
        "Di-tau mass m_ττ",
        "DiTauProcessor",
        "DITAU_METHODS",
        (
            "Tau_pt",
            "Tau_eta",
            "Tau_phi",
            "Tau_mass",
            "Tau_charge",
            *_LEPTONS,
            "Electron_pfRelIso03_all",
            "Muon_pfRelIso04_all",
            *MET_BRANCHES,
        ),
        "hadronic taus, electrons, muons and MET",
    ),
    "mem": _task(
        "mem",
        "Matrix Element Method (integrated and DeepMEM weights)",
        "MEMProcessor",
        "MEM_METHODS",
        (*_LEPTONS, "Jet_pt", "Jet_eta", "Jet_phi", *JET_ID_BRANCHES, *MET_BRANCHES),
        "electrons, muons, jets with jet ID and MET",
    ),
    "mlpf": _task(
        "mlpf",
        "Machine-learned particle flow vs rule-based PF",
        "MLPFProcessor",
        "MLPF_METHODS",
        (
            "PFTrack_pt",
            "PFTrack_etaCalo",
            "PFTrack_fromPV",
            "PFCluster_energy",
            "PFCluster_width",
            "PFTarget_cls",
            "PFCands_trackIdx",
            "PFCands_clusterIdx",
            "GenMET_pt",
            "GenMET_phi",
            "GenJet_pt",
            "PV_npvsGood",
        ),
        "detector elements and their truth targets (PFTrack, PFCluster, PFTarget), which coffea-mlreco generate "
        "--elements writes and CMS NanoAOD does not carry",
    ),
}
"""Every task, by name (the ``--tasks`` values, the ``train`` sub-commands and the metrics.json keys), in report
order."""
