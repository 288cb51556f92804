"""`coffea-mlreco generate`: simulate a process and write a NanoAOD-like ROOT file.

Events are made in chunks (each chunk reproducible on its own from the seed and its index), by
``--jobs`` worker processes, and written in order as they finish, so the file does not depend on the
number of jobs and memory stays bounded by a few chunks in flight.

Complete or absent
    The file is written as ``<output>.partial-<8 hex digits>`` in the output's folder and renamed to
    ``<output>`` when its last event is written (`coffea_mlreco.core.outputs`): a file under the requested
    name is always a complete sample. Its ``Metadata`` records everything that fixes the events (generator
    version, process, events, pileup, seed, √s, chunk size, dropped branches, elements).
Interruptions and ``--resume``
    Interrupted by Ctrl-C or SIGTERM, the run stops after the chunk being written (a chunk is appended whole
    or not at all), keeps the partial file and says how many events it holds; after a SIGKILL the partial
    file is what was written up to the last complete chunk. ``--resume`` (``resume=True``) continues such a
    sample instead of starting over: the complete chunks of the partial file of the same request (same
    metadata) holding the most events are copied, and only the chunks after them are simulated. Chunks are
    seeded independently, by (seed, chunk index), so the resumed file has exactly the events of an
    uninterrupted run. A partial file that is unreadable from some chunk on is used up to there. With no
    matching partial file, ``--resume`` starts from the first event (and says so). When the sample is
    complete, every partial file of ``<output>`` is removed, with or without ``--resume``. Without
    ``--resume`` partial files are left alone until then (a run started by mistake loses nothing). Run one
    ``generate`` per output at a time.
An unwritable output folder is one line and exit status 2, before anything is simulated.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing
import sys
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import uproot
from tqdm import tqdm

from coffea_mlreco.core.outputs import Interrupted, atomic_file, partial_outputs, sigterm_as_interrupt
from coffea_mlreco.core.version import __version__
from coffea_mlreco.simulation.event_builder import ChunkSpec, simulate_chunk
from coffea_mlreco.simulation.nanoaod_writer import NanoAODWriter, branch_layout, read_chunk
from coffea_mlreco.simulation.pileup import load_or_build_library
from coffea_mlreco.simulation.processes import PROCESSES

__all__ = ["add_arguments", "default_chunk_size", "generate_sample", "run", "sample_metadata"]

_LIBRARY = None


def default_chunk_size(pileup: float) -> int:
    """Events per chunk: about 2 million generated particles (a few hundred MB) per chunk."""
    return int(max(10, min(500, 2_000_000 // (190 * pileup + 1500))))


def _worker_init(sqrt_s: float, pileup: float) -> None:
    global _LIBRARY  # noqa: PLW0603 (one memory-mapped library per worker process)
    _LIBRARY = load_or_build_library(sqrt_s) if pileup > 0 else None


def _simulate(spec: ChunkSpec) -> dict[str, object]:
    return simulate_chunk(spec, _LIBRARY)


def _without(chunk: dict[str, object], drop: tuple[str, ...]) -> dict[str, object]:
    """The chunk without the collections/branches named in ``drop`` (each must exist)."""
    unknown = [name for name in drop if name not in chunk]
    if unknown:
        raise ValueError(f"cannot drop {', '.join(unknown)}: the simulation writes {', '.join(chunk)}")
    return {name: value for name, value in chunk.items() if name not in drop}


def sample_metadata(
    process: str,
    n_events: int,
    pileup: float,
    seed: int,
    sqrt_s: float,
    chunk_size: int,
    drop: tuple[str, ...] = (),
    elements: bool = False,
) -> dict[str, str]:
    """The ``Metadata/<key>`` strings of a generated file: what fixes its events (two files with equal metadata
    hold the same events). ``pileup`` and ``sqrt_s`` (TeV) written as floats (``0.0``, ``13.6``), whether given as
    int or float; ``drop`` recorded sorted, comma-separated, only when not empty."""
    metadata = {
        "generator": f"coffea-mlreco {__version__} (Pythia 8 via pythia8mc)",
        "process": process,
        "events": str(n_events),
        "pileup": str(float(pileup)),
        "seed": str(seed),
        "sqrt_s_TeV": str(float(sqrt_s)),
        "chunk_size": str(chunk_size),
    }
    if drop:
        metadata["drop"] = ",".join(sorted(drop))
    if elements:
        metadata["elements"] = "1"
    return metadata


@dataclass(frozen=True)
class _ResumeSource:
    """A partial file of the requested sample and its number of complete chunks."""

    path: Path
    chunks: int
    events: int


def _file_metadata(handle: uproot.ReadOnlyDirectory) -> dict[str, str]:
    return {
        k.split(";")[0].removeprefix("Metadata/"): str(handle[k])
        for k in handle.keys(recursive=True)
        if k.startswith("Metadata/")
    }


def _resume_source(output: Path, metadata: dict[str, str], specs: list[ChunkSpec]) -> _ResumeSource | None:
    """The partial file of ``output`` with the same metadata holding the most complete chunks (None: none)."""
    best: _ResumeSource | None = None
    for path in partial_outputs(output):
        try:
            with uproot.open(path) as handle:
                if _file_metadata(handle) != metadata or "Events" not in handle:
                    continue
                entries = int(handle["Events"].num_entries)
        except Exception as err:
            print(f"coffea-mlreco generate: skipping {path}: unreadable ({type(err).__name__}: {err})", file=sys.stderr)
            continue
        chunks = 0
        for spec in specs:
            if spec.first_event + spec.n_events > entries:
                break
            chunks += 1
        events = sum(spec.n_events for spec in specs[:chunks])
        if chunks and (best is None or chunks > best.chunks):
            best = _ResumeSource(path, chunks, events)
    return best


def _copied_chunks(source: _ResumeSource, specs: list[ChunkSpec]) -> Iterator[tuple[ChunkSpec, dict[str, object]]]:
    """The complete chunks of a partial file, as written; stops early at a chunk that cannot be read."""
    try:
        with uproot.open(source.path) as handle:
            tree = handle["Events"]
            layout = branch_layout(tree)
            for spec in specs[: source.chunks]:
                chunk = read_chunk(tree, layout, spec.first_event, spec.first_event + spec.n_events)
                yield spec, chunk
    except (OSError, ValueError, KeyError, uproot.DeserializationError) as err:
        print(
            f"coffea-mlreco generate: {source.path} is unreadable from some chunk on ({err}); simulating the rest",
            file=sys.stderr,
        )


def generate_sample(
    process: str,
    n_events: int,
    pileup: float,
    seed: int,
    output: str | Path,
    jobs: int = 1,
    sqrt_s: float = 13.6,
    chunk_size: int | None = None,
    progress: bool = True,
    drop: tuple[str, ...] = (),
    elements: bool = False,
    resume: bool = False,
) -> Path:
    """Simulate ``n_events`` of ``process`` at mean pileup ``pileup`` and write them to ``output``.

    The same (process, n_events, pileup, seed, sqrt_s, chunk_size) gives the same events, whatever ``jobs``.
    Returns the output path. With ``jobs > 1`` the workers are started with ``spawn``: in a script, call
    this under ``if __name__ == "__main__":`` (as for any Python multiprocessing; notebooks need nothing).
    ``drop`` names collections or branches not to write (e.g. ``("PFCands",)`` for a jet-level sample,
    which makes PU 60 files ~10× smaller); an unknown name is an error. ``elements`` also writes the
    detector elements and their truth targets (``PFTrack``, ``PFCluster``, ``PFTarget``, and ``PFCands``
    gains ``trackIdx``/``clusterIdx``; see `simulation.element_targets`), the inputs of MLPF training; the
    other branches are the same as without it.

    ``output`` appears only once complete; ``resume`` continues an interrupted run of the same request from
    its partial file (module docstring). Raises `coffea_mlreco.core.OutputError` for an unwritable output
    folder (before simulating) and `coffea_mlreco.core.Interrupted` (a ``KeyboardInterrupt``) when
    interrupted, naming the partial file kept and the events it holds.
    """
    if process not in PROCESSES:
        raise ValueError(f"unknown process {process!r}; known: {', '.join(PROCESSES)}")
    if n_events <= 0:
        raise ValueError("the number of events must be positive")
    if pileup < 0:
        raise ValueError("the mean pileup must be >= 0")
    if chunk_size is not None and chunk_size <= 0:
        raise ValueError("the chunk size must be positive")
    drop = tuple(drop)
    chunk_size = chunk_size or default_chunk_size(pileup)
    specs = [
        ChunkSpec(process, min(chunk_size, n_events - start), seed, k, pileup, sqrt_s, start, elements)
        for k, start in enumerate(range(0, n_events, chunk_size))
    ]
    metadata = sample_metadata(process, n_events, pileup, seed, sqrt_s, chunk_size, drop, elements)
    output = Path(output)
    stale = partial_outputs(output)
    source = _resume_source(output, metadata, specs) if resume else None
    if resume:
        print(
            f"coffea-mlreco generate: resuming from {source.path}: {source.events} of {n_events} events written"
            if source
            else f"coffea-mlreco generate: no partial file of {output} for this request; starting from the first event",
            file=sys.stderr,
        )
    writer: NanoAODWriter | None = None
    with atomic_file(output, keep_on_interrupt=True) as partial:
        bar = tqdm(total=n_events, unit="ev", desc=f"{process} PU {pileup:g}", disable=not progress)
        try:
            if pileup > 0:
                load_or_build_library(sqrt_s, progress=progress)  # build once, before the workers start
            with NanoAODWriter(partial, metadata) as writer:
                copied = 0
                if source is not None:
                    for spec, chunk in _copied_chunks(source, specs):
                        writer.write(chunk)
                        copied += 1
                        bar.update(spec.n_events)
                for spec, chunk in _simulated_chunks(specs[copied:], jobs, sqrt_s, pileup):
                    writer.write(_without(chunk, drop))
                    bar.update(spec.n_events)
        except KeyboardInterrupt as interrupt:
            events = writer.entries if writer is not None else 0
            if not events:
                partial.unlink(missing_ok=True)
            raise Interrupted(output, partial if events else None, f"{events} of {n_events} events") from interrupt
        finally:
            bar.close()
    for path in stale:  # the sample is complete: earlier partial files of it are of no use
        path.unlink(missing_ok=True)
    return output


def _simulated_chunks(
    specs: list[ChunkSpec], jobs: int, sqrt_s: float, pileup: float
) -> Iterator[tuple[ChunkSpec, dict[str, object]]]:
    """The chunks of ``specs`` simulated in order, by ``jobs`` processes (a few chunks in flight)."""
    if not specs:
        return
    if jobs <= 1:
        _worker_init(sqrt_s, pileup)
        for spec in specs:
            yield spec, _simulate(spec)
        return
    context = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(jobs, mp_context=context, initializer=_worker_init, initargs=(sqrt_s, pileup)) as pool:
        pending: deque[tuple[ChunkSpec, cf.Future]] = deque()
        queue = iter(specs)
        try:
            for spec in queue:
                pending.append((spec, pool.submit(_simulate, spec)))
                if len(pending) >= 2 * jobs:
                    break
            while pending:
                spec, future = pending.popleft()
                yield spec, future.result()
                nxt = next(queue, None)
                if nxt is not None:
                    pending.append((nxt, pool.submit(_simulate, nxt)))
        except BaseException:  # interrupted or failed: do not wait for the chunks still queued
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--process", required=True, choices=sorted(PROCESSES), help="physics process")
    parser.add_argument("--events", type=int, required=True, help="number of events")
    parser.add_argument("--pileup", type=float, default=0.0, help="mean number of pileup interactions (Poisson)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (same seed, same file)")
    parser.add_argument(
        "--output",
        required=True,
        help="output ROOT file; written as OUTPUT.partial-XXXXXXXX and renamed when complete, so "
        "OUTPUT always holds a whole sample",
    )
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--sqrt-s", type=float, default=13.6, help="centre-of-mass energy in TeV (13.6 or 14)")
    parser.add_argument("--chunk-size", type=int, default=None, help="events per chunk (default: from pileup)")
    parser.add_argument(
        "--drop",
        nargs="+",
        default=[],
        metavar="NAME",
        help="collections or branches not to write (e.g. PFCands for a jet-level sample)",
    )
    parser.add_argument(
        "--elements",
        action="store_true",
        help="also write detector elements and truth targets (PFTrack, PFCluster, PFTarget) for MLPF",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run: the same command with --resume copies the complete "
        "chunks of its partial file OUTPUT.partial-* and simulates only the rest; chunks are "
        "seeded independently, so the file is identical in events to an uninterrupted run "
        "(without a partial file of the same request it starts from the first event). Once "
        "OUTPUT is complete its partial files are removed",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Run ``generate``: exit status 0 (written), 1 (interrupted: partial file kept), 2 (bad arguments or an
    output that cannot be written)."""
    start = time.perf_counter()
    try:
        with sigterm_as_interrupt():
            out = generate_sample(
                args.process,
                args.events,
                args.pileup,
                args.seed,
                args.output,
                jobs=args.jobs,
                sqrt_s=args.sqrt_s,
                chunk_size=args.chunk_size,
                progress=not args.quiet,
                drop=tuple(args.drop),
                elements=args.elements,
                resume=args.resume,
            )
    except (ValueError, OSError) as err:  # OSError includes OutputError (an unwritable output folder)
        print(f"coffea-mlreco generate: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:  # Ctrl-C or SIGTERM
        kept = isinstance(err, Interrupted) and err.kept is not None
        hint = "; run the same command with --resume to continue from it" if kept else ""
        print(
            f"coffea-mlreco generate: {err if isinstance(err, Interrupted) else 'interrupted'}{hint}", file=sys.stderr
        )
        return 1
    seconds = time.perf_counter() - start
    print(
        f"wrote {args.events} {args.process} events (PU {args.pileup:g}) to {out} in {seconds:.1f} s "
        f"({args.events / seconds:.1f} events/s)"
    )
    return 0
