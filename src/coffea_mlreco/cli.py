"""The `coffea-mlreco` command line: one sub-command per job, each defined next to its code.

Each sub-command module exposes ``add_arguments(parser)`` and ``run(args) -> int`` (the exit status); those that
act on every task (``evaluate``, ``train``) take the task registry, :data:`coffea_mlreco.tasks.TASKS`, as a second
argument.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import sys
from collections.abc import Mapping
from typing import Any

from coffea_mlreco.evaluation.tasks import Task, load_attribute
from coffea_mlreco.tasks import TASKS
from coffea_mlreco.training.model_dir import run_training

__all__ = ["add_arguments", "main", "run"]

_SUBCOMMANDS = {  # name: (module, help, takes the task registry)
    "generate": ("coffea_mlreco.simulation.generate", "Generate NanoAOD-like events with the fast simulation.", False),
    "evaluate": ("coffea_mlreco.evaluation.evaluate", "Run the reconstructions and write a report.", True),
    "train": ("coffea_mlreco.cli", "Train a shipped model on generated files.", True),
    "calibrate-met": (
        "coffea_mlreco.met.calibration",
        "Fit the per-event MET covariance of every MET method on generated files (met.reconstruct's table).",
        False,
    ),
    "mem-weights": (
        "coffea_mlreco.mem.tables",
        "Integrate MEM weights of dilepton events into a weight table (the input of 'train mem').",
        False,
    ),
}


def add_arguments(parser: argparse.ArgumentParser, registry: Mapping[str, Task]) -> None:
    """``train``: one sub-command per task of ``registry``, with the options its trainer module declares. Every
    trainer also gets ``args.reconstruct_task`` (task name → that task's ``reconstruct``): a trainer whose model
    reads another task's columns (the di-tau transformer trained on the ML MET) appends them with it, since a
    task package imports no other task."""
    sub = parser.add_subparsers(dest="task", required=True)

    def reconstruct_task(name: str) -> Any:
        return load_attribute(registry[name].reconstruct)

    for name, task in registry.items():
        module = importlib.import_module(task.trainer)
        sp = sub.add_parser(name, help=(module.__doc__ or "").splitlines()[0])
        module.add_arguments(sp)
        sp.set_defaults(_train=module.run, reconstruct_task=reconstruct_task)


def run(args: argparse.Namespace, registry: Mapping[str, Task]) -> int:
    """Run ``train <task>``: the model directory is written complete or not at all, SIGTERM is handled like Ctrl-C
    (:func:`coffea_mlreco.training.model_dir.run_training`). The exit status: 0 trained, 1 interrupted, 2 bad input
    or unwritable output."""
    del registry  # the sub-command chose the trainer
    return run_training(args.task, args._train, args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="coffea-mlreco", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text, takes_registry) in _SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        sp = sub.add_parser(name, help=help_text, description=help_text)
        if takes_registry:
            module.add_arguments(sp, TASKS)
            sp.set_defaults(_run=functools.partial(module.run, registry=TASKS))
        else:
            module.add_arguments(sp)
            sp.set_defaults(_run=module.run)
    args = parser.parse_args(argv)
    return int(args._run(args))


if __name__ == "__main__":
    sys.exit(main())
