"""Shared fixtures: locations of the real CMS NanoAOD test files, a small synthetic NanoAOD-like file with
PF candidates written with uproot, a hook to the package's own simulation when it exists, and
``as_collision_data``, which copies a generated file without its simulation-only branches.

Test modules use these through fixtures only (``write_nano`` gives the file writer): importing from
``conftest`` would be ambiguous, since tests/simulation has its own conftest.py.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_file(name: str) -> Path:
    """Path of a real NanoAOD file in ../shared/data, or skip the test when absent."""
    path = SHARED_DATA / name
    if not path.is_file():
        pytest.skip(f"real NanoAOD test file {path} is absent (only present in the development checkout)")
    return path


def write_synthetic_nano(
    path: Path,
    n_events: int = 400,
    seed: int = 1,
    *,
    with_pfcands: bool = True,
    drop: tuple[str, ...] = (),
) -> Path:
    """Write a NanoAOD/PFNano-like ``Events`` tree with realistic random values (GeV, rad).

    GenMET is exponential (mean 40 GeV) with uniform azimuth; PF candidates are soft particles
    (Poisson mean 150, exponential pT of mean 1.5 GeV) plus one hadronic-recoil candidate that balances
    them so PF MET ≈ GenMET up to a 12 GeV Gaussian smearing per component; event 3 has no candidates.
    The file's MET is PF MET with an extra 5 GeV smearing and 3 % scale. ``drop`` removes the named
    collections (e.g. ``"GenMET"``) before writing.
    """
    rng = np.random.default_rng(seed)
    gen_pt = rng.exponential(40.0, n_events)
    gen_phi = rng.uniform(-np.pi, np.pi, n_events)
    n_soft = rng.poisson(150, n_events)
    if n_events > 3:
        n_soft[3] = 0
    total = int(n_soft.sum())
    soft = {
        "pt": rng.exponential(1.5, total) + 0.2,
        "eta": rng.uniform(-4.7, 4.7, total),
        "phi": rng.uniform(-np.pi, np.pi, total),
    }
    offsets = np.concatenate([[0], np.cumsum(n_soft)])
    event_of = np.repeat(np.arange(n_events), n_soft)
    sum_px = np.bincount(event_of, soft["pt"] * np.cos(soft["phi"]), minlength=n_events)
    sum_py = np.bincount(event_of, soft["pt"] * np.sin(soft["phi"]), minlength=n_events)
    # recoil candidate: total visible momentum = −(GenMET + smearing)
    target_px = -(gen_pt * np.cos(gen_phi) + rng.normal(0, 12.0, n_events))
    target_py = -(gen_pt * np.sin(gen_phi) + rng.normal(0, 12.0, n_events))
    rec_px, rec_py = target_px - sum_px, target_py - sum_py
    has = n_soft > 0
    counts = n_soft + has
    pts, etas, phis = [], [], []
    for i in range(n_events):
        sl = slice(offsets[i], offsets[i + 1])
        if has[i]:
            pts.append(np.append(soft["pt"][sl], np.hypot(rec_px[i], rec_py[i])))
            etas.append(np.append(soft["eta"][sl], rng.normal(0, 1.5)))
            phis.append(np.append(soft["phi"][sl], np.arctan2(rec_py[i], rec_px[i])))
        else:
            pts.append(np.empty(0)), etas.append(np.empty(0)), phis.append(np.empty(0))
    flat_n = int(counts.sum())
    empty = np.empty(0)
    pdg = rng.choice([211, -211, 22, 130, 11, -13], flat_n).astype(np.int32)
    charge = np.where(np.isin(pdg, [22, 130]), 0, np.sign(pdg)).astype(np.int32)
    charge[np.abs(pdg) == 11] = -np.sign(pdg[np.abs(pdg) == 11])
    charge[np.abs(pdg) == 13] = -np.sign(pdg[np.abs(pdg) == 13])

    def jag(flat: np.ndarray) -> ak.Array:
        return ak.unflatten(flat, counts)

    pfcands = ak.zip(
        {
            "pt": jag(np.concatenate([empty, *pts]).astype(np.float32)),
            "eta": jag(np.concatenate([empty, *etas]).astype(np.float32)),
            "phi": jag(np.concatenate([empty, *phis]).astype(np.float32)),
            "mass": jag(np.where(np.abs(pdg) == 211, 0.1396, 0.0).astype(np.float32)),
            "charge": jag(charge),
            "pdgId": jag(pdg),
            "fromPV": jag(np.where(charge != 0, rng.choice([0, 1, 2, 3], flat_n), 0).astype(np.uint8)),
            "pvAssocQuality": jag(rng.choice([0, 4, 5, 6, 7], flat_n).astype(np.uint8)),
            "dz": jag(rng.normal(0, 0.1, flat_n).astype(np.float32)),
        }
    )
    pf_px = -ak.to_numpy(ak.sum(pfcands.pt * np.cos(pfcands.phi), axis=1))
    pf_py = -ak.to_numpy(ak.sum(pfcands.pt * np.sin(pfcands.phi), axis=1))
    met_px = 1.03 * pf_px + rng.normal(0, 5.0, n_events)
    met_py = 1.03 * pf_py + rng.normal(0, 5.0, n_events)

    n_jet = rng.poisson(3, n_events)
    n_j = int(n_jet.sum())
    jets = ak.zip(
        {
            "pt": ak.unflatten((rng.exponential(30.0, n_j) + 15.0).astype(np.float32), n_jet),
            "eta": ak.unflatten(rng.uniform(-4.7, 4.7, n_j).astype(np.float32), n_jet),
            "phi": ak.unflatten(rng.uniform(-np.pi, np.pi, n_j).astype(np.float32), n_jet),
            "mass": ak.unflatten(rng.uniform(2.0, 15.0, n_j).astype(np.float32), n_jet),
            "btagDeepFlavB": ak.unflatten(rng.uniform(0, 1, n_j).astype(np.float32), n_jet),
        }
    )
    # two neutrinos whose vector sum is GenMET, from a parent boson at index 0
    n_gen = np.full(n_events, 3)
    nu_pt = np.stack([gen_pt * 0.5, gen_pt * 0.5, np.zeros(n_events)], axis=1)
    gen = ak.zip(
        {
            "pt": ak.unflatten(np.stack([gen_pt, *nu_pt.T[:2]], axis=1).ravel().astype(np.float32), n_gen),
            "eta": ak.unflatten(rng.normal(0, 2, 3 * n_events).astype(np.float32), n_gen),
            "phi": ak.unflatten(np.repeat(gen_phi, 3).astype(np.float32), n_gen),
            "mass": ak.unflatten(np.tile([91.19, 0.0, 0.0], n_events).astype(np.float32), n_gen),
            "pdgId": ak.unflatten(np.tile([23, 12, -12], n_events).astype(np.int32), n_gen),
            "status": ak.unflatten(np.tile([62, 1, 1], n_events).astype(np.int32), n_gen),
            "statusFlags": ak.unflatten(np.tile([10497, 12673, 12673], n_events).astype(np.int32), n_gen),
            "genPartIdxMother": ak.unflatten(np.tile([-1, 0, 0], n_events).astype(np.int32), n_gen),
        }
    )
    branches: dict[str, object] = {
        "run": np.ones(n_events, dtype=np.uint32),
        "luminosityBlock": (1 + np.arange(n_events) // 100).astype(np.uint32),
        "event": (seed * 1_000_000 + np.arange(n_events)).astype(np.uint64),
        "MET_pt": np.hypot(met_px, met_py).astype(np.float32),
        "MET_phi": np.arctan2(met_py, met_px).astype(np.float32),
        "MET_sumEt": ak.to_numpy(ak.sum(pfcands.pt, axis=1)).astype(np.float32),
        "GenMET_pt": gen_pt.astype(np.float32),
        "GenMET_phi": gen_phi.astype(np.float32),
        "Pileup_nPU": rng.poisson(30, n_events).astype(np.int32),
        "PV_npvs": rng.poisson(25, n_events).astype(np.int32),
        "Jet": jets,
        "GenPart": gen,
    }
    if with_pfcands:
        branches["PFCands"] = pfcands
    for name in drop:
        for key in [k for k in branches if k == name or k.startswith(f"{name}_")]:
            del branches[key]
    with uproot.recreate(path) as f:
        f.mktree("Events", branches)
    return path


def collision_data_copy(source: Path, destination: Path) -> Path:
    """Copy ``source`` (a file written by ``coffea-mlreco generate``) to ``destination`` without the branches only
    simulation has (``coffea_mlreco.core.nanoaod.SIMULATION_PREFIXES``: the generator record, GenMET, pileup
    truth): a file that looks like collision data to every task, with the same reconstructed objects."""
    from coffea_mlreco.core.nanoaod import is_collision_data
    from coffea_mlreco.simulation.nanoaod_writer import NanoAODWriter, branch_layout, read_chunk

    with uproot.open(source) as handle:
        tree = handle["Events"]
        layout = {name: fields for name, fields in branch_layout(tree).items() if is_collision_data([name])}
        chunk = read_chunk(tree, layout, 0, tree.num_entries)
    with NanoAODWriter(destination) as writer:
        writer.write(chunk)
    return destination


@pytest.fixture(scope="session")
def as_collision_data() -> Callable[[Path, Path], Path]:
    """:func:`collision_data_copy` (source, destination) → destination."""
    return collision_data_copy


@pytest.fixture(scope="session")
def write_nano() -> Callable[..., Path]:
    """The synthetic file writer :func:`write_synthetic_nano` (path, n_events, seed, with_pfcands, drop)."""
    return write_synthetic_nano


@pytest.fixture(scope="session")
def synthetic_nano(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 400-event synthetic NanoAOD-like file with PF candidates (event 3 has none)."""
    return write_synthetic_nano(tmp_path_factory.mktemp("synthetic") / "synthetic_nano.root")


