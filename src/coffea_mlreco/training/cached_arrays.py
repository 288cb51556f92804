"""Training arrays built once per generated file and cached as .npz, keyed by the file's path, size and mtime.

Every task's trainer turns a ROOT file into a dict of numpy arrays (inputs and truth); building them reads
and selects the whole file, so it is done once and stored in a cache directory next to the output. A cache file
is written under a temporary name and renamed when complete (`coffea_mlreco.core.outputs`), so an interrupted
build leaves no truncated cache to be read later.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np

from coffea_mlreco.core.outputs import atomic_file

__all__ = ["cached_arrays", "concat_arrays", "event_chunks", "open_events"]

CHUNK_EVENTS = 2000
"""Events per chunk of :func:`event_chunks` (a PU 200 chunk with PF candidates is ~1 GB in memory)."""


def open_events(path: str | Path, entry_start: int | None = None, entry_stop: int | None = None) -> Any:
    """Eager NanoEvents (``NanoAODSchema``) of a file's ``Events`` tree (entries ``entry_start`` to
    ``entry_stop``; None: all)."""
    from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # cross-references to collections the file lacks
        return NanoEventsFactory.from_root(
            {str(path): "Events"},
            schemaclass=NanoAODSchema,
            mode="eager",
            entry_start=entry_start,
            entry_stop=entry_stop,
        ).events()


def event_chunks(path: str | Path, step: int = CHUNK_EVENTS) -> Iterator[Any]:
    """Eager NanoEvents (``NanoAODSchema``) of a file's ``Events`` tree, ``step`` events at a time: what a build
    that reads PF candidates at high pileup iterates over, instead of the whole file at once."""
    import uproot

    with uproot.open(path) as f:
        n = f["Events"].num_entries
    for start in range(0, n, step):
        yield open_events(path, start, min(n, start + step))


def cached_arrays(
    path: str | Path,
    cache_dir: str | Path,
    prefix: str,
    build: Callable[[Any], dict[str, np.ndarray]],
    key_parts: tuple[Any, ...] = (),
    read: Callable[[Path], Any] | None = None,
) -> dict[str, np.ndarray]:
    """``build(read(path))``, cached as ``<cache_dir>/<prefix>-<stem>-<key>.npz``; ``key_parts`` are the
    build settings that change the arrays (e.g. the number of jets kept); ``read`` opens the file (None: its
    NanoEvents, :func:`open_events`)."""
    stat = Path(path).stat()
    key = ":".join(str(p) for p in (Path(path).resolve(), stat.st_size, stat.st_mtime_ns, *key_parts, "v1"))
    cache = Path(cache_dir) / f"{prefix}-{Path(path).stem}-{hashlib.sha1(key.encode()).hexdigest()[:12]}.npz"
    if cache.exists():
        with np.load(cache) as f:
            return {k: f[k] for k in f.files}
    data = build((read or open_events)(Path(path)))
    with atomic_file(cache) as partial, partial.open("wb") as stream:
        np.savez(stream, **cast("dict[str, Any]", data))  # numpy's stub reads ** as allow_pickle
    return data


def concat_arrays(sets: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The arrays of several files, concatenated along the event axis."""
    return {k: np.concatenate([s[k] for s in sets]) for k in sets[0]}
