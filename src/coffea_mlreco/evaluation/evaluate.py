"""``coffea-mlreco evaluate``: run the reconstruction tasks over NanoAOD-like files and write a report.

    coffea-mlreco evaluate [FILES...] [--tasks met,...] --output DIR
                           [--executor iterative|futures|dask|dask-awkward] [--workers N] [--scheduler ADDRESS]
                           [--chunksize N] [--max-events N] [--device auto|cpu|cuda]
                           [--model TASK.METHOD=SPEC ...]

With no FILES the embedded default sample (``coffea_mlreco.simulation.default_sample()``) is used.
``Events`` may be a TTree or an RNTuple (NanoAOD in either format gives the same columns and histograms).
The files are checked with uproot first; a missing or unreadable file, a file without ``Events`` or without a
needed branch ends the run with exit status 2 and a one-line message naming the file and the branch, as does
``--executor dask-awkward`` on an RNTuple where the installed coffea's dask reader cannot read it (coffea 2026.9
with uproot 5.7: the message names the executors that can, ``iterative``, ``futures`` and ``dask``), and FILES
that mix collision data and simulation. The report
directory gets ``index.html``, ``metrics.json`` (DESIGN.md schema), ``histograms.root`` and ``histograms.pkl``.

Executors (see :mod:`coffea_mlreco.evaluation.runner`): ``iterative``, ``futures`` and ``dask`` run each task's
processor under coffea's ``processor.Runner``; ``dask-awkward`` builds each task's graph with
``coffea.dataset_tools.apply_to_fileset`` (one dataset per file) and computes it on a ``distributed.Client``.
``--scheduler ADDRESS`` (``dask``, ``dask-awkward``) connects to a running scheduler, else a ``LocalCluster`` of
``--workers`` single-threaded processes is started. ``--chunksize`` and ``--max-events`` mean the same for every
executor (the dask partitions are the Runner's chunks), so the metrics are the same whichever runs them; only
the throughput differs (a dask-awkward graph has no per-method timing, so its report has no throughput rows).
Only transient I/O errors (``OSError``, uproot read errors) are retried, up to 3 times per chunk; any other
error fails the run at once.

``--model TASK.METHOD=SPEC`` (repeatable) replaces the shipped model of a network method by SPEC, a shipped
name or a model directory written by ``coffea-mlreco train <task> --output DIR``; an unknown task or method,
or a SPEC that is no usable model, is a one-line error (exit status 2) before anything runs.

Collision data (files without any generator branch, :func:`coffea_mlreco.core.nanoaod.is_collision_data`) runs
every task the file supports, as simulation does: each section then shows the distributions of what its methods
reconstruct, marked as data, and no truth metrics; metrics.json's ``meta.sample`` is ``"collision data"`` (else
``"simulation"``).

metrics.json's ``meta`` records the executor, the models given with ``--model`` (``models``) and, per task,
the number of events left out because their inputs hold NaN/inf (``invalid_events``); index.html shows both.

The report folder is complete or absent (`coffea_mlreco.core.outputs`): it is written as ``DIR.partial-XXXXXXXX``
next to ``DIR`` and renamed to ``DIR`` once every file is written. An existing ``DIR`` is replaced only then, and
only if it is empty or an earlier report (nothing but report files: :func:`~coffea_mlreco.evaluation.report.
is_report_folder`); a folder holding anything else is refused before anything runs, as is an output folder
that cannot be written (one line, exit status 2). Interrupted (Ctrl-C, SIGTERM) or failed, the run removes its
temporary folder and leaves ``DIR`` as it was (exit status 1); after a SIGKILL the temporary folder stays behind
under its ``.partial-`` name and ``DIR`` is still as it was.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from coffea_mlreco.core.outputs import Interrupted, OutputError, atomic_directory, sigterm_as_interrupt
from coffea_mlreco.core.version import __version__
from coffea_mlreco.evaluation.inputs import InputError, InputFile, check_inputs, sample_kind
from coffea_mlreco.evaluation.tasks import Task, TaskOptions, TaskReport, parse_model_options, select_tasks

__all__ = ["EXECUTORS", "add_arguments", "default_files", "resolve_device", "run"]

EXECUTORS = ("iterative", "futures", "dask", "dask-awkward")
"""``--executor`` values: coffea's Runner executors, and ``dask-awkward`` (graphs through apply_to_fileset)."""

