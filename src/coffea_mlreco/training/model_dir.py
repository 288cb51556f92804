"""Where ``coffea-mlreco train`` writes a model, and the checks made on its files before training starts.

A trained model is a *model directory*: ``DIR/<name>.safetensors`` (the weights) and ``DIR/<name>.json`` (its
model card), nothing else with a ``.json`` suffix. That is what ``models=`` of the reconstruction functions and
processors, and ``coffea-mlreco evaluate --model TASK.METHOD=DIR``, accept. ``<name>`` is the trained model's
name: the ``--model`` choice (``deepmet``, ``perceiver``, ``spanet``, ``pdnn``), ``transformer`` (ditau),
``mlpf``, or ``--name`` (mem).

- ``--output DIR`` defaults to ``./coffea-mlreco-models/<task>-<name>`` under the current directory. A directory
  inside the installed package is refused (the shipped models are replaced only on purpose: the
  ``examples/retrain_*.sh`` scripts train into their work directory and then copy the result in with
  :func:`ship_model`), as is a directory already holding another model's card.
- A validation file that is also a training file (the same path, or the same file reached through another path
  or a link) is refused: validation metrics on training events say nothing about the model.
- An output folder that cannot be written is refused before training (one line, exit status 2).

Complete or absent: the model is written into a temporary folder ``DIR.partial-XXXXXXXX`` next to ``DIR``
(:func:`model_output`, `coffea_mlreco.core.outputs`) and published only once its card is written: renamed to
``DIR``, or, when ``DIR`` already exists (holding this model's earlier version or other files), its two files
are moved in, the weights first and the card last. An interrupted or failed ``train`` leaves no model directory
(``DIR`` is not created before the model is complete) and no new card; ``train met``, which keeps its best epoch
so far as it goes, keeps that in ``DIR.partial-XXXXXXXX`` when interrupted by Ctrl-C or SIGTERM and says so.

The model card (:func:`model_card`, the same fields for every task): ``model`` (``module:Class``), ``config`` (its
keyword arguments), ``weights``, ``card_version``, ``package_version``, ``command`` (the ``coffea-mlreco`` command
line that trained it), the data (files or tables with their provenance, event counts), the training settings
(epochs, learning rate, seed, batch, ...), ``training_seconds``, ``history`` (one entry per epoch,
`coffea_mlreco.training.trainer`), the validation metrics, ``parameters`` and anything the task adds.

Shipping (what the retrain scripts do):

    python -m coffea_mlreco.training.model_dir MODEL_DIR WEIGHTS_DIR NAME

copies the model in ``MODEL_DIR`` to ``WEIGHTS_DIR/NAME.safetensors`` and ``WEIGHTS_DIR/NAME.json`` (the card's
``weights`` entry renamed to match).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from coffea_mlreco.core.outputs import (
    Interrupted,
    OutputError,
    atomic_directory,
    atomic_file,
    check_output,
    sigterm_as_interrupt,
)

__all__ = [
    "DEFAULT_MODELS_DIR",
    "TrainingSetupError",
    "add_output_argument",
    "check_validation_files",
    "default_output_dir",
    "model_card",
    "model_files",
    "model_output",
    "package_directory",
    "prepare_output",
    "run_training",
    "setup_error",
    "ship_model",
    "training_command",
    "write_model",
]

DEFAULT_MODELS_DIR = "coffea-mlreco-models"
"""Folder under the current directory that holds the model directories ``train`` writes by default."""


class TrainingSetupError(ValueError):
    """An output directory or a choice of files that ``train`` refuses before training; one-line message."""


def package_directory() -> Path:
    """The installed ``coffea_mlreco`` package directory (resolved)."""
    return Path(__file__).resolve().parents[1]


def default_output_dir(task: str, name: str) -> Path:
    """``./coffea-mlreco-models/<task>-<name>`` under the current directory."""
    return Path.cwd() / DEFAULT_MODELS_DIR / f"{task}-{name}"


def model_files(directory: str | Path, name: str) -> tuple[Path, Path]:
    """``(DIR/<name>.safetensors, DIR/<name>.json)``: the weights and the model card of a model directory."""
    directory = Path(directory)
    return directory / f"{name}.safetensors", directory / f"{name}.json"


def _is_within(path: Path, parent: Path) -> bool:
    try:
        path.relative_to(parent)
    except ValueError:
        return False
    return True


def prepare_output(output: str | Path | None, task: str, name: str) -> Path:
    """The model directory to write ``<name>.safetensors``/``<name>.json`` into, checked before training.

    The directory itself is not created (:func:`model_output` publishes it once the model is complete); its
    parent folder is, and must be writable.

    Args:
        output: ``--output`` as given (None: :func:`default_output_dir`).
        task: the trained task (``met``, ``ttbar``, ...), for the default and the messages.
        name: the model's file stem.

    Raises:
        TrainingSetupError: the directory lies inside the installed package; it exists as a file; it already
            holds the model card of another model (a model directory holds exactly one); its folder cannot be
            created or written.
    """
    if not name or Path(name).name != name or name.startswith("."):
        raise TrainingSetupError(f"model name {name!r} must be a plain file stem")
    directory = default_output_dir(task, name) if output is None else Path(output).expanduser()
    resolved = directory.resolve()
    package = package_directory()
    if _is_within(resolved, package):
        raise TrainingSetupError(
            f"--output {directory} is inside the installed package ({package}); write the model elsewhere "
            "and pass the directory to models= or evaluate --model (the retrain scripts copy a model in "
            "with python -m coffea_mlreco.training.model_dir)"
        )
    if resolved.exists() and not resolved.is_dir():
        raise TrainingSetupError(f"--output {directory} is a file; give a directory (the model directory)")
    if resolved.is_dir():
        others = sorted(p.name for p in resolved.glob("*.json") if p.name != f"{name}.json")
        if others:
            raise TrainingSetupError(
                f"--output {directory} already holds another model card ({', '.join(others)}); "
                "a model directory holds one model: choose another directory"
            )
    if resolved.is_dir() and not os.access(resolved, os.W_OK | os.X_OK):
        raise TrainingSetupError(f"--output {directory} is not writable; the model files are moved into it")
    try:
        check_output(directory, "folder")
    except OutputError as err:
        raise TrainingSetupError(f"--output {err}") from None
    return directory


class _NoModel(Exception):
    """The training block ended without writing a model card: nothing to publish."""


@contextlib.contextmanager
def model_output(directory: str | Path, name: str, *, keep_on_interrupt: bool = False) -> Iterator[Path]:
    """Yield a temporary model directory to write ``<name>.safetensors`` and ``<name>.json`` into; when the block
    ends with the card written, the model appears in ``directory`` (module docstring), else nothing does.

    ``keep_on_interrupt``: on Ctrl-C/SIGTERM keep the temporary directory if it holds a card (a usable
    checkpoint); the :class:`~coffea_mlreco.core.Interrupted` raised then names it.
    """
    weights, card = model_files(Path(), name)
    try:
        with atomic_directory(
            directory, existing="merge", publish_last=(weights.name, card.name), keep_on_interrupt=keep_on_interrupt
        ) as work:
            yield work
            if not (work / card.name).is_file():
                raise _NoModel
    except _NoModel:
        return
    except Interrupted as err:
        if err.kept is not None and not (err.kept / card.name).is_file():
            shutil.rmtree(err.kept, ignore_errors=True)
            raise Interrupted(err.output) from err
        if err.kept is not None:
            raise Interrupted(err.output, err.kept, "the best epoch so far") from err
        raise


def training_command() -> str:
    """The command line of this process as the user typed it: ``coffea-mlreco`` and its arguments."""
    return "coffea-mlreco " + " ".join(sys.argv[1:])


def model_card(
    architecture: str,
    config: Mapping[str, Any],
    name: str,
    parameters: int,
    *,
    data: Mapping[str, Any],
    settings: Mapping[str, Any],
    history: Sequence[Mapping[str, Any]],
    metrics: Mapping[str, Any],
    seconds: float,
    metrics_key: str = "validation_metrics",
    **extra: Any,
) -> dict[str, Any]:
    """The model card of a trained model (fields in the module docstring), for :func:`write_model`.

    Args:
        architecture: ``module:Class`` of the model; ``config``: its keyword arguments.
        name: the model's file stem (the card names ``<name>.safetensors`` as its weights).
        parameters: the model's number of parameters.
        data: what it was trained and validated on (e.g. ``training_files``, ``validation_file``,
            ``training_events``, ``validation_events``: :func:`~coffea_mlreco.training.provenance.describe_data`).
        settings: the training settings (``epochs``, ``learning_rate``, ``seed``, ...).
        history: one entry per epoch; ``metrics``: the kept epoch's validation metrics, under ``metrics_key``.
        seconds: the training's wall time (s).
        extra: further fields of the task (e.g. a calibration), last.
    """
    from coffea_mlreco.core.version import __version__
    from coffea_mlreco.inference.model_cards import CARD_VERSION

    return {
        "model": architecture,
        "config": dict(config),
        "weights": model_files(Path(), name)[0].name,
        "card_version": CARD_VERSION,
        "package_version": __version__,
        "command": training_command(),
        **data,
        **settings,
        "training_seconds": round(seconds, 1),
        "history": [dict(h) for h in history],
        metrics_key: dict(metrics),
        "parameters": int(parameters),
        **extra,
    }


def write_model(directory: str | Path, name: str, state: Mapping[str, Any], card: Mapping[str, Any]) -> Path:
    """Write the weights ``state`` (a torch ``state_dict``) as ``<name>.safetensors`` and ``card`` as the model card
    ``<name>.json`` into the model directory ``directory``, complete or not at all (:func:`model_output`);
    returns the card's path. ``card["weights"]`` must be ``<name>.safetensors``."""
    from safetensors.torch import save_file

    weights, card_file = model_files(Path(), name)
    if card.get("weights") != weights.name:
        raise ValueError(f"the model card's weights entry is {card.get('weights')!r}, expected {weights.name!r}")
    with model_output(directory, name) as work:
        save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(work / weights.name))
        (work / card_file.name).write_text(json.dumps(card, indent=2) + "\n")
    return Path(directory) / card_file.name


