#!/usr/bin/env bash
# Retrain the shipped di-tau mass transformer across pileup, reading the ML MET (the Perceiver's MLMET with its
# calibrated covariance), from scratch:
#   bash examples/retrain_ditau_pileup.sh [WORKDIR]
# ~1.5 h on 2 CPU cores: generation ~40 min, the training arrays (PUPPI and Perceiver MET and the FastMTT-style fit
# of the selected events) ~20 min, 20 epochs ~15 min, the held-out reports ~20 min.
#
# 1. generates, with PF candidates (the MET networks read them) and TauProd (the tau decay products):
#    broad-mass gg → φ → ττ (scalar-tautau) and Z → ττ for training at PU 0 (seeds 19801, 19807; 19802, 19808),
#    PU 60 (19803, 19811; 19804) and PU 200 (19805, 19812; 19806), 236k events, and the validation sample
#    (φ → ττ at PU 60, seed 19810);
# 2. trains (--met-input perceiver: the MET networks run on the selected events, chosen by their pileup, and the
#    model card records met_input, so ditau.reconstruct hands the model MLMET; --mass-prior-power 1: the flattened
#    m_gen prior falls as m_gen^-1, so the poorly measured ℓℓ events stay near the Z and the H instead of being
#    pulled towards the broad sample's middle, benchmarks/RESULTS.md);
# 3. evaluates every di-tau method on held-out H(125) → ττ and Z → ττ at PU 0, 60 and 200 (seeds 19713/19714,
#    19711/19712, 19715/19716).
# Ship the result with: python -m coffea_mlreco.training.model_dir WORKDIR/transformer src/coffea_mlreco/ditau/weights transformer
set -euo pipefail
work=${1:-ditau_pileup}
mkdir -p "$work"
gen() {  # process, pileup, seed, events, name
    [ -f "$work/$5.root" ] || coffea-mlreco generate --process "$1" --pileup "$2" --seed "$3" --events "$4" \
        --output "$work/$5.root" --jobs 2 --quiet
}
gen scalar-tautau 60 19810 8000 val_scalar_pu60
gen scalar-tautau 0 19801 30000 scalar_pu0;    gen scalar-tautau 0 19807 15000 scalar_pu0b
gen ztautau 0 19802 10000 ztt_pu0;             gen ztautau 0 19808 5000 ztt_pu0b
gen scalar-tautau 60 19803 30000 scalar_pu60;  gen scalar-tautau 60 19811 30000 scalar_pu60b
gen ztautau 60 19804 10000 ztt_pu60
gen scalar-tautau 200 19805 20000 scalar_pu200; gen scalar-tautau 200 19812 20000 scalar_pu200b
gen ztautau 200 19806 6000 ztt_pu200
coffea-mlreco train ditau \
    --train "$work"/scalar_pu0.root "$work"/scalar_pu0b.root "$work"/ztt_pu0.root "$work"/ztt_pu0b.root \
    "$work"/scalar_pu60.root "$work"/scalar_pu60b.root "$work"/ztt_pu60.root \
    "$work"/scalar_pu200.root "$work"/scalar_pu200b.root "$work"/ztt_pu200.root \
    --validation "$work/val_scalar_pu60.root" --met-input perceiver --mass-prior-power 1 \
    --epochs 20 --lr 1e-3 --batch 256 --seed 1 --cache-dir "$work/cache" --output "$work/transformer"
for pu in 0 60 200; do
    case $pu in 0) s=19713;; 60) s=19711;; 200) s=19715;; esac
    gen htautau $pu $s 15000 "h_pu$pu"; gen ztautau $pu $((s + 1)) 40000 "z_pu$pu"
    coffea-mlreco evaluate "$work/h_pu$pu.root" "$work/z_pu$pu.root" --tasks ditau --device cpu \
        --model ditau.transformer="$work/transformer" --output "$work/report_pu$pu"
done
