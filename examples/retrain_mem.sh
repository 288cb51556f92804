#!/usr/bin/env bash
# Retrain the shipped DeepMEM model (mem/weights/deepmem) from scratch, in one command:
#   bash examples/retrain_mem.sh [WORKDIR]
# ~1 h 30 min on 2 shared CPU cores: generation ~35 min, integration ~15 min, training ~30 min (minutes on a GPU).
#
# 1. generates Drell-Yan (dy-ll, background) and Z' (zprime-ll, 200 GeV, signal) events without PF candidates at
#    pileup 0, 30 and 60: training dy 30k + zp 15k per pileup (seeds 29311/29312 at PU 0, 29313/29314 at PU 30,
#    29315/29316 at PU 60), of which a fixed random 10 % validates; held-out test dy 8k + zp 6k per pileup
#    (29321/29322, 29323/29324, 29325/29326);
# 2. integrates the dy_sm and zprime MEM weights of every selected e+e-/mu+mu- event at 0.2 % precision with each
#    event's MET resolution, sigma_u = sqrt(sigma0^2 + k^2 sumEt) (coffea-mlreco mem-weights --use-sum-et; VEGAS
#    seed 1): at pileup the recoil resolution grows with sumEt (~6.5 GeV at PU 0, ~26 GeV at PU 60);
# 3. trains the network (flavour input; phi and eta reflections; MET components with the analytic MET/lepton-
#    resolution term of each event's sigma_u taken out, the event's sumEt as an input) and records the held-out
#    MAPE and discriminant AUC on the test tables in the model card (test_metrics), and per pileup with
#    benchmarks/deepmem_pileup.py.
set -euo pipefail
work=${1:-mem_work}
weights=src/coffea_mlreco/mem/weights
mkdir -p "$work"
gen() {  # process, name, pileup, seed, events
    [ -f "$work/$2.root" ] || coffea-mlreco generate --process "$1" --events "$5" --pileup "$3" --seed "$4" \
        --output "$work/$2.root" --jobs 2 --drop PFCands --quiet
    [ -f "$work/$2.npz" ] || coffea-mlreco mem-weights "$work/$2.root" --output "$work/$2.npz" \
        --hypotheses dy_sm zprime --precision 0.002 --jobs 2 --seed 1 --use-sum-et
}
gen dy-ll mtr_dy_pu0 0 29311 30000;   gen zprime-ll mtr_zp_pu0 0 29312 15000
gen dy-ll mtr_dy_pu30 30 29313 30000; gen zprime-ll mtr_zp_pu30 30 29314 15000
gen dy-ll mtr_dy_pu60 60 29315 30000; gen zprime-ll mtr_zp_pu60 60 29316 15000
gen dy-ll dy_pu60 60 29325 8000; gen zprime-ll zp_pu60 60 29326 6000
gen dy-ll dy_pu30 30 29323 8000; gen zprime-ll zp_pu30 30 29324 6000
gen dy-ll dy_pu0 0 29321 8000;   gen zprime-ll zp_pu0 0 29322 6000
coffea-mlreco train mem --name deepmem --output "$work/deepmem" \
    --table "$work"/mtr_{dy,zp}_pu{0,30,60}.npz --val-fraction 0.1 \
    --test-table "$work"/{dy,zp}_pu{0,30,60}.npz --signal zprime --background dy_sm \
    --flavour-input --mirror --eta-flip --met-components --met-sigma-from-sum-et --lepton-resolution-term \
    --epochs 300 --patience 300 --batch-size 256 --seed 1 --device cpu --quiet
python benchmarks/deepmem_pileup.py --model "$work/deepmem" --pileup 0 "$work"/{dy,zp}_pu0.npz \
    --pileup 30 "$work"/{dy,zp}_pu30.npz --pileup 60 "$work"/{dy,zp}_pu60.npz
python -m coffea_mlreco.training.model_dir "$work/deepmem" "$weights" deepmem