def run_training(task: str, train: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """``train(args)`` with SIGTERM handled as Ctrl-C: an interruption is one line and exit status 1, an output
    folder that cannot be written one line and exit status 2."""
    try:
        with sigterm_as_interrupt():
            return int(train(args))
    except OutputError as err:
        return setup_error(task, err)
    except KeyboardInterrupt as err:
        message = str(err) if isinstance(err, Interrupted) else "interrupted; no model directory was written"
        print(f"coffea-mlreco train {task}: {message}", file=sys.stderr)
        return 1


def _same_file(a: str, b: str) -> bool:
    if "://" in a or "://" in b:
        return a == b
    pa, pb = Path(a).expanduser(), Path(b).expanduser()
    try:
        return os.path.samefile(pa, pb)
    except OSError:  # one of them does not exist (the trainer names it later): compare the paths
        return pa.resolve() == pb.resolve()


def check_validation_files(
    train: Iterable[str | Path], validation: Iterable[str | Path], option: str = "--validation"
) -> None:
    """Refuse a validation file that is also among the training files.

    Raises:
        TrainingSetupError: naming the file (the same path, or the same file through another path or a link).
    """
    train_files = [str(t) for t in train]
    for val in (str(v) for v in validation):
        for path in train_files:
            if _same_file(val, path):
                same = "" if val == path else f" (the same file as training file {path})"
                raise TrainingSetupError(
                    f"{option} {val} is also a training file{same}; validate on held-out events "
                    "(e.g. a sample generated with another seed)"
                )


def add_output_argument(parser: argparse.ArgumentParser, task: str, name: str) -> None:
    """The ``--output DIR`` option of ``train <task>`` (``name`` describes the file stem in the help)."""
    parser.add_argument(
        "--output",
        default=None,
        metavar="DIR",
        help=f"model directory to write {name}.safetensors and {name}.json (the model card) into; "
        f"default ./{DEFAULT_MODELS_DIR}/{task}-{name}. Pass it to models= or 'evaluate --model "
        f"{task}.METHOD=DIR'. A directory inside the installed package is refused",
    )


def setup_error(task: str, err: Exception) -> int:
    """Print ``coffea-mlreco train <task>: error: ...`` (one line) and return exit status 2."""
    print(f"coffea-mlreco train {task}: error: {err}", file=sys.stderr)
    return 2


def ship_model(
    model_dir: str | Path, weights_dir: str | Path, name: str, extra: Mapping[str, Any] | None = None
) -> Path:
    """Copy the model of ``model_dir`` to ``weights_dir/<name>.safetensors`` and ``<name>.json``, the card's
    ``weights`` entry renamed and ``extra`` added to it; returns the new card's path."""
    from coffea_mlreco.inference.model_cards import card_path

    source = card_path(Path(model_dir), Path(model_dir), "trained")
    card = json.loads(source.read_text())
    weights, target_card = model_files(weights_dir, name)
    with atomic_file(weights) as partial:  # each file complete or absent; the card last
        shutil.copyfile(source.parent / card["weights"], partial)
    card["weights"] = weights.name
    card.update(extra or {})
    with atomic_file(target_card) as partial:
        partial.write_text(json.dumps(card, indent=2) + "\n")
    return target_card


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m coffea_mlreco.training.model_dir",
        description="Copy a trained model directory's model under a new name.",
    )
    parser.add_argument("model_dir", help="model directory written by 'coffea-mlreco train --output DIR'")
    parser.add_argument("weights_dir", help="where to copy it (e.g. src/coffea_mlreco/met/weights)")
    parser.add_argument("name", help="the copy's file stem (e.g. deepmet_pu60)")
    args = parser.parse_args(argv)
    try:
        card = ship_model(args.model_dir, args.weights_dir, args.name)
    except (OSError, ValueError, KeyError) as err:
        print(f"model_dir: error: {err}", file=sys.stderr)
        return 2
    print(f"shipped {args.model_dir} as {card}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
