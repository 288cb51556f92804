"""Up-front checks of the input files of ``coffea-mlreco evaluate``.

Every file is opened with uproot before any processing starts, so that a missing file, a file that is
not ROOT, a file without the ``Events`` tree or without a needed branch stops the run at once with a
message naming the file (and the branch), rather than deep inside an executor.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import uproot

__all__ = ["TREE_NAME", "InputError", "InputFile", "check_input_file", "check_inputs", "first_missing_branch"]

TREE_NAME = "Events"
"""Name of the NanoAOD event tree."""


class InputError(Exception):
    """An input file cannot be used; the message names the file and, where relevant, the branch."""


@dataclass(frozen=True)
class InputFile:
    """An input file that opened: its path (or URL), event count and branch names."""

    path: str
    num_entries: int
    branches: frozenset[str]


def _is_remote(path: str) -> bool:
    return "://" in path


def check_input_file(path: str | Path, tree: str = TREE_NAME) -> InputFile:
    """Open ``path`` with uproot and read its ``tree`` branch list and entry count.

    Raises:
        InputError: the file does not exist, is not readable, is not a ROOT file, or has no ``tree``
            TTree; the message names the file.
    """
    name = str(path)
    if not _is_remote(name):
        local = Path(name)
        if not local.exists():
            raise InputError(f"{name}: no such file")
        if not local.is_file():
            raise InputError(f"{name}: not a regular file")
        name = str(local.resolve())
        try:
            with local.open("rb") as stream:
                magic = stream.read(4)
        except OSError as err:
            raise InputError(f"{name}: cannot be read ({err.strerror or err})") from None
        if magic != b"root":
            raise InputError(f"{name}: not a ROOT file (it does not start with the ROOT file signature)")
    try:
        with uproot.open(name) as handle:
            if tree not in handle:
                keys = ", ".join(sorted({k.split(";")[0] for k in handle.keys(recursive=False)})) or "none"
                raise InputError(f"{name}: no {tree!r} tree in the file (it holds: {keys})")
            obj = handle[tree]
            if not isinstance(obj, uproot.TTree):
                raise InputError(f"{name}: {tree!r} is a {type(obj).__name__}, not a TTree")
            return InputFile(name, int(obj.num_entries), frozenset(obj.keys(recursive=True)))
    except InputError:
        raise
    except PermissionError as err:
        raise InputError(f"{name}: cannot be read ({err.strerror or err})") from None
    except Exception as err:  # noqa: BLE001 -- uproot raises ValueError/OSError/... for files that are not ROOT
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"{name}: not a readable ROOT file ({reason})") from None


def check_inputs(paths: Sequence[str | Path], tree: str = TREE_NAME) -> list[InputFile]:
    """Check every file with :func:`check_input_file`; raises :class:`InputError` on the first bad one."""
    if not paths:
        raise InputError("no input files given")
    return [check_input_file(p, tree) for p in paths]


def first_missing_branch(files: Iterable[InputFile], branches: Iterable[str]) -> tuple[str, str] | None:
    """The first (file, branch) pair where a needed branch is absent, or None when all are present."""
    needed = list(branches)
    for f in files:
        for branch in needed:
            if branch not in f.branches:
                return f.path, branch
    return None
