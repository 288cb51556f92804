"""``coffea_mlreco.reconstruct(events, tasks)``: several tasks' columns appended in one call.

Each task's own function (``coffea_mlreco.met.reconstruct``, ``.ttbar``, ``.ditau``, ``.mem``, ``.mlpf``) does
the work; this one chains them in the order given, so later tasks may read earlier tasks' columns only where they
are documented to (they read the file's branches otherwise).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from coffea_mlreco.core.columns import Events
from coffea_mlreco.evaluation.tasks import load_attribute
from coffea_mlreco.tasks import TASKS

__all__ = ["TASKS", "reconstruct"]


def _models_by_task(models: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """``{"met": {"perceiver": DIR}}`` from that nested form or from flat keys ``{"met.perceiver": DIR}``."""
    out: dict[str, dict[str, Any]] = {}
    for key, value in (models or {}).items():
        if isinstance(value, Mapping):
            out.setdefault(key, {}).update(value)
        else:
            task, dot, method = key.partition(".")
            if not dot or not method:
                raise ValueError(f"models= keys are 'task.method' (e.g. 'met.perceiver') or task names, not {key!r}")
            out.setdefault(task, {})[method] = value
    unknown = sorted(set(out) - set(TASKS))
    if unknown:
        raise ValueError(f"models= names unknown task(s) {unknown}; tasks: {', '.join(TASKS)}")
    return out


def reconstruct(
    events: Events,
    tasks: Sequence[str],
    *,
    models: Mapping[str, Any] | None = None,
    device: str = "auto",
    on_invalid: str = "flag",
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> Any:
    """Return ``events`` with the columns of every task in ``tasks`` appended (eager, virtual or dask-awkward).

    Args:
        tasks: task names among :data:`TASKS`, e.g. ``("met", "ttbar")``.
        models: models replacing the shipped defaults, ``{"met.perceiver": "/my/dir"}`` or
            ``{"met": {"perceiver": "/my/dir"}}`` (shipped names or model directories).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` for every network.
        on_invalid: ``"flag"`` (NaN/inf inputs cost their event only) or ``"raise"``.
        options: per task, further keyword arguments of its ``reconstruct`` (``{"met": {"methods": ("puppi",)}}``).
    """
    if isinstance(tasks, str):
        tasks = (tasks,)
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; tasks: {', '.join(TASKS)}")
    by_task = _models_by_task(models)
    for task in dict.fromkeys(tasks):
        reconstruct_task = load_attribute(TASKS[task].reconstruct)
        kwargs = dict((options or {}).get(task, {}))
        events = reconstruct_task(
            events, models=by_task.get(task) or None, device=device, on_invalid=on_invalid, **kwargs
        )
    return events
