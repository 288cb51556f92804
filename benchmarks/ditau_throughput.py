"""Di-tau mass throughput: selected events/s of the collinear approximation, the FastMTT-style scan and the
transformer, on the same events, in one run on one machine.

Timed: each method's call on the awkward inputs of the selected events (for the transformer: token features,
batching, the model and the four-momenta), not the file reading or the selection. FastMTT and collinear are
numba kernels on one thread per ``--threads``; "per core" divides by the thread count. The transformer runs
on ``--device`` (``cpu`` or ``cuda``); the row "transformer, inputs prepared" times the wrapper's ``run`` on inputs
built beforehand (batching, padding, host → device copy, the model, outputs back to the host), i.e. without the
awkward feature building, which runs on the CPU whatever the device. On CUDA both in fp32 and bf16. Events are repeated
up to ``--events`` when the file has fewer selected ones (a rate per event does not depend on which).

    python benchmarks/ditau_throughput.py FILE [--events 5000] [--threads 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import platform
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from rates import events_per_second  # benchmarks/rates.py (the scripts run from this folder)

from coffea_mlreco.core.columns import to_numpy


def _selected(path: str, max_events: int, n_events: int) -> tuple[Any, Any]:
    from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

    from coffea_mlreco.ditau.inputs import ditau_candidates

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        events = NanoEventsFactory.from_root(
            {path: "Events"}, schemaclass=NanoAODSchema, mode="eager", entry_stop=max_events
        ).events()
    candidates = ditau_candidates(events)
    keep = to_numpy(candidates.selected, bool)
    index = np.flatnonzero(keep)
    if index.size == 0:
        raise SystemExit(f"{path}: no selected di-tau events")
    index = np.resize(index, n_events)
    return events[index], candidates[index]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", help="H→ττ or Z→ττ NanoAOD-like file (coffea-mlreco generate)")
    parser.add_argument("--events", type=int, default=5000, help="selected events per measurement")
    parser.add_argument("--read", type=int, default=40000, help="events read from the file")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    os.environ.setdefault("NUMBA_NUM_THREADS", str(args.threads))
    import numba
    import torch

    from coffea_mlreco.ditau.collinear_mass import collinear_mass
    from coffea_mlreco.ditau.fastmtt import fastmtt_mass
    from coffea_mlreco.ditau.wrappers import DITAU_MODELS, _Selected

    numba.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    events, cand = _selected(args.file, args.read, args.events)
    cuda = args.device.startswith("cuda")
    methods: dict[str, Callable[[], Any]] = {
        "collinear": lambda: collinear_mass(cand.leg1, cand.leg2, cand.met),
        "fastmtt": lambda: fastmtt_mass(cand.leg1, cand.leg2, cand.met),
    }
    for precision in ("fp32", "bf16") if cuda else ("fp32",):
        model = DITAU_MODELS.load("transformer", device=args.device, precision=precision)
        prepared = model.prepare(_Selected(events, cand))
        methods[f"transformer ({args.device} {precision})"] = lambda m=model: m(events, cand)
        methods[f"transformer, inputs prepared ({args.device} {precision})"] = lambda m=model, p=prepared: m.run(p)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    print(
        f"# {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"threads {args.threads}, torch {torch.__version__}"
        + (f", {torch.cuda.get_device_name()}" if args.device.startswith("cuda") else "")
    )
    print(f"# {args.events} selected events of {args.file}")
    print("| method | events/s | events/s per core |")
    print("|---|---|---|")
    for name, call in methods.items():
        rate = events_per_second(call, len(events), min_seconds=2.0, sync=sync)
        per_core = rate / args.threads if "cuda" not in name else float("nan")
        print(f"| {name} | {rate:,.0f} | {per_core:,.0f} |")


if __name__ == "__main__":
    main()
