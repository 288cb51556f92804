"""Greedy assignment extraction: distinct jets, most probable resonance first, symmetric probabilities."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from coffea_mlreco.ttbar.assignment import extract_assignments
from coffea_mlreco.ttbar.topology import load_topology

TOPOLOGY = load_topology("semileptonic_ttbar")


def _normalised(logits: np.ndarray) -> np.ndarray:
    return logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))


def test_conflicting_choices_resolve_to_distinct_jets() -> None:
    j = 5
    had = np.full((1, j**3), -20.0)
    had[0, np.ravel_multi_index((2, 0, 1), (j, j, j))] = 5.0  # t_had wants jets 2, 0, 1
    had[0, np.ravel_multi_index((2, 1, 0), (j, j, j))] = 5.0
    had[0, np.ravel_multi_index((3, 0, 1), (j, j, j))] = 4.0
    had[0, np.ravel_multi_index((3, 1, 0), (j, j, j))] = 4.0
    lep = np.array([[-20.0, -20.0, 3.0, 2.5, -20.0]])  # t_lep's best (2) collides with t_had's best
    result = extract_assignments([_normalised(had), _normalised(lep)], TOPOLOGY, np.array([5]))
    had_b, q1, q2, lep_b = result.jets[0]
    assert (had_b, {q1, q2}) == (2, {0, 1})
    assert lep_b == 3  # the most probable jet not already used
    assert len({had_b, q1, q2, lep_b}) == 4
    # the assignment probability sums both q orderings of the symmetric tensor
    expected = 2 * np.exp(_normalised(had)[0, np.ravel_multi_index((2, 0, 1), (j, j, j))])
    assert np.isclose(result.assignment_prob[0, 0], expected)


def test_missing_jets_are_never_used_and_random_inputs_stay_distinct() -> None:
    rng = np.random.default_rng(3)
    j, n = 8, 500
    n_jets = rng.integers(4, 9, n)
    result = extract_assignments(
        [_normalised(rng.normal(size=(n, j**3))), _normalised(rng.normal(size=(n, j)))], TOPOLOGY, n_jets
    )
    assert np.all(result.jets >= 0)
    assert np.all(result.jets < n_jets[:, None])
    assert all(len(set(row)) == 4 for row in result.jets)
    assert np.all((result.assignment_prob > 0) & (result.assignment_prob <= 1))


def test_any_number_of_daughters(tmp_path: Path) -> None:
    path = tmp_path / "four.yaml"
    path.write_text("particles:\n  x: {jets: [a, b, c, d], symmetries: [[a, b, c, d]]}\n  y: {jets: [e]}\n")
    topo = load_topology(path)
    j = 6
    x = np.full((1, j**4), -30.0)
    x[0, np.ravel_multi_index((5, 4, 3, 2), (j,) * 4)] = 10.0
    y = np.array([[0.0, 1.0, 9.0, 0.0, 0.0, 0.0]])  # jet 2 is taken by x first
    result = extract_assignments([_normalised(x), _normalised(y)], topo, np.array([6]))
    assert list(result.jets[0, :4]) == [2, 3, 4, 5]  # canonical order within the fully symmetric group
    assert result.jets[0, 4] == 1
