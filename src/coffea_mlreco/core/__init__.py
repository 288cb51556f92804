"""Shared machinery below every task: appending reconstructed columns in every coffea mode, and histograms
that work eagerly and in dask-awkward graphs. Nothing here imports a task."""

from __future__ import annotations

from coffea_mlreco.core.columns import (
    ON_INVALID,
    InputColumns,
    MissingBranchError,
    NonFiniteInputError,
    append_columns,
    check_columns,
    event_validity,
    has_column,
    input_branches,
    is_dask,
    map_events,
    mark_invalid,
    reconstruct_columns,
    with_finite_inputs,
)
from coffea_mlreco.core.histograms import count_true, event_count, new_hist
from coffea_mlreco.core.methods import Method, MethodSet, choose_methods
from coffea_mlreco.core.outputs import (
    Interrupted,
    OutputError,
    atomic_directory,
    atomic_file,
    check_output,
    deferred_interrupts,
    partial_outputs,
    sigterm_as_interrupt,
)
from coffea_mlreco.core.timing import timed

__all__ = [
    "ON_INVALID",
    "InputColumns",
    "Interrupted",
    "Method",
    "MethodSet",
    "MissingBranchError",
    "NonFiniteInputError",
    "OutputError",
    "append_columns",
    "atomic_directory",
    "atomic_file",
    "check_columns",
    "check_output",
    "choose_methods",
    "count_true",
    "deferred_interrupts",
    "event_count",
    "event_validity",
    "has_column",
    "input_branches",
    "is_dask",
    "map_events",
    "mark_invalid",
    "new_hist",
    "partial_outputs",
    "reconstruct_columns",
    "sigterm_as_interrupt",
    "timed",
    "with_finite_inputs",
]
