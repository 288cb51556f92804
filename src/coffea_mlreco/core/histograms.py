"""Histograms and counts that a processor builds the same way on eager and on dask-awkward events.

On eager (or virtual) events a processor fills ``hist.Hist``; on dask-awkward events it fills
``hist.dask.Hist`` (from ``dask_histogram``), which is computed later with the rest of the graph and then
equals the eager one bin for bin when the fill values are the same.
"""

from __future__ import annotations

from typing import Any

import hist

from coffea_mlreco.core.columns import Events, is_dask
from coffea_mlreco.core.nanoaod import is_collision_data

__all__ = ["collision_data_events", "count_true", "event_count", "new_hist"]


def new_hist(*axes: Any, like: Any, storage: Any = None) -> Any:
    """A ``hist.Hist`` with ``axes`` (``storage`` default ``Double``), or a ``hist.dask.Hist`` when ``like`` (the
    events being processed) is a dask-awkward array."""
    storage = hist.storage.Double() if storage is None else storage
    if is_dask(like):
        import hist.dask as hda

        return hda.Hist(*axes, storage=storage)
    return hist.Hist(*axes, storage=storage)


def collision_data_events(events: Events) -> Any:
    """The events' count (:func:`event_count`) when they are collision data (no simulation-only field,
    :func:`coffea_mlreco.core.nanoaod.is_collision_data`), else 0: a processor's ``"events_collision_data"``,
    from which a report section knows to show distributions and no truth metrics."""
    return event_count(events) if is_collision_data(events.fields) else 0


def event_count(events: Events) -> Any:
    """Number of events: an ``int`` for eager arrays, a lazy dask scalar for dask-awkward ones."""
    if is_dask(events):
        import dask_awkward as dak

        return dak.num(events, axis=0)
    return len(events)


def count_true(mask: Any) -> Any:
    """Number of True entries of a per-event boolean array: an ``int`` eagerly, a lazy dask scalar in dask mode."""
    if is_dask(mask):
        import dask_awkward as dak

        return dak.sum(mask, axis=None)
    import awkward as ak

    return int(ak.sum(mask, axis=None))
