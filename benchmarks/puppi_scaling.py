"""PUPPI cost per event vs the number of PF candidates (1k → 20k): is it O(N), and ms/event at PU 200.

Generates small tt̄ samples at increasing pileup (cached in a temporary directory), then times the numba
kernel (`puppi_weights_flat`) and the full awkward front end (`puppi_weights`) on one core, after a
warm-up. Prints a Markdown table; a constant µs/candidate column means linear scaling.

    python benchmarks/puppi_scaling.py [--events 20] [--pileup 20 60 120 200 300 450]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
import warnings

import awkward as ak
import numba
import numpy as np
from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

from coffea_mlreco.met.puppi import load_tune, puppi_weights, puppi_weights_flat, pv_class
from coffea_mlreco.simulation import generate_sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--pileup", type=float, nargs="+", default=[20, 60, 120, 200, 300, 450])
    parser.add_argument("--tune", default="run3")
    args = parser.parse_args()
    numba.set_num_threads(1)
    warnings.filterwarnings("ignore", message="Missing cross-reference")
    tune = load_tune(args.tune)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for pileup in args.pileup:
            path = generate_sample(
                "ttbar-semilep", args.events, pileup, seed=77, output=os.path.join(tmp, "s.root"), progress=False
            )
            events = NanoEventsFactory.from_root(
                {str(path): "Events"}, schemaclass=NanoAODSchema, mode="eager"
            ).events()
            cands = events.PFCands
            counts = ak.to_numpy(ak.num(cands)).astype(np.int64)
            flat = [ak.to_numpy(ak.flatten(cands[k])) for k in ("pt", "eta", "phi")]
            cls = ak.to_numpy(ak.flatten(pv_class(cands, tune.delta_z_cut)))
            npv = ak.to_numpy(events.PV.npvsGood)
            puppi_weights(events, tune)  # warm-up (numba compile / cache load)
            start = time.perf_counter()
            puppi_weights_flat(counts, *flat, cls, npv, tune)
            kernel = time.perf_counter() - start
            start = time.perf_counter()
            puppi_weights(events, tune)
            full = time.perf_counter() - start
            rows.append(
                (
                    pileup,
                    counts.mean(),
                    1e3 * kernel / len(counts),
                    1e3 * full / len(counts),
                    1e6 * kernel / counts.sum(),
                )
            )
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, one thread; tune {args.tune}; "
        f"{args.events} tt̄ events per point"
    )
    print("| PU | PF candidates/event | kernel ms/event | with awkward front end ms/event | kernel µs/candidate |")
    print("|---|---|---|---|---|")
    for pu, n, kernel, full, per in rows:
        print(f"| {pu:g} | {n:,.0f} | {kernel:.2f} | {full:.2f} | {per:.3f} |")


if __name__ == "__main__":
    main()
