"""Jet permutations of the semileptonic tt̄ hypothesis, with the q ↔ q′ symmetry removed.

A permutation is a row ``(had_b, had_q1, had_q2, lep_b)`` of distinct jet positions with ``had_q1 < had_q2``
(the hadronic W's two quarks are interchangeable, so only one ordering is kept). With n jets there are
n(n−1)(n−2)(n−3)/2 of them: 12 for 4 jets, 60 for 5, 180 for 6, 2520 for 10. Permutation methods (χ²,
KLFitter-style fit, permutation DNN) loop over these tables; :func:`flat_permutations` lays them out for a
whole chunk as offsets/content arrays, the form the numba kernels read.
"""

from __future__ import annotations

import functools

import numba
import numpy as np

__all__ = ["PERMUTATION_FIELDS", "flat_permutations", "n_permutations", "semileptonic_permutations"]

PERMUTATION_FIELDS = ("had_b", "had_q1", "had_q2", "lep_b")


def n_permutations(n_jets: int) -> int:
    """Number of distinct semileptonic assignments of ``n_jets`` jets (0 below 4 jets)."""
    n = int(n_jets)
    return n * (n - 1) * (n - 2) * (n - 3) // 2 if n >= 4 else 0


@functools.cache
def semileptonic_permutations(n_jets: int) -> np.ndarray:
    """``(n_permutations(n_jets), 4)`` int64 table of ``(had_b, had_q1, had_q2, lep_b)``, q1 < q2.

    Ordered by had_b, then (q1, q2), then lep_b. Read-only (cached).
    """
    rows = [
        (b, q1, q2, bl)
        for b in range(n_jets)
        for q1 in range(n_jets)
        for q2 in range(q1 + 1, n_jets)
        for bl in range(n_jets)
        if len({b, q1, q2, bl}) == 4
    ]
    table = np.array(rows, dtype=np.int64).reshape(-1, 4)
    table.flags.writeable = False
    return table


def flat_permutations(n_jets: np.ndarray, max_jets: int) -> tuple[np.ndarray, np.ndarray]:
    """Per event, the permutations of its first ``min(n_jets, max_jets)`` jets, flattened.

    Returns ``(offsets, table)``: event ``i``'s permutations are ``table[offsets[i]:offsets[i+1]]`` (rows of
    ``(had_b, had_q1, had_q2, lep_b)`` jet positions). Events with fewer than 4 jets have none.
    """
    used = np.minimum(np.asarray(n_jets, dtype=np.int64), int(max_jets))
    counts = np.array([n_permutations(n) for n in range(int(max_jets) + 1)], np.int64)[used]
    offsets = np.zeros(used.size + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    library = np.concatenate([semileptonic_permutations(n) for n in range(int(max_jets) + 1)])
    library_start = np.zeros(int(max_jets) + 2, np.int64)
    np.cumsum([n_permutations(n) for n in range(int(max_jets) + 1)], out=library_start[1:])
    table = np.empty((int(offsets[-1]), 4), np.int64)
    _fill(used, offsets, library, library_start, table)
    return offsets, table


def best_permutation(offsets: np.ndarray, perms: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The highest-scoring permutation of each event and its softmax probability over the event's permutations.

    Args:
        offsets, perms: :func:`flat_permutations` output; scores: [P] one score (logit) per permutation.

    Returns:
        ``(best, probability)``: [N, 4] jet positions (−1 for events without permutations) and [N] (0 there).
    """
    n = len(offsets) - 1
    counts = np.diff(offsets)
    best = np.full((n, 4), -1, np.int64)
    probability = np.zeros(n)
    has = counts > 0
    if has.any():
        scores = np.asarray(scores, np.float64)
        starts = offsets[:-1][has]
        order = np.lexsort((-scores, np.repeat(np.arange(n), counts)))
        best[has] = perms[order[starts]]
        top = np.maximum.reduceat(scores, starts)
        probability[has] = 1.0 / np.add.reduceat(np.exp(scores - np.repeat(top, counts[has])), starts)
    return best, probability


@numba.njit(cache=True)
def _fill(used, offsets, library, library_start, out):  # type: ignore[no-untyped-def]
    for i in range(used.size):
        src = library_start[used[i]]
        for k in range(offsets[i + 1] - offsets[i]):
            for j in range(4):
                out[offsets[i] + k, j] = library[src + k, j]