@pytest.fixture(scope="session")
def real_nano_tt() -> Path:
    return shared_file("nano_tt_v12.root")


@pytest.fixture(scope="session")
def real_nano_tt_v15() -> Path:
    """The real CMS NanoAODv15 tt̄ file (200 events: PFMET, computed jet ID, DeepMET tunes); skipped when absent."""
    return shared_file("nano_tt_v15.root")


@pytest.fixture(scope="session")
def real_nano_dy() -> Path:
    """The real CMS Drell-Yan NanoAOD file (40 events, no PF candidates); skipped when absent."""
    return shared_file("nano_dy.root")


@pytest.fixture(scope="session")
def real_nano_dimuon() -> Path:
    """Real CMS 2018 collision data (40 dimuon events, no generator branches); skipped when absent."""
    return shared_file("nano_dimuon.root")


@pytest.fixture(scope="session")
def generated_nano(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small sample from ``coffea_mlreco.simulation.generate_sample`` (skipped until it exists)."""
    try:
        simulation = importlib.import_module("coffea_mlreco.simulation")
        generate_sample = simulation.generate_sample
    except (ImportError, AttributeError):
        pytest.skip("coffea_mlreco.simulation.generate_sample is not available yet")
    output = tmp_path_factory.mktemp("generated") / "dy_ll_pu0.root"
    generate_sample("dy-ll", 200, 0, 7, output)  # (process, events, pileup, seed, output)
    return Path(output)


@pytest.fixture(scope="session")
def dask_client() -> Iterator[object]:
    """One local dask cluster (2 worker processes, 1 thread each), started once and shared by every
    test that needs it (starting one costs seconds on 2 cores)."""
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client