EXIT_OK = 0
EXIT_PROCESSING_FAILED = 1
EXIT_BAD_INPUT = 2


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _task_list(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give at least one task name")
    return names


def add_arguments(parser: argparse.ArgumentParser, registry: Mapping[str, Task]) -> None:
    """Add the ``evaluate`` options to ``parser`` (``--tasks`` among those of ``registry``)."""
    parser.add_argument("files", nargs="*", metavar="FILES", help="NanoAOD-like ROOT files (default: embedded sample)")
    parser.add_argument(
        "--tasks",
        type=_task_list,
        default=None,
        help=f"comma-separated tasks among {', '.join(registry)} (default: every task the files support)",
    )
    parser.add_argument(
        "--output",
        "-o",
        required=True,
        type=Path,
        metavar="DIR",
        help="report directory; written as DIR.partial-XXXXXXXX and renamed to DIR when complete. An existing DIR "
        "is replaced then, if it is empty or an earlier report; a folder holding other files is refused",
    )
    parser.add_argument(
        "--executor",
        choices=EXECUTORS,
        default="iterative",
        help="iterative, futures, dask: coffea's processor.Runner with that executor; dask-awkward: the "
        "processors' dask-awkward graphs (coffea.dataset_tools.apply_to_fileset, one dataset per file) "
        "computed on a distributed cluster (not for RNTuple files where coffea's dask reader cannot read them: "
        "refused up front). Metrics are the same whichever executor runs. Only transient I/O "
        "errors (OSError, uproot read errors) are retried, 3 times per chunk; any other error stops the run",
    )
    parser.add_argument(
        "--workers",
        type=_positive_int,
        default=min(4, os.cpu_count() or 1),
        help="processes for futures, dask and dask-awkward (a local cluster of single-threaded workers)",
    )
    parser.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="address of a running dask scheduler (tcp://host:8786) for dask and dask-awkward, instead of "
        "starting a local cluster",
    )
    parser.add_argument(
        "--chunksize",
        type=_positive_int,
        default=50_000,
        help="events per chunk (dask-awkward: per partition; the same chunks as the Runner's)",
    )
    parser.add_argument("--max-events", type=_positive_int, default=None, help="process at most N events")
    parser.add_argument(
        "--device", default="auto", help="auto, cpu, cuda or cuda:N (for the ML tasks; recorded in metadata)"
    )
    parser.add_argument(
        "--model",
        dest="models",
        action="append",
        default=[],
        metavar="TASK.METHOD=SPEC",
        help="use SPEC instead of the shipped model for a network method, e.g. met.deepmet=./my-deepmet "
        "(a model directory from 'coffea-mlreco train <task> --output DIR') or met.perceiver=perceiver_pu60 "
        "(a shipped name); repeatable. Checked before anything runs",
    )


def resolve_device(device: str) -> str:
    """``cpu``, ``cuda`` or ``cuda:N`` as given; ``auto`` → ``cuda`` when torch sees a GPU, else ``cpu``."""
    if device in {"cpu", "cuda"} or (device.startswith("cuda:") and device[5:].isdigit()):
        return device
    if device != "auto":
        raise InputError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N")
    if importlib.util.find_spec("torch") is None:
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def default_files() -> list[str]:
    """The embedded default sample's file paths, from ``coffea_mlreco.simulation.default_sample()``."""
    try:
        simulation = importlib.import_module("coffea_mlreco.simulation")
        default_sample = simulation.default_sample
    except (ImportError, AttributeError) as err:
        raise InputError(
            "no FILES given and the default sample is unavailable "
            f"(coffea_mlreco.simulation.default_sample: {err}); pass ROOT files explicitly"
        ) from None
    return [str(p) for p in default_sample()]


