"""Batching: token-budget plans, padding and scattering, checked element by element against plain numpy."""

from __future__ import annotations

import numpy as np
import pytest

from coffea_mlreco.inference import FlatJagged, pad_batch, plan_batches, scatter_objects
from coffea_mlreco.inference.batching import NonFiniteValues


def padded_tokens(lengths: np.ndarray, events: np.ndarray) -> int:
    """B × Σ_k max(1, max L_k): the padded size of a batch (every padded axis is at least 1 long)."""
    return len(events) * int(np.maximum(lengths[events].max(axis=0, initial=0), 1).sum())


def random_jagged(rng: np.random.Generator, counts: np.ndarray, n_features: int = 3) -> FlatJagged:
    total = int(counts.sum())
    return FlatJagged(
        tuple(rng.normal(size=total).astype(np.float32) for _ in range(n_features)), counts.astype(np.int64)
    )


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize(("max_tokens", "max_batch"), [(4096, 8192), (700, 8192), (50_000, 7), (1, 8192)])
def test_plan_respects_budget_covers_all_longest_first(k: int, max_tokens: int, max_batch: int) -> None:
    rng = np.random.default_rng(k * 1000 + max_tokens)
    lengths = rng.integers(0, 1200, size=(300, k))
    lengths[::17] = 0  # events without objects
    lengths[1::23, 0] = 1_500  # events longer than the 700-token budget on their own
    batches = plan_batches(lengths, max_tokens, max_batch)

    order = np.concatenate(batches)
    np.testing.assert_array_equal(np.sort(order), np.arange(len(lengths)))  # every event exactly once
    totals = lengths[order].sum(axis=1)
    assert np.all(np.diff(totals) <= 0), "events are not longest first"
    for i, events in enumerate(batches):
        assert 1 <= len(events) <= max_batch
        assert padded_tokens(lengths, events) <= max_tokens or len(events) == 1
        if i + 1 < len(batches):  # greedy: the next event would not have fitted
            grown = np.append(events, batches[i + 1][0])
            assert padded_tokens(lengths, grown) > max_tokens or len(grown) > max_batch


def test_plan_single_event_over_budget_gets_its_own_batch() -> None:
    lengths = np.array([[10], [5000], [10], [20]])
    batches = plan_batches(lengths, max_tokens=100, max_batch=100)
    assert [b.tolist() for b in batches] == [[1], [3, 0, 2]]


def test_plan_without_jagged_inputs_and_without_events() -> None:
    assert plan_batches(np.zeros((0, 1), np.int64), 100, 10) == []
    batches = plan_batches(np.zeros((25, 0), np.int64), 100, 10)  # only dense inputs: max_batch decides
    assert [len(b) for b in batches] == [10, 10, 5]
    np.testing.assert_array_equal(np.concatenate(batches), np.arange(25))


@pytest.mark.parametrize("pad_value", [0.0, -7.5])
def test_pad_batch_matches_numpy_and_scatter_inverts_it(pad_value: float) -> None:
    rng = np.random.default_rng(3)
    counts = rng.integers(0, 50, 200)
    counts[[0, 9]] = 0
    counts[[4, 5]] = 1
    jagged = random_jagged(rng, counts)
    reference = np.stack(jagged.columns, axis=1)  # [T, F]
    restored = np.full((jagged.n_objects, jagged.n_features), np.nan, np.float32)
    restored_first = np.full(jagged.n_objects, np.nan, np.float32)
    for events in plan_batches(counts[:, None], max_tokens=300, max_batch=64):
        x, mask = pad_batch(jagged, events, pad_value=pad_value)
        length = max(int(counts[events].max()), 1)
        assert x.shape == (len(events), length, 3) and x.dtype == np.float32
        assert mask.shape == (len(events), length) and mask.dtype == np.bool_
        for b, e in enumerate(events):
            n = counts[e]
            np.testing.assert_array_equal(x[b, :n], reference[jagged.offsets[e] : jagged.offsets[e + 1]])
            assert np.all(x[b, n:] == np.float32(pad_value))
            np.testing.assert_array_equal(mask[b], np.arange(length) < n)
        scatter_objects(x, jagged, events, restored)
        scatter_objects(x[..., 0], jagged, events, restored_first)
    np.testing.assert_array_equal(restored, reference)
    np.testing.assert_array_equal(restored_first, jagged.columns[0])


def test_pad_batch_events_without_objects_and_with_one() -> None:
    counts = np.array([0, 1, 0, 1])
    jagged = FlatJagged((np.array([2.5, -1.0], np.float32),), counts)
    x, mask = pad_batch(jagged, np.array([0, 2]))
    assert x.shape == (2, 1, 1) and not mask.any() and np.all(x == 0)
    x, mask = pad_batch(jagged, np.array([3, 0, 1]))
    np.testing.assert_array_equal(x[:, 0, 0], [-1.0, 0.0, 2.5])
    np.testing.assert_array_equal(mask[:, 0], [True, False, True])
    out = np.zeros(2, np.float32)
    scatter_objects(x[..., 0] * 2, jagged, np.array([3, 0, 1]), out)
    np.testing.assert_array_equal(out, [5.0, -2.0])


def test_pad_batch_without_features_gives_the_mask() -> None:
    jagged = FlatJagged((), np.array([2, 0, 3]))
    x, mask = pad_batch(jagged, np.array([2, 1, 0]))
    assert x.shape == (3, 3, 0)
    np.testing.assert_array_equal(mask, [[True, True, True], [False, False, False], [True, True, False]])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_pad_batch_rejects_non_finite_values(bad: float) -> None:
    jagged = FlatJagged(
        (np.array([1.0, 2.0, 3.0], np.float32), np.array([1.0, bad, 3.0], np.float32)), np.array([1, 2])
    )
    pad_batch(jagged, np.array([0]))  # the bad value is in event 1 only
    with pytest.raises(NonFiniteValues, match="non-finite"):
        pad_batch(jagged, np.array([0, 1]))
    assert issubclass(NonFiniteValues, ValueError)


@pytest.mark.parametrize("trailing", [(), (3,)])
def test_scatter_into_a_chunk_without_any_object(trailing: tuple[int, ...]) -> None:
    """A chunk whose events all have zero objects: T = 0, nothing to write, no error."""
    jagged = FlatJagged((np.zeros(0, np.float32),), np.array([0, 0]))
    _, mask = pad_batch(jagged, np.array([0, 1]))
    out = np.zeros((0, *trailing), np.float32)
    scatter_objects(np.zeros((2, 1, *trailing), np.float32), jagged, np.array([0, 1]), out)
    assert out.shape == (0, *trailing) and not mask.any()
