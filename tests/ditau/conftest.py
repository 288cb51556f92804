"""Di-tau test samples (H→ττ and Z→ττ from our simulation, PU 0, generated once per session), their
generator truth, the two baseline reconstructions, exact collinear toy events, and metric helpers.

Module-level helpers are reached through fixtures only (``tests/`` has several conftest.py files).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest
from scipy.stats import rankdata

from coffea_mlreco.core.constants import M_TAU
from coffea_mlreco.core.truth import TauDecay, tau_decays
from coffea_mlreco.ditau.collinear_mass import collinear_mass
from coffea_mlreco.ditau.fastmtt import fastmtt_mass
from coffea_mlreco.ditau.inputs import Channel, ditau_candidates
from coffea_mlreco.simulation import generate_sample

SAMPLES = {"htautau": (1500, 611), "ztautau": (2500, 612)}  # process: (events, seed); PU 0
SMALL_SAMPLE = ("htautau", 300, 614)  # the mode matrix's sample: (process, events, seed); PU 0


def open_events(path: Path) -> Any:
    from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # cross-references to collections the file lacks
        return NanoEventsFactory.from_root({str(path): "Events"}, schemaclass=NanoAODSchema, mode="eager").events()


def generator_truth(events: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per event the generator di-tau mass (GeV; NaN without two prompt taus) and the :class:`Channel` code
    of the two tau decays (−1 when a decay is unknown)."""
    taus = tau_decays(events)
    two = ak.to_numpy(ak.num(taus) == 2)
    p4 = taus.visible + taus.invisible
    e, px, py, pz = (ak.to_numpy(ak.sum(getattr(p4, c), axis=1)) for c in "txyz")
    m_gen = np.where(two, np.sqrt(np.maximum(e**2 - px**2 - py**2 - pz**2, 0.0)), np.nan)
    decay = ak.pad_none(taus.decay, 2, clip=True)
    d1, d2 = (ak.to_numpy(ak.fill_none(decay[:, k], -1)) for k in (0, 1))
    n_had = (d1 == TauDecay.HADRONIC).astype(int) + (d2 == TauDecay.HADRONIC)
    n_e = (d1 == TauDecay.ELECTRON).astype(int) + (d2 == TauDecay.ELECTRON)
    n_mu = (d1 == TauDecay.MUON).astype(int) + (d2 == TauDecay.MUON)
    channel = np.select(
        [
            n_had == 2,
            (n_mu == 1) & (n_had == 1),
            (n_e == 1) & (n_had == 1),
            (n_e == 1) & (n_mu == 1),
            n_mu == 2,
            n_e == 2,
        ],
        [Channel.TAUTAU, Channel.MUTAU, Channel.ETAU, Channel.EMU, Channel.MUMU, Channel.EE],
        Channel.NONE,
    )
    return m_gen, np.where(two, channel, Channel.NONE).astype(np.int64)


def visible_mass(leg1: ak.Array, leg2: ak.Array) -> np.ndarray:
    """m(leg1 + leg2) in GeV."""
    total = np.zeros((len(leg1), 4))
    for leg in (leg1, leg2):
        pt, eta, phi, mass = (ak.to_numpy(leg[f]) for f in ("pt", "eta", "phi", "mass"))
        total += np.stack(
            [pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), np.sqrt((pt * np.cosh(eta)) ** 2 + mass**2)], axis=1
        )
    return np.sqrt(np.maximum(total[:, 3] ** 2 - (total[:, :3] ** 2).sum(axis=1), 0.0))


@dataclass
class Reconstructed:
    """Selected events of one sample with truth and every mass estimate (arrays aligned, one per event)."""

    candidates: ak.Array
    m_gen: np.ndarray
    gen_channel: np.ndarray
    m_vis: np.ndarray
    collinear: ak.Array
    fastmtt: ak.Array


