"""Write simulated chunks as a NanoAOD-like ROOT file (TTree `Events`) with uproot, chunk by chunk.

Jagged collections become `n<Name>` counters and `<Name>_<field>` branches, as in NanoAOD; floating
point columns are stored as float32 (NanoAOD's precision), integers as int32 (event numbers int64).

The writer writes to the path it is given; `generate` gives it a temporary name and renames the file when
it is complete (`coffea_mlreco.core.outputs`). Each chunk is appended with SIGINT/SIGTERM held back
(`deferred_interrupts`), so after an interruption the file holds whole chunks only, and uproot keeps it
readable after every chunk (even after a SIGKILL between chunks). `read_chunk` reads a chunk back in the
form `write` takes, which is how `generate --resume` copies the complete chunks of a partial file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot

from coffea_mlreco.core.outputs import deferred_interrupts
from coffea_mlreco.simulation.objects import Collection

__all__ = ["NanoAODWriter", "branch_layout", "read_chunk"]


def _storage_dtype(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind == "f":
        return values.astype(np.float32)
    if values.dtype.kind in "iu" and values.dtype != np.int64:
        return values.astype(np.int32)
    return values


def _branches(chunk: dict[str, object]) -> dict[str, ak.Array | np.ndarray]:
    out: dict[str, ak.Array | np.ndarray] = {}
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
        self._tree: Any = None  # uproot's WritableTree, made by the first chunk
        self.entries = 0
        """Events written so far (whole chunks)."""
        if metadata:
            for key, text in metadata.items():
                self._file[f"Metadata/{key}"] = str(text)

    def write(self, chunk: dict[str, object]) -> None:
        """Append one chunk (``{name: Collection or per-event array}``), whole or not at all on SIGINT/SIGTERM."""
        branches = _branches(chunk)
        with deferred_interrupts():
            if self._tree is None:
                types = {k: (v.type.content if isinstance(v, ak.Array) else v.dtype) for k, v in branches.items()}
                self._tree = self._file.mktree(
                    "Events",
                    types,
                    counter_name=lambda name: f"n{name}",
                    field_name=lambda outer, inner: f"{outer}_{inner}",
                )
            self._tree.extend(branches)
            self.entries = int(self._tree.num_entries)

    def close(self) -> None:
        with deferred_interrupts():
            self._file.close()

    def __enter__(self) -> NanoAODWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def branch_layout(tree: uproot.TTree) -> dict[str, tuple[str, ...] | None]:
    """How a tree written by `NanoAODWriter` groups its branches, in branch order: collection name → its
    fields (``Jet`` → ``("pt", ...)`` for ``nJet``, ``Jet_pt``, ...), per-event branch name → None."""
    counters = {b.count_branch.name for b in tree.branches if b.count_branch is not None}
    layout: dict[str, tuple[str, ...] | None] = {}
    for branch in tree.branches:
        if branch.count_branch is not None:
            collection = branch.count_branch.name[1:]
            fields = layout.get(collection) or ()
            layout[collection] = (*fields, branch.name.removeprefix(f"{collection}_"))
        elif branch.name in counters:
            layout.setdefault(branch.name[1:], ())
        else:
            layout[branch.name] = None
    return layout


def read_chunk(
    tree: uproot.TTree, layout: dict[str, tuple[str, ...] | None], start: int, stop: int
) -> dict[str, object]:
    """Events ``[start, stop)`` of a tree written by `NanoAODWriter`, as the chunk `NanoAODWriter.write` takes
    (``Collection`` per collection, numpy array per per-event branch); writing it back gives the same branches
    and values (they are stored in their storage types already)."""
    names = [name for name, fields in layout.items() if fields is None]
    names += [f"n{name}" for name, fields in layout.items() if fields is not None]
    names += [f"{name}_{field}" for name, fields in layout.items() for field in fields or ()]
    arrays = tree.arrays(names, entry_start=start, entry_stop=stop, library="ak")
    chunk: dict[str, object] = {}
    for name, fields in layout.items():
        if fields is None:
            chunk[name] = ak.to_numpy(arrays[name])
        else:
            chunk[name] = Collection(
                ak.to_numpy(arrays[f"n{name}"]).astype(np.int64),
                {f: ak.to_numpy(ak.flatten(arrays[f"{name}_{f}"])) for f in fields},
            )
    return chunk
