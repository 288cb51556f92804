"""Hard-scatter events from Pythia 8 (`pythia8mc`), returned as flat per-particle arrays.

`pythia8mc.Pythia.nextBatch` gives awkward arrays of the full event record; here they become a
`ParticleRecord`: flat numpy columns over all particles of a chunk plus per-event counts, with the
Pythia indices kept (0 is the system entry, mothers/daughters index into the same event).

Reproducibility: each chunk re-seeds Pythia's generator (`Rndm::init`) with a seed derived from the
user seed and the chunk number, so a chunk's events do not depend on which worker made it or on what
that worker made before.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np

from coffea_mlreco.simulation.processes import COMMON_SETTINGS, process_spec

__all__ = ["ParticleRecord", "pythia_data_dir", "pythia_events"]

_MAX_PYTHIA_SEED = 900_000_000


@dataclass
class ParticleRecord:
    """Flat Pythia event records of a chunk of events.

    Columns are numpy arrays over all particles of all events; ``counts[i]`` particles belong to event i.
    Momenta in GeV; ``status``, ``mother1/2``, ``daughter1/2`` as in Pythia (indices local to the event).
    """

    counts: np.ndarray
    pdg_id: np.ndarray
    status: np.ndarray
    mother1: np.ndarray
    mother2: np.ndarray
    daughter1: np.ndarray
    daughter2: np.ndarray
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    energy: np.ndarray
    mass: np.ndarray
    charge: np.ndarray

    @property
    def offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.counts)]).astype(np.int64)


def pythia_data_dir() -> str | None:
    """The Pythia 8 data directory (`PYTHIA8DATA` if set, else the one inside the pythia8mc install)."""
    if os.environ.get("PYTHIA8DATA"):
        return os.environ["PYTHIA8DATA"]
    import sys

    candidate = os.path.join(sys.prefix, "share", "Pythia8", "xmldoc")
    return candidate if os.path.isdir(candidate) else None


@functools.lru_cache(maxsize=8)
def _initialised_pythia(settings: tuple[str, ...], sqrt_s: float) -> Any:  # a pythia8mc.Pythia (untyped module)
    """One initialised Pythia instance per (settings, √s) and process: init costs seconds, reuse it."""
    import pythia8mc

    xmldoc = pythia_data_dir()
    pythia = pythia8mc.Pythia(xmldoc, False) if xmldoc else pythia8mc.Pythia("", False)
    for line in (
        *COMMON_SETTINGS,
        f"Beams:eCM = {sqrt_s * 1000.0:.1f}",
        "Random:setSeed = on",
        "Random:seed = 1",
        *settings,
    ):
        if not pythia.readString(line):
            raise RuntimeError(f"Pythia rejected the setting {line!r}")
    if not pythia.init():
        raise RuntimeError(f"Pythia failed to initialise with settings {settings}")
    return pythia


def _charges(pythia: Any, pdg_ids: np.ndarray) -> np.ndarray:
    unique, inverse = np.unique(pdg_ids, return_inverse=True)
    table = np.array([pythia.particleData.charge(int(i)) for i in unique], dtype=np.float32)
    return table[inverse].reshape(pdg_ids.shape)


def pythia_events(process: str, n_events: int, seed: int, sqrt_s: float = 13.6) -> ParticleRecord:
    """Generate ``n_events`` events of ``process`` at √s = ``sqrt_s`` TeV, reproducibly from ``seed``.

    Processes with several variants (tt̄ → ℓ+jets: ℓ⁺ or ℓ⁻) mix them 50/50, event by event.
    """
    spec = process_spec(process)
    rng = np.random.default_rng([seed, 7919])
    which = rng.integers(0, len(spec.variants), size=n_events)
    pieces: list[ak.Array] = []
    order: list[np.ndarray] = []
    pythia = None
    for k, settings in enumerate(spec.variants):
        n_k = int(np.sum(which == k))
        if n_k == 0:
            continue
        pythia = _initialised_pythia(settings, sqrt_s)
        pythia.rndm.init(int(rng.integers(1, _MAX_PYTHIA_SEED)))
        batch = pythia.nextBatch(n_k, errorMode="skip")
        while len(batch) < n_k:  # "skip" drops failed events: top up
            batch = ak.concatenate([batch, pythia.nextBatch(n_k - len(batch), errorMode="skip")])
        pieces.append(batch.prt)
        order.append(np.flatnonzero(which == k))
    if not pieces:
        return _empty_record()
    prt = ak.concatenate(pieces)[np.argsort(np.concatenate(order), kind="stable")]
    flat = ak.flatten(prt)
    pdg_id = ak.to_numpy(flat.id).astype(np.int32)
    momentum = flat.p
    return ParticleRecord(
        counts=ak.to_numpy(ak.num(prt)).astype(np.int64),
        pdg_id=pdg_id,
        status=ak.to_numpy(flat.status).astype(np.int32),
        mother1=ak.to_numpy(flat.mother1).astype(np.int32),
        mother2=ak.to_numpy(flat.mother2).astype(np.int32),
        daughter1=ak.to_numpy(flat.daughter1).astype(np.int32),
        daughter2=ak.to_numpy(flat.daughter2).astype(np.int32),
        px=ak.to_numpy(momentum.px),
        py=ak.to_numpy(momentum.py),
        pz=ak.to_numpy(momentum.pz),
        energy=ak.to_numpy(momentum.e),
        mass=ak.to_numpy(flat.m),
        charge=_charges(pythia, pdg_id),
    )


def _empty_record() -> ParticleRecord:
    i4, f8 = np.zeros(0, np.int32), np.zeros(0, np.float64)
    return ParticleRecord(np.zeros(0, np.int64), i4, i4, i4, i4, i4, i4, f8, f8, f8, f8, f8, f8.astype(np.float32))
