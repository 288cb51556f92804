"""``coffea-mlreco evaluate``: run the reconstruction tasks over NanoAOD-like files and write a report.

    coffea-mlreco evaluate [FILES...] [--tasks met,...] --output DIR [--executor iterative|futures|dask]
                           [--workers N] [--scheduler ADDRESS] [--chunksize N] [--max-events N]
                           [--device auto|cpu|cuda]

With no FILES the embedded default sample (``coffea_mlreco.simulation.default_sample()``) is used.
The files are checked with uproot first; a missing or unreadable file, a file without the ``Events``
tree or without a needed branch ends the run with exit status 2 and a one-line message naming the file
and the branch. The report directory gets ``index.html``, ``metrics.json`` (DESIGN.md schema),
``histograms.root`` and ``histograms.pkl``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
import time
from pathlib import Path
from typing import Any

from coffea_mlreco import __version__
from coffea_mlreco.evaluation.inputs import InputError, check_inputs
from coffea_mlreco.evaluation.tasks import TASKS, TaskOptions, TaskReport, select_tasks

__all__ = ["add_arguments", "default_files", "resolve_device", "run"]

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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``evaluate`` options to ``parser``."""
    parser.add_argument(
        "files", nargs="*", metavar="FILES", help="NanoAOD-like ROOT files (default: embedded sample)"
    )
    parser.add_argument(
        "--tasks",
        type=_task_list,
        default=None,
        help=f"comma-separated tasks among {', '.join(TASKS)} (default: every task the files support)",
    )
    parser.add_argument("--output", "-o", required=True, type=Path, metavar="DIR", help="report directory")
    parser.add_argument("--executor", choices=("iterative", "futures", "dask"), default="iterative")
    parser.add_argument(
        "--workers",
        type=_positive_int,
        default=min(4, os.cpu_count() or 1),
        help="processes for futures/dask",
    )
    parser.add_argument(
        "--scheduler", default=None, metavar="ADDRESS", help="dask scheduler address (dask only)"
    )
    parser.add_argument("--chunksize", type=_positive_int, default=50_000, help="events per chunk")
    parser.add_argument("--max-events", type=_positive_int, default=None, help="process at most N events")
    parser.add_argument(
        "--device", default="auto", help="auto, cpu, cuda or cuda:N (for the ML tasks; recorded in metadata)"
    )


def resolve_device(device: str) -> str:
    """``cpu``, ``cuda`` or ``cuda:N`` as given; ``auto`` → ``cuda`` when torch sees a GPU, else ``cpu``."""
    if device == "cpu" or device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit()):
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
    from coffea_mlreco.processors.met import MissingBranchError

    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, MissingBranchError):
            return str(seen)
        seen = seen.__cause__ or seen.__context__
    return f"{type(err).__name__}: {err}"


def _print(message: str) -> None:
    print(f"coffea-mlreco evaluate: {message}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """Run ``evaluate`` with parsed ``args``; returns the exit status (0 ok, 1 failed, 2 bad input)."""
    from coffea_mlreco.evaluation.report import write_histograms, write_index, write_metrics_json
    from coffea_mlreco.evaluation.runner import executor_session, plan_chunks, run_processor

    try:
        if args.scheduler and args.executor != "dask":
            raise InputError("--scheduler needs --executor dask")
        files = [str(f) for f in args.files] if args.files else default_files()
        inputs = check_inputs(files)
        tasks, notes = select_tasks(args.tasks, inputs)
        device = resolve_device(args.device)
    except InputError as err:
        _print(str(err))
        return EXIT_BAD_INPUT
    for note in notes:
        _print(note)

    outdir: Path = args.output
    outdir.mkdir(parents=True, exist_ok=True)
    paths = [f.path for f in inputs]
    options = TaskOptions(device=device)
    reports: dict[str, TaskReport] = {}
    seconds = 0.0  # chunk planning and processing; executor start-up and report writing excluded
    try:
        with executor_session(args.executor, args.workers, args.scheduler) as executor:
            tic = time.perf_counter()
            chunks = plan_chunks(paths, executor, args.chunksize, args.max_events)
            seconds += time.perf_counter() - tic
            n_events = sum(len(c) for c in chunks)
            for task in tasks:
                print(
                    f"Running task {task.name!r} on {n_events} events ({len(chunks)} chunks)", file=sys.stderr
                )
                result = run_processor(task.make_processor(options), chunks, executor, args.chunksize)
                seconds += result.seconds
                reports[task.name] = task.report(result.output, outdir)
    except KeyboardInterrupt:
        _print("interrupted")
        return EXIT_PROCESSING_FAILED
    except Exception as err:  # report one line, not a traceback from inside an executor
        _print(f"processing failed: {_error_message(err)}")
        return EXIT_PROCESSING_FAILED

    meta: dict[str, Any] = {
        "package_version": __version__,
        "files": paths,
        "events": n_events,
        "device": device,
        "executor": args.executor,
        "seconds": seconds,
    }
    metrics: dict[str, Any] = {"meta": meta}
    throughput: dict[str, float] = {}
    for name, report in reports.items():
        metrics[name] = report.metrics
        throughput.update(report.throughput)
    metrics["throughput"] = throughput
    write_metrics_json(outdir, metrics)
    write_histograms(
        outdir,
        {k: v for r in reports.values() for k, v in r.root_histograms.items()},
        {k: v for r in reports.values() for k, v in r.histograms.items()},
    )
    write_index(outdir, meta, [(TASKS[name].title, r.html) for name, r in reports.items()], notes)
    print(f"Report written to {outdir / 'index.html'}", file=sys.stderr)
    return EXIT_OK
