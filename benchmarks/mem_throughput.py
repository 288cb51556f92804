"""MEM throughput end to end: integrated weights per CPU-second and the shipped DeepMEM network's events/s.

Generates Drell-Yan and Z′ events with the package's simulation (or reads ``--input`` files), selects the dilepton
events with :func:`coffea_mlreco.mem.inputs.dilepton_candidates`, and prints

1. the VEGAS integration (:func:`coffea_mlreco.mem.mem_log_weights`, one process) per hypothesis at ``--precision``
   (default 1 %): weights per second of wall time and per CPU-second (the per-core figure, independent of other
   processes sharing the cores; goal ≥ 10), median evaluations and achieved precision;
2. the shipped network (``coffea_mlreco.mem.wrappers.MEM_MODELS.load``) through the wrapper, from awkward
   candidates to ``logw_<h>`` columns (feature building included), on the CPU with ``--threads`` torch threads;
3. the bare model on a float32 feature array (host → device → host included) for large batches, on the CPU and,
   when torch sees one, on the GPU (fp32; goal ≥ 1M events/s on an H200).

One-off costs (PDF grids, numba, model loading, the fiducial cross-sections) are paid in warm-up calls.

    python benchmarks/mem_throughput.py [--events 3000] [--precision 0.01] [--threads 2] [--input F.root ...]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
import warnings
from pathlib import Path

import awkward as ak
import numpy as np
import torch
from rates import events_per_second  # benchmarks/rates.py (the scripts run from this folder)

from coffea_mlreco.mem import mem_log_weights
from coffea_mlreco.mem.inputs import dilepton_candidates, integration_inputs, network_features
from coffea_mlreco.mem.wrappers import MEM_MODELS
from coffea_mlreco.training.cached_arrays import open_events


def _samples(args: argparse.Namespace) -> list[Path]:
    if args.input:
        return [Path(p) for p in args.input]
    from coffea_mlreco.simulation import generate_sample

    folder = Path(tempfile.mkdtemp())
    return [
        generate_sample(
            process, args.events, 0, seed=seed, output=folder / f"{process}.root", progress=False, drop=("PFCands",)
        )
        for process, seed in (("dy-ll", 9401), ("zprime-ll", 9402))
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3000, help="events generated per process")
    parser.add_argument("--input", nargs="+", help="read these NanoAOD-like files instead of generating")
    parser.add_argument("--precision", type=float, default=0.01)
    parser.add_argument("--max-integrated", type=int, default=400, help="events integrated per hypothesis")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads on the CPU")
    parser.add_argument("--min-seconds", type=float, default=2.0)
    parser.add_argument("--model", default="deepmem")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cands = [dilepton_candidates(open_events(p)) for p in _samples(args)]
    sel = ak.concatenate([c[c.selected] for c in cands])
    n = len(sel)
    print(
        f"# MEM throughput: {n} selected dilepton events; machine {platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), load average {os.getloadavg()[0]:.1f}"
    )

    rng = np.random.default_rng(0)
    sub = sel[np.sort(rng.choice(n, size=min(n, args.max_integrated), replace=False))]
    lep1, lep2, met = integration_inputs(sub)
    print(f"\n## Integration, one process, precision {args.precision:g}, {len(sub)} events\n")
    print("| hypothesis | weights/s (wall) | weights per CPU-s | median evals | median rel. precision | converged |")
    print("|---|---|---|---|---|---|")
    for h in MEM_MODELS.card(args.model)["config"]["hypotheses"]:
        warm = {k: {f: v[:1] for f, v in d.items()} for k, d in (("l1", lep1), ("l2", lep2), ("m", met))}
        mem_log_weights(warm["l1"], warm["l2"], warm["m"], h, precision=args.precision)
        wall, cpu = time.perf_counter(), time.process_time()
        r = mem_log_weights(lep1, lep2, met, h, precision=args.precision, seed=1)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(
            f"| {h} | {len(sub) / wall:.1f} | {len(sub) / cpu:.1f} | {np.median(r.n_evals):.0f} | "
            f"{np.median(r.rel_precision):.4f} | {r.converged.mean():.3f} |"
        )

    print(f"\n## Network ({args.model})\n")
    print("| path | device | events per call | events/s |\n|---|---|---|---|")
    wrapper = MEM_MODELS.load(args.model, device="cpu")
    print(
        f"| wrapper, awkward candidates → logw columns | cpu | {n} | "
        f"{events_per_second(lambda: wrapper(sel), n, args.min_seconds):,.0f} |",
        flush=True,
    )
    features = network_features(sel, flavour=wrapper.flavour_input)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for device in devices:
        model = wrapper.cache.get(wrapper.backend, device)

        def sync(device: torch.device = device) -> None:
            if device.type == "cuda":
                torch.cuda.synchronize(device)

        for batch in (10_000, 100_000) + ((1_000_000,) if device.type == "cuda" else ()):
            x_host = np.resize(features, (batch, features.shape[1]))

            def call(x_host: np.ndarray = x_host, model=model, device: torch.device = device) -> None:
                with torch.inference_mode():
                    model.neg_log10_weight(torch.from_numpy(x_host).to(device, non_blocking=True)).cpu()

            print(
                f"| bare model, numpy features | {device.type} | {batch:,} | "
                f"{events_per_second(call, batch, args.min_seconds, sync):,.0f} |",
                flush=True,
            )
    if not torch.cuda.is_available():
        print("| bare model | cuda | — | not measured (no GPU visible) |")


if __name__ == "__main__":
    main()
