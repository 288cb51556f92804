"""MLPF inference cost and peak memory per event vs the number of detector elements N (1k → 20k): is it O(N)?

Runs the default `MLPF` (random weights: the cost does not depend on them) on one event of N random tracks and
clusters at a time, each N in its own subprocess so the memory figures do not mix:

- time: median wall time of ``--repeats`` forward passes (``torch.inference_mode``) after one warm-up pass
  at the same N; on CUDA with ``torch.cuda.synchronize`` around each pass;
- peak memory on CPU: the rise of the process's peak resident set size (``getrusage`` ``ru_maxrss``) during
  the first forward pass at N over the peak after building the model and running a 256-element warm-up, i.e.
  activations plus whatever the allocator keeps (``tracemalloc`` does not see torch's allocations);
- peak memory on CUDA: ``torch.cuda.max_memory_allocated`` during the forward passes minus the memory
  allocated before them (the weights and the input), i.e. the activations' peak.

A constant "time/N ÷ (1k)" column (≈ 1) means linear scaling; quadratic would grow to 20 at N = 20k.

    python benchmarks/mlpf_scaling.py [--device cpu|cuda] [--sizes 1000 2000 5000 10000 20000]
                                      [--repeats 5] [--threads 1] [--half]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import torch

from coffea_mlreco.mlpf.model import CLUSTER, ELEMENT_FEATURES, MLPF, TRACK

F = {name: i for i, name in enumerate(ELEMENT_FEATURES)}


def random_event(n: int, seed: int = 0) -> torch.Tensor:
    """[1, n, 15]: half tracks (pT 1–21 GeV), half clusters (E 1–51 GeV), |η| < 2.5 (GeV, rad, cm)."""
    g = torch.Generator().manual_seed(seed)
    el = torch.zeros(1, n, len(ELEMENT_FEATURES))
    track = torch.rand(1, n, generator=g) < 0.5
    t, c = track.float(), (~track).float()
    eta, phi = 5 * torch.rand(1, n, generator=g) - 2.5, 2 * math.pi * torch.rand(1, n, generator=g) - math.pi
    pt, e, em = (
        1 + 20 * torch.rand(1, n, generator=g),
        1 + 50 * torch.rand(1, n, generator=g),
        torch.rand(1, n, generator=g),
    )
    el[..., F["type"]] = torch.where(track, TRACK, CLUSTER)
    el[..., F["eta"]], el[..., F["phi"]] = eta, phi
    el[..., F["pt"]], el[..., F["eta_calo"]], el[..., F["phi_calo"]] = t * pt, t * eta, t * (phi + 0.1 / pt)
    el[..., F["charge"]], el[..., F["quality"]] = t * torch.sign(torch.rand(1, n, generator=g) - 0.5), t
    el[..., F["e"]], el[..., F["e_em"]], el[..., F["e_had"]] = c * e, c * em * e, c * (1 - em) * e
    el[..., F["width"]] = c * 0.03
    return el


def _max_rss_mb() -> float:
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 1e6


def worker(n: int, device: str, repeats: int, half: bool) -> dict[str, float]:
    """One N in a fresh process: {"n", "ms", "peak_mb"}."""
    torch.manual_seed(0)
    dev = torch.device(device)
    model = MLPF().to(dev).eval()
    dtype = torch.float16 if half else torch.float32

    def run(elements: torch.Tensor, mask: torch.Tensor) -> None:
        with torch.inference_mode(), torch.autocast(dev.type, dtype=dtype, enabled=half):
            model(elements, mask)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    small = random_event(256, seed=1).to(dev)
    run(small, torch.ones(1, 256, dtype=torch.bool, device=dev))
    elements, mask = random_event(n).to(dev), torch.ones(1, n, dtype=torch.bool, device=dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
        before = torch.cuda.memory_allocated(dev)
    rss = _max_rss_mb()
    run(elements, mask)  # warm-up at N, and the CPU memory measurement
    peak = _max_rss_mb() - rss
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(elements, mask)
        times.append(time.perf_counter() - start)
    if dev.type == "cuda":
        peak = (torch.cuda.max_memory_allocated(dev) - before) / 1e6
    return {"n": n, "ms": 1e3 * statistics.median(times), "peak_mb": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 5000, 10000, 20000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (1: on a shared machine more threads mostly wait on each other)",
    )
    parser.add_argument("--half", action="store_true", help="float16 autocast (CUDA)")
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.worker is not None:
        print(json.dumps(worker(args.worker, args.device, args.repeats, args.half)))
        return
    rows = []
    for n in args.sizes:
        command = [
            sys.executable,
            __file__,
            "--worker",
            str(n),
            "--device",
            args.device,
            "--repeats",
            str(args.repeats),
            "--threads",
            str(args.threads),
        ] + (["--half"] if args.half else [])
        rows.append(json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout))
    model = MLPF()
    n_params = sum(p.numel() for p in model.parameters())
    name = (
        torch.cuda.get_device_name(args.device)
        if args.device.startswith("cuda")
        else platform.processor() or platform.machine()
    )
    memory = "torch.cuda.max_memory_allocated rise" if args.device.startswith("cuda") else "ru_maxrss rise"
    print(
        f"MLPF default ({n_params / 1e6:.2f} M parameters, bin_size {model.bin_size}); device {args.device} "
        f"({name}, {os.cpu_count()} cores, {args.threads} threads){' fp16' if args.half else ''}; one event/pass"
    )
    print(f"| N elements | ms/event | µs/element | time/N ÷ (1k) | peak MB ({memory}) | kB/element |")
    print("|---:|---:|---:|---:|---:|---:|")
    base = rows[0]["ms"] / rows[0]["n"]
    for r in rows:
        print(
            f"| {r['n']} | {r['ms']:.1f} | {1e3 * r['ms'] / r['n']:.2f} | {r['ms'] / r['n'] / base:.2f} | "
            f"{r['peak_mb']:.0f} | {1e3 * r['peak_mb'] / r['n']:.1f} |"
        )


if __name__ == "__main__":
    main()
