"""DeepMEM network throughput: inference events/s by batch size (CPU; CUDA fp32 and bf16 autocast when a GPU is
visible) and training epochs/s on a synthetic 100k-event MEM weight table.

Inference is timed from a numpy feature array [N, 14] (float32) to a numpy array of −log10 P [N, H]: host→device
copy, the model (its in-model φ/log-pT/dilepton transform included), device→host copy; one warm-up call, then
repeated calls for at least ``--min-seconds``. Training is :func:`coffea_mlreco.mem.training.train_deepmem` on the
whole table held on the device (validation on 10k events every epoch); reported are full epochs/s (training pass +
validation), training-pass epochs/s and the GPU utilisation NVML reports. The model is the default architecture
(256 wide, 4 residual blocks, LayerNorm, SiLU) with two hypotheses; weights are random (speed does not depend on
them).

    python benchmarks/deepmem_throughput.py [--threads 2] [--train-epochs 3] [--device auto]
"""

from __future__ import annotations

import argparse
import math
import platform

import numpy as np
import torch
from rates import events_per_second  # benchmarks/rates.py (the scripts run from this folder)

from coffea_mlreco.mem.deepmem import DeepMEM
from coffea_mlreco.mem.table_schema import MEMTable
from coffea_mlreco.mem.training import train_deepmem


def synthetic_table(n: int, seed: int) -> MEMTable:
    """Realistic dilepton(+jets) kinematics (GeV, rad) with a smooth two-hypothesis log10 weight."""
    rng = np.random.default_rng(seed)
    kin: dict[str, np.ndarray] = {}
    for lep in ("lep1", "lep2"):
        kin[f"{lep}_pt"] = 25 + rng.exponential(20, n)
        kin[f"{lep}_eta"] = rng.uniform(-2.4, 2.4, n)
        kin[f"{lep}_phi"] = rng.uniform(-math.pi, math.pi, n)
        kin[f"{lep}_pdgId"] = rng.choice([-13, 13], n)
    for jet in ("jet1", "jet2"):
        has = rng.random(n) < 0.5
        kin[f"{jet}_pt"] = np.where(has, 30 + rng.exponential(30, n), 0.0)
        kin[f"{jet}_eta"] = np.where(has, rng.uniform(-4.7, 4.7, n), 0.0)
        kin[f"{jet}_phi"] = np.where(has, rng.uniform(-math.pi, math.pi, n), 0.0)
    kin["met_pt"], kin["met_phi"] = rng.exponential(20, n), rng.uniform(-math.pi, math.pi, n)
    m2 = (
        2
        * kin["lep1_pt"]
        * kin["lep2_pt"]
        * (np.cosh(kin["lep1_eta"] - kin["lep2_eta"]) - np.cos(kin["lep1_phi"] - kin["lep2_phi"]))
    )
    logw = np.stack(
        [-np.log10((m2 - mass**2) ** 2 + (mass * width) ** 2) for mass, width in ((91.19, 2.5), (500.0, 25.0))], 1
    )
    return MEMTable(kin, ("dy", "zprime"), logw, np.full_like(logw, 1e-3), {"file": None, "generator_seed": seed})


def inference_rates(device: torch.device, batches: list[int], precision: str, min_seconds: float) -> list[float]:
    torch.manual_seed(0)
    model = DeepMEM(hypotheses=("dy", "zprime")).to(device).eval()
    features = synthetic_table(max(batches), 0).features()
    dtype = torch.bfloat16 if precision == "bf16" else None

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    rates = []
    for n in batches:
        x_host = features[:n]

        def call(x_host: np.ndarray = x_host) -> np.ndarray:
            with (
                torch.inference_mode(),
                torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None),
            ):
                x = torch.from_numpy(x_host).to(device, non_blocking=True)
                return model.neg_log10_weight(x).cpu().numpy()

        rates.append(events_per_second(call, n, min_seconds, sync))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads on the CPU")
    parser.add_argument("--device", default="auto", help="auto (CPU, and CUDA if visible), cpu or cuda")
    parser.add_argument("--train-events", type=int, default=100_000)
    parser.add_argument("--train-epochs", type=int, default=None, help="default 3 on the CPU, 30 on a GPU")
    parser.add_argument("--batch-size", type=int, default=1024, help="training mini-batch")
    parser.add_argument("--min-seconds", type=float, default=1.0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cuda = torch.cuda.is_available() and args.device != "cpu"
    print(
        f"# machine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
        f"GPU: {torch.cuda.get_device_name() if cuda else 'none'}"
    )

    print("\n| device | precision | batch | events/s |\n|---|---|---|---|")
    if args.device in ("auto", "cpu"):
        cpu_batches = [1_000, 10_000, 100_000]
        for n, r in zip(
            cpu_batches, inference_rates(torch.device("cpu"), cpu_batches, "fp32", args.min_seconds), strict=True
        ):
            print(f"| cpu | fp32 | {n} | {r:,.0f} |", flush=True)
    if cuda:
        gpu_batches = [1_000, 10_000, 100_000, 1_000_000]
        for precision in ("fp32", "bf16"):
            for n, r in zip(
                gpu_batches,
                inference_rates(torch.device("cuda"), gpu_batches, precision, args.min_seconds),
                strict=True,
            ):
                print(f"| cuda | {precision} | {n} | {r:,.0f} |", flush=True)

    train_device = "cuda" if cuda else "cpu"
    epochs = args.train_epochs or (30 if cuda else 3)
    train, val = synthetic_table(args.train_events, 1), synthetic_table(10_000, 2)
    print(
        "\n| training device | events | batch | epochs | epochs/s (with validation) | epochs/s (training pass) "
        "| GPU utilisation | val MAPE |\n|---|---|---|---|---|---|---|---|"
    )
    result = train_deepmem(
        train, val, epochs=epochs, batch_size=args.batch_size, device=train_device, patience=epochs, progress=False
    )
    util = f"{result.gpu_utilisation:.0%}" if result.gpu_utilisation is not None else "n/a"
    print(
        f"| {train_device} | {len(train):,} | {args.batch_size} | {result.epochs_run} | "
        f"{result.epochs_per_second:.3f} | {result.train_epochs_per_second:.3f} | {util} | "
        f"{result.val_mape_mean:.2%} |"
    )


if __name__ == "__main__":
    main()
