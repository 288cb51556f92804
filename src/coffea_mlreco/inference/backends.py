"""Where a model comes from: a PyTorch module with safetensors weights, TorchScript, or ONNX Runtime.

A backend is a small picklable description (paths and settings, never the model itself); `load` builds
the runnable model for a device. `MODEL_CACHE` keeps one loaded model per (backend, device) per process,
so a dask worker or a futures process loads each model once, not once per chunk.

All backends take and return numpy-convertible tensors by input name: the model is called as
``model(**inputs)`` (ONNX: fed by input name) and returns a tensor, a tuple or a dict of tensors.
"""

from __future__ import annotations

import importlib
import json
import os
import threading
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

__all__ = [
    "MODEL_CACHE",
    "Backend",
    "ModelCache",
    "ModelCardError",
    "OnnxModel",
    "TorchModule",
    "TorchScript",
    "WeightsMismatchError",
    "export_onnx",
]


class ModelCardError(ValueError):
    """A model name, model directory, model card or weights file that does not give a usable model (the message
    names the file). Re-exported by :mod:`coffea_mlreco.inference.model_cards`, where cards are read."""


class WeightsMismatchError(ModelCardError):
    """A weights file does not fit the architecture it is loaded into (the message names the weights file and
    the first mismatching tensors)."""


class Backend(Protocol):
    def cache_key(self) -> tuple: ...

    def load(self, device: torch.device) -> Any: ...


def _file_key(path: str | Path) -> tuple:
    stat = os.stat(path)
    return (str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size)


MOVED_ARCHITECTURES: dict[str, str] = {
    "coffea_mlreco.models.candidate_mlp:CandidateMLP": "coffea_mlreco.nn.candidate_mlp:CandidateMLP",
    "coffea_mlreco.models.deepmet:DeepMET": "coffea_mlreco.met.deepmet:DeepMET",
    "coffea_mlreco.models.perceiver_met:PerceiverMET": "coffea_mlreco.met.perceiver:PerceiverMET",
    "coffea_mlreco.models.spanet:SPANet": "coffea_mlreco.ttbar.spanet:SPANet",
    "coffea_mlreco.models.permutation_dnn:PermutationDNN": "coffea_mlreco.ttbar.permutation_dnn:PermutationDNN",
    "coffea_mlreco.models.ditau_transformer:DiTauTransformer": "coffea_mlreco.ditau.transformer:DiTauTransformer",
    "coffea_mlreco.models.deepmem:DeepMEM": "coffea_mlreco.mem.deepmem:DeepMEM",
    "coffea_mlreco.models.mlpf:MLPF": "coffea_mlreco.mlpf.model:MLPF",
}
"""Architectures as model cards written before version 0.2 name them (``coffea_mlreco.models.*``, before the
models moved into their task packages) → where they live now; such model directories load unchanged."""


def architecture(spec: str) -> str:
    """The current ``"module:Class"`` of a card's ``model`` entry (older names mapped by `MOVED_ARCHITECTURES`)."""
    return MOVED_ARCHITECTURES.get(spec, spec)


def _import(spec: str) -> Any:
    module, _, name = architecture(spec).partition(":")
    if not name:
        raise ValueError(f"model class {spec!r} must be given as 'package.module:ClassName'")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class TorchModule:
    """An ``nn.Module`` built as ``Class(**config)`` with weights from a safetensors file (no pickle)."""

    module: str  # "package.module:ClassName"
    weights: str | Path
    config: dict[str, Any] = field(default_factory=dict)

    def cache_key(self) -> tuple:
        return ("torch", self.module, json.dumps(self.config, sort_keys=True), *_file_key(self.weights))

    def build(self) -> torch.nn.Module:
        return _import(self.module)(**self.config)

    def weight_shapes(self) -> dict[str, tuple[int, ...]]:
        """Name → shape of every tensor in the safetensors file, read from its header only (no tensor data).

        Raises:
            ModelCardError: the file is absent or is not a readable safetensors file (e.g. truncated).
        """
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(self.weights), framework="pt") as file:
                names = file.keys()  # a safe_open handle is not iterable
                return {key: tuple(file.get_slice(key).get_shape()) for key in names}
        except FileNotFoundError as err:
            raise ModelCardError(f"weights file {self.weights} is missing") from err
        except (SafetensorError, OSError) as err:
            raise ModelCardError(f"weights file {self.weights} is not a readable safetensors file ({err})") from err

    def check(self) -> None:
        """Check, without loading any weights, that the file's tensors are exactly those ``Class(**config)``
        has, with the same shapes: the architecture is built on PyTorch's ``meta`` device (no memory, no
        initialisation) and compared with the safetensors header. A passing check is remembered per (class,
        configuration, file path, modification time, size), so reading a card again costs nothing.

        Raises:
            ModelCardError: the class cannot be imported, does not take the configuration, or the file is not a
                readable safetensors file.
            WeightsMismatchError: missing, unexpected or differently shaped tensors (the message names the
                weights file and the first of each).
        """
        try:
            key = self.cache_key()
        except FileNotFoundError as err:
            raise ModelCardError(f"weights file {self.weights} is missing") from err
        if key in _CHECKED:
            return
        file_shapes = self.weight_shapes()
        try:
            model_class = _import(self.module)
        except (ImportError, AttributeError, ValueError) as err:
            raise ModelCardError(f"model class {self.module!r} cannot be imported ({err})") from err
        try:
            with torch.device("meta"):
                model = model_class(**self.config)
        except TypeError as err:
            raise ModelCardError(f"{self.module} does not take the configuration {self.config} ({err})") from err
        except (NotImplementedError, RuntimeError):  # an architecture that computes on its tensors when built
            model = self.build()
        _raise_on_mismatch(self, {k: tuple(v.shape) for k, v in model.state_dict().items()}, file_shapes)
        _CHECKED.add(key)

    def load(self, device: torch.device) -> torch.nn.Module:
        from safetensors.torch import load_file

        model = self.build()
        state = load_file(str(self.weights), device="cpu")
        _raise_on_mismatch(
            self,
            {k: tuple(v.shape) for k, v in model.state_dict().items()},
            {k: tuple(v.shape) for k, v in state.items()},
        )
        model.load_state_dict(state)
        return model.to(device).eval()


