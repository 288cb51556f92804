"""MET throughput at high pileup: events/s of PUPPI, the DeepMET-style and the Perceiver MET models, on CPU or GPU.

One run, one machine, the same events of a PU 200 (or any) tt̄ file with PF candidates. Rows:

- ``PUPPI weights``: our numba PUPPI (`coffea_mlreco.met.puppi.puppi_weights`, Run-3 tune) on the
  awkward candidates, ``--threads`` numba threads; "per core" divides by the thread count;
- ``<model> wrapper``: the shipped model's wrapper (``coffea_mlreco.met.wrappers.MET_MODELS.load``) from the
  awkward chunk to the MET record (candidate features, length-sorted token-budget batches, padding, host →
  device copy, the model, the result back to awkward), with the PUPPI weights already attached as
  ``PFCands.puppiWeightReco`` (they are the PUPPI row's cost, paid once per chunk for every model);
- ``<model> bare``: the model alone on batches padded beforehand (host memory), host → device copy and the
  MET back to the host included: the ceiling the wrapper approaches.

On ``--device cuda`` the models run in fp32 and in bf16 autocast; numba PUPPI stays on the CPU.
Events are repeated up to ``--events`` when the file has fewer.

    python benchmarks/met_throughput.py FILE [--events 2000] [--threads 2] [--device cpu]
                                             [--models deepmet_pu200 perceiver_pu200] [--bare-only]
                                             [--perceiver-sizes 64x64 96x96]

``--bare-only`` skips the wrapper rows; ``--perceiver-sizes DIMxLATENTS ...`` adds bare rows of untrained
Perceivers of those sizes (the time does not depend on the weights), to size a model before training it.
"""

from __future__ import annotations

import argparse
import os
import platform
import warnings

import awkward as ak
import numpy as np
from rates import events_per_second  # benchmarks/rates.py (the scripts run from this folder)


