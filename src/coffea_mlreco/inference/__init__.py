"""Inference runtime shared by every model: awkward-aware wrappers, batching, backends, devices."""

from __future__ import annotations

from .backends import MODEL_CACHE, ModelCache, OnnxModel, TorchModule, TorchScript, WeightsMismatchError, export_onnx
from .batching import FlatJagged, pad_batch, plan_batches, scatter_objects
from .device import resolve_device, resolve_precision
from .wrapper import DEFAULT_TOKENS, Dense, Jagged, ModelWrapper, NonFiniteInputError

__all__ = [
    "DEFAULT_TOKENS",
    "MODEL_CACHE",
    "Dense",
    "FlatJagged",
    "Jagged",
    "ModelCache",
    "ModelWrapper",
    "NonFiniteInputError",
    "OnnxModel",
    "TorchModule",
    "TorchScript",
    "WeightsMismatchError",
    "export_onnx",
    "pad_batch",
    "plan_batches",
    "resolve_device",
    "resolve_precision",
    "scatter_objects",
]
