"""Ship the Perceiver MET target mode (``seed`` or ``direct``) with the better validation u∥ resolution.

    python examples/ship_perceiver.py WORKDIR PILEUP

Reads the model directories ``WORKDIR/perceiver_{seed,direct}_pu<PILEUP>`` (``perceiver.json`` and
``perceiver.safetensors``, written by ``coffea-mlreco train met --model perceiver --output DIR``), compares their
calibrated validation resolution of u∥ (the card's ``validation_metrics_gev``) and copies the better one to
``src/coffea_mlreco/met/weights/perceiver_pu<PILEUP>.{safetensors,json}``, recording the comparison in its card.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from coffea_mlreco.training.model_dir import model_files, ship_model

WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "coffea_mlreco" / "met" / "weights"


def main() -> None:
    work, pileup = Path(sys.argv[1]), sys.argv[2]
    dirs = {m: work / f"perceiver_{m}_pu{pileup}" for m in ("seed", "direct")}
    cards = {m: json.loads(model_files(d, "perceiver")[1].read_text()) for m, d in dirs.items()}
    res = {m: c["validation_metrics_gev"]["model"]["resolution_upar"] for m, c in cards.items()}
    best = min(res, key=res.get)
    ship_model(
        dirs[best], WEIGHTS, f"perceiver_pu{pileup}", extra={"target_mode_comparison_val_resolution_upar_gev": res}
    )
    print(f"shipped the {best} target mode: validation u_par resolution {res}")


if __name__ == "__main__":
    main()
