"""Events per second of coffea's two execution paths on the same events, per task: ``processor.Runner`` with the
``DaskExecutor`` vs the dask-awkward graph of ``coffea.dataset_tools.apply_to_fileset``, both on one
``distributed.LocalCluster`` (same worker processes, same chunks = partitions), after a warm-up run of each path
(numba compilation and model loading happen once per worker). Both paths must give identical histograms; the
script checks that and prints one table (ratio = dask-awkward events/s ÷ Runner events/s).

    python benchmarks/dask_vs_runner.py --file met=tt_semilep_pu60.root --file ttbar=tt_semilep_pu60.root \\
        --file ditau=htautau_pu60.root --file mem=dy_pu60.root --file mlpf=tt_semilep_pu60.root \\
        --events 2000 --chunksize 500 --workers 2
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import time
import warnings
from typing import Any

import dask
import numpy as np
from coffea import processor
from coffea.dataset_tools import apply_to_fileset
from distributed import Client, LocalCluster

from coffea_mlreco.evaluation.runner import QuietNanoAODSchema

PROCESSORS: dict[str, tuple[str, dict[str, Any]]] = {
    "met": ("coffea_mlreco.processors.met:METProcessor", {"device": "cpu"}),
    "ttbar": ("coffea_mlreco.processors.ttbar:TTbarProcessor", {}),
    "ditau": ("coffea_mlreco.processors.ditau:DiTauProcessor", {}),
    # the VEGAS integration costs the same in both paths and would hide everything else: the network only
    "mem": ("coffea_mlreco.processors.mem:MEMProcessor", {"methods": ("network",)}),
    "mlpf": ("coffea_mlreco.processors.mlpf:MLPFProcessor", {}),
}


def make_processor(task: str) -> Any:
    spec, kwargs = PROCESSORS[task]
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)(**kwargs)


def steps(events: int, chunksize: int) -> list[list[int]]:
    edges = [*range(0, events, chunksize), events]
    return [[lo, hi] for lo, hi in itertools.pairwise(edges)]


def run_runner(task: str, path: str, events: int, chunksize: int, client: Client) -> tuple[dict[str, Any], float]:
    executor = processor.DaskExecutor(client=client, status=False, retries=0)
    runner = processor.Runner(executor=executor, chunksize=chunksize, schema=QuietNanoAODSchema)
    chunks = list(runner.preprocess({"sample": {"files": {path: "Events"}}}, treename="Events"))
    chunks = [c for c in chunks if c.entrystart < events]
    tic = time.perf_counter()
    out = runner(chunks, make_processor(task), treename="Events")
    return out, time.perf_counter() - tic


def run_dask_awkward(task: str, path: str, events: int, chunksize: int, client: Client) -> tuple[dict[str, Any], float]:
    fileset = {"sample": {"files": {path: {"object_path": "Events", "steps": steps(events, chunksize)}}}}
    tic = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        graphs = apply_to_fileset(make_processor(task), fileset, schemaclass=QuietNanoAODSchema)
    (out,) = dask.compute(graphs["sample"], scheduler=client.get)
    return out, time.perf_counter() - tic


def same_histograms(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a["histograms"].keys() == b["histograms"].keys() and all(
        np.array_equal(h.view(flow=True), b["histograms"][k].view(flow=True)) for k, h in a["histograms"].items()
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", action="append", required=True, metavar="TASK=FILE")
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--chunksize", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    files = dict(item.split("=", 1) for item in args.file)
    rows = []
    with (
        LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        for task, path in files.items():
            warm = min(args.chunksize, args.events)
            run_runner(task, path, warm, warm, client)
            run_dask_awkward(task, path, warm, warm, client)
            runner_out, runner_s = run_runner(task, path, args.events, args.chunksize, client)
            dask_out, dask_s = run_dask_awkward(task, path, args.events, args.chunksize, client)
            n = int(sum(runner_out["events"].values()))
            rows.append((task, n, runner_s, dask_s, same_histograms(runner_out, dask_out)))
            print(f"{task}: done", flush=True)
    print(f"\n{args.workers} worker processes, {args.chunksize} events per chunk/partition")
    print(
        "| task | events | Runner (DaskExecutor) ev/s | dask-awkward (apply_to_fileset) ev/s | ratio "
        "| identical histograms |"
    )
    print("|---|---|---|---|---|---|")
    for task, n, runner_s, dask_s, same in rows:
        print(f"| {task} | {n} | {n / runner_s:,.0f} | {n / dask_s:,.0f} | {runner_s / dask_s:.2f} | {same} |")


if __name__ == "__main__":
    main()
