#!/usr/bin/env bash
# Continue the shipped DeepMEM (trained at PU 0 by retrain_mem.sh) on MEM weight tables at PU 0, 30 and 60, so the
# network tracks the integrated weights at pileup (where the MET reaches far beyond its PU 0 range):
#   bash examples/retrain_mem_pileup.sh [WORKDIR]
# ~1 h on 2 shared CPU cores: generation ~15 min, integration at 0.2 % ~25 min, 60 epochs of fine-tuning ~15 min.
#
# 1. generates Drell-Yan (dy-ll) and Z' (zprime-ll) events without PF candidates: training dy 16k + zp 8k at PU 30
#    (seeds 19521, 19522) and PU 60 (19523, 19524), dy 10k + zp 5k at PU 0 (19525, 19526), of which 10 % (a fixed
#    random split) validate; held-out test dy 10k + zp 5k at PU 0, 30, 60 (19515/19516, 19511/19512, 19513/19514);
# 2. integrates the dy_sm and zprime weights of every selected event at 0.2 % (VEGAS seed 1; the MET resolution at
#    the default ΣE_T, as for the PU 0 tables);
# 3. fine-tunes from the shipped model (--init deepmem: its architecture, standardisation and weights) and records
#    the held-out MAPE and discriminant AUC at each pileup in the model card (test_metrics), and per pileup with
#    benchmarks/deepmem_pileup.py.
set -euo pipefail
work=${1:-mem_pileup}
mkdir -p "$work"
gen() {  # process, name, pileup, seed, events
    [ -f "$work/$2.root" ] || coffea-mlreco generate --process "$1" --events "$5" --pileup "$3" --seed "$4" \
        --output "$work/$2.root" --jobs 2 --drop PFCands --quiet
    [ -f "$work/$2.npz" ] || coffea-mlreco mem-weights "$work/$2.root" --output "$work/$2.npz" \
        --hypotheses dy_sm zprime --precision 0.002 --jobs 2 --seed 1
}
gen dy-ll mtr_dy_pu30 30 19521 16000; gen zprime-ll mtr_zp_pu30 30 19522 8000
gen dy-ll mtr_dy_pu60 60 19523 16000; gen zprime-ll mtr_zp_pu60 60 19524 8000
gen dy-ll mtr_dy_pu0 0 19525 10000;   gen zprime-ll mtr_zp_pu0 0 19526 5000
for pu in 0 30 60; do
    case $pu in 0) s=19515;; 30) s=19511;; 60) s=19513;; esac
    gen dy-ll "dy_pu$pu" $pu $s 10000; gen zprime-ll "zp_pu$pu" $pu $((s + 1)) 5000
done
coffea-mlreco train mem --init deepmem --name deepmem --output "$work/deepmem" \
    --table "$work"/mtr_{dy,zp}_pu{0,30,60}.npz --val-fraction 0.1 \
    --test-table "$work"/{dy,zp}_pu{0,30,60}.npz --signal zprime --background dy_sm \
    --epochs 60 --patience 60 --batch-size 256 --lr 5e-4 --seed 1 --device cpu --quiet
python benchmarks/deepmem_pileup.py --model "$work/deepmem" --pileup 0 "$work"/{dy,zp}_pu0.npz \
    --pileup 30 "$work"/{dy,zp}_pu30.npz --pileup 60 "$work"/{dy,zp}_pu60.npz
# ship it: python -m coffea_mlreco.training.model_dir "$work/deepmem" src/coffea_mlreco/mem/weights deepmem
