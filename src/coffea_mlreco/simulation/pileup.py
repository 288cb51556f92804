"""Pileup: a cached minimum-bias library, overlaid on hard-scatter events.

The library holds the visible final-state particles (no neutrinos) of `PileupLibrary.size` Pythia
minimum-bias (`SoftQCD:inelastic`) events at one √s. It is generated once per user and √s, in the
user cache directory (`COFFEA_MLRECO_CACHE` overrides it), and read memory-mapped.

Overlay: each hard-scatter event gets n_PU ~ Poisson(μ) library events drawn at random, each rotated
by a random angle in φ and mirrored in η (z → −z) with probability 1/2, so reuse of the library does
not correlate events, and each gets its own vertex at z ~ N(0, σ_z) (σ_z from the detector module).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from coffea_mlreco.simulation.pythia_source import pythia_events

__all__ = ["PileupLibrary", "PileupParticles", "cache_dir", "load_or_build_library", "no_pileup", "overlay"]

LIBRARY_VERSION = 1
LIBRARY_SEED = 20260601
_COLUMNS = ("pt", "eta", "phi", "mass", "pdg_id", "charge")


def cache_dir() -> Path:
    """Where generated samples and the pileup library are cached (`COFFEA_MLRECO_CACHE` overrides)."""
    if os.environ.get("COFFEA_MLRECO_CACHE"):
        return Path(os.environ["COFFEA_MLRECO_CACHE"])
    import platformdirs

    return Path(platformdirs.user_cache_dir("coffea-mlreco"))


@dataclass
class PileupLibrary:
    """Visible final-state particles of minimum-bias events (flat columns + per-event offsets)."""

    offsets: np.ndarray
    pt: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    mass: np.ndarray
    pdg_id: np.ndarray
    charge: np.ndarray

    @property
    def size(self) -> int:
        return self.offsets.size - 1


@dataclass
class PileupParticles:
    """Overlaid pileup particles of a chunk: flat columns, with the event and vertex of each particle."""

    n_pileup: np.ndarray  # per event
    vertex_z: list[np.ndarray]  # per event: z (cm) of each pileup vertex
    event: np.ndarray
    vertex: np.ndarray  # 1..n_pileup within the event (0 is the hard scatter)
    pt: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    mass: np.ndarray
    pdg_id: np.ndarray
    charge: np.ndarray
    z: np.ndarray  # production vertex z of each particle (cm)


def _library_path(sqrt_s: float, size: int) -> Path:
    return cache_dir() / "pileup" / f"minbias_{sqrt_s:g}TeV_{size}ev_v{LIBRARY_VERSION}"


def _build_library(sqrt_s: float, size: int, chunk: int = 2000) -> dict[str, np.ndarray]:
    parts: dict[str, list[np.ndarray]] = {c: [] for c in _COLUMNS}
    counts = []
    for k, start in enumerate(range(0, size, chunk)):
        rec = pythia_events("minbias", min(chunk, size - start), seed=LIBRARY_SEED + k, sqrt_s=sqrt_s)
        visible = (rec.status > 0) & ~np.isin(np.abs(rec.pdg_id), (12, 14, 16))
        pt = np.hypot(rec.px, rec.py)
        visible &= pt > 0
        event = np.repeat(np.arange(rec.counts.size), rec.counts)[visible]
        counts.append(np.bincount(event, minlength=rec.counts.size))
        parts["pt"].append(pt[visible].astype(np.float32))
        parts["eta"].append(np.arcsinh(rec.pz[visible] / pt[visible]).astype(np.float32))
        parts["phi"].append(np.arctan2(rec.py[visible], rec.px[visible]).astype(np.float32))
        parts["mass"].append(rec.mass[visible].astype(np.float32))
        parts["pdg_id"].append(rec.pdg_id[visible].astype(np.int32))
        parts["charge"].append(rec.charge[visible].astype(np.int8))
    out = {c: np.concatenate(v) for c, v in parts.items()}
    out["offsets"] = np.concatenate([[0], np.cumsum(np.concatenate(counts))]).astype(np.int64)
    return out


def load_or_build_library(sqrt_s: float = 13.6, size: int = 10000, progress: bool = False) -> PileupLibrary:
    """Load the cached minimum-bias library for √s (TeV), building it first if it is not there."""
    path = _library_path(sqrt_s, size)
    if not (path / "offsets.npy").exists():
        if progress:
            print(f"building the pileup library ({size} minimum-bias events at {sqrt_s:g} TeV) in {path}")
        arrays = _build_library(sqrt_s, size)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=".building-"))
        for name, arr in arrays.items():
            np.save(tmp / f"{name}.npy", arr)
        try:
            tmp.rename(path)
        except OSError:  # another process finished first: use theirs
            shutil.rmtree(tmp, ignore_errors=True)
    arrays = {name: np.load(path / f"{name}.npy", mmap_mode="r") for name in ("offsets", *_COLUMNS)}
    return PileupLibrary(**arrays)


def overlay(
    library: PileupLibrary, n_events: int, mu: float, sigma_z_cm: float, rng: np.random.Generator
) -> PileupParticles:
    """Draw n_PU ~ Poisson(μ) library events per hard-scatter event, rotated, mirrored and displaced."""
    n_pu = rng.poisson(mu, size=n_events) if mu > 0 else np.zeros(n_events, np.int64)
    total = int(n_pu.sum())
    chosen = rng.integers(0, library.size, size=total)
    rotation = rng.uniform(-np.pi, np.pi, size=total)
    mirror = np.where(rng.random(total) < 0.5, -1.0, 1.0)
    z_vertex = rng.normal(0.0, sigma_z_cm, size=total)
    starts = library.offsets[chosen]
    sizes = library.offsets[chosen + 1] - starts
    overlay_of = np.repeat(np.arange(total), sizes)
    index = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes) + np.repeat(starts, sizes)
    event_of_overlay = np.repeat(np.arange(n_events), n_pu)
    vertex_of_overlay = np.arange(total) - np.repeat(np.cumsum(n_pu) - n_pu, n_pu) + 1
    phi = np.asarray(library.phi)[index] + rotation[overlay_of]
    phi = (phi + np.pi) % (2 * np.pi) - np.pi
    return PileupParticles(
        n_pileup=n_pu,
        vertex_z=np.split(z_vertex, np.cumsum(n_pu)[:-1]),
        event=event_of_overlay[overlay_of],
        vertex=vertex_of_overlay[overlay_of],
        pt=np.asarray(library.pt)[index],
        eta=np.asarray(library.eta)[index] * mirror[overlay_of],
        phi=phi.astype(np.float32),
        mass=np.asarray(library.mass)[index],
        pdg_id=np.asarray(library.pdg_id)[index],
        charge=np.asarray(library.charge)[index],
        z=z_vertex[overlay_of],
    )


def no_pileup(n_events: int) -> PileupParticles:
    """The pileup of a PU 0 sample: no interactions, no particles."""
    f4, i8 = np.zeros(0, np.float32), np.zeros(0, np.int64)
    return PileupParticles(
        n_pileup=np.zeros(n_events, np.int64),
        vertex_z=[np.zeros(0)] * n_events,
        event=i8,
        vertex=i8,
        pt=f4,
        eta=f4,
        phi=f4,
        mass=f4,
        pdg_id=np.zeros(0, np.int32),
        charge=np.zeros(0, np.int8),
        z=np.zeros(0),
    )
