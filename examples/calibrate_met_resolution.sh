#!/usr/bin/env bash
# Refit the per-event MET covariance of every MET method (src/coffea_mlreco/met/met_resolution.json), in one command:
#   bash examples/calibrate_met_resolution.sh [WORKDIR]
# ~20–30 min on 2 CPU cores: generation ~6 min, the four MET reconstructions (the shipped networks, chosen by each
# chunk's pileup) and the binning ~15–20 min (27 min in all on loaded cores, 2026-12-05).
#
# 1. generates Z -> tautau (3000 events), H -> tautau (2000) and dileptonic ttbar (2000) at PU 0, 60 and 200, with PF
#    candidates, seeds 19601-19603 (PU 0), 19661-19663 (PU 60), 19621-19623 (PU 200): used in no training and in
#    no held-out figure;
# 2. fits sigma^2 = noise^2 + stochastic^2 * sum_pt + pileup^2 * PV_npvsGood per method on the Gaussian core of
#    the MET residuals against GenMET (coffea-mlreco calibrate-met; coffea_mlreco.met.resolution) and prints the
#    measured and fitted sigma per bin;
# 3. writes WORKDIR/met_resolution.json; copy it over the shipped table to ship it, or give it to
#    met.reconstruct(events, resolution=PATH).
set -euo pipefail
work=${1:-met_resolution_work}
mkdir -p "$work"
files=()
for pu in 0 60 200; do
    tag=${pu:0:1}
    for spec in "ztautau 1 3000 z" "htautau 2 2000 h" "ttbar-dilep 3 2000 tt"; do
        read -r process k events name <<< "$spec"
        out="$work/cal_${name}_pu$pu.root"
        [ -f "$out" ] || coffea-mlreco generate --process "$process" --pileup "$pu" --seed "196$tag$k" \
            --events "$events" --output "$out" --jobs 2 --quiet
        files+=("$out")
    done
done
coffea-mlreco calibrate-met "${files[@]}" --output "$work/met_resolution.json" --device cpu
