"""Device, precision and thread settings for inference.

`resolve_device("auto")` is CUDA when a GPU is visible, else the CPU. Precision ``"auto"`` means bf16
autocast on a GPU for models that declare it safe, fp32 otherwise; ``"bf16"``/``"fp16"`` force autocast
(bf16 also works on the CPU). Inside a dask worker, torch's intra-op threads are limited to the cores
per worker thread, so that N worker threads do not each start a pool of all cores (the slowdown
reported for torch under dask, lpcjobqueue #17).
"""

from __future__ import annotations

import functools
import os

import torch

__all__ = ["autocast_dtype", "configure_threads", "resolve_device", "resolve_precision"]

_PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def resolve_device(device: str) -> torch.device:
    """``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` → a torch device; asking for a missing GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {device!r} requested but torch sees no CUDA GPU; use 'auto' or 'cpu'")
        dev = torch.device(device)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise RuntimeError(f"device {device!r} requested but only {torch.cuda.device_count()} GPU(s) visible")
        return dev
    raise ValueError(f"unknown device {device!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'")


def resolve_precision(precision: str, device: torch.device, amp_safe: bool) -> str:
    """The precision actually used: ``auto`` → bf16 on CUDA for amp-safe models, else fp32."""
    if precision not in _PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(_PRECISIONS)}")
    if precision == "auto":
        return "bf16" if device.type == "cuda" and amp_safe else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("fp16 autocast needs a CUDA device; use 'bf16' on the CPU")
    return precision


def autocast_dtype(precision: str) -> torch.dtype | None:
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)


@functools.cache  # torch's thread count is a process-wide setting: applied by the first call only
def configure_threads() -> None:
    """Once per process: inside a dask worker, give torch cores/threads-per-worker intra-op threads."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(max(1, cores // max(1, worker.state.nthreads)))
