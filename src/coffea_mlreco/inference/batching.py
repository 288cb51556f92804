"""Jagged awkward collections → padded mini-batches, and model outputs back to awkward.

The expensive part of running a model on jagged HEP data is not the model but the padding: padding a
chunk to its longest event (coffea's `torch_wrapper` recipe, `ak.pad_none` + `ak.fill_none`) makes a
500-candidate event pay for the 10k-candidate one, and the awkward padding calls themselves cost as much
as the model. Here the events of a chunk are sorted by length and cut into mini-batches whose padded size
(events × longest event, summed over the jagged inputs) stays under a token budget; each batch is filled
by one numpy scatter into a preallocated array, and the outputs are scattered back in the original order.

Conventions: a jagged input is F flat float32 feature columns of length T with per-event ``counts [N]``; a
padded batch is ``x [B, L, F]`` with ``mask [B, L]`` (True = a real object) and ``L`` = the longest
event of the batch (at least 1, so that models never see a zero-size axis).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numba
import numpy as np

__all__ = ["FlatJagged", "NonFiniteValues", "pad_batch", "plan_batches", "scatter_objects"]


@dataclass
class FlatJagged:
    """One jagged input of a chunk, flattened: ``columns[f][offsets[i]:offsets[i+1]]`` is feature f of event i.

    The feature columns are kept separate (zero-copy views of the awkward buffers where possible), so
    the only copy on the way to the model is the one into the padded batch.
    """

    columns: tuple[np.ndarray, ...]  # F arrays of [T] float32
    counts: np.ndarray  # [N] int64

    def __post_init__(self) -> None:
        self.offsets = np.concatenate([[0], np.cumsum(self.counts)]).astype(np.int64)
        # one numba type for every column: contiguous float32, read-only views (no copy of the data)
        views = []
        for column in self.columns:
            view = np.ascontiguousarray(column, dtype=np.float32).view()
            view.flags.writeable = False
            views.append(view)
        self.columns = tuple(views)

    @property
    def n_features(self) -> int:
        return len(self.columns)

    @property
    def n_objects(self) -> int:
        return int(self.offsets[-1])


@numba.njit(cache=True)
def _plan(lengths: np.ndarray, order: np.ndarray, max_tokens: int, max_batch: int) -> np.ndarray:
    """Batch boundaries over ``order``: a batch grows while B × Σ_k max(L_k) stays within the budget."""
    n, k = lengths.shape
    bounds = [0]
    running = np.zeros(k, np.int64)
    size = 0
    for pos in range(n):
        e = order[pos]
        trial = 0
        for j in range(k):
            trial += max(running[j], lengths[e, j], 1)
        if size > 0 and ((size + 1) * trial > max_tokens or size >= max_batch):
            bounds.append(pos)
            running[:] = 0
            size = 0
        for j in range(k):
            running[j] = max(running[j], lengths[e, j])
        size += 1
    bounds.append(n)
    return np.array(bounds, dtype=np.int64)


def plan_batches(lengths: np.ndarray, max_tokens: int, max_batch: int) -> list[np.ndarray]:
    """Event indices of each mini-batch, longest events first.

    ``lengths [N, K]`` holds each event's object count in each of the K jagged inputs (K may be 0). A
    batch's padded size B × Σ_k max(L_k) stays ≤ ``max_tokens`` unless a single event exceeds it on its
    own; at most ``max_batch`` events go into one batch.
    """
    n = lengths.shape[0]
    if n == 0:
        return []
    lengths = np.ascontiguousarray(lengths.reshape(n, -1), dtype=np.int64)
    order = np.argsort(-lengths.sum(axis=1), kind="stable")
    bounds = _plan(lengths, order, int(max_tokens), int(max_batch))
    return [order[a:b] for a, b in itertools.pairwise(bounds)]


@numba.njit(cache=True, nogil=True)
def _pad_kernel(columns, offsets, events, x, mask):  # type: ignore[no-untyped-def]
    """Copy the events' objects into x [B, L, F] and mask; return the number of non-finite values seen."""
    bad = 0
    for b in range(events.size):
        start = offsets[events[b]]
        n = offsets[events[b] + 1] - start
        for i in range(n):
            mask[b, i] = True
            for f in range(len(columns)):
                v = columns[f][start + i]
                if not np.isfinite(v):
                    bad += 1
                x[b, i, f] = v
    return bad


@numba.njit(cache=True, nogil=True)
def _scatter_kernel(padded, offsets, events, out):  # type: ignore[no-untyped-def]
    for b in range(events.size):
        start = offsets[events[b]]
        for i in range(offsets[events[b] + 1] - start):
            out[start + i] = padded[b, i]


class NonFiniteValues(ValueError):
    """Raised by `pad_batch` when the batch holds NaN or ±inf; the caller names the feature."""


def pad_batch(jagged: FlatJagged, events: np.ndarray, pad_value: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Padded ``x [B, L, F]`` (float32) and ``mask [B, L]`` (bool) for the given events, L = their longest.

    Raises `NonFiniteValues` if any copied feature is NaN or ±inf.
    """
    events = np.asarray(events, dtype=np.int64)
    length = max(int(jagged.counts[events].max(initial=0)), 1)
    x = np.full((events.size, length, jagged.n_features), pad_value, dtype=np.float32)
    mask = np.zeros((events.size, length), dtype=np.bool_)
    if jagged.n_features and _pad_kernel(jagged.columns, jagged.offsets, events, x, mask):
        raise NonFiniteValues("non-finite input values")
    if not jagged.n_features:
        for b, e in enumerate(events):
            mask[b, : jagged.counts[e]] = True
    return x, mask


def scatter_objects(padded: np.ndarray, jagged: FlatJagged, events: np.ndarray, out: np.ndarray) -> None:
    """Write a per-object output ``padded [B, L, ...]`` of a batch into ``out [T, ...]`` at the objects' rows."""
    width = int(np.prod(out.shape[1:]))  # explicit, not -1: a chunk may hold no objects at all (T = 0)
    flat_out = out.reshape(out.shape[0], width)
    _scatter_kernel(
        np.ascontiguousarray(padded).reshape(padded.shape[0], padded.shape[1], width),
        jagged.offsets,
        np.asarray(events, dtype=np.int64),
        flat_out,
    )
