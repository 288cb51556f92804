"""Permutation tables: every distinct assignment once, with the q ↔ q′ symmetry removed."""

from __future__ import annotations

import itertools

import numpy as np

from coffea_mlreco.ttbar.permutations import flat_permutations, n_permutations, semileptonic_permutations


def test_tables_match_brute_force() -> None:
    for n in range(9):
        table = semileptonic_permutations(n)
        assert len(table) == n_permutations(n)
        brute = {(b, min(q1, q2), max(q1, q2), bl) for b, q1, q2, bl in itertools.permutations(range(n), 4)}
        assert {tuple(row) for row in table} == brute
        if len(table):
            assert np.all(table[:, 1] < table[:, 2])


def test_flat_layout_per_event() -> None:
    offsets, table = flat_permutations(np.array([7, 3, 4, 5]), max_jets=6)
    assert list(np.diff(offsets)) == [180, 0, 12, 60]
    assert np.array_equal(table[offsets[0] : offsets[1]], semileptonic_permutations(6))
    assert np.array_equal(table[offsets[3] : offsets[4]], semileptonic_permutations(5))
    assert table[offsets[0] : offsets[1]].max() == 5  # only the first max_jets jets
