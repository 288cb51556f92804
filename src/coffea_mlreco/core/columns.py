"""Append reconstructed columns to coffea NanoEvents in every mode: eager, virtual and dask-awkward.

A task describes its reconstruction by two things:

- the input columns it reads, as data (:data:`InputColumns`): ``{"PFCands": ("pt", "eta", ...), "PV":
  ("npvsGood",)}``. They are checked against the file before anything runs (a missing one is a
  :class:`MissingBranchError` naming the branch), they are what dask-awkward's column optimisation reads
  (:func:`input_branches` lists them as NanoAOD branch names), and they are what the per-event validity
  check looks at;
- a *kernel*, ``kernel(events) -> record array``: eager code (numpy, numba, torch) that takes a chunk of
  events and returns one field per new column, one entry per event. It must not read undeclared columns:
  in dask mode those are not even loaded.

:func:`reconstruct_columns` then runs the kernel once per chunk — directly on eager and virtual events, through
one ``dask_awkward.map_partitions`` on dask-awkward events, with its output type (``meta``) taken from a run on a
one-event placeholder, so nothing is computed while the graph is built — and returns a *new* events array with
the columns appended (``ak.with_field``; the caller's array is not changed).

Per-event fault isolation: before the kernel runs, every declared floating-point input is checked. An event
holding NaN or ±inf in any of them is *invalid*: with ``on_invalid="flag"`` (the default) its bad values are
replaced by 0 so the chunk can run, and afterwards every output of that event is blanked (NaN for floats, −1
for integers, False for booleans) and the ``valid`` field that every per-event record column carries is False;
the other events are computed exactly as without it — with one caveat for networks: where the replaced value
changes what the model sees (a jet that no longer passes a cut), the event moves in its length-sorted mini-batch,
and float32 matrix products can then differ in the last bit (≲ 1e-7 relative) for a few neighbours.
``on_invalid="raise"`` raises :class:`NonFiniteInputError` instead, naming the input.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

import awkward as ak
import numpy as np
from numpy.typing import DTypeLike

if TYPE_CHECKING:
    import dask_awkward as dak

Events: TypeAlias = "ak.Array | dak.Array"
"""An analyst's events in any coffea mode: NanoEvents read eagerly or virtually (an ``awkward.Array``) or as a
dask-awkward collection (``dask_awkward.Array``); every column function takes and returns this."""

__all__ = [
    "MET_COLUMNS",
    "ON_INVALID",
    "Events",
    "InputColumns",
    "MissingBranchError",
    "NonFiniteInputError",
    "append_columns",
    "check_columns",
    "event_validity",
    "has_column",
    "input_branches",
    "is_dask",
    "map_events",
    "mark_invalid",
    "reconstruct_columns",
    "to_numpy",
    "with_finite_inputs",
]

InputColumns = Mapping[str, tuple[str, ...] | None]
"""Columns a kernel reads, by NanoEvents collection: ``{"PFCands": ("pt", "phi"), "PV": ("npvsGood",),
"run": None}`` (None: a top-level branch that is not a collection)."""

MET_COLUMNS: dict[str, str] = {
    "pf": "PFMETReco",
    "puppi": "PuppiMETReco",
    "deepmet": "DeepMETReco",
    "perceiver": "MLMET",
}
"""The column ``coffea_mlreco.met.reconstruct`` appends per MET method (``MissingET`` records with ``pt``, ``phi``
and the covariance ``covXX``, ``covXY``, ``covYY``); other tasks read them from here (the di-tau fits)."""

ON_INVALID = ("flag", "raise")
"""What a reconstruction does with an event whose inputs hold NaN/inf: flag it (blank outputs, ``valid``
False) or raise :class:`NonFiniteInputError`."""


class MissingBranchError(KeyError):
    """A branch a task needs is absent from the input file."""

    def __init__(self, filename: str, branch: str, task: str) -> None:
        super().__init__(f"{filename}: branch {branch!r} is missing (needed by {task})")
        self.filename = filename
        self.branch = branch
        self.task = task

    def __str__(self) -> str:
        return str(self.args[0])


class NonFiniteInputError(ValueError):
    """An input feature holds NaN or ±inf."""


def to_numpy(array: Any, dtype: DTypeLike | None = None) -> np.ndarray:
    """A flat awkward array (one value per entry) as a numpy array of ``dtype`` (no copy where none is needed).

    Raises:
        ValueError: a jagged array or one with missing values (``ak.to_numpy``'s rule).
    """
    return np.asarray(ak.to_numpy(array), dtype=dtype)


def is_dask(array: Any) -> bool:
    """True for a dask-awkward array (or any dask-awkward collection)."""
    return type(array).__module__.startswith("dask_awkward")


def _declared(columns: InputColumns) -> Iterator[tuple[str, str | None]]:
    for collection, fields in columns.items():
        if fields is None:
            yield collection, None
        else:
            for field in fields:
                yield collection, field


def _leaf(events: Events, collection: str, field: str | None) -> Any:
    return events[collection] if field is None else events[collection][field]


def _branch(collection: str, field: str | None) -> str:
    return collection if field is None else f"{collection}_{field}"


def _filename(events: Events) -> str:
    try:
        metadata = events.metadata or {}
    except (AttributeError, KeyError, TypeError):
        metadata = {}
    return str(metadata.get("filename", "<events>"))


def input_branches(events: Events, columns: InputColumns) -> list[str]:
    """The NanoAOD branches behind ``columns`` on these events, sorted: ``PFCands_pt``..., plus the counts
    branch (``nPFCands``) of every jagged collection. This is what dask-awkward reads for the task."""
    names = {_branch(collection, field) for collection, field in _declared(columns)}
    for collection, fields in columns.items():
        if fields is not None and events[collection].ndim > 1:
            names.add(f"n{collection}")
    return sorted(names)


def has_column(events: Events, collection: str, field: str | None = None) -> bool:
    """True when ``events`` has ``collection`` (and its ``field``) and coffea can build it (a file with ``PV_npvs``
    alone has no usable ``PV``: coffea's vertex behaviour needs x, y, z). Reads only the structure, never data."""
    if collection not in events.fields:
        return False
    if field is None:
        return True
    try:
        return field in events[collection].fields
    except (AttributeError, ValueError):  # a collection coffea cannot build from the file's branches
        return False


def check_columns(events: Events, columns: InputColumns, task: str) -> None:
    """Raise :class:`MissingBranchError` (naming the file and the first missing branch) unless ``events`` has
    every column in ``columns``. Reads only the events' structure, never data."""
    for collection, field in _declared(columns):
        if not has_column(events, collection, field):
            raise MissingBranchError(_filename(events), _branch(collection, field), task)


def _float_leaves(events: Events, columns: InputColumns) -> Iterator[tuple[str, str | None, Any, np.ndarray]]:
    """(collection, field, values, flat values) of every declared floating-point input."""
    for collection, field in _declared(columns):
        values = _leaf(events, collection, field)
        flat = to_numpy(ak.flatten(values, axis=None))
        if flat.dtype.kind == "f":
            yield collection, field, values, flat


def event_validity(events: Events, columns: InputColumns) -> np.ndarray:
    """Per event, True when every declared floating-point input of the event is finite."""
    valid = np.ones(len(events), bool)
    for _, _, values, flat in _float_leaves(events, columns):
        if np.isfinite(flat).all():
            continue
        bad = ~np.isfinite(values)
        while bad.ndim > 1:
            bad = ak.any(bad, axis=-1)
        valid &= ~to_numpy(bad, bool)
    return valid


def _invalid_message(events: Events, columns: InputColumns, valid: np.ndarray) -> str:
    names = [
        f"{collection}.{field}" if field else collection
        for collection, field, _, flat in _float_leaves(events, columns)
        if not np.isfinite(flat).all()
    ]
    first = int(np.flatnonzero(~valid)[0])
    return (
        f"{_filename(events)}: {int((~valid).sum())} event(s) hold NaN/inf in {', '.join(names)} "
        f"(first: event {first} of the chunk); on_invalid='flag' blanks such events and carries on"
    )


def with_finite_inputs(events: Events, columns: InputColumns) -> Any:
    """``events`` with every non-finite value of a declared floating-point input replaced by 0 (same dtype)."""
    for collection, field, values, flat in list(_float_leaves(events, columns)):
        if np.isfinite(flat).all():
            continue
        cleaned = ak.values_astype(ak.where(np.isfinite(values), values, 0.0), flat.dtype)
        events = ak.with_field(events, cleaned, where=collection if field is None else (collection, field))
    return events


def _blank(column: ak.Array, valid: np.ndarray) -> ak.Array:
    """``column`` with every number of the invalid events replaced: NaN (float), −1 (integer), False (bool)."""

    def blank_leaf(layouts: Any, **kwargs: Any) -> Any:
        data, keep = layouts
        if data.is_numpy and keep.is_numpy:
            values = data.data
            fill = np.nan if values.dtype.kind in "fc" else (False if values.dtype.kind == "b" else -1)
            blanked = np.where(keep.data, values, np.array(fill, dtype=values.dtype))
            return ak.contents.NumpyArray(blanked, parameters=data.parameters), keep
        return None

    return ak.transform(blank_leaf, column, ak.Array(valid), behavior=column.behavior)[0]


def mark_invalid(columns: ak.Array, valid: np.ndarray) -> ak.Array:
    """Blank every output of the invalid events and add ``valid`` (bool) to each per-event record column."""
    fields = {}
    for name in ak.fields(columns):
        column = columns[name]
        if not valid.all():
            column = _blank(column, valid)
        if ak.fields(column) and column.ndim == 1:
            column = ak.with_field(column, valid, "valid")
        fields[name] = column
    return ak.zip(fields, depth_limit=1, behavior=columns.behavior)


class _EventKernel:
    """What runs on each chunk (and, in dask mode, on each partition): the kernel with the validity check.

    In dask-awkward's column-optimisation pass it receives typetracer events: it then touches exactly the
    declared columns and returns the output type found at graph-building time.
    """

    def __init__(self, kernel: Callable[[Any], ak.Array], columns: InputColumns, on_invalid: str | None) -> None:
        if on_invalid is not None and on_invalid not in ON_INVALID:
            raise ValueError(f"on_invalid must be one of {ON_INVALID}, not {on_invalid!r}")
        self.kernel = kernel
        self.columns = dict(columns)
        self.on_invalid = on_invalid
        self.form: Any = None
        self.behavior: Any = None

    def run(self, events: Events) -> ak.Array:
        if self.on_invalid is None:
            return self.kernel(events)
        valid = event_validity(events, self.columns)
        if not valid.all():
            if self.on_invalid == "raise":
                raise NonFiniteInputError(_invalid_message(events, self.columns, valid))
            events = with_finite_inputs(events, self.columns)
        return mark_invalid(self.kernel(events), valid)

    def __call__(self, events: Events) -> ak.Array:
        if ak.backend(events) == "typetracer":
            for collection, field in _declared(self.columns):
                ak.typetracer.touch_data(_leaf(events, collection, field))
            return self.meta()
        return self.run(events)

    def meta(self) -> ak.Array:
        layout = self.form.length_zero_array(highlevel=False).to_typetracer(forget_length=True)
        return ak.Array(layout, behavior=self.behavior)


def map_events(
    kernel: Callable[[Any], ak.Array],
    events: Events,
    columns: InputColumns,
    *,
    label: str,
    on_invalid: str | None = None,
) -> Any:
    """``kernel(events)`` on eager/virtual events; on dask-awkward events one ``map_partitions`` that reads
    exactly ``columns`` (nothing is computed: the output type comes from a one-event placeholder).

    ``on_invalid`` (``"flag"``/``"raise"``, see the module docstring) turns on the per-event validity check;
    None (for fill values of histograms, say) runs the kernel as it is.
    """
    runner = _EventKernel(kernel, columns, on_invalid)
    if not is_dask(events):
        return runner.run(events)
    import dask_awkward as dak

    sample = runner.run(ak.typetracer.length_one_if_typetracer(events._meta))
    runner.form, runner.behavior = sample.layout.form, sample.behavior
    return dak.map_partitions(runner, events, meta=runner.meta(), label=label)


def append_columns(events: Events, columns: Any, where: Mapping[str, str | tuple[str, ...]] | None = None) -> Any:
    """A new events array with each field of ``columns`` appended, at ``where[field]`` (a name or a
    ``(collection, field)`` path) or under its own name; ``events`` itself is not changed."""
    where = where or {}
    with_field: Callable[..., Any] = ak.with_field
    if is_dask(events):
        import dask_awkward as dak

        with_field = dak.with_field
    for name in columns.fields:
        events = with_field(events, columns[name], where=where.get(name, name))
    return events


def reconstruct_columns(
    events: Events,
    kernel: Callable[[Any], ak.Array],
    columns: InputColumns,
    *,
    task: str,
    where: Mapping[str, str | tuple[str, ...]] | None = None,
    on_invalid: str = "flag",
) -> Any:
    """Check the inputs, run ``kernel`` per chunk with per-event validity, and return the events with its
    columns appended (see the module docstring). ``task`` names the reconstruction in errors and graph labels."""
    if on_invalid not in ON_INVALID:
        raise ValueError(f"on_invalid must be one of {ON_INVALID}, not {on_invalid!r}")
    check_columns(events, columns, task)
    out = map_events(kernel, events, columns, label=f"{task}-reconstruct", on_invalid=on_invalid)
    return append_columns(events, out, where)
