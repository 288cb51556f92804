"""Shared machinery below every task. Nothing here imports a task.

- :mod:`.columns` — declared input columns, appending reconstructed columns in every coffea mode (eager, virtual,
  dask-awkward), one bad value costing one event, awkward → numpy;
- :mod:`.histograms` — histograms that work eagerly and in dask-awkward graphs;
- :mod:`.methods` — a task's methods as data (name, title, network) and the choice among them;
- :mod:`.constants` — physics constants (PDG masses, widths, couplings) and shared binnings;
- :mod:`.truth` — generator-level targets and ΔR matching; :mod:`.metrics` — bias, resolution, ROC;
- :mod:`.outputs` — files and folders written complete or not at all; :mod:`.timing`; :mod:`.version`.
"""

from __future__ import annotations

from coffea_mlreco.core.columns import (
    ON_INVALID,
    Events,
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
    to_numpy,
    with_finite_inputs,
)
from coffea_mlreco.core.histograms import collision_data_events, count_true, event_count, new_hist
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
    "Events",
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
    "collision_data_events",
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
    "to_numpy",
    "with_finite_inputs",
]
