#!/usr/bin/env bash
# Retrain the shipped PU 200 MET models from scratch (one command):
#   bash examples/retrain_met_pu200.sh [WORKDIR] [DEVICE] [MAX_SECONDS]
# The shipped Perceiver was trained this way on a lent GPU machine (H200, 16 cores; benchmarks/gpu_session.sh
# generated the sample and cached its features there): direct target, alone on the GPU, MAX_SECONDS=225 (5 epochs
# of the 40k events, best epoch 4; seed 2). The shipped DeepMET is from the first GPU session (same commands on
# 4 × 6000 events of seeds 1211–1214, 190 s): its model card has the exact command and files.
# Without MAX_SECONDS each training runs 3 full epochs (hours on a 2-core CPU: generation alone takes ~20 min
# there, the features ~10 min).
# Samples: tt̄ dileptonic at PU 200, training 16 × 2500 events (seeds 1211–1226), validation 1000 (seed 3202),
# held-out test 5000 (seed 2201). Ships the Perceiver target mode with the better calibrated validation u∥
# resolution (examples/ship_perceiver.py).
set -euo pipefail
work=${1:-met_pu200}
device=${2:-auto}
budget=${3:-}
weights=src/coffea_mlreco/met/weights
jobs=$(( $(nproc) > 4 ? 3 : 1 ))
mkdir -p "$work"
for i in $(seq 1 16); do
    coffea-mlreco generate --process ttbar-dilep --events 2500 --pileup 200 --seed $((1210 + i)) --jobs "$jobs" \
        --output "$work/train_pu200_$i.root"
done
coffea-mlreco generate --process ttbar-dilep --events 1000 --pileup 200 --seed 3202 --jobs "$jobs" --output "$work/val_pu200.root"
coffea-mlreco generate --process ttbar-dilep --events 5000 --pileup 200 --seed 2201 --jobs "$jobs" --output "$work/test_pu200.root"
common=(--train $(ls "$work"/train_pu200_*.root | sort -V) --validation "$work/val_pu200.root" --cache-dir "$work/cache"
        --tokens 262144 --seed 2 --device "$device" --workers 4)
if [ -n "$budget" ]; then common+=(--epochs 40 --max-seconds "$budget"); else common+=(--epochs 3); fi
coffea-mlreco train met --model deepmet "${common[@]}" --output "$weights/deepmet_pu200"
coffea-mlreco train met --model perceiver --target seed "${common[@]}" --output "$work/perceiver_seed_pu200"
coffea-mlreco train met --model perceiver --target direct "${common[@]}" --output "$work/perceiver_direct_pu200"
python examples/ship_perceiver.py "$work" 200
coffea-mlreco evaluate "$work/test_pu200.root" --tasks met --output "$work/report_test_pu200"
