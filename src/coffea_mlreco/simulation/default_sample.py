"""The embedded default sample: small files generated once per user and cached.

`coffea-mlreco evaluate` with no input runs every task on these. They are made with fixed seeds, so
every user gets the same events; the cache key holds the package's simulation version. They carry the detector
elements (``generate --elements``: ``PFTrack``, ``PFCluster``, ``PFTarget``), so that MLPF runs beside the other four
tasks; the other branches are those of a file without elements. At pileup 60 that makes each file about 4× larger
(about 220 MB per 1000 tt̄ events instead of 50 MB).
"""

from __future__ import annotations

from pathlib import Path

from coffea_mlreco.simulation.generate import generate_sample
from coffea_mlreco.simulation.pileup import cache_dir

__all__ = ["DEFAULT_SAMPLES", "default_sample"]

SIMULATION_VERSION = 2
"""Part of the cache key: 2 since the files carry the detector elements."""

DEFAULT_SAMPLES: tuple[tuple[str, int, float, int], ...] = (
    # (process, events, mean pileup, seed)
    ("ttbar-semilep", 1000, 60.0, 101),
    ("dy-ll", 1000, 60.0, 102),
)


def default_sample(jobs: int = 1, progress: bool = True, processes: tuple[str, ...] | None = None) -> list[Path]:
    """Paths of the default sample's files (only those of ``processes`` if given, e.g. ``("ttbar-semilep",)``),
    generating (and caching) any that are missing."""
    known = [sample[0] for sample in DEFAULT_SAMPLES]
    unknown = sorted(set(processes or ()) - set(known))
    if unknown:
        raise ValueError(f"the default sample has no process {unknown}; it has {', '.join(known)}")
    paths = []
    for process, events, pileup, seed in DEFAULT_SAMPLES:
        if processes is not None and process not in processes:
            continue
        path = cache_dir() / "default" / f"v{SIMULATION_VERSION}_{process}_PU{pileup:g}_{events}ev_seed{seed}.root"
        if not path.exists():  # generate_sample writes a complete file or none (an interrupted run leaves none)
            generate_sample(process, events, pileup, seed, path, jobs=jobs, progress=progress, elements=True)
        paths.append(path)
    return paths
