"""Up-front checks of the input files of ``coffea-mlreco evaluate``.

Every file is opened with uproot before any processing starts, so that a missing file, a directory, a file
that is not ROOT (text, random bytes), a truncated ROOT file (shorter than the end its header records: an
interrupted write or copy), a file whose ``Events`` is neither a TTree nor an RNTuple, a file without ``Events``
or without a needed branch stops the run at once with a one-line message naming the file (and the branch),
rather than deep inside an executor (where a truncated file's short reads would look like transient I/O errors
and be retried).

``Events`` may be a TTree or an RNTuple (the format CMS NanoAOD is moving to): coffea's ``processor.Runner``, its
chunk planning and NanoEvents in eager and virtual mode read both. An RNTuple's branch list is that of its
top-level fields under their NanoAOD flat names (:func:`rntuple_branch_names`), so the branch checks are the same
for both formats.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import uproot

from coffea_mlreco.core.nanoaod import is_collision_data

__all__ = [
    "BRANCH_ALTERNATIVES",
    "TREE_NAME",
    "InputError",
    "InputFile",
    "SampleKind",
    "check_input_file",
    "check_inputs",
    "first_missing_branch",
    "rntuple_branch_names",
    "sample_kind",
]

BRANCH_ALTERNATIVES = "|"
"""Separates the alternatives of a required branch (``"MET_pt|PFMET_pt"``: either will do)."""

TREE_NAME = "Events"
"""Name of the NanoAOD event tree."""


class InputError(Exception):
    """An input file cannot be used; the message names the file and, where relevant, the branch."""


@dataclass(frozen=True)
class InputFile:
    """An input file that opened: its path (or URL), event count, branch names (an RNTuple's fields under their
    NanoAOD flat names, see :func:`rntuple_branch_names`) and whether ``Events`` is an RNTuple."""

    path: str
    num_entries: int
    branches: frozenset[str]
    rntuple: bool = False

    @property
    def collision_data(self) -> bool:
        """Whether the file is collision data: none of its branches is simulation-only (``Gen*``, ``genWeight``,
        ``Pileup_*``...; :func:`coffea_mlreco.core.nanoaod.is_collision_data`)."""
        return is_collision_data(self.branches)


SampleKind = str
"""``"simulation"`` or ``"collision data"``: what metrics.json's ``meta.sample`` says."""


_IMPORTER_COLLECTION_PREFIX = "_collection"
"""Name prefix of the anonymous collection fields that ROOT's ``RNTupleImporter`` writes for a TTree's
leaf-count arrays (``_collection15.Muon_pt``); their NanoAOD names (``Muon_pt``, ``nMuon``) are top-level
projected fields."""


def rntuple_branch_names(ntuple: uproot.behaviors.RNTuple.HasFields) -> frozenset[str]:
    """The NanoAOD flat names (``Muon_pt``, ``nMuon``, ``MET_pt``) of an RNTuple's top-level fields: the fields
    coffea's NanoEvents reads (``coffea.util._is_interpretable``), i.e. without the importer's anonymous
    ``_collectionN`` fields and their sub-fields. For NanoAOD converted from a TTree this is the TTree's branch
    list."""
    return frozenset(key for key in ntuple.keys(recursive=False) if not key.startswith(_IMPORTER_COLLECTION_PREFIX))


_ROOT_MAGIC = b"root"
_LARGE_FILE_VERSION = 1_000_000
"""ROOT file versions from this one on store the header's seek pointers (``fEND``) as 64-bit integers."""


def _is_remote(path: str) -> bool:
    return "://" in path


def _header_problem(header: bytes, size: int) -> str | None:
    """Why the first bytes ``header`` of a local file of ``size`` bytes are not those of a complete ROOT file, or
    None. The ROOT file header is ``"root"``, ``fVersion`` (int32), ``fBEGIN`` (int32) and ``fEND`` (int32, or
    int64 when ``fVersion`` ≥ 1000000), big-endian; ``fEND`` is the file's length in bytes when it was closed."""
    if header[:4] != _ROOT_MAGIC:
        return "not a ROOT file (it does not start with the ROOT file signature)"
    if len(header) < 16:
        return f"truncated: {size} bytes, not even a complete ROOT file header"
    (version,) = struct.unpack(">i", header[4:8])
    large = version >= _LARGE_FILE_VERSION
    if large and len(header) < 20:
        return f"truncated: {size} bytes, not even a complete ROOT file header"
    (end,) = struct.unpack(">q", header[12:20]) if large else struct.unpack(">i", header[12:16])
    if size < end:
        return f"truncated: {size} of the {end} bytes its ROOT header records (an interrupted write or copy?)"
    return None


