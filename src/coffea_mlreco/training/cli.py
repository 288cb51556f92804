"""`coffea-mlreco train TASK ...`: one sub-command per trainable task."""

from __future__ import annotations

import argparse
import importlib

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
    return int(args._train(args))
