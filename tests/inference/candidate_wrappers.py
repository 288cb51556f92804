"""Model wrappers, a test model with an event-level input, a coffea processor and the per-event reference
shared by the inference tests.

These live in an importable module (not in a test module) because worker processes must rebuild them:
coffea's Runner cloudpickles the processor (with its wrapper) to futures/dask workers, and dask-awkward
graphs pickle the wrapper. ``conftest.py`` puts this directory on ``sys.path`` (spawned workers inherit
the parent's ``sys.path``) and registers this module with cloudpickle to be pickled by value, so a worker
never has to find this file on its own.

The reference (`reference_outputs`) is deliberately naive: one event at a time, no padding, no sorting,
no batching, weights loaded straight from the safetensors file with ``load_state_dict``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import awkward as ak
import hist
import numpy as np
import torch
from coffea import processor
from safetensors.torch import load_file
from torch import nn

from coffea_mlreco import inference
from coffea_mlreco.inference import Dense, Jagged, ModelWrapper
from coffea_mlreco.nn.candidate_mlp import CandidateMLP

FEATURES = ("pt", "eta", "phi", "mass", "charge", "pdgId")
"""The six PF-candidate fields the wrappers read, in model-input order."""

MLP_CLASS = "coffea_mlreco.nn.candidate_mlp:CandidateMLP"
GLOBALS_CLASS = "candidate_wrappers:GlobalsMLP"


class CandidateWrapper(ModelWrapper):
    """CandidateMLP on ``events.PFCands[FEATURES]``; ``weight`` is per candidate, ``met_xy`` per event."""

    per_object_outputs: ClassVar[dict[str, str]] = {"weight": "cands"}
    max_objects: ClassVar[int | None] = None

    def prepare(self, events: Any) -> dict[str, Jagged | Dense]:
        keep = "pt" if self.max_objects is not None else None
        return {"cands": Jagged(events.PFCands[list(FEATURES)], max_objects=self.max_objects, keep_highest=keep)}


class TruncatedWrapper(CandidateWrapper):
    """Keeps the 300 highest-pT candidates of each event."""

    max_objects: ClassVar[int | None] = 300


class GlobalsMLP(nn.Module):
    """CandidateMLP plus an event-level input: ``met_xy`` is shifted by a linear map of ``event_vars [B, G]``."""

    def __init__(self, n_globals: int = 2) -> None:
        super().__init__()
        self.candidates = CandidateMLP()
        self.shift = nn.Linear(n_globals, 2)

    def forward(
        self, cands: torch.Tensor, cands_mask: torch.Tensor, event_vars: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """cands [B, L, 6], cands_mask [B, L], event_vars [B, G] → weight [B, L], met_xy [B, 2]."""
        out = self.candidates(cands, cands_mask)
        return {"weight": out["weight"], "met_xy": out["met_xy"] + self.shift(event_vars)}


class GlobalsWrapper(CandidateWrapper):
    """Candidates plus the event-level record ``events.Globals`` ({npvs, rho}) as a `Dense` input."""

    def prepare(self, events: Any) -> dict[str, Jagged | Dense]:
        return {**super().prepare(events), "event_vars": Dense(events.Globals[["npvs", "rho"]])}


class ScalarGlobalWrapper(CandidateWrapper):
    """A `Dense` input that is a plain number per event (``N * float``), not a record."""

    def prepare(self, events: Any) -> dict[str, Jagged | Dense]:
        return {**super().prepare(events), "event_vars": Dense(events.Globals.rho)}


class NanoGlobalsWrapper(CandidateWrapper):
    """On NanoAOD: candidates plus the number of primary vertices (``PV_npvs``) as a `Dense` number."""

    def prepare(self, events: Any) -> dict[str, Jagged | Dense]:
        return {**super().prepare(events), "event_vars": Dense(events.PV.npvs)}


def load_reference(module: type[nn.Module], weights: str | Path, **config: Any) -> nn.Module:
    """The model with the file's weights, loaded without the package's backends."""
    model = module(**config)
    model.load_state_dict(load_file(str(weights)))
    return model.eval()


def candidate_matrix(pfcands: ak.Array) -> tuple[np.ndarray, np.ndarray]:
    """Flat ``[T, 6]`` float32 features (FEATURES order) and per-event offsets ``[N + 1]``."""
    counts = ak.to_numpy(ak.num(pfcands, axis=1)).astype(np.int64)
    flat = np.stack([ak.to_numpy(ak.flatten(pfcands[f])).astype(np.float32) for f in FEATURES], axis=1)
    return flat.reshape(-1, len(FEATURES)), np.concatenate([[0], np.cumsum(counts)])


def reference_outputs(
    model: nn.Module, pfcands: ak.Array, event_vars: np.ndarray | None = None, max_objects: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-object ``weight [T]`` and per-event ``met_xy [N, 2]``: the model run on one event at a time.

    With ``max_objects``, each event keeps its ``max_objects`` highest-pT candidates (the others get NaN
    weight) and the model sees only those, in the event's original candidate order.
    """
    flat, offsets = candidate_matrix(pfcands)
    weight = np.full(len(flat), np.nan, np.float32)
    met = np.zeros((len(offsets) - 1, 2), np.float32)
    with torch.no_grad():
        for i in range(len(offsets) - 1):
            rows = np.arange(offsets[i], offsets[i + 1])
            if max_objects is not None and rows.size > max_objects:
                top = np.argsort(-flat[rows, 0], kind="stable")[:max_objects]
                rows = rows[np.sort(top)]
            x = torch.from_numpy(flat[rows])[None]
            kwargs = {"cands": x, "cands_mask": torch.ones(1, rows.size, dtype=torch.bool)}
            if event_vars is not None:
                kwargs["event_vars"] = torch.from_numpy(np.asarray(event_vars[i : i + 1], np.float32).reshape(1, -1))
            out = model(**kwargs)
            weight[rows] = out["weight"][0].numpy()
            met[i] = out["met_xy"][0].numpy()
    return weight, met


class InferenceProcessor(processor.ProcessorABC):
    """Runs a wrapper on each chunk; returns physics outputs and which process loaded the model how often.

    Output: ``met_x`` histogram (integer counts), ``met_xy`` and ``weight_sum`` keyed by the chunk's first
    entry (so that the merge order of the executor does not matter), ``loads`` = {(pid, number of loads of
    this model in that process after this chunk)} and ``chunks`` = {pid: chunks processed}.
    """

    def __init__(self, wrapper: ModelWrapper) -> None:
        self.wrapper = wrapper

    def process(self, events: Any) -> dict[str, Any]:
        out = self.wrapper(events)
        met_xy = ak.to_numpy(out.met_xy)
        h = hist.Hist.new.Reg(40, -400.0, 0.0, name="met_x").Int64()
        h.fill(met_x=met_xy[:, 0])
        start = int(events.metadata["entrystart"])
        key = self.wrapper.backend.cache_key()
        # through the module: this file is pickled by value, which would copy a global MODEL_CACHE object
        loads = sum(n for (backend_key, _device), n in inference.MODEL_CACHE.loads.items() if backend_key == key)
        pid = os.getpid()
        return {
            "met_x": h,
            "met_xy": {start: met_xy},
            "weight_sum": {start: float(ak.sum(out.weight, axis=None))},
            "n_cands": {start: ak.to_numpy(ak.num(out.weight, axis=1))},
            "loads": {(pid, loads)},
            "chunks": {pid: 1},
        }

    def postprocess(self, accumulator: Any) -> Any:
        return accumulator
