"""The coffea modes a ``reconstruct`` function must give identical columns in, for the tests of every task.

``columns_in_mode(reconstruct, path, mode, names, client=...)`` opens ``path`` in ``mode`` — eager, virtual,
dask (``compute`` on the threaded scheduler) or apply_to_fileset (coffea's ``dataset_tools.apply_to_fileset``
computed on a ``distributed.Client``) — runs ``reconstruct(events)`` and returns the new columns ``names`` as one
eager record array; ``assert_same_columns`` compares two such arrays NaN-aware (NaN equals NaN, nothing else
is tolerated). Import it from a test module as ``from column_modes import ...`` (tests/ is on sys.path).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import awkward as ak
import dask
import numpy as np
from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

from coffea_mlreco.core.columns import to_numpy

MODES = ("eager", "virtual", "dask", "apply_to_fileset")


class _QuietSchema(NanoAODSchema):
    """NanoAODSchema without its warnings about cross-references a small file lacks."""

    def __init__(self, base_form: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            super().__init__(base_form, *args, **kwargs)


def open_events(path: Path | str, mode: str) -> Any:
    """NanoEvents of ``path`` in coffea mode ``mode`` (``eager``, ``virtual`` or ``dask``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return NanoEventsFactory.from_root({str(path): "Events"}, schemaclass=_QuietSchema, mode=mode).events()


def _select(events: Any, names: Sequence[str]) -> Any:
    """The columns ``names`` (``"MLMET"`` or a path ``"PFCands.puppiWeightReco"``) as one record per event."""
    fields = {}
    for name in names:
        value = events
        for part in name.split("."):
            value = value[part]
        fields[name] = value
    if type(events).__module__.startswith("dask_awkward"):
        import dask_awkward as dak

        return dak.zip(fields, depth_limit=1)
    return ak.zip(fields, depth_limit=1)


def columns_in_mode(
    reconstruct: Callable[[Any], Any], path: Path | str, mode: str, names: Sequence[str], client: Any = None
) -> ak.Array:
    """The columns ``names`` that ``reconstruct`` appends to the events of ``path`` opened in ``mode``."""
    if mode in ("eager", "virtual"):
        return ak.Array(ak.to_packed(_select(reconstruct(open_events(path, mode)), names)))
    if mode == "dask":
        events = open_events(path, "dask")
        selected = _select(reconstruct(events), names)
        with warnings.catch_warnings():  # the session's distributed client may be active: threads on purpose
            warnings.filterwarnings("ignore", message="Running on a single-machine scheduler")
            (out,) = dask.compute(selected, scheduler="threads")
        return out
    if mode == "apply_to_fileset":
        from coffea.dataset_tools import apply_to_fileset

        if client is None:
            raise ValueError("apply_to_fileset mode needs a distributed.Client")
        fileset = {"sample": {"files": {str(path): "Events"}}}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            graphs = apply_to_fileset(
                lambda events: _select(reconstruct(events), names), fileset, schemaclass=_QuietSchema
            )
        (out,) = dask.compute(graphs["sample"], scheduler=client.get)
        return out
    raise ValueError(f"unknown mode {mode!r}")


def _leaves(array: ak.Array, prefix: str = "") -> dict[str, ak.Array]:
    if not ak.fields(array):
        return {prefix: array}
    out: dict[str, ak.Array] = {}
    for field in ak.fields(array):
        out.update(_leaves(array[field], f"{prefix}.{field}" if prefix else field))
    return out


def assert_same_columns(actual: ak.Array, expected: ak.Array) -> None:
    """Equal structure and values, NaN equal to NaN (outputs of invalid or unselected events are NaN)."""
    assert len(actual) == len(expected), f"{len(actual)} events vs {len(expected)}"
    left, right = _leaves(actual), _leaves(expected)
    assert sorted(left) == sorted(right), f"fields differ: {sorted(left)} vs {sorted(right)}"
    for name, values in right.items():
        a, b = left[name], values
        assert ak.to_list(ak.num(a, axis=1)) == ak.to_list(ak.num(b, axis=1)) if a.ndim > 1 else True, name
        flat_a = to_numpy(ak.flatten(a, axis=None))
        flat_b = to_numpy(ak.flatten(b, axis=None))
        np.testing.assert_array_equal(flat_a, flat_b, err_msg=f"column {name} differs")
