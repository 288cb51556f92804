"""Per-method timing: :func:`timed` adds a block's wall-clock time to a ``timings`` dict."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, MutableMapping

__all__ = ["timed"]


@contextlib.contextmanager
def timed(timings: MutableMapping[str, float] | None, key: str) -> Iterator[None]:
    """Add the seconds the block takes (wall clock, ``time.perf_counter``) to ``timings[key]`` (from 0 when absent);
    nothing is timed when ``timings`` is None, and nothing is added when the block raises."""
    if timings is None:
        yield
        return
    tic = time.perf_counter()
    yield
    timings[key] = timings.get(key, 0.0) + (time.perf_counter() - tic)
