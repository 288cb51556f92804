#!/usr/bin/env bash
# Retrain the shipped tt̄ assignment networks from scratch (one command; ~1.5–2 h on 2 CPU cores, minutes on a GPU):
#   bash examples/retrain_ttbar_pu60.sh [WORKDIR]
# Generates semileptonic tt̄ at pileup 60 without PF candidates: training (seeds 5001–5003; 60k events each),
# validation (seed 5301, 5k) and the held-out test sample (seed 5201, 20k); refits the baselines' resolutions,
# trains the permutation DNN and the SPANet-style model, and evaluates every method (χ², KLFitter-style fit, PDNN, SPANet) on the test sample.
set -euo pipefail
work=${1:-ttbar_pu60}
weights=src/coffea_mlreco/ttbar/weights
mkdir -p "$work"
gen=(--process ttbar-semilep --pileup 60 --jobs 2 --drop PFCands)
coffea-mlreco generate "${gen[@]}" --events 60000 --seed 5001 --output "$work/train_pu60.root"
coffea-mlreco generate "${gen[@]}" --events 60000 --seed 5002 --output "$work/train2_pu60.root"
coffea-mlreco generate "${gen[@]}" --events 60000 --seed 5003 --output "$work/train3_pu60.root"
coffea-mlreco generate "${gen[@]}" --events 5000 --seed 5301 --output "$work/val_pu60.root"
coffea-mlreco generate "${gen[@]}" --events 20000 --seed 5201 --output "$work/test_pu60.root"
# χ² widths, KLFitter transfer functions and b-tag rates, fitted on the validation sample
python -m coffea_mlreco.ttbar.resolutions --input "$work/val_pu60.root" \
    --output src/coffea_mlreco/baselines/ttbar_resolutions.json
train=("$work/train_pu60.root" "$work/train2_pu60.root" "$work/train3_pu60.root")
coffea-mlreco train ttbar --model spanet --train "${train[@]}" --validation "$work/val_pu60.root" \
    --epochs 40 --seed 1 --cache-dir "$work/cache" --output "$work/spanet_pu60"
python -m coffea_mlreco.training.model_dir "$work/spanet_pu60" "$weights" spanet_pu60
coffea-mlreco train ttbar --model pdnn --train "${train[@]}" --validation "$work/val_pu60.root" \
    --epochs 20 --seed 1 --cache-dir "$work/cache" --output "$work/pdnn_pu60"
python -m coffea_mlreco.training.model_dir "$work/pdnn_pu60" "$weights" pdnn_pu60
coffea-mlreco evaluate "$work/test_pu60.root" --tasks ttbar --device cpu --output "$work/report_test"
