"""What a model card records about the generated files a model was trained and validated on."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import uproot

__all__ = ["describe_data", "describe_sample"]


def describe_sample(path: str) -> dict[str, Any]:
    """File name, number of events and the generator metadata (process, pileup, seed, ...) of a ROOT file."""
    with uproot.open(path) as f:
        meta = {
            k.split(";")[0].removeprefix("Metadata/"): str(f[k])
            for k in f.keys(recursive=True)
            if k.startswith("Metadata/")
        }
        return {"file": Path(path).name, "events": int(f["Events"].num_entries), "generator": meta}


def describe_data(
    training_files: Sequence[str], validation_file: str, training_events: int, validation_events: int
) -> dict[str, Any]:
    """The data fields of a model card: each file's :func:`describe_sample` and the events used from them."""
    return {
        "training_files": [describe_sample(f) for f in training_files],
        "validation_file": describe_sample(validation_file),
        "training_events": int(training_events),
        "validation_events": int(validation_events),
    }
