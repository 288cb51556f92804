#!/usr/bin/env bash
# Retrain the shipped MLPF models (mlpf_pu60, mlpf_pu200) from scratch and evaluate them against rule-based PF:
#   bash examples/retrain_mlpf.sh [WORKDIR]
# Generates tt̄ semileptonic at PU 60 with detector elements (--elements): training 3000 events (seed 8101),
# validation 1000 (seed 8102: events 0-199 choose the epoch, 200-599 the working point and response correction,
# 600-999 stay unused), held-out test 1000 (seed 8103) and a PU 200 check, 200 events (seed 8203). Trains MLPF
# (dim 64, 3 binned layers hashing the calorimeter-surface position) in three stages on 2 CPU cores: 5 epochs
# from scratch (~1 h), 3 epochs from those weights with the energy-weighted cluster momentum loss (~25 min), and
# 3 epochs from those with the detector's track–cluster links as extra inputs (--link-features, zero-initialised
# so it starts from stage 2's answer; ~20 min); the third stage writes the shipped weights and card. Then runs
# `evaluate --tasks mlpf` on the test samples (the 5000-event one, seed 8104, gives the tail figures).
# mlpf_pu200: 3 epochs at PU 200 from mlpf_pu60 (training 1000 events, seed 8201; validation 300, seed 8202:
# events 0-99 the epoch, 100-299 the working point; ~35 min), tested on 1000 events (seed 8204); the MLPF
# processor picks the model trained at the pileup closest to each chunk's.
set -euo pipefail
work=${1:-mlpf_pu60}
weights=src/coffea_mlreco/mlpf/weights
mkdir -p "$work"
gen=(--process ttbar-semilep --elements --jobs 2)
coffea-mlreco generate "${gen[@]}" --pileup 60 --events 3000 --seed 8101 --output "$work/tt_pu60_train.root"
coffea-mlreco generate "${gen[@]}" --pileup 60 --events 1000 --seed 8102 --output "$work/tt_pu60_val.root"
coffea-mlreco generate "${gen[@]}" --pileup 60 --events 1000 --seed 8103 --output "$work/tt_pu60_test.root"
coffea-mlreco generate "${gen[@]}" --pileup 60 --events 5000 --seed 8104 --output "$work/tt_pu60_test5k.root"
coffea-mlreco generate "${gen[@]}" --pileup 200 --events 200 --seed 8203 --output "$work/tt_pu200_test.root"
coffea-mlreco generate "${gen[@]}" --pileup 200 --events 1000 --seed 8201 --output "$work/tt_pu200_train.root"
coffea-mlreco generate "${gen[@]}" --pileup 200 --events 300 --seed 8202 --output "$work/tt_pu200_val.root"
coffea-mlreco generate "${gen[@]}" --pileup 200 --events 1000 --seed 8204 --output "$work/tt_pu200_test1k.root"
common=(--train "$work/tt_pu60_train.root" --validation "$work/tt_pu60_val.root" --max-validation-events 200
        --calibration-events 400 --batch 4 --dim 64 --layers 3 --heads 4 --bin-size 64 --binning position
        --class-weights 2.5 1 1 1 10 10 --none-energy-weight 0.5 --threads 1 --cache-dir "$work/cache")
# each stage writes a model directory (--output DIR: DIR/mlpf.safetensors + DIR/mlpf.json) in $work; shipping copies
# the last one into the package under the shipped name
coffea-mlreco train mlpf "${common[@]}" --epochs 5 --lr 2e-3 --seed 1 --output "$work/mlpf_pu60_stage1"
coffea-mlreco train mlpf "${common[@]}" --epochs 3 --lr 1e-3 --energy-weight 1.0 --seed 2 \
    --init "$work/mlpf_pu60_stage1/mlpf.safetensors" --output "$work/mlpf_pu60_stage2"
coffea-mlreco train mlpf "${common[@]}" --epochs 3 --lr 1e-3 --energy-weight 1.0 --seed 3 --link-features \
    --init "$work/mlpf_pu60_stage2/mlpf.safetensors" --output "$work/mlpf_pu60"
python -m coffea_mlreco.training.model_dir "$work/mlpf_pu60" "$weights" mlpf_pu60
# mlpf_pu200: the same settings on the PU 200 samples (options given after "${common[@]}" replace its PU 60 ones)
coffea-mlreco train mlpf "${common[@]}" --train "$work/tt_pu200_train.root" --validation "$work/tt_pu200_val.root" \
    --max-validation-events 100 --calibration-events 200 --epochs 3 --lr 1e-3 --energy-weight 1.0 --seed 4 \
    --link-features --init "$weights/mlpf_pu60.safetensors" --output "$work/mlpf_pu200"
python -m coffea_mlreco.training.model_dir "$work/mlpf_pu200" "$weights" mlpf_pu200
coffea-mlreco evaluate "$work/tt_pu60_test.root" --tasks mlpf --device cpu --output "$work/report_test_pu60"
coffea-mlreco evaluate "$work/tt_pu60_test5k.root" --tasks mlpf --device cpu --output "$work/report_test5k_pu60"
coffea-mlreco evaluate "$work/tt_pu200_test1k.root" --tasks mlpf --device cpu --output "$work/report_test_pu200"