def _events(path: str, n_events: int):
    from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        events = NanoEventsFactory.from_root(
            {path: "Events"}, schemaclass=NanoAODSchema, mode="eager", entry_stop=n_events
        ).events()
    if len(events) == 0:
        raise SystemExit(f"{path}: no events")
    return events[np.resize(np.arange(len(events)), n_events)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", help="NanoAOD-like file with PFCands (coffea-mlreco generate --pileup 200)")
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", nargs="+", default=["deepmet_pu200", "perceiver_pu200"])
    parser.add_argument("--tokens", type=int, default=None, help="padded candidates per bare-model batch")
    parser.add_argument("--min-seconds", type=float, default=2.0)
    parser.add_argument("--bare-only", action="store_true", help="skip the wrapper (end-to-end) rows")
    parser.add_argument(
        "--perceiver-sizes",
        nargs="*",
        default=[],
        metavar="DIMxLATENTS",
        help="also time untrained Perceivers of these sizes (bare model)",
    )
    args = parser.parse_args()
    os.environ.setdefault("NUMBA_NUM_THREADS", str(args.threads))

    import numba
    import torch

    from coffea_mlreco.inference.batching import FlatJagged, pad_batch, plan_batches
    from coffea_mlreco.met.features import feature_names, met_inputs
    from coffea_mlreco.met.neighbourhood import neighbourhood_features
    from coffea_mlreco.met.perceiver import PerceiverMET
    from coffea_mlreco.met.puppi import load_tune, puppi_weights
    from coffea_mlreco.met.wrappers import MET_MODELS

    torch.set_num_threads(args.threads)
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    device = torch.device(args.device)
    cuda = device.type == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    events = _events(args.file, args.events)
    n = len(events)
    n_cands = ak.to_numpy(ak.num(events.PFCands))
    print(
        f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {args.threads} threads, "
        f"device {args.device}"
        + (f" ({torch.cuda.get_device_name(device)})" if cuda else "")
        + f"; {n} events, PF candidates/event median {np.median(n_cands):.0f} (5–95 %: "
        f"{np.percentile(n_cands, 5):.0f}–{np.percentile(n_cands, 95):.0f})",
        flush=True,
    )

    rows: list[tuple[str, str, float]] = []
    rate = events_per_second(lambda: puppi_weights(events.PFCands, "run3", npv=events.PV.npvsGood), n, args.min_seconds)
    rows.append(("PUPPI weights (numba)", "cpu", rate))
    events["PFCands", "puppiWeightReco"] = puppi_weights(events.PFCands, "run3", npv=events.PV.npvsGood)
    tokens = args.tokens or (1 << 21 if cuda else 1 << 16)
    inputs: dict[bool, list] = {}

    def padded_batches(neighbourhood: bool) -> list:
        """The events' padded mini-batches with the inputs of a model with or without the neighbourhood."""
        if neighbourhood not in inputs:
            cand, event = met_inputs(events, neighbourhood=neighbourhood)
            flat = FlatJagged(
                tuple(ak.to_numpy(ak.flatten(cand[k])).astype(np.float32) for k in feature_names(neighbourhood)),
                ak.to_numpy(ak.num(cand)).astype(np.int64),
            )
            event_np = np.stack([ak.to_numpy(event[k]).astype(np.float32) for k in ak.fields(event)], axis=1)
            plan = plan_batches(flat.counts[:, None], tokens, 1024)
            padded = [(*pad_batch(flat, b), event_np[b]) for b in plan]
            convert = (lambda a: torch.from_numpy(a).pin_memory()) if cuda else torch.from_numpy
            inputs[neighbourhood] = [tuple(convert(a) for a in batch) for batch in padded]
        return inputs[neighbourhood]

    rate = events_per_second(
        lambda: neighbourhood_features(events.PFCands, events.PV.npvsGood, load_tune("run3").delta_z_cut),
        n,
        args.min_seconds,
    )
    rows.append(("neighbourhood inputs (numba)", "cpu", rate))

    def bare_rate(model: torch.nn.Module, precision: str, neighbourhood: bool = False) -> float:
        dtype = torch.bfloat16 if precision == "bf16" else None
        padded = padded_batches(neighbourhood)

        def bare() -> None:
            with (
                torch.inference_mode(),
                torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None),
            ):
                for x, mask, ev in padded:
                    out = model(
                        cands=x.to(device, non_blocking=True),
                        cands_mask=mask.to(device, non_blocking=True),
                        event=ev.to(device, non_blocking=True),
                    )["met_xy"]
                    out.float().cpu()

        return events_per_second(bare, n, args.min_seconds, sync)

    precisions = ("fp32", "bf16") if cuda else ("fp32",)
    for name in args.models:
        for precision in precisions:
            wrapper = MET_MODELS.load(name, device=args.device, precision=precision)
            if not args.bare_only:
                rows.append(
                    (
                        f"{name} wrapper",
                        f"{args.device} {precision}",
                        events_per_second(lambda w=wrapper: w(events), n, args.min_seconds, sync),
                    )
                )
            rows.append(
                (
                    f"{name} bare",
                    f"{args.device} {precision}",
                    bare_rate(wrapper.cache.get(wrapper.backend, device), precision, wrapper.neighbourhood),
                )
            )
    for size in args.perceiver_sizes:
        dim, latents = (int(v) for v in size.lower().split("x"))
        model = PerceiverMET(dim=dim, n_latents=latents, target="direct").to(device).eval()
        for precision in precisions:
            rows.append(
                (
                    f"Perceiver dim {dim}, {latents} latents (untrained) bare",
                    f"{args.device} {precision}",
                    bare_rate(model, precision),
                )
            )

    print("\n| method | device | events/s | events/s per core |\n|---|---|---|---|")
    for name, dev, rate in rows:
        per_core = f"{rate / args.threads:,.0f}" if dev.startswith("cpu") else "—"
        print(f"| {name} | {dev} | {rate:,.0f} | {per_core} |")


if __name__ == "__main__":
    main()
