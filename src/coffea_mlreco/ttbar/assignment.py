"""Assignment extraction: from per-resonance assignment distributions to distinct jets for every parton.

An attention model gives, per resonance p with k_p jet daughters, log-probabilities over all k_p-tuples of
J jet slots (flattened row-major, ``J**k_p`` entries). The extraction is SPANet's greedy decoding: take the
resonance whose best allowed tuple is most probable, assign it, remove its jets, repeat with the others.
A tuple is allowed when its jets are distinct, exist in the event and are not yet used. Works for any
number of resonances and daughters (no limit on k_p); a resonance left without an allowed tuple gets −1.
Resonances are compared by the probability of the unordered tuple (ordered probability × the number of
orderings its symmetries allow), so a symmetric head is not handicapped by splitting its mass.

The assignment probability of a resonance is the probability of the chosen *unordered* tuple: the sum over
the orderings its symmetry groups allow (q1 q2 and q2 q1 for the hadronic top).
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

from coffea_mlreco.ttbar.topology import EventTopology

__all__ = ["Assignments", "extract_assignments"]


class Assignments(NamedTuple):
    """Per event and resonance (in topology order).

    Attributes:
        jets: [N, total daughters] int64 jet slot of each jet daughter (particles concatenated in topology
            order, daughters in their topology order; within a symmetry group the canonical, lexicographically
            smallest ordering, e.g. q1 < q2), −1 when unassigned.
        log_prob: [N, P] log-probability of the chosen ordered tuple (−inf when unassigned).
        assignment_prob: [N, P] probability of the chosen tuple summed over its symmetric orderings.
    """

    jets: np.ndarray
    log_prob: np.ndarray
    assignment_prob: np.ndarray


@numba.njit(cache=True)
def _decode(flat, k, n_slots, digits):  # type: ignore[no-untyped-def]
    for m in range(k - 1, -1, -1):
        digits[m] = flat % n_slots
        flat //= n_slots


@numba.njit(cache=True)
def _greedy_kernel(  # type: ignore[no-untyped-def]
    logp,
    head_start,
    arity,
    jet_start,
    n_jets,
    n_slots,
    sym_start,
    sym_perm,
    min_logp,
    out_jets,
    out_logp,
    out_prob,
):
    n_events = logp.shape[0]
    n_particles = arity.size
    max_k = 0
    for p in range(n_particles):
        max_k = max(max_k, arity[p])
    digits = np.empty(max_k, np.int64)
    best_digits = np.empty(max_k, np.int64)
    for i in range(n_events):
        used = np.zeros(n_slots, np.bool_)
        done = np.zeros(n_particles, np.bool_)
        n = min(n_jets[i], n_slots)
        for _step in range(n_particles):
            best, best_p, best_flat = -np.inf, -1, -1
            for p in range(n_particles):
                if done[p]:
                    continue
                k = arity[p]
                size = n_slots**k
                log_orderings = np.log(sym_start[p + 1] - sym_start[p])
                for flat in range(size):
                    value = logp[i, head_start[p] + flat] + log_orderings  # unordered tuple
                    if value <= best or value < min_logp + log_orderings:
                        continue
                    _decode(flat, k, n_slots, digits)
                    ok = True
                    for a in range(k):
                        if digits[a] >= n or used[digits[a]]:
                            ok = False
                            break
                        for b in range(a):
                            if digits[a] == digits[b]:
                                ok = False
                                break
                        if not ok:
                            break
                    if ok:
                        best, best_p, best_flat = value, p, flat
            if best_p < 0:
                break
            k = arity[best_p]
            _decode(best_flat, k, n_slots, best_digits)
            # report the canonical ordering (lexicographically smallest allowed by the symmetries)
            for a in range(k):
                digits[a] = best_digits[a]  # the decoded ordering; best_digits becomes the smallest image
            for s in range(sym_start[best_p], sym_start[best_p + 1]):
                smaller = False
                for a in range(k):
                    if digits[sym_perm[s, a]] != best_digits[a]:
                        smaller = digits[sym_perm[s, a]] < best_digits[a]
                        break
                if smaller:
                    for a in range(k):
                        best_digits[a] = digits[sym_perm[s, a]]
            done[best_p] = True
            prob = 0.0
            for s in range(sym_start[best_p], sym_start[best_p + 1]):
                flat = 0
                for a in range(k):
                    flat = flat * n_slots + best_digits[sym_perm[s, a]]
                prob += np.exp(logp[i, head_start[best_p] + flat])
            for a in range(k):
                out_jets[i, jet_start[best_p] + a] = best_digits[a]
                used[best_digits[a]] = True
            out_logp[i, best_p] = best - np.log(sym_start[best_p + 1] - sym_start[best_p])
            out_prob[i, best_p] = prob


def extract_assignments(
    log_probs: list[np.ndarray], topology: EventTopology, n_jets: np.ndarray, min_log_prob: float = -1.0e3
) -> Assignments:
    """Greedy distinct-jet assignment for every event (see the module docstring).

    Args:
        log_probs: per particle of ``topology`` (in order), ``[N, J**k]`` log-probabilities.
        topology: the event topology (arity and symmetries of each particle).
        n_jets: [N] jets in each event (slots ≥ n_jets are never used; at most J are considered).
        min_log_prob: entries below this are treated as impossible (masked by the model).
    """
    particles = topology.particles
    if len(log_probs) != len(particles):
        raise ValueError(f"{len(log_probs)} log-probability arrays for {len(particles)} particles")
    n_events = len(n_jets)
    arity = np.array([p.n_jets for p in particles], np.int64)
    sizes = [np.asarray(lp).shape[1] if np.asarray(lp).ndim == 2 else -1 for lp in log_probs]
    n_slots = round(sizes[0] ** (1.0 / arity[0])) if sizes and sizes[0] > 0 else 0
    for p, size in zip(particles, sizes, strict=True):
        if size != n_slots**p.n_jets or np.asarray(log_probs[particles.index(p)]).shape[0] != n_events:
            raise ValueError(
                f"log-probabilities of {p.name!r} must be [N={n_events}, J**{p.n_jets}] with one J "
                f"for all particles; got shapes {[np.shape(lp) for lp in log_probs]}"
            )
    logp = (
        np.ascontiguousarray(np.concatenate([np.asarray(lp, np.float64) for lp in log_probs], axis=1))
        if n_events
        else np.zeros((0, sum(sizes)), np.float64)
    )
    head_start = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    jet_start = np.concatenate([[0], np.cumsum(arity)]).astype(np.int64)
    perms = [p.symmetric_permutations() for p in particles]
    sym_start = np.concatenate([[0], np.cumsum([len(x) for x in perms])]).astype(np.int64)
    sym_perm = np.zeros((int(sym_start[-1]), int(arity.max())), np.int64)
    row = 0
    for x in perms:
        for order in x:
            sym_perm[row, : len(order)] = order
            row += 1
    out_jets = np.full((n_events, int(jet_start[-1])), -1, np.int64)
    out_logp = np.full((n_events, len(particles)), -np.inf)
    out_prob = np.zeros((n_events, len(particles)))
    _greedy_kernel(
        logp,
        head_start,
        arity,
        jet_start,
        np.asarray(n_jets, np.int64),
        int(n_slots),
        sym_start,
        sym_perm,
        float(min_log_prob),
        out_jets,
        out_logp,
        out_prob,
    )
    return Assignments(out_jets, out_logp, out_prob)
