"""tt̄ jet-parton assignment throughput: events/s per method, and how each scales with N_jets = 4…10.

One run on one machine, the same selected semileptonic tt̄ events for every method. For each N, events with
at least N selected jets keep their N leading jets (repeated up to ``--events`` when the file has fewer), so
every event of a row has exactly N jets; the permutation
methods (χ², KLFitter-style fit, permutation DNN) permute all N (N(N−1)(N−2)(N−3)/2 permutations), the
attention model reads all N in one pass. The "selection" row is the configuration the processor runs
(permutations of the 6 leading jets, SPANet on up to 10) on the file's natural jet multiplicities.

Timed: the method's call on the awkward inputs of a chunk, including feature building and (for the networks)
batching, model and assignment extraction; not the file reading or the selection. Threads: ``--threads``
(torch and numba). With ``--device cuda`` the networks run on the GPU (numba baselines stay on the CPU).

    python benchmarks/ttbar_throughput.py FILE [--events 2000] [--threads 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import platform
import warnings
from collections.abc import Callable
from typing import Any

import awkward as ak
import numpy as np
from rates import events_per_second  # benchmarks/rates.py (the scripts run from this folder)

from coffea_mlreco.core.columns import to_numpy


def _selected_inputs(path: str, max_events: int) -> Any:
    from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

    from coffea_mlreco.ttbar.inputs import semileptonic_inputs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        events = NanoEventsFactory.from_root(
            {path: "Events"}, schemaclass=NanoAODSchema, mode="eager", entry_stop=max_events
        ).events()
    inputs = semileptonic_inputs(events)
    return inputs[to_numpy(inputs.selected, bool)]


def _with_n_jets(inputs: Any, n: int, n_events: int) -> Any:
    """``n_events`` events with exactly ``n`` jets: the events with ≥ n jets, cut to their n leading ones and
    repeated when there are fewer (a rate per event does not depend on which events are repeated)."""
    chosen = inputs[to_numpy(inputs.n_jets >= n, bool)]
    if len(chosen) == 0:
        return chosen
    chosen = ak.concatenate([chosen] * int(np.ceil(n_events / len(chosen))))[:n_events]
    return ak.with_field(ak.with_field(chosen, chosen.jets[:, :n], "jets"), n, "n_jets")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", help="semileptonic tt̄ NanoAOD-like file (coffea-mlreco generate)")
    parser.add_argument("--events", type=int, default=2000, help="selected events per row at most")
    parser.add_argument("--read", type=int, default=40000, help="events read from the file")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    os.environ.setdefault("NUMBA_NUM_THREADS", str(args.threads))
    import numba
    import torch

    from coffea_mlreco.ttbar.chi2 import chi2_assignment
    from coffea_mlreco.ttbar.klfitter import klfitter_assignment
    from coffea_mlreco.ttbar.wrappers import TTBAR_MODELS

    torch.set_num_threads(args.threads)
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    inputs = _selected_inputs(args.file, args.read)
    spanet = TTBAR_MODELS.load("spanet_pu60", device=args.device)
    pdnn_card_jets = 6

    def methods(n_perm_jets: int) -> dict[str, Callable[[Any], Any]]:
        pdnn = TTBAR_MODELS.load("pdnn_pu60", device=args.device)
        pdnn.max_jets = n_perm_jets
        return {
            "chi2": lambda x: chi2_assignment(x, max_jets=n_perm_jets),
            "klfitter": lambda x: klfitter_assignment(x, max_jets=n_perm_jets),
            "pdnn": pdnn,
            "spanet": spanet,
        }

    rows: list[tuple[str, int, dict[str, float]]] = []
    sample = inputs[: args.events]
    rows.append(
        (
            "selection",
            len(sample),
            {m: events_per_second(lambda f=f: f(sample), len(sample)) for m, f in methods(pdnn_card_jets).items()},
        )
    )
    for n in range(4, 11):
        distinct = int(ak.sum(inputs.n_jets >= n))
        chosen = _with_n_jets(inputs, n, args.events)
        if distinct < 3:
            print(f"N_jets = {n}: only {distinct} events with that many jets, skipped")
            continue
        budget = max(500, min(len(chosen), int(args.events * 180 / max(1, n * (n - 1) * (n - 2) * (n - 3) // 2))))
        rates = {}
        for method, call in methods(n).items():
            part = chosen if method == "spanet" else chosen[:budget]
            rates[method] = events_per_second(lambda c=call, p=part: c(p), len(part))
        rows.append((str(n), distinct, rates))

    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu"
    print(
        f"\ntt̄ assignment throughput, events/s (networks: {args.threads} torch threads on {args.device}, {device}; "
        "χ² and KLFitter-style fit: one core, numba)\n"
    )
    print("| N_jets | distinct events | χ² | KLFitter-style | PDNN | SPANet | SPANet / PDNN |")
    print("|---|---|---|---|---|---|---|")
    for label, n_events, rates in rows:
        print(
            f"| {label} | {n_events} | {rates['chi2']:.0f} | {rates['klfitter']:.0f} | {rates['pdnn']:.0f} | "
            f"{rates['spanet']:.0f} | {rates['spanet'] / rates['pdnn']:.2f} |"
        )


if __name__ == "__main__":
    main()
