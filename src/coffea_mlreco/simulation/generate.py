"""`coffea-mlreco generate`: simulate a process and write a NanoAOD-like ROOT file.

Events are made in chunks (each chunk reproducible on its own from the seed and its index), by
``--jobs`` worker processes, and written in order as they finish, so the file does not depend on the
number of jobs and memory stays bounded by a few chunks in flight.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing
import sys
import time
from collections import deque
from pathlib import Path

from tqdm import tqdm

from .. import __version__
from .event_builder import ChunkSpec, simulate_chunk
from .nanoaod_writer import NanoAODWriter
from .pileup import load_or_build_library
from .processes import PROCESSES

__all__ = ["add_arguments", "default_chunk_size", "generate_sample", "run"]

_LIBRARY = None


def default_chunk_size(pileup: float) -> int:
    """Events per chunk: about 2 million generated particles (a few hundred MB) per chunk."""
    return int(max(10, min(500, 2_000_000 // (190 * pileup + 1500))))


def _worker_init(sqrt_s: float, pileup: float) -> None:
    global _LIBRARY  # one memory-mapped library per worker process
    _LIBRARY = load_or_build_library(sqrt_s) if pileup > 0 else None


def _simulate(spec: ChunkSpec) -> dict[str, object]:
    return simulate_chunk(spec, _LIBRARY)


def _without(chunk: dict[str, object], drop: tuple[str, ...]) -> dict[str, object]:
    """The chunk without the collections/branches named in ``drop`` (each must exist)."""
    unknown = [name for name in drop if name not in chunk]
    if unknown:
        raise ValueError(f"cannot drop {', '.join(unknown)}: the simulation writes {', '.join(chunk)}")
    return {name: value for name, value in chunk.items() if name not in drop}


def generate_sample(process: str, n_events: int, pileup: float, seed: int, output: str | Path, jobs: int = 1,
                    sqrt_s: float = 13.6, chunk_size: int | None = None, progress: bool = True,
                    drop: tuple[str, ...] = (), elements: bool = False) -> Path:
    """Simulate ``n_events`` of ``process`` at mean pileup ``pileup`` and write them to ``output``.

    The same (process, n_events, pileup, seed, sqrt_s, chunk_size) gives the same events, whatever ``jobs``.
    Returns the output path. With ``jobs > 1`` the workers are started with ``spawn``: in a script, call
    this under ``if __name__ == "__main__":`` (as for any Python multiprocessing; notebooks need nothing).
    ``drop`` names collections or branches not to write (e.g. ``("PFCands",)`` for a jet-level sample,
    which makes PU 60 files ~10× smaller); an unknown name is an error. ``elements`` also writes the
    detector elements and their truth targets (``PFTrack``, ``PFCluster``, ``PFTarget``, and ``PFCands``
    gains ``trackIdx``/``clusterIdx``; see `simulation.element_targets`), the inputs of MLPF training; the
    other branches are the same as without it.
    """
    if process not in PROCESSES:
        raise ValueError(f"unknown process {process!r}; known: {', '.join(PROCESSES)}")
    if n_events <= 0:
        raise ValueError("the number of events must be positive")
    if pileup < 0:
        raise ValueError("the mean pileup must be >= 0")
    drop = tuple(drop)
    chunk_size = chunk_size or default_chunk_size(pileup)
    specs = [ChunkSpec(process, min(chunk_size, n_events - start), seed, k, pileup, sqrt_s, start, elements)
             for k, start in enumerate(range(0, n_events, chunk_size))]
    if pileup > 0:
        load_or_build_library(sqrt_s, progress=progress)  # build once, before the workers start
    metadata = {"generator": f"coffea-mlreco {__version__} (Pythia 8 via pythia8mc)", "process": process,
                "events": str(n_events), "pileup": str(pileup), "seed": str(seed), "sqrt_s_TeV": str(sqrt_s)}
    if elements:
        metadata["elements"] = "1"
    output = Path(output)
    bar = tqdm(total=n_events, unit="ev", desc=f"{process} PU {pileup:g}", disable=not progress)
    with NanoAODWriter(output, metadata) as writer:
        if jobs <= 1:
            _worker_init(sqrt_s, pileup)
            for spec in specs:
                writer.write(_without(_simulate(spec), drop))
                bar.update(spec.n_events)
        else:
            context = multiprocessing.get_context("spawn")
            with cf.ProcessPoolExecutor(jobs, mp_context=context, initializer=_worker_init,
                                        initargs=(sqrt_s, pileup)) as pool:
                pending: deque[tuple[ChunkSpec, cf.Future]] = deque()
                queue = iter(specs)
                for spec in queue:
                    pending.append((spec, pool.submit(_simulate, spec)))
                    if len(pending) >= 2 * jobs:
                        break
                while pending:
                    spec, future = pending.popleft()
                    writer.write(_without(future.result(), drop))
                    bar.update(spec.n_events)
                    nxt = next(queue, None)
                    if nxt is not None:
                        pending.append((nxt, pool.submit(_simulate, nxt)))
    bar.close()
    return output


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--process", required=True, choices=sorted(PROCESSES), help="physics process")
    parser.add_argument("--events", type=int, required=True, help="number of events")
    parser.add_argument("--pileup", type=float, default=0.0, help="mean number of pileup interactions (Poisson)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (same seed, same file)")
    parser.add_argument("--output", required=True, help="output ROOT file")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--sqrt-s", type=float, default=13.6, help="centre-of-mass energy in TeV (13.6 or 14)")
    parser.add_argument("--chunk-size", type=int, default=None, help="events per chunk (default: from pileup)")
    parser.add_argument("--drop", nargs="+", default=[], metavar="NAME",
                        help="collections or branches not to write (e.g. PFCands for a jet-level sample)")
    parser.add_argument("--elements", action="store_true",
                        help="also write detector elements and truth targets (PFTrack, PFCluster, PFTarget) for MLPF")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    try:
        out = generate_sample(args.process, args.events, args.pileup, args.seed, args.output, jobs=args.jobs,
                              sqrt_s=args.sqrt_s, chunk_size=args.chunk_size, progress=not args.quiet,
                              drop=tuple(args.drop), elements=args.elements)
    except (ValueError, OSError) as err:
        print(f"coffea-mlreco generate: error: {err}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - start
    print(f"wrote {args.events} {args.process} events (PU {args.pileup:g}) to {out} in {seconds:.1f} s "
          f"({args.events / seconds:.1f} events/s)")
    return 0
