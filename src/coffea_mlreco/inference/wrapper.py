"""`ModelWrapper`: run a model on awkward events per chunk, eager, virtual or dask-awkward.

A thin base class in the spirit of `coffea.ml_tools`: a subclass says which backend holds the model and
overrides two methods,

- ``prepare(events) -> {name: Jagged(...) | Dense(...)}``: the model inputs, as awkward arrays whose
  record fields are the features (in order), e.g. ``Jagged(events.PFCands[["pt", "eta", "phi"]])``;
- ``postprocess(outputs, events)``: turn the model's outputs (an awkward record, one field per output
  head) into the columns the analysis wants. The default returns them unchanged.

The base class does the rest: per-chunk mini-batches of length-sorted events padded to each batch's
longest event (`batching`), device transfer (pinned host memory on CUDA), ``torch.inference_mode`` and
autocast, the model cache (one load per process), empty chunks, and for dask-awkward inputs one
``dask_awkward.map_partitions`` over exactly the arrays ``prepare`` returned, so column optimisation
keeps only the branches the model reads.

Memory: the model's activations grow with the padded objects of a mini-batch (events × longest event, summed
over the jagged inputs, after each input's ``max_objects`` truncation), which the wrapper keeps at or below
``max_tokens``. An event with more objects than that on its own runs alone, up to ``max_event_tokens``
(`MAX_EVENT_TOKENS` by default, the same on every device, 3.6× the 18k PF candidates of a pileup-450 event); an
event above it is *rejected*: it is not run, its outputs (per event and per object) are NaN, the other events
are computed as without it, and an `OversizedEventWarning` names it. So no batch exceeds
max(``max_tokens``, ``max_event_tokens``) padded objects, whatever the events hold
(benchmarks/extreme_events.py measures it).

Model calling convention: a jagged input ``name`` arrives as ``name [B, L, F]`` plus ``name_mask [B, L]``
(bool, True for real objects); a dense input as ``name [B, F]``. Outputs named in
``per_object_outputs`` (head → jagged input) have shape ``[B, L, ...]`` and come back as jagged arrays
aligned with that input's objects; all other outputs are per event, ``[B, ...]``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import awkward as ak
import numpy as np
import torch

from coffea_mlreco.core.columns import Events, NonFiniteInputError, to_numpy
from coffea_mlreco.inference.backends import MODEL_CACHE, Backend, ModelCache
from coffea_mlreco.inference.batching import FlatJagged, NonFiniteValues, pad_batch, plan_batches, scatter_objects
from coffea_mlreco.inference.device import autocast_dtype, configure_threads, resolve_device, resolve_precision

__all__ = [
    "DEFAULT_TOKENS",
    "MAX_EVENT_TOKENS",
    "Dense",
    "Jagged",
    "ModelWrapper",
    "NonFiniteInputError",
    "OversizedEventWarning",
]


DEFAULT_TOKENS = {"cpu": 1 << 14, "cuda": 1 << 18}
"""Padded objects per mini-batch by device type. On 2 CPU threads a 6→64→64 per-candidate MLP ran 3.5×
faster with 16k-token batches than with 262k (benchmarks/inference_throughput.py)."""

MAX_EVENT_TOKENS = 1 << 16
"""Objects of one event (summed over the jagged inputs, after ``max_objects`` truncation) above which the event
is rejected rather than run (65 536; see the module docstring). The largest simulated events reach 18k PF
candidates (pileup 450) and 12k detector elements (pileup 200). Run alone, one event of 100k objects raised
the peak memory by 108 MB in DeepMET, 156 MB in the Perceiver and 575 MB in MLPF on the CPU, growing linearly
(benchmarks/extreme_events.py); rejected, by ≤ 36 MB."""


_W = TypeVar("_W", bound="ModelWrapper")


class OversizedEventWarning(UserWarning):
    """Events with more objects than the wrapper's ``max_event_tokens`` were rejected (outputs NaN)."""


@dataclass(frozen=True)
class Jagged:
    """A per-object input: ``array`` is ``N * var * {features}`` (or ``N * var * number``: one feature).

    Truncation policy: events with more than ``max_objects`` objects keep the ``max_objects`` with the
    largest ``keep_highest`` field (e.g. ``"pt"``), or the first ones if it is None. Per-object outputs of
    dropped objects are ``fill_value`` (NaN by default).
    """

    array: Any
    max_objects: int | None = None
    keep_highest: str | None = None
    fill_value: float = float("nan")


@dataclass(frozen=True)
class Dense:
    """A per-event input: ``array`` is ``N * {features}`` or ``N * number``."""

    array: Any


