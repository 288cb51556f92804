"""Neutral-hadron working points of the shipped MLPF: efficiency vs fake rate as the neutral-hadron logit moves.

Rule-based PF of the simulation has no neutral-hadron fakes in |η| < 3 (the detector model deposits a tracked
particle's energy exactly as its track measures it), so "MLPF efficiency at equal fake rate" needs the MLPF
working point scanned: an offset o is added to the neutral-hadron class logit (on top of the card's own
offsets) before the arg-max. Counted as in `coffea_mlreco.mlpf.performance` (summary cuts: pT > 1 GeV,
|η| < 3; a fake is a cluster reconstructed as a neutral hadron whose target is another class, "none" included).

    python benchmarks/mlpf_working_points.py FILE [--first 0] [--events 1000]

FILE: a `coffea-mlreco generate --elements` file (held-out: ttbar-semilep, PU 60, seed 8103).
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np
import torch

from coffea_mlreco.mlpf.candidates import allowed_class_logits
from coffea_mlreco.mlpf.model import decode_candidates
from coffea_mlreco.mlpf.performance import CLASS_NAMES, SUMMARY_PT_MIN, class_rates
from coffea_mlreco.mlpf.training import load_mlpf_data, predict
from coffea_mlreco.mlpf.wrapper import MLPF_MODELS

NEUTRAL_HADRON = 2
OFFSETS = (0.0, -0.5, -1.0, -1.5, -2.0, -2.5, -3.0, -4.0, -5.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file")
    parser.add_argument("--first", type=int, default=0, help="first event")
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--model", default="mlpf_pu60")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as cache:
        data = load_mlpf_data(args.file, cache)
    offsets = np.concatenate([[0], np.cumsum(data["counts"])])
    last = min(args.first + args.events, len(data["counts"]))
    rows = slice(offsets[args.first], offsets[last])
    data = {k: (v[args.first : last] if k == "counts" else v[rows]) for k, v in data.items()}
    wrapper = MLPF_MODELS.load(args.model, device="cpu")
    out = predict(wrapper.cache.get(wrapper.backend, torch.device("cpu")), data)
    kind = data["x"][:, 0].astype(np.int64)
    base = np.asarray(
        MLPF_MODELS.card(args.model).get("decision", {}).get("class_logit_offsets", [0.0] * 6), np.float32
    )
    print(f"{args.file}: events {args.first}–{last - 1}, {len(kind):,} elements; model {args.model}")
    print(
        "\n| neutral-hadron logit offset | NH efficiency | NH fake rate | NH fakes (true class) | photon efficiency |"
    )
    print("|---|---|---|---|---|")
    for o in OFFSETS:
        shift = base.copy()
        shift[NEUTRAL_HADRON] += o
        logits = allowed_class_logits(out["class_logits"] + shift, kind)
        dec = decode_candidates(
            {
                "class_logits": logits[None],
                "momentum": out["momentum"][None],
                "charge_logit": out["charge_logit"][None],
            },
            data["x"][None],
        )
        cls = dec["cls"].astype(np.int64)
        central = np.abs(dec["eta"]) < 3.0
        r = class_rates(data["cls"][central], cls[central], data["pt"][central], dec["pt"][central], SUMMARY_PT_MIN)
        fake = (cls == NEUTRAL_HADRON) & (data["cls"] != NEUTRAL_HADRON) & central & (dec["pt"] > SUMMARY_PT_MIN)
        by_class = np.bincount(data["cls"][fake], minlength=len(CLASS_NAMES))
        sources = ", ".join(f"{CLASS_NAMES[c]} {n}" for c, n in enumerate(by_class) if n) or "—"
        print(
            f"| {o:+.1f} | {100 * r['efficiency']['neutral_hadron']:.2f} % | "
            f"{100 * r['fake_rate']['neutral_hadron']:.4f} % | {int(fake.sum())} ({sources}) | "
            f"{100 * r['efficiency']['photon']:.2f} % |",
            flush=True,
        )


if __name__ == "__main__":
    main()
