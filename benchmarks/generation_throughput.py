"""Generation throughput of `coffea-mlreco generate`: events/s at PU 0, 60, 200 and where the time goes.

Runs the simulation chunk by chunk in this process (one core), timing each stage of
`simulate_chunk` and the ROOT writing, after one warm-up chunk (numba compilation, Pythia init and the
pileup library are not counted). Prints a Markdown table for benchmarks/RESULTS.md.

    python benchmarks/generation_throughput.py [--process ttbar-semilep] [--events 200] [--pileup 0 60 200]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

from coffea_mlreco.simulation.event_builder import STAGES, ChunkSpec, simulate_chunk
from coffea_mlreco.simulation.generate import default_chunk_size
from coffea_mlreco.simulation.nanoaod_writer import NanoAODWriter
from coffea_mlreco.simulation.pileup import load_or_build_library


def measure(process: str, n_events: int, pileup: float, seed: int = 1) -> dict[str, float]:
    library = load_or_build_library() if pileup > 0 else None
    chunk = min(default_chunk_size(pileup), n_events)
    simulate_chunk(ChunkSpec(process, min(chunk, 20), seed, 999, pileup, 13.6, 0), library)  # warm-up
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp, NanoAODWriter(os.path.join(tmp, "bench.root")) as writer:
        for k, start in enumerate(range(0, n_events, chunk)):
            spec = ChunkSpec(process, min(chunk, n_events - start), seed, k, pileup, 13.6, start)
            result = simulate_chunk(spec, library, timings=timings)
            t0 = time.perf_counter()
            writer.write(result)
            timings["writing"] = timings.get("writing", 0.0) + time.perf_counter() - t0
    timings["total"] = sum(timings.values())
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--process", default="ttbar-semilep")
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--pileup", type=float, nargs="+", default=[0.0, 60.0, 200.0])
    args = parser.parse_args()
    stages = (*STAGES, "writing")
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; one process; "
        f"{args.process}, {args.events} events per point"
    )
    print("| PU | events/s | ms/event | " + " | ".join(stages) + " |")
    print("|---|---|---|" + "---|" * len(stages))
    for pileup in args.pileup:
        t = measure(args.process, args.events, pileup)
        shares = " | ".join(f"{100 * t.get(s, 0.0) / t['total']:.0f} %" for s in stages)
        print(f"| {pileup:g} | {args.events / t['total']:.1f} | {1000 * t['total'] / args.events:.1f} | {shares} |")


if __name__ == "__main__":
    main()
