"""Outputs that are complete or absent: write to a temporary name in the destination folder, rename on success.

Every command (``generate``, ``train``, ``mem-weights``, ``evaluate``) writes through :func:`atomic_file` or
:func:`atomic_directory`, so the name the user asked for either holds a complete output or does not exist: an
interrupted or failed run never leaves a half-written file (or report folder, or model directory) that looks
finished.

Conventions
    The temporary output is ``<name>.partial-<8 hex digits>`` in the destination's folder (``f.root`` →
    ``f.root.partial-3fa9c01e``): the same filesystem, so the final rename is atomic, and a name that says
    what it is. It is created when the context is entered, i.e. before any work, so an unwritable destination
    folder fails at once with an :class:`OutputError` (an ``OSError`` whose message is one line naming the
    folder). Missing parent folders are created. Permissions are the usual ones (0666/0777 less the umask).
    On an exception the temporary output is removed; on an interruption (``KeyboardInterrupt``) it is removed
    too unless ``keep_on_interrupt`` (``generate`` keeps its partial file for ``--resume``), and the
    interruption is re-raised as :class:`Interrupted` naming what was kept. After a SIGKILL or a power loss the
    temporary output stays behind under its ``.partial-`` name (:func:`partial_outputs` lists them).
Existing destinations
    A file is replaced on success only. A folder is replaced on success only (``existing="replace"``: the old
    one is moved aside, the new one renamed in, the old one deleted; an empty folder is simply replaced), or
    the new files are moved into it one by one (``existing="merge"``, ``publish_last`` names the files moved
    last, e.g. a model card after its weights). Whether an existing folder may be replaced at all is the
    caller's decision, checked before the work starts (``evaluate`` replaces only an earlier report).
Signals
    Python turns SIGINT into ``KeyboardInterrupt``, but SIGTERM (``kill``, batch systems, container stops)
    ends the process at once, without cleaning up. Under :func:`sigterm_as_interrupt` (entered by each
    command) a SIGTERM raises ``KeyboardInterrupt`` like a Ctrl-C, so the temporary output is removed (or kept
    for resuming). :func:`deferred_interrupts` holds both signals back over a short critical section (a chunk
    appended to a ROOT file, the renames that publish a folder), so that is never left half done.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Literal

__all__ = [
    "PARTIAL_INFIX",
    "Interrupted",
    "OutputError",
    "atomic_directory",
    "atomic_file",
    "check_output",
    "deferred_interrupts",
    "partial_outputs",
    "sigterm_as_interrupt",
]

PARTIAL_INFIX = ".partial-"
"""Between the destination's name and the random suffix of its temporary output (``f.root.partial-3fa9c01e``)."""

_ATTEMPTS = 100


class OutputError(OSError):
    """A destination that cannot be written: its folder cannot be created or is not writable, or it is a folder
    where a file is expected (or the reverse). The message is one line naming the path."""


class Interrupted(KeyboardInterrupt):
    """A ``KeyboardInterrupt`` (SIGINT, or SIGTERM under :func:`sigterm_as_interrupt`) that stopped the writing
    of ``output``; ``kept`` is the partial output kept for resuming, None when nothing was left behind.

    ``progress`` says how far the output got (e.g. ``"1385 of 3000 events"``), empty when unknown.
    """

    def __init__(self, output: Path, kept: Path | None = None, progress: str = "") -> None:
        self.output, self.kept, self.progress = output, kept, progress
        done = f" ({progress})" if progress else ""
        where = (
            f"the partial output{done} is kept in {kept}"
            if kept
            else f"nothing written: {output} is as it was before the run"
        )
        super().__init__(f"interrupted; {where}")


def partial_outputs(path: str | Path) -> list[Path]:
    """The temporary outputs ``<name>.partial-*`` of ``path`` left in its folder, oldest first."""
    final = Path(path).expanduser().resolve()
    if not final.parent.is_dir():
        return []
    found = [
        p
        for p in final.parent.glob(f"{_glob_escape(final.name)}{PARTIAL_INFIX}*")
        if len(p.name) == len(final.name) + len(PARTIAL_INFIX) + 8
    ]
    return sorted(found, key=_modified_ns)


