#!/usr/bin/env bash
# Retrain the shipped di-tau mass transformer of the file's MET (transformer_file_met: what events without MLMET get)
# from scratch (one command; ~1 h on 2 CPU cores):
#   bash examples/retrain_ditau.sh [WORKDIR]
# Generates, at pileup 0 without PF candidates (TauProd holds the tau decay products): the broad-mass training
# sample (gg → φ → ττ at 8 masses of 60–300 GeV, seeds 7100–7104, 20k events each) plus Z → ττ (seed 7200,
# 20k), the validation sample (φ → ττ, seed 7300, 10k) and the held-out H(125) → ττ and Z → ττ test samples
# (seeds 7401, 7402; 10k each); trains the transformer and evaluates every method on the test samples.
set -euo pipefail
work=${1:-ditau}
mkdir -p "$work"
gen=(--pileup 0 --jobs 2 --drop PFCands)
for s in 0 1 2 3 4; do
    coffea-mlreco generate "${gen[@]}" --process scalar-tautau --events 20000 --seed $((7100 + s)) \
        --output "$work/scalar_$s.root"
done
coffea-mlreco generate "${gen[@]}" --process ztautau --events 20000 --seed 7200 --output "$work/ztautau_train.root"
coffea-mlreco generate "${gen[@]}" --process scalar-tautau --events 10000 --seed 7300 --output "$work/scalar_val.root"
coffea-mlreco generate "${gen[@]}" --process htautau --events 10000 --seed 7401 --output "$work/htautau_test.root"
coffea-mlreco generate "${gen[@]}" --process ztautau --events 10000 --seed 7402 --output "$work/ztautau_test.root"
coffea-mlreco train ditau --train "$work"/scalar_{0,1,2,3,4}.root "$work/ztautau_train.root" \
    --validation "$work/scalar_val.root" --epochs 14 --lr 1e-3 --batch 256 --seed 1 --cache-dir "$work/cache" \
    --output "$work/transformer"
python -m coffea_mlreco.training.model_dir "$work/transformer" src/coffea_mlreco/ditau/weights transformer_file_met
coffea-mlreco evaluate "$work/htautau_test.root" "$work/ztautau_test.root" --tasks ditau --device cpu \
    --output "$work/report_test"