def _feature_columns(array: ak.Array, jagged: bool) -> tuple[list[str | None], tuple[np.ndarray, ...]]:
    """The feature fields of ``array`` and their flat float32 columns (views of awkward's buffers if float32)."""
    fields: list[str | None] = list(ak.fields(array)) or [None]
    columns = []
    for f in fields:
        column = array[f] if f is not None else array
        flat = ak.flatten(column, axis=1) if jagged else column
        columns.append(np.ascontiguousarray(ak.to_numpy(flat), dtype=np.float32))
    return fields, tuple(columns)


def _raise_non_finite(name: str, fields: list[str | None], columns: tuple[np.ndarray, ...]) -> None:
    for f, column in zip(fields, columns, strict=True):
        bad = ~np.isfinite(column)
        if bad.any():
            label = f"{name}.{f}" if f is not None else name
            raise NonFiniteInputError(
                f"input {label!r} has {int(bad.sum())} non-finite value(s) (NaN/inf); clean or mask them in prepare()"
            )


@dataclass
class _PreparedJagged:
    fields: list[str | None]
    data: FlatJagged
    counts_all: np.ndarray  # before truncation
    kept: np.ndarray | None  # flat indices (into all objects) of the kept ones, None if nothing was dropped
    fill_value: float


def _flatten_jagged(name: str, spec: Jagged) -> _PreparedJagged:
    array = spec.array
    counts_all = to_numpy(ak.num(array, axis=1), np.int64)
    kept = None
    if spec.max_objects is not None and counts_all.size and counts_all.max() > spec.max_objects:
        if spec.keep_highest is not None:
            order = ak.argsort(array[spec.keep_highest], axis=1, ascending=False, stable=True)
        else:
            order = ak.local_index(array, axis=1)
        order = order[:, : spec.max_objects]
        starts = np.concatenate([[0], np.cumsum(counts_all)[:-1]])
        kept = to_numpy(ak.flatten(order + starts), np.int64)
        array = array[order]
    counts = to_numpy(ak.num(array, axis=1), np.int64)
    fields, columns = _feature_columns(array, jagged=True)
    return _PreparedJagged(fields, FlatJagged(columns, counts), counts_all, kept, spec.fill_value)


def _dense_matrix(name: str, spec: Dense) -> np.ndarray:
    fields, columns = _feature_columns(ak.Array(spec.array), jagged=False)
    _raise_non_finite(name, fields, columns)
    return np.concatenate(
        [c[:, None] if c.ndim == 1 else c.reshape(len(c), int(np.prod(c.shape[1:]))) for c in columns], axis=1
    )  # explicit width: an empty [0, F] input has no -1 to infer


