"""Running processors over files: coffea's ``processor.Runner`` with a chosen executor, or dask-awkward graphs.

The chunks are planned once (``Runner.preprocess``), cut to ``--max-events`` by shortening the work
items, and every task's processor runs over the same chunks, so all tasks see the same events.

Executors (``--executor``):

- ``iterative``, ``futures``, ``dask``: ``processor.Runner`` with coffea's ``IterativeExecutor``,
  ``FuturesExecutor`` or ``DaskExecutor``; the processor sees virtual (lazily read) NanoEvents, one chunk at a time.
- ``dask-awkward``: ``coffea.dataset_tools.apply_to_fileset(processor, fileset, schemaclass=...)`` builds one
  dask-awkward graph per task (the processor sees dask-awkward NanoEvents; one dataset per file, named as for the
  Runner), which is computed on a ``distributed.Client``. The fileset's ``steps`` are the planned chunks, so the
  dask partitions are exactly the Runner's chunks (``--chunksize`` and ``--max-events`` mean the same, and a
  per-chunk choice such as the MET networks' pileup is made on the same events); the outputs of the datasets are
  accumulated and post-processed as the Runner does, so the report sections get the same dictionary.

RNTuple NanoAOD: the Runner's executors read it (chunks planned from its clusters, virtual NanoEvents per chunk).
``dask-awkward`` reads it only where coffea's dask reader can (:func:`dask_awkward_rntuple_problem`): coffea
2026.9 with uproot 5.7 cannot (coffea asks uproot for each field's ``title``; an RNTuple field has a
``description``), so ``evaluate`` refuses that combination up front and names the executors that work.

Both ``dask`` and ``dask-awkward`` connect to an existing scheduler when given its address, else start a
``distributed.LocalCluster`` of single-threaded worker processes.

Retries: only *transient* I/O errors are retried — an ``OSError`` (a dropped connection, a timeout, an XRootD
read error, which uproot raises as ``OSError``) or an uproot ``DeserializationError`` (a short or garbled read),
found in the exception or its ``__cause__`` chain, except the deterministic ``FileNotFoundError``,
``PermissionError``, ``IsADirectoryError`` and ``NotADirectoryError``. Such a chunk (a dask-awkward partition,
through ``distributed.Future.retry``) is retried up to :data:`TRANSIENT_RETRIES` times, after 2, 4, 8 s.
Anything else (a ``ValueError``, ``NonFiniteInputError``, ``MissingBranchError``, a bug) fails the run at once:
coffea's own executors would retry *any* exception three times (their ``retries``), so their ``retries`` are set to
0 and the Runner's retry hook is replaced by :func:`retry_transient`; dask-awkward graphs are computed with
``retries=0``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from coffea import processor
from coffea.nanoevents import NanoAODSchema
from coffea.processor.executor import WorkItem

from coffea_mlreco.evaluation.inputs import TREE_NAME

__all__ = [
    "RUNNER_EXECUTORS",
    "TRANSIENT_RETRIES",
    "QuietNanoAODSchema",
    "RunResult",
    "TransientErrorRetry",
    "client_session",
    "compute_on_client",
    "dask_awkward_rntuple_problem",
    "dask_fileset",
    "executor_session",
    "is_transient",
    "plan_chunks",
    "retry_transient",
    "run_dask_awkward",
    "run_processor",
]

RUNNER_EXECUTORS = ("iterative", "futures", "dask")
"""The executors that run under ``processor.Runner`` (the others build dask-awkward graphs)."""

TRANSIENT_RETRIES = 3
"""How many times a chunk that failed with a transient I/O error is tried again."""
TRANSIENT_RETRY_DELAY_S = 2.0
"""Seconds before the first retry; doubled before each further one."""

_DETERMINISTIC_OS_ERRORS: tuple[type[BaseException], ...] = (
    FileNotFoundError,
    PermissionError,
    IsADirectoryError,
    NotADirectoryError,
)

_HARMLESS_SCHEMA_WARNINGS = (
    "Missing cross-reference index",
    "Missing cross-reference target",
    "Branch .* already exists but",
)

_COFFEA_DASK_FIELD_DOC = {"__doc__": "title", "typename": "typename"}
"""The ``ak_add_doc`` that coffea's dask reader (``NanoEventsFactory.from_root(..., mode="dask")``, used by
``apply_to_fileset``) passes to ``uproot.dask``: each field's docstring from its ``title``."""

