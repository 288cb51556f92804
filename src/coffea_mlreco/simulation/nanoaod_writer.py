"""Write simulated chunks as a NanoAOD-like ROOT file (TTree `Events`) with uproot, chunk by chunk.

Jagged collections become `n<Name>` counters and `<Name>_<field>` branches, as in NanoAOD; floating
point columns are stored as float32 (NanoAOD's precision), integers as int32 (event numbers int64).
"""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import uproot

from .objects import Collection

__all__ = ["NanoAODWriter"]


def _storage_dtype(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind == "f":
        return values.astype(np.float32)
    if values.dtype.kind in "iu" and values.dtype != np.int64:
        return values.astype(np.int32)
    return values


def _branches(chunk: dict[str, object]) -> dict[str, object]:
    out: dict[str, object] = {}
    for name, value in chunk.items():
        if isinstance(value, Collection):
            fields = {k: ak.unflatten(_storage_dtype(np.asarray(v)), value.counts) for k, v in value.columns.items()}
            out[name] = ak.zip(fields)
        else:
            out[name] = _storage_dtype(np.asarray(value))
    return out


class NanoAODWriter:
    """Append chunks to `path`; the first chunk fixes the branch list, later ones must match it."""

    def __init__(self, path: str | Path, metadata: dict[str, str] | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = uproot.recreate(self.path)
        self._tree = None
        if metadata:
            for key, text in metadata.items():
                self._file[f"Metadata/{key}"] = str(text)

    def write(self, chunk: dict[str, object]) -> None:
        branches = _branches(chunk)
        if self._tree is None:
            types = {k: (v.type.content if isinstance(v, ak.Array) else v.dtype) for k, v in branches.items()}
            self._tree = self._file.mktree("Events", types, counter_name=lambda name: f"n{name}",
                                           field_name=lambda outer, inner: f"{outer}_{inner}")
        self._tree.extend(branches)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> NanoAODWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