_CHECKED: set[tuple] = set()
"""Cache keys of the `TorchModule` backends whose weights passed :meth:`TorchModule.check` in this process."""


def _raise_on_mismatch(
    backend: TorchModule, own: dict[str, tuple[int, ...]], stored: dict[str, tuple[int, ...]]
) -> None:
    """Raise `WeightsMismatchError` unless ``stored`` (the file's tensor shapes) equals ``own`` (the model's);
    each list in the message starts with the first mismatching tensor in the model's parameter order."""
    missing = [k for k in own if k not in stored]
    unexpected = sorted(set(stored) - set(own))
    shapes = [f"{k}: file {stored[k]} vs model {own[k]}" for k in own if k in stored and stored[k] != own[k]]
    if missing or unexpected or shapes:
        raise WeightsMismatchError(
            f"weights {backend.weights} do not fit {backend.module}({backend.config}): "
            + "; ".join(
                part
                for part in (
                    f"missing {missing[:5]}" if missing else "",
                    f"unexpected {unexpected[:5]}" if unexpected else "",
                    f"shape mismatch {shapes[:5]}" if shapes else "",
                )
                if part
            )
        )


@dataclass(frozen=True)
class TorchScript:
    """A TorchScript file (``torch.jit.save``)."""

    path: str | Path

    def cache_key(self) -> tuple:
        return ("torchscript", *_file_key(self.path))

    def load(self, device: torch.device) -> torch.jit.ScriptModule:
        return torch.jit.load(str(self.path), map_location=device).eval()


class _OnnxRunner:
    """Calls an ONNX Runtime session like a torch module: keyword tensors in, dict of tensors out."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.inputs = [i.name for i in session.get_inputs()]
        self.outputs = [o.name for o in session.get_outputs()]

    def __call__(self, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        feed = {name: inputs[name].cpu().numpy() for name in self.inputs}
        return {
            name: torch.from_numpy(np.asarray(v))
            for name, v in zip(self.outputs, self.session.run(None, feed), strict=True)
        }


@dataclass(frozen=True)
class OnnxModel:
    """An ONNX file run with ONNX Runtime (optional extra ``onnx``); CUDA provider on a GPU if installed."""

    path: str | Path

    def cache_key(self) -> tuple:
        return ("onnx", *_file_key(self.path))

    def load(self, device: torch.device) -> _OnnxRunner:
        try:
            import onnxruntime
        except ImportError as err:
            raise ImportError("ONNX models need onnxruntime: pip install 'coffea-mlreco[onnx]'") from err
        providers = ["CPUExecutionProvider"]
        if device.type == "cuda" and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        return _OnnxRunner(onnxruntime.InferenceSession(str(self.path), options, providers=providers))


class ModelCache:
    """Loaded models of this process, one per (backend, device); ``loads`` counts actual loads."""

    def __init__(self) -> None:
        self._models: dict[tuple, Any] = {}
        self._lock = threading.Lock()
        self.loads: Counter[tuple] = Counter()

    def get(self, backend: Backend, device: torch.device) -> Any:
        key = (backend.cache_key(), str(device))
        with self._lock:
            if key not in self._models:
                self._models[key] = backend.load(device)
                self.loads[key] += 1
            return self._models[key]

    def clear(self) -> None:
        with self._lock:
            self._models.clear()
            self.loads.clear()


MODEL_CACHE = ModelCache()
"""The process-wide model cache every wrapper uses."""


def export_onnx(
    model: torch.nn.Module,
    example_inputs: dict[str, torch.Tensor],
    output_names: list[str],
    path: str | Path,
    dynamic: dict[str, dict[int, str]] | None = None,
) -> Path:
    """Export ``model(**example_inputs)`` to ONNX with dynamic batch (and object-count) axes.

    ``dynamic`` maps input/output names to their variable axes; by default axis 0 of every input and output
    is ``batch`` and axis 1 of every 3-D input and its 2-D mask (name ending in ``_mask``) is ``objects``.
    """
    names = list(example_inputs)
    if dynamic is None:
        dynamic = {}
        for name, tensor in example_inputs.items():
            dynamic[name] = (
                {0: "batch", 1: f"{name.removesuffix('_mask')}_objects"}
                if tensor.dim() >= 2 and (tensor.dim() == 3 or name.endswith("_mask"))
                else {0: "batch"}
            )
        for name in output_names:
            dynamic[name] = {0: "batch"}

    class _Positional(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, *args: torch.Tensor) -> Any:
            out = self.inner(**dict(zip(names, args, strict=True)))
            return tuple(out[k] for k in output_names) if isinstance(out, dict) else out

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter is deprecated but needs no onnxscript
        torch.onnx.export(
            _Positional().eval(),
            tuple(example_inputs.values()),
            str(path),
            input_names=names,
            output_names=output_names,
            dynamic_axes=dynamic,
            dynamo=False,
        )
    return Path(path)
