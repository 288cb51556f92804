"""`coffea-mlreco train TASK ...`: one sub-command per trainable task.

Every task writes its model directory complete or not at all (`coffea_mlreco.training.model_dir.model_output`);
SIGTERM is handled like Ctrl-C (one line, exit status 1, no model directory left), an output folder that cannot be
written is one line and exit status 2 before training.
"""

from __future__ import annotations

import argparse
import importlib

from .model_dir import run_training

__all__ = ["add_arguments", "run"]

_TASKS = {"met": "coffea_mlreco.training.met", "ttbar": "coffea_mlreco.training.ttbar",
          "ditau": "coffea_mlreco.training.ditau",
          "mem": "coffea_mlreco.training.mem",
          "mlpf": "coffea_mlreco.training.mlpf"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="task", required=True)
    for name, module_name in _TASKS.items():
        module = importlib.import_module(module_name)
        sp = sub.add_parser(name, help=(module.__doc__ or "").splitlines()[0])
        module.add_arguments(sp)
        sp.set_defaults(_train=module.run)


def run(args: argparse.Namespace) -> int:
    """Run ``train <task>``; the exit status (0 trained, 1 interrupted, 2 bad input or unwritable output)."""
    return run_training(args.task, args._train, args)
