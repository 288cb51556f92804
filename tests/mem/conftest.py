"""Shared inputs of the MEM tests: a small simulated Drell-Yan sample, read into dilepton arrays.

Test modules use these through fixtures only (importing from ``conftest`` is ambiguous across tests/).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import uproot

from coffea_mlreco.simulation import generate_sample


def _read_dileptons(path: Path) -> dict[str, dict[str, np.ndarray]]:
    """Events with an opposite-sign same-flavour leading pair (μμ preferred), as flat arrays.

    Returns ``{"lep1": {...}, "lep2": {...}, "met": {...}, "gen_lep1_pt": ..., ...}`` with the fields
    ``mem_log_weights`` takes (GeV, rad) plus the matched generator p_T of each lepton (NaN if unmatched).
    """
    tree = uproot.open(path)["Events"]
    arrays = tree.arrays(filter_name=["Muon_*", "Electron_*", "MET_*", "GenPart_pt"])
    out: dict[str, dict[str, list[float]]] = {k: {} for k in ("lep1", "lep2", "met")}
    gen: dict[str, list[float]] = {"lep1": [], "lep2": []}
    fields = ("pt", "eta", "phi", "mass", "pdgId")
    for key in ("lep1", "lep2"):
        out[key] = {f: [] for f in fields}
    out["met"] = {"pt": [], "phi": [], "sumEt": []}
    for i in range(len(arrays)):
        for col in ("Muon", "Electron"):
            pdg = arrays[f"{col}_pdgId"][i]
            if len(pdg) >= 2 and pdg[0] == -pdg[1]:
                for j, key in enumerate(("lep1", "lep2")):
                    for f in fields:
                        out[key][f].append(float(arrays[f"{col}_{f}"][i][j]))
                    g = int(arrays[f"{col}_genPartIdx"][i][j])
                    gen[key].append(float(arrays["GenPart_pt"][i][g]) if g >= 0 else np.nan)
                for f in ("pt", "phi", "sumEt"):
                    out["met"][f].append(float(arrays[f"MET_{f}"][i]))
                break
    result: dict[str, dict[str, np.ndarray]] = {k: {f: np.array(v) for f, v in d.items()} for k, d in out.items()}
    result["gen_pt"] = {k: np.array(v) for k, v in gen.items()}
    return result


@pytest.fixture(scope="session")
def dy_events(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, np.ndarray]]:
    """Dilepton events of 400 simulated Drell-Yan events (PU 0, seed 11)."""
    from coffea_mlreco.simulation import generate_sample

    if "COFFEA_MLRECO_CACHE" not in os.environ:
        os.environ["COFFEA_MLRECO_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    path = generate_sample("dy-ll", 400, 0, seed=11, output=tmp_path_factory.mktemp("mem") / "dy.root", progress=False)
    return _read_dileptons(path)


# The MEM column, processor and table tests: Drell-Yan and Z′ files

SAMPLES = {"dy_ll": ("dy-ll", 300, 9301), "zprime_ll": ("zprime-ll", 300, 9302)}
"""name (the dataset name evaluate gives the file): (process, events, generator seed); PU 0."""


def _open(path: Path) -> Any:
    from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return NanoEventsFactory.from_root({str(path): "Events"}, schemaclass=NanoAODSchema, mode="eager").events()


@pytest.fixture(scope="session")
def mem_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``{"dy_ll": path, "zprime_ll": path}``: 300 events each, without PF candidates."""
    if "COFFEA_MLRECO_CACHE" not in os.environ:
        os.environ["COFFEA_MLRECO_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    folder = tmp_path_factory.mktemp("mem_wiring")
    return {
        name: generate_sample(
            process, n, 0, seed=seed, output=folder / f"{name}.root", progress=False, drop=("PFCands",)
        )
        for name, (process, n, seed) in SAMPLES.items()
    }


@pytest.fixture(scope="session")
def mem_events(mem_files: dict[str, Path]) -> dict[str, Any]:
    """Eager NanoEvents of the two samples."""
    return {name: _open(path) for name, path in mem_files.items()}


@pytest.fixture(scope="session")
def open_nano() -> Any:
    """``open_nano(path)``: eager NanoEvents of a file."""
    return _open


@pytest.fixture(scope="session")
def shipped_sum_et() -> bool:
    """Whether the shipped DeepMEM learned weights integrated with each event's MET resolution (``--use-sum-et``)."""
    from coffea_mlreco.mem.wrappers import DEFAULT_MEM_MODEL, MEM_MODELS

    return MEM_MODELS.card(DEFAULT_MEM_MODEL)["config"].get("met_sum_et_resolution") is not None


@pytest.fixture(scope="session")
def mem_tables(mem_files: dict[str, Path], shipped_sum_et: bool) -> dict[str, Any]:
    """MEM weight tables (``dy_sm``, ``zprime``; precision 0.3 %) of every selected event of the two samples,
    integrated with the MET resolution the shipped DeepMEM learned."""
    from coffea_mlreco.mem.tables import mem_table_from_file

    return {
        name: mem_table_from_file(
            path, ("dy_sm", "zprime"), precision=0.003, seed=5, n_workers=2, use_sum_et=shipped_sum_et
        )
        for name, path in mem_files.items()
    }