T = TypeVar("T")


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


class TransientErrorRetry(UserWarning):
    """Warned when a chunk is retried after a transient I/O error."""


def _transient_types() -> tuple[type[BaseException], ...]:
    from uproot.deserialization import DeserializationError

    return (OSError, DeserializationError)


def is_transient(err: BaseException) -> bool:
    """True when ``err`` or an exception in its ``__cause__`` chain is a transient I/O error (see the module)."""
    transient = _transient_types()
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, _DETERMINISTIC_OS_ERRORS):
            return False
        if isinstance(seen, transient):
            return True
        seen = seen.__cause__
    return False


def _retry_delay(attempt: int) -> float:
    return TRANSIENT_RETRY_DELAY_S * 2 ** (attempt - 1)


def retry_transient(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``func(*args, **kwargs)``, tried again up to :data:`TRANSIENT_RETRIES` times when it raises a transient I/O
    error (:func:`is_transient`); any other exception propagates at once."""
    attempt = 0
    while True:
        try:
            return func(*args, **kwargs)
        except Exception as err:
            if attempt >= TRANSIENT_RETRIES or not is_transient(err):
                raise
            attempt += 1
            warnings.warn(
                f"transient I/O error ({type(err).__name__}: {err}); retry {attempt} of {TRANSIENT_RETRIES}",
                TransientErrorRetry,
                stacklevel=2,
            )
            time.sleep(_retry_delay(attempt))


class _TransientRetryRunner(processor.Runner):
    """``processor.Runner`` whose retry hook retries transient I/O errors only (see the module docstring)."""

    @staticmethod
    def automatic_retries(
        retries: int,
        skipbadfiles: Any,
        func: Callable[..., T],
        *args: Any,
        use_result_type: bool = False,
        **kwargs: Any,
    ) -> T:
        """Replaces coffea's hook (which retries any exception ``retries`` times): :func:`retry_transient`."""
        del retries, skipbadfiles, use_result_type  # executors run with retries=0; no file is skipped
        return retry_transient(func, *args, **kwargs)


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
def client_session(workers: int = 2, scheduler: str | None = None) -> Iterator[Any]:
    """A ``distributed.Client`` connected to ``scheduler`` (an address such as ``tcp://host:8786``) when given,
    otherwise to a new ``distributed.LocalCluster`` of ``workers`` single-threaded worker processes (closed
    afterwards)."""
    import distributed

    with contextlib.ExitStack() as stack:
        if scheduler:
            client = stack.enter_context(distributed.Client(scheduler))
        else:
            cluster = stack.enter_context(
                distributed.LocalCluster(
                    n_workers=workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    silence_logs=logging.ERROR,  # not the nannies' warnings about slow worker shutdown
                )
            )
            client = stack.enter_context(distributed.Client(cluster))
        yield client


@contextlib.contextmanager
def executor_session(
    kind: str, workers: int = 2, scheduler: str | None = None, status: bool = True
) -> Iterator[processor.executor.ExecutorBase]:
    """Yield a coffea executor of ``kind`` (one of :data:`RUNNER_EXECUTORS`), cleaning up afterwards.

    ``dask`` runs on :func:`client_session`. The executors' own ``retries`` are 0 (see the module docstring).
    """
    if kind == "iterative":
        yield processor.IterativeExecutor(status=status, retries=0)
    elif kind == "futures":
        yield processor.FuturesExecutor(workers=workers, status=status, retries=0)
    elif kind == "dask":
        with client_session(workers, scheduler) as client:
            yield processor.DaskExecutor(client=client, status=status, retries=0)
    else:
        raise ValueError(f"unknown Runner executor {kind!r}; choose one of {', '.join(RUNNER_EXECUTORS)}")


def _runner(executor: processor.executor.ExecutorBase, chunksize: int) -> processor.Runner:
    return _TransientRetryRunner(executor=executor, chunksize=chunksize, schema=QuietNanoAODSchema)


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
        taken = dataclasses.replace(chunk, entrystop=chunk.entrystart + left) if len(chunk) > left else chunk
        kept.append(taken)
        left -= len(taken)
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


def dask_fileset(chunks: Sequence[WorkItem]) -> dict[str, dict[str, Any]]:
    """The ``apply_to_fileset`` fileset of ``chunks``: per dataset its file with the chunks as uproot ``steps``
    (``[[entrystart, entrystop], ...]``, one dask partition each) and ``metadata.filename`` (for messages)."""
    fileset: dict[str, dict[str, Any]] = {}
    for chunk in chunks:
        dataset = fileset.setdefault(chunk.dataset, {"files": {}, "metadata": {"filename": chunk.filename}})
        spec = dataset["files"].setdefault(chunk.filename, {"object_path": chunk.treename, "steps": []})
        spec["steps"].append([int(chunk.entrystart), int(chunk.entrystop)])
    return fileset


def compute_on_client(client: Any, graphs: Any) -> Any:
    """Compute the dask collections in ``graphs`` (any nesting of dicts, lists, ``hist.dask`` histograms,
    dask-awkward arrays and scalars) on ``client`` with dask's graph optimisation (dask-awkward reads only the
    columns the graphs need); returns the same structure with computed values.

    Failed tasks are retried only for transient I/O errors (:func:`is_transient`; up to
    :data:`TRANSIENT_RETRIES` times, through ``Future.retry``: only the failed partitions run again). Any other
    error is raised at once, the remaining work cancelled.
    """
    import distributed
    from dask.base import unpack_collections

    collections, repack = unpack_collections(graphs, traverse=True)
    futures = client.compute(list(collections), optimize_graph=True, retries=0)
    try:
        attempt = 0
        while True:
            distributed.wait(futures)
            failed = [f for f in futures if f.status == "error"]
            if not failed:
                break
            errors = [(f, f.exception()) for f in failed]
            fatal = next((f for f, err in errors if not is_transient(err)), None)
            if fatal is not None or attempt >= TRANSIENT_RETRIES:
                (fatal or failed[0]).result()  # raises the task's exception with its remote traceback
            attempt += 1
            warnings.warn(
                f"transient I/O error ({type(errors[0][1]).__name__}: {errors[0][1]}); retry {attempt} "
                f"of {TRANSIENT_RETRIES}",
                TransientErrorRetry,
                stacklevel=2,
            )
            time.sleep(_retry_delay(attempt))
            for future in failed:
                future.retry()
        results = client.gather(futures)
    except BaseException:
        client.cancel(futures)
        raise
    return repack(results)[0]


def dask_awkward_rntuple_problem(path: str) -> str | None:
    """Why coffea's dask-awkward reader cannot read the RNTuple ``Events`` of ``path`` with the installed coffea
    and uproot, or None when it can (or ``Events`` is a TTree).

    coffea's dask reader asks uproot for every field's form with ``ak_add_doc={"__doc__": "title", ...}``, which
    makes uproot read those attributes of each field; where uproot's RNTuple fields lack one (uproot 5.7: no
    ``title``, they have a ``description``), every partition fails with ``AttributeError``. This checks the
    attributes on the first field (fast: no graph is built, no data read).
    """
    import uproot

    with uproot.open(path) as handle:
        events = handle[TREE_NAME]
        if not isinstance(events, uproot.behaviors.RNTuple.HasFields):
            return None
        missing = [name for name in _COFFEA_DASK_FIELD_DOC.values() if not hasattr(events.all_fields[0], name)]
    if not missing:
        return None
    return f"coffea's dask reader asks each field for its {missing[0]!r}, which uproot's RNTuple fields lack"


def run_dask_awkward(processor_instance: processor.ProcessorABC, chunks: Sequence[WorkItem], client: Any) -> RunResult:
    """Build ``processor_instance``'s graphs with ``coffea.dataset_tools.apply_to_fileset`` over ``chunks``
    (:func:`dask_fileset`), compute them on ``client`` (:func:`compute_on_client`), accumulate the datasets'
    outputs and post-process them as ``processor.Runner`` does; returns the output and the wall time (graph
    building included)."""
    from coffea.dataset_tools import apply_to_fileset

    tic = time.perf_counter()
    graphs = apply_to_fileset(processor_instance, dask_fileset(chunks), schemaclass=QuietNanoAODSchema)
    outputs = compute_on_client(client, graphs)
    output = processor.accumulate(outputs.values()) if outputs else {}
    post = processor_instance.postprocess(output)
    if post is not None:
        output = post
    return RunResult(output=output, seconds=time.perf_counter() - tic)
