"""The `coffea-mlreco` command line: one sub-command per job, each defined next to its code.

Each sub-command module exposes ``add_arguments(parser)`` and ``run(args) -> int`` (the exit status).
"""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["main"]

_SUBCOMMANDS = {
    "generate": ("coffea_mlreco.simulation.generate", "Generate NanoAOD-like events with the fast simulation."),
    "evaluate": ("coffea_mlreco.evaluation.evaluate", "Run the reconstructions and write a report."),
    "train": ("coffea_mlreco.training.cli", "Train a shipped model on generated files."),
    "mem-weights": ("coffea_mlreco.mem.tables",
                    "Integrate MEM weights of dilepton events into a weight table (the input of 'train mem')."),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="coffea-mlreco", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in _SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        sp = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sp)
        sp.set_defaults(_run=module.run)
    args = parser.parse_args(argv)
    return int(args._run(args))


if __name__ == "__main__":
    sys.exit(main())