def check_input_file(path: str | Path, tree: str = TREE_NAME) -> InputFile:
    """Open ``path`` with uproot and read the branch list and entry count of its ``tree`` (a TTree or an RNTuple).

    Raises:
        InputError: the file does not exist, is a directory, is not readable, is not a ROOT file, is truncated
            (a local file shorter than its header's ``fEND``), or has no ``tree`` TTree or RNTuple (another
            object of that name is named by its class); the message names the file.
    """
    name = str(path)
    if not _is_remote(name):
        local = Path(name)
        if not local.exists():
            raise InputError(f"{name}: no such file")
        if local.is_dir():
            raise InputError(f"{name}: is a directory, not a ROOT file")
        if not local.is_file():
            raise InputError(f"{name}: not a regular file")
        name = str(local.resolve())
        try:
            with local.open("rb") as stream:
                header = stream.read(20)
            size = local.stat().st_size
        except OSError as err:
            raise InputError(f"{name}: cannot be read ({err.strerror or err})") from None
        problem = _header_problem(header, size)
        if problem is not None:
            raise InputError(f"{name}: {problem}")
    try:
        with uproot.open(name) as handle:
            if tree not in handle:
                keys = ", ".join(sorted({k.split(";")[0] for k in handle.keys(recursive=False)})) or "none"
                raise InputError(f"{name}: no {tree!r} tree in the file (it holds: {keys})")
            obj = handle[tree]
            if isinstance(obj, uproot.TTree):
                return InputFile(name, int(obj.num_entries), frozenset(obj.keys(recursive=True)))
            if isinstance(obj, uproot.behaviors.RNTuple.HasFields):
                return InputFile(name, int(obj.num_entries), rntuple_branch_names(obj), rntuple=True)
            classname = str(getattr(obj, "classname", type(obj).__name__))
            raise InputError(f"{name}: {tree!r} is a {classname}, not a TTree or an RNTuple")
    except InputError:
        raise
    except PermissionError as err:
        raise InputError(f"{name}: cannot be read ({err.strerror or err})") from None
    except Exception as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"{name}: not a readable ROOT file ({reason})") from None


def check_inputs(paths: Sequence[str | Path], tree: str = TREE_NAME) -> list[InputFile]:
    """Check every file with :func:`check_input_file`; raises :class:`InputError` on the first bad one."""
    if not paths:
        raise InputError("no input files given")
    return [check_input_file(p, tree) for p in paths]


def sample_kind(files: Sequence[InputFile]) -> SampleKind:
    """``"collision data"`` when every file is collision data (:attr:`InputFile.collision_data`), ``"simulation"``
    when none is.

    Raises:
        InputError: the files mix both (a report's distributions would add data and simulation together); the
            message names one file of each kind.
    """
    data = [f.path for f in files if f.collision_data]
    simulated = [f.path for f in files if not f.collision_data]
    if data and simulated:
        raise InputError(
            f"the input files mix collision data ({data[0]}: no generator branches) and simulation "
            f"({simulated[0]}); evaluate them separately"
        )
    return "collision data" if data else "simulation"


def first_missing_branch(files: Iterable[InputFile], branches: Iterable[str]) -> tuple[str, str] | None:
    """The first (file, branch) pair where a needed branch is absent, or None when all are present. An entry may
    name alternatives, ``"MET_pt|PFMET_pt"`` (:data:`BRANCH_ALTERNATIVES`), present when any of them is."""
    needed = list(branches)
    for f in files:
        for branch in needed:
            if not any(name in f.branches for name in branch.split(BRANCH_ALTERNATIVES)):
                return f.path, branch
    return None
