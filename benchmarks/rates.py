"""Throughput measurement shared by the benchmark scripts (they import it as a sibling module)."""

from __future__ import annotations

import time
from collections.abc import Callable


def events_per_second(
    call: Callable[[], object], n_events: int, min_seconds: float = 1.0, sync: Callable[[], None] = lambda: None
) -> float:
    """Events/s of ``call`` (which processes ``n_events``): one warm-up call (compilation, model loading), then
    repeated calls until ``min_seconds`` have passed. ``sync`` waits for asynchronous work (CUDA) after each."""
    call()
    sync()
    runs, start = 0, time.perf_counter()
    while True:
        call()
        sync()
        runs += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return runs * n_events / elapsed