@pytest.fixture(scope="session")
def ditau_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if "COFFEA_MLRECO_CACHE" not in os.environ:
        os.environ["COFFEA_MLRECO_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    folder = tmp_path_factory.mktemp("ditau")
    return {
        name: generate_sample(name, n, 0, seed=seed, output=folder / f"{name}.root", progress=False, drop=("PFCands",))
        for name, (n, seed) in SAMPLES.items()
    }


@pytest.fixture(scope="session")
def ditau_small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small H→ττ file (300 events, PU 0, with TauProd, without PFCands) for tests that run every mode."""
    if "COFFEA_MLRECO_CACHE" not in os.environ:
        os.environ["COFFEA_MLRECO_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    process, n, seed = SMALL_SAMPLE
    return generate_sample(
        process,
        n,
        0,
        seed=seed,
        output=tmp_path_factory.mktemp("ditau_small") / "small.root",
        progress=False,
        drop=("PFCands",),
    )


def _copy_events(source: Path, target: Path, edit: Callable[[dict[str, Any]], None] | None = None) -> Path:
    """Write the ``Events`` tree of ``source`` to ``target`` (a TTree with the same branches and types), after
    ``edit(branches)`` (branches: ``{"Tau": record array, ..., "MET_pt": array}``, edited in place)."""
    import uproot

    arrays = uproot.open(source)["Events"].arrays()
    names = ak.fields(arrays)
    branches: dict[str, Any] = {}
    done: set[str] = set()
    for counter in names:
        collection = counter[1:]
        fields = [f for f in names if f.startswith(f"{collection}_") and arrays[f].ndim > 1]
        if counter.startswith("n") and fields:
            branches[collection] = ak.zip({f[len(collection) + 1 :]: arrays[f] for f in fields})
            done |= {counter, *fields}
    branches.update({name: arrays[name] for name in names if name not in done})
    if edit is not None:
        edit(branches)
    with uproot.recreate(target) as f:
        f.mktree("Events", branches)
    return target


@pytest.fixture(scope="session")
def copy_events() -> Callable[..., Path]:
    """``copy_events(source, target, edit=None)``: a copy of a NanoAOD file, optionally edited (see the helper)."""
    return _copy_events


@pytest.fixture(scope="session")
def ditau_events(ditau_files: dict[str, Path]) -> dict[str, Any]:
    """Eager NanoEvents of the H→ττ (``htautau``) and Z→ττ (``ztautau``) samples."""
    return {name: open_events(path) for name, path in ditau_files.items()}


@pytest.fixture(scope="session")
def reconstructed(ditau_events: dict[str, Any]) -> dict[str, Reconstructed]:
    """Per sample: selected events with two generator taus, their truth and the collinear/FastMTT results."""
    out = {}
    for name, events in ditau_events.items():
        candidates = ditau_candidates(events)
        m_gen, gen_channel = generator_truth(events)
        keep = ak.to_numpy(candidates.selected) & np.isfinite(m_gen)
        cand = candidates[keep]
        out[name] = Reconstructed(
            cand,
            m_gen[keep],
            gen_channel[keep],
            visible_mass(cand.leg1, cand.leg2),
            collinear_mass(cand.leg1, cand.leg2, cand.met),
            fastmtt_mass(cand.leg1, cand.leg2, cand.met),
        )
    return out


def _resolution(ratio: np.ndarray) -> float:
    """(P84 − P16)/2 of m_reco/m_gen − 1."""
    p16, p84 = np.percentile(ratio, [16, 84])
    return float(p84 - p16) / 2


def _auc(signal: np.ndarray, background: np.ndarray) -> float:
    """ROC AUC of a score that should be larger for ``signal`` (Mann-Whitney U from ranks, ties averaged)."""
    ranks = rankdata(np.concatenate([signal, background]))
    n_s, n_b = len(signal), len(background)
    return float((ranks[:n_s].sum() - n_s * (n_s + 1) / 2) / (n_s * n_b))


@pytest.fixture(scope="session")
def resolution() -> Callable[[np.ndarray], float]:
    return _resolution


@pytest.fixture(scope="session")
def auc() -> Callable[[np.ndarray, np.ndarray], float]:
    return _auc


def _collinear_toys(n: int, seed: int, resonance_mass: float = 125.0, cov: float = 0.01) -> dict[str, Any]:
    """Exact collinear di-tau events: a resonance (random pT, rapidity) decays isotropically to two taus
    (mass M_TAU); each visible leg is x·p_τ (x uniform in [0.15, 0.95]), the MET the sum of (1 − x)·p_T,τ,
    with covariance ``cov``·1 (GeV²). Legs: leg1 hadronic, leg2 muon."""
    rng = np.random.default_rng(seed)
    p_star = np.sqrt(resonance_mass**2 / 4 - M_TAU**2)
    cos_t, phi_t = rng.uniform(-1, 1, n), rng.uniform(-np.pi, np.pi, n)
    sin_t = np.sqrt(1 - cos_t**2)
    d = np.stack([sin_t * np.cos(phi_t), sin_t * np.sin(phi_t), cos_t], axis=1)
    e_star = resonance_mass / 2
    pt_r, y_r, phi_r = rng.exponential(30.0, n), rng.uniform(-1.5, 1.5, n), rng.uniform(-np.pi, np.pi, n)
    mt = np.hypot(resonance_mass, pt_r)
    boson = np.stack([pt_r * np.cos(phi_r), pt_r * np.sin(phi_r), mt * np.sinh(y_r), mt * np.cosh(y_r)], axis=1)
    beta = boson[:, :3] / boson[:, 3:4]
    gamma = boson[:, 3] / resonance_mass
    taus = []
    for sign in (1.0, -1.0):
        p = sign * p_star * d
        bp = (beta * p).sum(axis=1)
        coef = (gamma - 1) * bp / np.maximum((beta**2).sum(axis=1), 1e-300) + gamma * e_star
        taus.append(np.concatenate([p + coef[:, None] * beta, (gamma * (e_star + bp))[:, None]], axis=1))
    x = rng.uniform(0.15, 0.95, (2, n))
    legs = []
    for k, kind in ((0, 0), (1, 2)):
        vis = taus[k] * x[k][:, None]
        pt = np.hypot(vis[:, 0], vis[:, 1])
        legs.append(
            ak.zip(
                {
                    "pt": pt,
                    "eta": np.arcsinh(vis[:, 2] / pt),
                    "phi": np.arctan2(vis[:, 1], vis[:, 0]),
                    "mass": x[k] * M_TAU,
                    "kind": np.full(n, kind),
                }
            )
        )
    nu = (1 - x[0])[:, None] * taus[0] + (1 - x[1])[:, None] * taus[1]
    met = ak.zip(
        {"px": nu[:, 0], "py": nu[:, 1], "covXX": np.full(n, cov), "covXY": np.zeros(n), "covYY": np.full(n, cov)}
    )
    return {"leg1": legs[0], "leg2": legs[1], "met": met, "x1": x[0], "x2": x[1], "mass": resonance_mass}


@pytest.fixture(scope="session")
def collinear_toys() -> Callable[..., dict[str, Any]]:
    """``collinear_toys(n, seed, resonance_mass=125, cov=0.01)``: exact collinear events (see the helper)."""
    return _collinear_toys
