"""Shared machinery below every task: appending reconstructed columns in every coffea mode, and histograms
that work eagerly and in dask-awkward graphs. Nothing here imports a task."""

from __future__ import annotations

from .columns import (
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
from .histograms import count_true, event_count, new_hist

__all__ = [
    "ON_INVALID", "InputColumns", "MissingBranchError", "NonFiniteInputError", "append_columns", "check_columns",
    "count_true", "event_count", "event_validity", "has_column", "input_branches", "is_dask", "map_events",
    "mark_invalid", "new_hist", "reconstruct_columns", "with_finite_inputs",
]