def _error_message(err: BaseException) -> str:
    """The most specific message in an exception chain (coffea wraps processor errors)."""
    from coffea_mlreco.core import MissingBranchError

    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, MissingBranchError):
            return str(seen)
        seen = seen.__cause__ or seen.__context__
    return f"{type(err).__name__}: {err}"


def _print(message: str) -> None:
    print(f"coffea-mlreco evaluate: {message}", file=sys.stderr)


Runner = Callable[[Any, list[Any]], Any]


@contextlib.contextmanager
def _backend(args: argparse.Namespace) -> Iterator[tuple[Any, Runner, str]]:
    """(executor that plans the chunks, ``run(processor, chunks) -> RunResult``, what a chunk is called)."""
    from coffea import processor

    from coffea_mlreco.evaluation.runner import (
        client_session,
        executor_session,
        run_dask_awkward,
        run_processor,
    )

    if args.executor == "dask-awkward":
        with client_session(args.workers, args.scheduler) as client:
            planner = processor.IterativeExecutor(status=False, retries=0)
            yield planner, lambda proc, chunks: run_dask_awkward(proc, chunks, client), "partitions"
    else:
        with executor_session(args.executor, args.workers, args.scheduler) as executor:
            yield executor, lambda proc, chunks: run_processor(proc, chunks, executor, args.chunksize), "chunks"


def _invalid_events(output: dict[str, Any]) -> int | None:
    """The processor output's ``events_invalid`` as an int (None when the processor does not count them)."""
    value = output.get("events_invalid")
    return None if value is None else int(value)


class _ProcessingFailed(Exception):
    """A task failed while running; the message is one line."""


def _check_report_destination(outdir: Path) -> None:
    """Refuse a destination that is a file, or a non-empty folder that is not an earlier report."""
    from coffea_mlreco.evaluation.report import is_report_folder

    if outdir.exists() and not outdir.is_dir():
        raise InputError(f"--output {outdir} is a file; give a folder for the report")
    if outdir.is_dir() and any(outdir.iterdir()) and not is_report_folder(outdir):
        others = sorted(p.name for p in outdir.iterdir())
        shown = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
        raise InputError(
            f"--output {outdir} holds files that are not an evaluation report ({shown}); give a new "
            "or empty folder, or an earlier report folder (replaced once the new report is complete)"
        )


def _check_dask_awkward_reads(inputs: Sequence[InputFile]) -> None:
    """Refuse ``--executor dask-awkward`` when an input is an RNTuple that coffea's dask reader cannot read with
    the installed coffea and uproot (:func:`~coffea_mlreco.evaluation.runner.dask_awkward_rntuple_problem`,
    checked on the first RNTuple: it depends on the versions only)."""
    ntuple = next((f for f in inputs if f.rntuple), None)
    if ntuple is None:
        return
    import coffea
    import uproot

    from coffea_mlreco.evaluation.runner import dask_awkward_rntuple_problem

    problem = dask_awkward_rntuple_problem(ntuple.path)
    if problem is not None:
        raise InputError(
            f"{ntuple.path}: --executor dask-awkward cannot read RNTuple with coffea {coffea.__version__} and "
            f"uproot {uproot.__version__} ({problem}); use --executor iterative, futures or dask"
        )


