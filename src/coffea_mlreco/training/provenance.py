"""What a model card records about the generated files a model was trained and validated on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import uproot

__all__ = ["describe_sample"]


def describe_sample(path: str) -> dict[str, Any]:
    """File name, number of events and the generator metadata (process, pileup, seed, ...) of a ROOT file."""
    with uproot.open(path) as f:
        meta = {
            k.split(";")[0].removeprefix("Metadata/"): str(f[k])
            for k in f.keys(recursive=True)
            if k.startswith("Metadata/")
        }
        return {"file": Path(path).name, "events": int(f["Events"].num_entries), "generator": meta}
