#!/usr/bin/env bash
# Retrain the shipped PU 60 MET models from scratch (one command; ~25 min on 2 CPU cores):
#   bash examples/retrain_met_pu60.sh [WORKDIR]
# Generates the training (seed 1001), validation (seed 3001) and held-out test (seed 2001) samples,
# trains DeepMET and both Perceiver target modes, and evaluates all MET methods on the held-out sample.
set -euo pipefail
work=${1:-met_pu60}
weights=src/coffea_mlreco/met/weights
mkdir -p "$work"
coffea-mlreco generate --process ttbar-dilep --events 8000 --pileup 60 --seed 1001 --jobs 2 --output "$work/train_pu60.root"
coffea-mlreco generate --process ttbar-dilep --events 1000 --pileup 60 --seed 3001 --jobs 2 --output "$work/val_pu60.root"
coffea-mlreco generate --process ttbar-dilep --events 5000 --pileup 60 --seed 2001 --jobs 2 --output "$work/test_pu60.root"
common=(--train "$work/train_pu60.root" --validation "$work/val_pu60.root" --epochs 5 --seed 1 --cache-dir "$work/cache")
# each training writes a model directory (--output DIR: DIR/<model>.safetensors + DIR/<model>.json) in $work;
# shipping copies it into the package under the shipped name
coffea-mlreco train met --model deepmet "${common[@]}" --epochs 6 --output "$work/deepmet_pu60"
python -m coffea_mlreco.training.model_dir "$work/deepmet_pu60" "$weights" deepmet_pu60
coffea-mlreco train met --model perceiver --target seed "${common[@]}" --output "$work/perceiver_seed_pu60"
coffea-mlreco train met --model perceiver --target direct "${common[@]}" --output "$work/perceiver_direct_pu60"
# ship the Perceiver target mode with the better validation u∥ resolution
python examples/ship_perceiver.py "$work" 60
coffea-mlreco evaluate "$work/test_pu60.root" --tasks met --output "$work/report_test_pu60"
