"""Inference throughput on jagged inputs: coffea's torch_wrapper vs raw torch vs our ModelWrapper.

One run, one model (`CandidateMLP`, a 6→64→64→1 per-candidate MLP with a weighted-sum head), the same
chunks of awkward input: 2000 events with 100–10k candidates each (uniform, like PF candidates at PU 200),
6 float32 features, split into chunks as a coffea Runner would. Each method counts from its own input:

- ``torch_wrapper``: `coffea.ml_tools.torch_wrapper` on a TorchScript of the model, inputs padded to
  the chunk's longest event with ``ak.pad_none`` / ``ak.fill_none`` / ``ak.concatenate`` (its docs' recipe);
- ``raw torch, chunk-padded``: the model on tensors padded to the chunk's longest event, padding done
  beforehand and not timed;
- ``raw torch, batch-padded``: the model on length-sorted mini-batches padded to each batch's longest
  event (the same batches our wrapper builds), padding done beforehand and not timed;
- ``ModelWrapper``: ours, from the awkward chunk (flattening, batching, padding, model, outputs back to
  awkward), event-level output; and once more also returning the per-candidate weights.

    python benchmarks/inference_throughput.py [--events 2000] [--chunk 500] [--threads 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
import warnings
from collections.abc import Callable
from typing import ClassVar

import awkward as ak
import numpy as np
import torch
from safetensors.torch import save_file

from coffea_mlreco.inference import DEFAULT_TOKENS, Jagged, ModelWrapper, TorchModule, pad_batch, plan_batches
from coffea_mlreco.inference.batching import FlatJagged
from coffea_mlreco.nn.candidate_mlp import CandidateMLP

FEATURES = ("px", "py", "eta", "phi", "charge", "puppi")


class MetOnly(torch.nn.Module):
    """CandidateMLP returning only its event-level head (torch_wrapper takes one tensor output)."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = CandidateMLP()

    def forward(self, cands: torch.Tensor, cands_mask: torch.Tensor) -> torch.Tensor:
        return self.inner(cands, cands_mask)["met_xy"]


class OursMet(ModelWrapper):
    selected_outputs = ("met_xy",)

    def prepare(self, events: ak.Array) -> dict[str, Jagged]:
        return {"cands": Jagged(events[list(FEATURES)])}


class OursMetAndWeights(ModelWrapper):
    per_object_outputs: ClassVar[dict[str, str]] = {"weight": "cands"}

    def prepare(self, events: ak.Array) -> dict[str, Jagged]:
        return {"cands": Jagged(events[list(FEATURES)])}


def synthetic_chunks(n_events: int, chunk: int, seed: int = 1) -> list[ak.Array]:
    rng = np.random.default_rng(seed)
    counts = rng.integers(100, 10_001, n_events)
    total = int(counts.sum())
    columns = {f: rng.normal(size=total).astype(np.float32) for f in FEATURES}
    events = ak.unflatten(ak.zip(columns), counts)
    return [events[i : i + chunk] for i in range(0, n_events, chunk)]


def coffea_torch_wrapper(script_path: str) -> Callable[[ak.Array], np.ndarray]:
    from coffea.ml_tools.torch_wrapper import torch_wrapper

    class Padded(torch_wrapper):
        def prepare_awkward(self, events: ak.Array):
            longest = int(ak.max(ak.num(events, axis=1)))
            padded = ak.pad_none(events, longest, axis=1, clip=True)
            mask = ak.fill_none(~ak.is_none(padded, axis=1), False)
            x = ak.concatenate([ak.fill_none(padded[f], 0.0)[:, :, np.newaxis] for f in FEATURES], axis=2)
            return [ak.values_astype(x, np.float32), mask], {}

    wrapper = Padded(script_path)
    warnings.filterwarnings("ignore", message="No format checks were performed on input")
    return lambda chunk: np.asarray(wrapper(chunk))


def raw_torch(
    model: torch.nn.Module, chunks: list[ak.Array], batch_padded: bool, tokens: int, device: torch.device
) -> Callable[[int], np.ndarray]:
    """Pre-pad every chunk (not timed); the returned function runs the model on chunk i."""
    prepared = []
    for chunk in chunks:
        counts = ak.to_numpy(ak.num(chunk, axis=1)).astype(np.int64)
        flat = FlatJagged(tuple(np.ascontiguousarray(ak.to_numpy(ak.flatten(chunk[f]))) for f in FEATURES), counts)
        plan = plan_batches(counts[:, None], tokens, 8192) if batch_padded else [np.arange(len(counts))]
        prepared.append([tuple(torch.from_numpy(a).to(device) for a in pad_batch(flat, b)) for b in plan])

    def run(i: int) -> np.ndarray:
        with torch.inference_mode():
            return np.concatenate([model(x, m).cpu().numpy() for x, m in prepared[i]])

    return run


def timed(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up: compilation, caches, model load
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--chunk", type=int, default=500)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    chunks = synthetic_chunks(args.events, args.chunk)
    model = MetOnly().eval()
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "model.pt")
        torch.jit.save(torch.jit.script(model), script)
        model.to(device)
        weights = os.path.join(tmp, "model.safetensors")
        save_file(model.inner.state_dict(), weights)
        backend = TorchModule("coffea_mlreco.nn.candidate_mlp:CandidateMLP", weights)

        tw = coffea_torch_wrapper(script)
        results["coffea torch_wrapper (chunk-padded, awkward)"] = timed(lambda: [tw(c) for c in chunks], args.repeat)
        tokens = DEFAULT_TOKENS[device.type]
        for label, batch_padded in (
            ("raw torch, chunk-padded (pre-padded)", False),
            ("raw torch, batch-padded (pre-padded)", True),
        ):
            run = raw_torch(model, chunks, batch_padded, tokens, device)
            results[label] = timed(lambda run=run: [run(i) for i in range(len(chunks))], args.repeat)
        ours = OursMet(backend, device=args.device, precision="fp32")
        results["ModelWrapper (from awkward)"] = timed(lambda: [ours(c) for c in chunks], args.repeat)
        both = OursMetAndWeights(backend, device=args.device, precision="fp32")
        results["ModelWrapper + per-candidate weights"] = timed(lambda: [both(c) for c in chunks], args.repeat)
        check = np.concatenate([tw(c) for c in chunks])
        np.testing.assert_allclose(
            np.concatenate([np.asarray(ours(c).met_xy) for c in chunks]), check, rtol=1e-3, atol=1e-2
        )

    n = args.events
    baseline = results["coffea torch_wrapper (chunk-padded, awkward)"]
    raw = results["raw torch, batch-padded (pre-padded)"]
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{args.threads} threads, device {args.device}; {n} events of 100-10k candidates, chunks of {args.chunk}"
    )
    print("| method | events/s | × torch_wrapper | vs raw torch batch-padded |")
    print("|---|---|---|---|")
    for label, seconds in results.items():
        print(f"| {label} | {n / seconds:,.0f} | {baseline / seconds:.2f} | {raw / seconds:.2f} |")


if __name__ == "__main__":
    main()