def _modified_ns(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:  # removed meanwhile (by the run that wrote it)
        return 0


def _glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def _destination(path: str | Path, kind: Literal["file", "folder"]) -> Path:
    """The absolute destination (folders created), checked to be of the right kind."""
    given = Path(path).expanduser()
    final = given.resolve()
    if not final.name:
        raise OutputError(f"cannot write {path}: give a {kind} name, not the root folder")
    folder = final.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise OutputError(f"cannot write {path}: {_first_non_folder(folder)} is not a folder") from None
    except OSError as err:
        raise OutputError(f"cannot write {path}: cannot create the folder {folder} ({err.strerror or err})") from None
    if kind == "file" and final.is_dir():
        raise OutputError(f"cannot write {path}: it is a folder; give a file name")
    if kind == "folder" and final.exists() and not final.is_dir():
        raise OutputError(f"cannot write {path}: it is a file; give a folder name")
    return final


def _first_non_folder(folder: Path) -> Path:
    for parent in (*reversed(folder.parents), folder):
        if parent.exists() and not parent.is_dir():
            return parent
    return folder


def _unwritable(path: str | Path, folder: Path, err: OSError) -> OutputError:
    return OutputError(f"cannot write {path}: the folder {folder} is not writable ({err.strerror or err})")


def check_output(path: str | Path, kind: Literal["file", "folder"] = "file") -> Path:
    """Check, before long work, that the file (or folder) ``path`` can be written: its parent folder is created
    and writable, and ``path`` is not of the other kind. Returns the absolute path; raises :class:`OutputError`
    with a one-line message."""
    final = _destination(path, kind)
    try:
        probe = _new_temporary(final, directory=kind == "folder")
    except OSError as err:
        raise _unwritable(path, final.parent, err) from None
    _remove(probe)
    return final


def _new_temporary(final: Path, directory: bool) -> Path:
    """Create ``<final>.partial-<random>`` (empty file or folder) and return it."""
    for _ in range(_ATTEMPTS):
        candidate = final.with_name(f"{final.name}{PARTIAL_INFIX}{secrets.token_hex(4)}")
        try:
            if directory:
                candidate.mkdir()
            else:
                os.close(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"no free temporary name for {final} after {_ATTEMPTS} attempts")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def _writing(
    final: Path, path: str | Path, directory: bool, keep_on_interrupt: bool, publish: Callable[[Path], None]
) -> Iterator[Path]:
    """Create the temporary output, yield it, ``publish`` it when the block succeeds; clean up otherwise.

    Creating and publishing run with SIGINT/SIGTERM held back, and a signal held back is delivered inside this
    ``try``, so an interruption at any moment removes (or keeps) the temporary output and becomes
    :class:`Interrupted`; one delivered after publishing is re-raised as it is (the output is complete).
    """
    temporary: Path | None = None
    published = False
    try:
        with deferred_interrupts():
            try:
                temporary = _new_temporary(final, directory)
            except OSError as err:
                raise _unwritable(path, final.parent, err) from None
        yield temporary
        with deferred_interrupts():
            try:
                publish(temporary)
            except OSError as err:
                raise OutputError(f"cannot write {path}: {err.strerror or err}") from None
            published = True
    except KeyboardInterrupt as interrupt:
        if published:
            raise
        kept = temporary if keep_on_interrupt and temporary is not None and temporary.exists() else None
        if temporary is not None and kept is None:
            _remove(temporary)
        if isinstance(interrupt, Interrupted):
            raise
        raise Interrupted(final, kept) from interrupt
    except BaseException:
        if temporary is not None and not published:
            _remove(temporary)
        raise


@contextlib.contextmanager
def atomic_file(path: str | Path, *, keep_on_interrupt: bool = False) -> Iterator[Path]:
    """Yield a temporary file path next to ``path``; on success it is renamed to ``path``.

    The temporary file exists (empty) when the block starts; write it by name (uproot, safetensors, ...) or
    open it. See the module docstring for the naming, the error on an unwritable folder and the cleanup.
    """
    final = _destination(path, "file")
    with _writing(final, path, False, keep_on_interrupt, lambda temporary: os.replace(temporary, final)) as partial:
        yield partial


@contextlib.contextmanager
def atomic_directory(
    path: str | Path,
    *,
    existing: Literal["replace", "merge"] = "replace",
    publish_last: Sequence[str] = (),
    keep_on_interrupt: bool = False,
) -> Iterator[Path]:
    """Yield a temporary folder next to ``path``; on success it becomes ``path``.

    An existing ``path`` is replaced as a whole (``existing="replace"``) or receives the new entries one by one,
    those named in ``publish_last`` last and in that order (``"merge"``); entries of the old folder that the new
    one does not have stay in a merge. Either way nothing changes under ``path`` before the block succeeded.
    """
    if existing not in ("replace", "merge"):
        raise ValueError(f"existing must be 'replace' or 'merge', got {existing!r}")
    final = _destination(path, "folder")

    def publish(temporary: Path) -> None:
        _publish_directory(temporary, final, existing, tuple(publish_last))

    with _writing(final, path, True, keep_on_interrupt, publish) as partial:
        yield partial


def _publish_directory(temporary: Path, final: Path, existing: str, publish_last: tuple[str, ...]) -> None:
    if not final.exists() or (final.is_dir() and not any(final.iterdir())):
        os.replace(temporary, final)  # POSIX rename replaces an empty folder
    elif existing == "replace":
        aside = _new_temporary(final.with_name(f"{final.name}.old"), directory=True)
        os.replace(final, aside)  # ``aside`` is an empty folder: replaced by the old one
        try:
            os.replace(temporary, final)
        except OSError:
            os.replace(aside, final)  # put the old one back
            raise
        shutil.rmtree(aside, ignore_errors=True)
    else:
        entries = sorted(
            temporary.iterdir(), key=lambda p: (publish_last.index(p.name) if p.name in publish_last else -1, p.name)
        )
        for entry in entries:
            os.replace(entry, final / entry.name)
        temporary.rmdir()


class _Terminated(KeyboardInterrupt):
    """What SIGTERM raises under :func:`sigterm_as_interrupt`: a ``KeyboardInterrupt`` (handled wherever Ctrl-C is)
    of its own type. CPython remembers a bare ``KeyboardInterrupt`` that passed through C-level code running Python
    (``PyRun_*``, as some extension modules do) as "unhandled" and ends the process with SIGINT at exit even when it
    was handled; a subclass is not mistaken for one."""


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back while the block runs, then deliver the first one received (to the handler
    that was in place before). Does nothing outside the main thread, where Python cannot set handlers."""
    if not _in_main_thread():
        yield
        return
    received: list[int] = []

    def record(signum: int, frame: object) -> None:
        received.append(signum)

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    previous = {sig: handler for sig, handler in previous.items() if handler is not None}
    for sig in previous:
        signal.signal(sig, record)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if received:
            signal.raise_signal(received[0])


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While the block runs, SIGTERM raises ``KeyboardInterrupt`` (as SIGINT does), so context managers and
    ``finally`` clauses run. Does nothing outside the main thread."""
    if not _in_main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise _Terminated(f"received {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