class ModelWrapper:
    """Base class of every model wrapper; see the module docstring.

    Args:
        backend: where the model comes from (`TorchModule`, `TorchScript`, `OnnxModel`).
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (resolved lazily, on the worker).
        precision: ``"auto"`` (bf16 on GPU if ``amp_safe``), ``"fp32"``, ``"bf16"``, ``"fp16"``.
        max_tokens: padded objects (events × longest event, summed over jagged inputs) per mini-batch;
            default `DEFAULT_TOKENS` for the device (small batches that stay in the CPU caches; large ones
            that fill a GPU).
        max_batch: events per mini-batch at most.
        max_event_tokens: objects of one event (summed over the jagged inputs, after truncation) above which
            the event is rejected (NaN outputs, `OversizedEventWarning`); default `MAX_EVENT_TOKENS`.
    """

    per_object_outputs: ClassVar[dict[str, str]] = {}
    output_names: ClassVar[tuple[str, ...]] = ("output",)
    """Names of the model's outputs when it returns a tensor or a tuple (a dict names its own)."""
    selected_outputs: ClassVar[tuple[str, ...] | None] = None
    """The output heads to keep (None: all); the others are dropped on the device, never copied back."""
    amp_safe: ClassVar[bool] = False

    def __init__(
        self,
        backend: Backend,
        device: str = "auto",
        precision: str = "auto",
        max_tokens: int | None = None,
        max_batch: int = 8192,
        cache: ModelCache | None = None,
        max_event_tokens: int | None = None,
    ) -> None:
        if (
            (max_tokens is not None and max_tokens < 1)
            or max_batch < 1
            or (max_event_tokens is not None and max_event_tokens < 1)
        ):
            raise ValueError("max_tokens, max_batch and max_event_tokens must be positive")
        self.backend = backend
        self.device = device
        self.precision = precision
        self.max_tokens = max_tokens
        self.max_batch = int(max_batch)
        self.max_event_tokens = MAX_EVENT_TOKENS if max_event_tokens is None else int(max_event_tokens)
        self._cache = cache

    @classmethod
    def from_card(cls: type[_W], backend: Backend, card: Mapping[str, Any], **kwargs: Any) -> _W:
        """The wrapper of the model a (checked) model card describes, ``backend`` holding its weights.

        The base class takes no card entry; a subclass whose constructor needs some (a response calibration,
        the model's hypotheses, ...) overrides this. ``kwargs``: the constructor's other arguments (``device``,
        ``precision``, ...). :meth:`coffea_mlreco.inference.registry.ModelRegistry.load` calls it.
        """
        return cls(backend, **kwargs)

    # ---- what a subclass overrides -------------------------------------------------------------
    def prepare(self, events: Events) -> dict[str, Jagged | Dense]:
        """Model inputs from the events (awkward or dask-awkward); must be overridden."""
        raise NotImplementedError(f"{type(self).__name__} must implement prepare(events)")

    def postprocess(self, outputs: Any, events: Events) -> Any:
        """Columns from the outputs record (one field per head); the default returns it unchanged."""
        return outputs

    # ---- the machinery -------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_cache"] = None  # the process-wide cache of the receiving process is used there
        return state

    @property
    def cache(self) -> ModelCache:
        return self._cache if self._cache is not None else MODEL_CACHE

    def __call__(self, events: Events) -> Any:
        inputs = self.prepare(events)
        if not inputs:
            raise ValueError(f"{type(self).__name__}.prepare returned no inputs")
        arrays = [spec.array for spec in inputs.values()]
        outputs = self._map_partitions(inputs) if any(_is_dask(a) for a in arrays) else self.run(inputs)
        return self.postprocess(outputs, events)

    def run(self, inputs: dict[str, Jagged | Dense]) -> ak.Array:
        """Run the model on eager awkward inputs; returns a record array with one field per output head."""
        jagged = {k: _flatten_jagged(k, v) for k, v in inputs.items() if isinstance(v, Jagged)}
        dense = {k: _dense_matrix(k, v) for k, v in inputs.items() if isinstance(v, Dense)}
        n_events = {len(p.counts_all) for p in jagged.values()} | {len(d) for d in dense.values()}
        if len(n_events) != 1:
            raise ValueError(f"inputs disagree on the number of events: {sorted(n_events)}")
        n = n_events.pop()
        for head, source in self.per_object_outputs.items():
            if source not in jagged:
                raise ValueError(f"per-object output {head!r} refers to {source!r}, which is not a jagged input")
        device = resolve_device(self.device)
        precision = resolve_precision(self.precision, device, self.amp_safe)
        configure_threads()
        model = self.cache.get(self.backend, device)
        lengths = np.stack([p.data.counts for p in jagged.values()], axis=1) if jagged else np.zeros((n, 0), np.int64)
        outputs: dict[str, np.ndarray] = {}
        tokens = self.max_tokens or DEFAULT_TOKENS[device.type]
        accepted = self._accepted_events(lengths, list(jagged))
        batches = [accepted[b] for b in plan_batches(lengths[accepted], tokens, self.max_batch)]
        if not batches:  # nothing to run (empty chunk, all rejected): a dummy event with no objects tells the shapes
            dummy = self._run_batch(model, device, precision, jagged, dense, np.zeros(1, np.int64), dummy=True)
            outputs = {
                k: np.full((jagged[self.per_object_outputs[k]].data.n_objects, *v.shape[2:]), np.nan, np.float32)
                if k in self.per_object_outputs
                else np.full((n, *v.shape[1:]), np.nan, np.float32)
                for k, v in dummy.items()
            }
        for events in batches:
            heads = self._run_batch(model, device, precision, jagged, dense, events)
            for name, values in heads.items():
                if name in self.per_object_outputs:
                    objects = jagged[self.per_object_outputs[name]].data
                    if name not in outputs:
                        outputs[name] = np.full((objects.n_objects, *values.shape[2:]), np.nan, np.float32)
                    scatter_objects(values, objects, events, outputs[name])
                else:
                    if name not in outputs:
                        outputs[name] = np.full((n, *values.shape[1:]), np.nan, np.float32)
                    outputs[name][events] = values
        return self._to_awkward(outputs, jagged)

    def _accepted_events(self, lengths: np.ndarray, names: list[str]) -> np.ndarray:
        """Indices of the events with at most ``max_event_tokens`` objects; warn about the others.

        ``lengths [N, K]``: each event's objects per jagged input (``names``), after truncation.
        """
        size = lengths.sum(axis=1)
        rejected = np.flatnonzero(size > self.max_event_tokens)
        if rejected.size:
            first = int(rejected[0])
            objects = ", ".join(f"{int(n)} {name}" for name, n in zip(names, lengths[first], strict=True))
            warnings.warn(
                f"{type(self).__name__}: {rejected.size} of the {len(size)} events given to the model rejected, "
                f"more objects than max_event_tokens={self.max_event_tokens} (first: event {first}, {objects}); "
                "their outputs are NaN, the other events are unaffected. Raise max_event_tokens to run them: the "
                "model's memory grows with the objects of the largest event",
                OversizedEventWarning,
                stacklevel=3,
            )
        return np.flatnonzero(size <= self.max_event_tokens)

    def _run_batch(
        self,
        model: Any,
        device: torch.device,
        precision: str,
        jagged: dict[str, _PreparedJagged],
        dense: dict[str, np.ndarray],
        events: np.ndarray,
        dummy: bool = False,
    ) -> dict[str, np.ndarray]:
        tensors: dict[str, torch.Tensor] = {}
        for name, prepared in jagged.items():
            if dummy:
                x, mask = np.zeros((1, 1, prepared.data.n_features), np.float32), np.zeros((1, 1), bool)
            else:
                try:
                    x, mask = pad_batch(prepared.data, events)
                except NonFiniteValues:
                    _raise_non_finite(name, prepared.fields, prepared.data.columns)
                    raise
            tensors[name], tensors[f"{name}_mask"] = _to_device(x, device), _to_device(mask, device)
        for name, values in dense.items():
            tensors[name] = _to_device(np.zeros((1, values.shape[1]), np.float32) if dummy else values[events], device)
        dtype = autocast_dtype(precision)
        autocast = torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)
        with torch.inference_mode(), autocast:
            raw = model(**tensors)
        return {k: v.detach().float().cpu().numpy() for k, v in self._named(raw).items()}

    def _named(self, raw: Any) -> dict[str, torch.Tensor]:
        if isinstance(raw, torch.Tensor):
            raw = (raw,)
        if not isinstance(raw, dict):
            if len(raw) != len(self.output_names):
                raise ValueError(f"model returned {len(raw)} outputs but output_names has {len(self.output_names)}")
            raw = dict(zip(self.output_names, raw, strict=True))
        if self.selected_outputs is None:
            return raw
        missing = [k for k in self.selected_outputs if k not in raw]
        if missing:
            raise ValueError(f"selected outputs {missing} not among the model's outputs {list(raw)}")
        return {k: raw[k] for k in self.selected_outputs}

    def _to_awkward(self, outputs: dict[str, np.ndarray], jagged: dict[str, _PreparedJagged]) -> ak.Array:
        fields = {}
        for name, values in outputs.items():
            if name in self.per_object_outputs:
                prepared = jagged[self.per_object_outputs[name]]
                per_object = values
                if prepared.kept is not None:
                    per_object = np.full(
                        (int(prepared.counts_all.sum()), *values.shape[1:]), prepared.fill_value, np.float32
                    )
                    per_object[prepared.kept] = values
                fields[name] = ak.unflatten(ak.from_numpy(per_object), prepared.counts_all)
            else:
                fields[name] = ak.from_numpy(values)
        return ak.zip(fields, depth_limit=1)

    def _map_partitions(self, inputs: dict[str, Jagged | Dense]) -> Any:
        import dask_awkward as dak

        runner = _PartitionRunner(self, {k: _without_array(v) for k, v in inputs.items()})
        arrays = [v.array for v in inputs.values()]
        meta = runner(*[a._meta for a in arrays])
        return dak.map_partitions(runner, *arrays, meta=meta, label=f"{type(self).__name__.lower()}-inference")


