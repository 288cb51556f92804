"""Ship the Perceiver MET target mode (``seed`` or ``direct``) with the better validation u∥ resolution.

    python examples/ship_perceiver.py WORKDIR PILEUP

Reads ``WORKDIR/perceiver_{seed,direct}_pu<PILEUP>.{json,safetensors}`` written by ``coffea-mlreco train met``,
compares their calibrated validation resolution of u∥ (the card's ``validation_metrics_gev``) and copies the
better one to ``src/coffea_mlreco/met/weights/perceiver_pu<PILEUP>``, recording the comparison in its card.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "coffea_mlreco" / "met" / "weights"


def main() -> None:
    work, pileup = Path(sys.argv[1]), sys.argv[2]
    cards = {m: json.loads((work / f"perceiver_{m}_pu{pileup}.json").read_text()) for m in ("seed", "direct")}
    res = {m: c["validation_metrics_gev"]["model"]["resolution_upar"] for m, c in cards.items()}
    best = min(res, key=res.get)
    name = f"perceiver_pu{pileup}"
    card = cards[best]
    card["weights"] = f"{name}.safetensors"
    card["target_mode_comparison_val_resolution_upar_gev"] = res
    shutil.copy(work / f"perceiver_{best}_pu{pileup}.safetensors", WEIGHTS / f"{name}.safetensors")
    (WEIGHTS / f"{name}.json").write_text(json.dumps(card, indent=2) + "\n")
    print(f"shipped the {best} target mode: validation u_par resolution {res}")


if __name__ == "__main__":
    main()
