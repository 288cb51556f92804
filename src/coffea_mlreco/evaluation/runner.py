"""Running processors over files with coffea's ``processor.Runner`` and a chosen executor.

The chunks are planned once (``Runner.preprocess``), cut to ``--max-events`` by shortening the work
items, and every task's processor runs over the same chunks, so all tasks see the same events.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from coffea import processor
from coffea.nanoevents import NanoAODSchema
from coffea.processor.executor import WorkItem

from coffea_mlreco.evaluation.inputs import TREE_NAME

__all__ = [
    "EXECUTORS",
    "QuietNanoAODSchema",
    "RunResult",
    "executor_session",
    "plan_chunks",
    "run_processor",
]

EXECUTORS = ("iterative", "futures", "dask")
"""Executor names accepted by ``--executor``."""

_HARMLESS_SCHEMA_WARNINGS = (
    "Missing cross-reference index",
    "Missing cross-reference target",
    "Branch .* already exists but",
)


class QuietNanoAODSchema(NanoAODSchema):
    """``NanoAODSchema`` without its warnings about cross-references to collections a file lacks.

    NanoAOD subsets (and our simulated files) store only some collections; coffea then warns once
    per absent cross-reference, which would bury the report's output. Everything else is unchanged.
    """

    def __init__(self, base_form: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        with warnings.catch_warnings():
            for message in _HARMLESS_SCHEMA_WARNINGS:
                warnings.filterwarnings("ignore", message=message, category=RuntimeWarning)
            super().__init__(base_form, *args, **kwargs)


@dataclasses.dataclass(frozen=True)
class RunResult:
    """Output of one processor over the planned chunks, with the wall time in seconds."""

    output: dict[str, Any]
    seconds: float


def _dataset_names(files: Sequence[str]) -> dict[str, str]:
    names: dict[str, str] = {}
    for path in files:
        stem = Path(path).stem or "sample"
        name, k = stem, 1
        while name in names.values():
            k += 1
            name = f"{stem}_{k}"
        names[path] = name
    return names


@contextlib.contextmanager
def executor_session(
    kind: str, workers: int = 2, scheduler: str | None = None, status: bool = True
) -> Iterator[processor.executor.ExecutorBase]:
    """Yield a coffea executor of ``kind`` (one of :data:`EXECUTORS`), cleaning up afterwards.

    ``dask`` connects to ``scheduler`` (an address such as ``tcp://host:8786``) when given, otherwise
    starts a ``distributed.LocalCluster`` of ``workers`` single-threaded worker processes.
    """
    if kind == "iterative":
        yield processor.IterativeExecutor(status=status)
    elif kind == "futures":
        yield processor.FuturesExecutor(workers=workers, status=status)
    elif kind == "dask":
        import distributed

        with contextlib.ExitStack() as stack:
            if scheduler:
                client = stack.enter_context(distributed.Client(scheduler))
            else:
                cluster = stack.enter_context(
                    distributed.LocalCluster(
                        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
                    )
                )
                client = stack.enter_context(distributed.Client(cluster))
            yield processor.DaskExecutor(client=client, status=status)
    else:
        raise ValueError(f"unknown executor {kind!r}; choose one of {', '.join(EXECUTORS)}")


def _runner(executor: processor.executor.ExecutorBase, chunksize: int) -> processor.Runner:
    return processor.Runner(executor=executor, chunksize=chunksize, schema=QuietNanoAODSchema)


def plan_chunks(
    files: Sequence[str],
    executor: processor.executor.ExecutorBase,
    chunksize: int,
    max_events: int | None = None,
) -> list[WorkItem]:
    """Split ``files`` (one dataset per file, named by its stem) into chunks of at most ``chunksize``
    events, keeping only the first ``max_events`` events (in file order) when given."""
    names = _dataset_names(files)
    fileset = {names[f]: {"files": {f: TREE_NAME}} for f in files}
    chunks = list(_runner(executor, chunksize).preprocess(fileset, treename=TREE_NAME))
    order = {f: i for i, f in enumerate(files)}
    chunks.sort(key=lambda c: (order.get(c.filename, len(order)), c.entrystart))
    if max_events is None:
        return chunks
    kept: list[WorkItem] = []
    left = max_events
    for chunk in chunks:
        if left <= 0:
            break
        if len(chunk) > left:
            chunk = dataclasses.replace(chunk, entrystop=chunk.entrystart + left)
        kept.append(chunk)
        left -= len(chunk)
    return kept


def run_processor(
    processor_instance: processor.ProcessorABC,
    chunks: Sequence[WorkItem],
    executor: processor.executor.ExecutorBase,
    chunksize: int,
) -> RunResult:
    """Run ``processor_instance`` over ``chunks`` with ``executor``; returns its output and wall time."""
    tic = time.perf_counter()
    output = _runner(executor, chunksize)(list(chunks), processor_instance, treename=TREE_NAME)
    return RunResult(output=output, seconds=time.perf_counter() - tic)