def run(args: argparse.Namespace, registry: Mapping[str, Task]) -> int:
    """Run ``evaluate`` with parsed ``args`` on the tasks of ``registry``; returns the exit status (0 ok, 1 failed
    or interrupted, 2 bad input or an output folder that cannot be written)."""
    try:
        if args.scheduler and args.executor not in ("dask", "dask-awkward"):
            raise InputError("--scheduler needs --executor dask or dask-awkward")
        models = parse_model_options(getattr(args, "models", None) or [], registry)
        files = [str(f) for f in args.files] if args.files else default_files()
        inputs = check_inputs(files)
        sample = sample_kind(inputs)
        if args.executor == "dask-awkward":
            _check_dask_awkward_reads(inputs)
        tasks, notes = select_tasks(args.tasks, inputs, registry)
        device = resolve_device(args.device)
        _check_report_destination(args.output)
    except InputError as err:
        _print(str(err))
        return EXIT_BAD_INPUT
    chosen = {task.name for task in tasks}
    notes += [
        f"--model {name}.{method} is not used: task {name!r} does not run"
        for name, by_method in models.items()
        if name not in chosen
        for method in by_method
    ]
    for note in notes:
        _print(note)

    outdir: Path = args.output
    try:
        with sigterm_as_interrupt(), atomic_directory(outdir, existing="replace") as workdir:
            _run_tasks(args, [f.path for f in inputs], sample, tasks, notes, device, models, workdir)
    except OutputError as err:
        _print(str(err))
        return EXIT_BAD_INPUT
    except KeyboardInterrupt as err:  # Ctrl-C or SIGTERM: the temporary folder is gone, DIR is as it was
        _print(str(err) if isinstance(err, Interrupted) else "interrupted")
        return EXIT_PROCESSING_FAILED
    except _ProcessingFailed as err:
        _print(f"processing failed: {err}")
        return EXIT_PROCESSING_FAILED
    except OSError as err:
        _print(f"writing the report failed: {err}")
        return EXIT_PROCESSING_FAILED
    print(f"Report written to {outdir / 'index.html'}", file=sys.stderr)
    return EXIT_OK


def _run_tasks(
    args: argparse.Namespace,
    paths: list[str],
    sample: str,
    tasks: list[Task],
    notes: list[str],
    device: str,
    models: dict[str, dict[str, str]],
    outdir: Path,
) -> None:
    """Run ``tasks`` over ``paths`` and write the report files into ``outdir`` (the temporary report folder).

    Raises:
        _ProcessingFailed: a task failed (any exception but an interruption), with its most specific message.
    """
    from coffea_mlreco.evaluation.report import write_histograms, write_index, write_metrics_json
    from coffea_mlreco.evaluation.runner import plan_chunks

    chosen = {task.name for task in tasks}
    options = TaskOptions(device=device, models=models)
    reports: dict[str, TaskReport] = {}
    invalid: dict[str, int] = {}
    seconds = 0.0  # chunk planning, graph building and processing; cluster start-up and report writing excluded
    try:
        with _backend(args) as (planner, run_task, unit):
            tic = time.perf_counter()
            chunks = plan_chunks(paths, planner, args.chunksize, args.max_events)
            seconds += time.perf_counter() - tic
            n_events = sum(len(c) for c in chunks)
            for task in tasks:
                print(f"Running task {task.name!r} on {n_events} events ({len(chunks)} {unit})", file=sys.stderr)
                result = run_task(task.make_processor(options), chunks)
                seconds += result.seconds
                n_invalid = _invalid_events(result.output)
                if n_invalid is not None:
                    invalid[task.name] = n_invalid
                reports[task.name] = task.report(result.output, outdir)
    except Exception as err:  # one line, not a traceback from inside an executor
        raise _ProcessingFailed(_error_message(err)) from err

    meta: dict[str, Any] = {
        "package_version": __version__,
        "files": paths,
        "sample": sample,
        "events": n_events,
        "device": device,
        "executor": args.executor,
        "seconds": seconds,
        "invalid_events": invalid,
        "models": {name: dict(by_method) for name, by_method in models.items() if name in chosen},
    }
    metrics: dict[str, Any] = {"meta": meta}
    throughput: dict[str, float] = {}
    for name, report in reports.items():
        metrics[name] = report.metrics
        metrics.update(report.more_metrics)
        throughput.update(report.throughput)
    metrics["throughput"] = throughput
    write_metrics_json(outdir, metrics)
    write_histograms(
        outdir,
        {k: v for r in reports.values() for k, v in r.root_histograms.items()},
        {k: v for r in reports.values() for k, v in r.histograms.items()},
    )
    write_index(outdir, meta, [(task.title, reports[task.name].html) for task in tasks if task.name in reports], notes)
