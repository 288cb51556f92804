"""Throughput of the VEGAS-integrated MEM weights (``coffea_mlreco.mem.mem_log_weights``).

Generates Drell-Yan events with the package's simulation (or reads ``--input``), keeps those with an
opposite-sign same-flavour e/μ pair, and prints

1. per hypothesis, on one core: integrated weights per second at the requested precision (goal ≥ 10),
   the median number of integrand evaluations, the achieved precision and the converged fraction;
2. the scaling of ``dy_sm`` with ``n_workers`` (process pool), as weights/s and weights/s per core.

One-off costs (PDF grid reading, numba loading, the fiducial cross-section) are paid in a warm-up call
and not counted. Usage::

    python benchmarks/mem_integration.py --events 1000 --workers 1 2
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

from coffea_mlreco.mem import mem_log_weights


def read_dileptons(path: Path) -> tuple[dict, dict, dict]:
    """The two leading leptons of events whose two leading muons (else electrons) are opposite-sign."""
    events = uproot.open(path)["Events"].arrays(filter_name=["Muon_*", "Electron_*", "MET_*"])
    fields = ("pt", "eta", "phi", "mass", "pdgId")
    chosen = []
    for col in ("Muon", "Electron"):
        pdg = events[f"{col}_pdgId"]
        padded = ak.fill_none(ak.pad_none(pdg, 2, clip=True), 0)
        chosen.append((col, ak.to_numpy(ak.num(pdg) >= 2) & ak.to_numpy(padded[:, 0] == -padded[:, 1])))
    (mu, is_mu), (el, is_el) = chosen
    is_el = is_el & ~is_mu
    lep1, lep2 = ({f: [] for f in fields} for _ in range(2))
    for col, mask in ((mu, is_mu), (el, is_el)):
        for f in fields:
            values = events[f"{col}_{f}"][mask]
            lep1[f].append(ak.to_numpy(values[:, 0]))
            lep2[f].append(ak.to_numpy(values[:, 1]))
    order = np.argsort(np.concatenate([np.flatnonzero(is_mu), np.flatnonzero(is_el)]), kind="stable")

    def cat(columns: dict[str, list[np.ndarray]]) -> dict[str, np.ndarray]:
        return {k: np.concatenate(v).astype(float)[order] for k, v in columns.items()}

    sel = is_mu | is_el
    met = {f: ak.to_numpy(events[f"MET_{f}"][sel]).astype(float) for f in ("pt", "phi", "sumEt")}
    return cat(lep1), cat(lep2), met


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=600, help="Drell-Yan events to generate")
    parser.add_argument("--input", type=Path, help="read this NanoAOD-like file instead of generating")
    parser.add_argument("--hypotheses", nargs="+", default=["dy_sm", "zprime", "zprime_sm", "scalar"])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--precision", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()

    path = args.input
    if path is None:
        from coffea_mlreco.simulation import generate_sample

        path = Path(tempfile.mkdtemp()) / "dy.root"
        generate_sample("dy-ll", args.events, 0, seed=args.seed, output=path, progress=False)
    lep1, lep2, met = read_dileptons(path)
    n = lep1["pt"].size
    n_mu = int(np.sum(np.abs(lep1["pdgId"]) == 13))
    print(f"# MEM integration throughput: {n} dilepton events ({n_mu} μμ, {n - n_mu} ee) from {path}")
    print(
        f"# machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}; "
        f"precision {args.precision:.3g}\n"
    )

    print(
        f"# load average before: {os.getloadavg()[0]:.1f} (other processes share the cores: weights per "
        "CPU-second is the per-core figure that does not depend on them)\n"
    )
    print(
        "| hypothesis | weights/s (wall) | weights per CPU-s | ms CPU/weight | median evals | "
        "median rel. precision | converged |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in args.hypotheses:
        warm = {k: {f: v[:1] for f, v in d.items()} for k, d in (("l1", lep1), ("l2", lep2), ("m", met))}
        mem_log_weights(warm["l1"], warm["l2"], warm["m"], name, precision=args.precision)
        wall, cpu = time.perf_counter(), time.process_time()
        result = mem_log_weights(lep1, lep2, met, name, precision=args.precision, seed=1)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(
            f"| {name} | {n / wall:.1f} | {n / cpu:.1f} | {1e3 * cpu / n:.2f} | {np.median(result.n_evals):.0f} | "
            f"{np.median(result.rel_precision):.4f} | {result.converged.mean():.3f} |"
        )

    print("\n| n_workers | weights/s (wall) | weights per CPU-s (all processes) | wall speed-up |")
    print("|---|---|---|---|")
    base = None
    for workers in args.workers:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall, cpu = time.perf_counter(), time.process_time()
        mem_log_weights(lep1, lep2, met, "dy_sm", precision=args.precision, seed=1, n_workers=workers)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu += (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
        rate = n / wall
        base = base or rate
        print(f"| {workers} | {rate:.1f} | {n / cpu:.1f} | {rate / base:.2f} |")


if __name__ == "__main__":
    main()
