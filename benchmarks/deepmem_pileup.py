"""DeepMEM against the integrated MEM weights at several pileups: MAPE per hypothesis and the discriminant AUC.

Takes, per pileup, a Drell-Yan and a Z′ weight table (``coffea-mlreco mem-weights FILE --precision 0.002
--use-sum-et`` for the shipped model, which learned each event's MET resolution; 0.2 % is the precision the model
card's held-out figures use: 1 % tables would add ≈ 0.8 % of integration noise to the MAPE)
and runs a DeepMEM model (default the shipped one) on their events with
:func:`coffea_mlreco.mem.training.held_out_metrics`. Prints one row per pileup.

    python benchmarks/deepmem_pileup.py --pileup 0 dy_pu0.npz zp_pu0.npz --pileup 30 dy_pu30.npz zp_pu30.npz
        [--model DIR]
"""

from __future__ import annotations

import argparse
import platform

import torch

from coffea_mlreco.mem.table_schema import read_mem_table
from coffea_mlreco.mem.training import held_out_metrics
from coffea_mlreco.mem.wrappers import DEFAULT_MEM_MODEL, MEM_MODELS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--pileup", nargs="+", action="append", required=True, metavar=("PU", "TABLE"), help="a pileup and its tables"
    )
    parser.add_argument("--model", default=DEFAULT_MEM_MODEL, help="shipped name or model directory")
    parser.add_argument("--signal", default="zprime")
    parser.add_argument("--background", default="dy_sm")
    args = parser.parse_args()
    model = MEM_MODELS.load(args.model, device="cpu").backend.load(torch.device("cpu"))
    print(f"# DeepMEM {args.model} vs integration; {platform.node()} ({platform.machine()}), CPU")
    print("| PU | events (DY + Z′) | MAPE dy_sm | MAPE zprime | AUC integrated | AUC network | ΔAUC |")
    print("|---|---|---|---|---|---|---|")
    for pileup, *paths in args.pileup:
        tables = [(p, read_mem_table(p)) for p in paths]
        m = held_out_metrics(model, tables, args.signal, args.background)
        print(
            f"| {pileup} | {m['background_events']} + {m['signal_events']} | {100 * m['mape']['dy_sm']:.2f} % | "
            f"{100 * m['mape']['zprime']:.2f} % | {m['auc_integrated']:.5f} | {m['auc_network']:.5f} | "
            f"{m['auc_network'] - m['auc_integrated']:+.5f} |"
        )


if __name__ == "__main__":
    main()
