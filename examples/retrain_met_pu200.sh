#!/usr/bin/env bash
# Retrain the shipped PU 200 MET models from scratch (one command):
#   bash examples/retrain_met_pu200.sh [WORKDIR] [DEVICE] [MAX_SECONDS] [FINETUNE_SECONDS] [NEIGHBOURHOOD_SECONDS] \
#       [STAGE4_SECONDS]
# The shipped Perceiver was trained this way in four stages. Stage 1 on a lent GPU machine (H200, 16 cores;
# benchmarks/gpu_session.sh generated the sample and cached its features there): direct target, alone on the GPU,
# MAX_SECONDS=225 (5 epochs of the 40k events, best epoch 4; seed 2). Stage 2 on the 2-core development container:
# the stage-1 model fine-tuned (train met --init) on 30k new events (12 × 2500, seeds 1227–1238) at learning rate
# 5e-4 for FINETUNE_SECONDS=3500 (seed 3); the shipped card's "init" holds stage 1's card. The shipped DeepMET
# is from the first GPU session (same commands on 4 × 6000 events of seeds 1211–1214, 190 s): its model card has
# the exact command and files.
# Stage 3, also on the 2-core container: the stage-2 model fine-tuned with --neighbourhood (each candidate also reads
# the neutral, charged-PV and charged-pileup pT around it, coffea_mlreco.met.neighbourhood; the new branch starts at
# zero, so epoch 0 is the stage-2 model) on 12k new events (3 × 4000, seeds 29411–29413; validation seed 29414) at
# learning rate 1e-3 for NEIGHBOURHOOD_SECONDS=2400 (seed 4).
# Stage 4, on the same container: the stage-3 model fine-tuned on 36k events, the stage-3 files and 6 × 4000 new ones
# (seeds 29417–29419, 29421–29423; validation 2000, seed 29420) at learning rate 5e-4 for STAGE4_SECONDS=2700
# (seed 5): one epoch and an eighth. The features of 36k PU 200 events take 19 GB: they stay memory-mapped.
# Without MAX_SECONDS each training runs 3 full epochs (hours on a 2-core CPU: generation alone takes ~20 min
# there, the features ~10 min).
# Samples: tt̄ dileptonic at PU 200, training 16 × 2500 events (seeds 1211–1226) and, for stage 2, 12 × 2500
# (seeds 1227–1238), validation 1000 (seed 3202), held-out test 5000 (seed 2201). Stage 1 ships the Perceiver
# target mode with the better calibrated validation u∥ resolution (examples/ship_perceiver.py); stage 2 starts
# from it and keeps it if no fine-tuned epoch validates better (epoch 0 of its history).
set -euo pipefail
work=${1:-met_pu200}
device=${2:-auto}
budget=${3:-}
finetune_budget=${4:-3500}
neighbourhood_budget=${5:-2400}
stage4_budget=${6:-2700}
weights=src/coffea_mlreco/met/weights
jobs=$(( $(nproc) > 4 ? 3 : 1 ))
mkdir -p "$work"
for i in $(seq 1 28); do  # 1–16: stage 1, 17–28: the stage-2 fine-tune
    coffea-mlreco generate --process ttbar-dilep --events 2500 --pileup 200 --seed $((1210 + i)) --jobs "$jobs" \
        --output "$work/train_pu200_$i.root"
done
stage4_seeds=(29411 29412 29413 29417 29418 29419 29421 29422 29423)  # 1–3 the stage-3 fine-tune, 1–9 stage 4
for i in $(seq 1 9); do
    coffea-mlreco generate --process ttbar-dilep --events 4000 --pileup 200 --seed "${stage4_seeds[$((i - 1))]}" \
        --jobs "$jobs" --output "$work/tt200_train$i.root"
done
coffea-mlreco generate --process ttbar-dilep --events 1000 --pileup 200 --seed 3202 --jobs "$jobs" --output "$work/val_pu200.root"
coffea-mlreco generate --process ttbar-dilep --events 1000 --pileup 200 --seed 29414 --jobs "$jobs" --output "$work/tt200_val.root"
coffea-mlreco generate --process ttbar-dilep --events 2000 --pileup 200 --seed 29420 --jobs "$jobs" --output "$work/tt200_val2.root"
coffea-mlreco generate --process ttbar-dilep --events 5000 --pileup 200 --seed 2201 --jobs "$jobs" --output "$work/test_pu200.root"
common=(--train $(ls "$work"/train_pu200_*.root | sort -V | head -16) --validation "$work/val_pu200.root" --cache-dir "$work/cache"
        --tokens 262144 --seed 2 --device "$device" --workers 4)
if [ -n "$budget" ]; then common+=(--epochs 40 --max-seconds "$budget"); else common+=(--epochs 3); fi
# each training writes a model directory (--output DIR: DIR/<model>.safetensors + DIR/<model>.json) in $work;
# shipping copies it into the package under the shipped name
coffea-mlreco train met --model deepmet "${common[@]}" --output "$work/deepmet_pu200"
python -m coffea_mlreco.training.model_dir "$work/deepmet_pu200" "$weights" deepmet_pu200
coffea-mlreco train met --model perceiver --target seed "${common[@]}" --output "$work/perceiver_seed_pu200"
coffea-mlreco train met --model perceiver --target direct "${common[@]}" --output "$work/perceiver_direct_pu200"
python examples/ship_perceiver.py "$work" 200
target=$(python -c "import json; print(json.load(open('$weights/perceiver_pu200.json'))['config']['target'])")
coffea-mlreco train met --model perceiver --target "$target" --train $(ls "$work"/train_pu200_*.root | sort -V | tail -12) \
    --validation "$work/val_pu200.root" --cache-dir "$work/cache" --tokens 262144 --seed 3 --device "$device" \
    --workers 4 --epochs 2 --lr 5e-4 --max-seconds "$finetune_budget" --init "$weights/perceiver_pu200.safetensors" \
    --output "$work/perceiver_finetuned_pu200"
python -m coffea_mlreco.training.model_dir "$work/perceiver_finetuned_pu200" "$weights" perceiver_pu200
coffea-mlreco train met --model perceiver --target "$target" --neighbourhood --train "$work"/tt200_train{1,2,3}.root \
    --validation "$work/tt200_val.root" --cache-dir "$work/cache" --tokens 262144 --seed 4 --device "$device" \
    --workers 2 --epochs 2 --lr 1e-3 --max-seconds "$neighbourhood_budget" --init "$weights/perceiver_pu200.safetensors" \
    --output "$work/perceiver_neighbourhood_pu200"
python -m coffea_mlreco.training.model_dir "$work/perceiver_neighbourhood_pu200" "$weights" perceiver_pu200
coffea-mlreco train met --model perceiver --target "$target" --neighbourhood --train "$work"/tt200_train{1..9}.root \
    --validation "$work/tt200_val2.root" --cache-dir "$work/cache" --tokens 262144 --seed 5 --device "$device" \
    --workers 2 --epochs 2 --lr 5e-4 --max-seconds "$stage4_budget" --init "$weights/perceiver_pu200.safetensors" \
    --output "$work/perceiver_stage4_pu200"
python -m coffea_mlreco.training.model_dir "$work/perceiver_stage4_pu200" "$weights" perceiver_pu200
coffea-mlreco evaluate "$work/test_pu200.root" --tasks met --output "$work/report_test_pu200"