def _without_array(spec: Jagged | Dense) -> Jagged | Dense:
    return (
        Jagged(None, spec.max_objects, spec.keep_highest, spec.fill_value) if isinstance(spec, Jagged) else Dense(None)
    )


class _PartitionRunner:
    """What dask runs on each partition: rebuild the input specs around the partition's arrays, run."""

    def __init__(self, wrapper: ModelWrapper, specs: dict[str, Jagged | Dense]) -> None:
        self.wrapper = wrapper
        self.specs = specs

    def __call__(self, *arrays: ak.Array) -> ak.Array:
        typetracer = any(ak.backend(a) == "typetracer" for a in arrays)
        if typetracer:  # metadata pass: run on one placeholder event, touching exactly these arrays
            arrays = tuple(ak.typetracer.length_one_if_typetracer(a) for a in arrays)
        inputs = {}
        for (name, spec), array in zip(self.specs.items(), arrays, strict=True):
            inputs[name] = (
                Jagged(array, spec.max_objects, spec.keep_highest, spec.fill_value)
                if isinstance(spec, Jagged)
                else Dense(array)
            )
        out = self.wrapper.run(inputs)
        if typetracer:
            out = ak.Array(out.layout.to_typetracer(forget_length=True))
        return out


def _is_dask(array: Any) -> bool:
    return type(array).__module__.startswith("dask_awkward")


def _to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    tensor = torch.from_numpy(array)
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor
