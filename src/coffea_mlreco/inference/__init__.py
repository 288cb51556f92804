"""Inference runtime shared by every model: awkward-aware wrappers, batching, backends, devices, model registries."""

from __future__ import annotations

from coffea_mlreco.inference.backends import (
    MODEL_CACHE,
    ModelCache,
    OnnxModel,
    TorchModule,
    TorchScript,
    WeightsMismatchError,
    export_onnx,
)
from coffea_mlreco.inference.batching import FlatJagged, pad_batch, plan_batches, scatter_objects
from coffea_mlreco.inference.device import resolve_device, resolve_precision
from coffea_mlreco.inference.registry import ModelRegistry
from coffea_mlreco.inference.wrapper import DEFAULT_TOKENS, Dense, Jagged, ModelWrapper, NonFiniteInputError

__all__ = [
    "DEFAULT_TOKENS",
    "MODEL_CACHE",
    "Dense",
    "FlatJagged",
    "Jagged",
    "ModelCache",
    "ModelRegistry",
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
