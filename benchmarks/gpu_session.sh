#!/usr/bin/env bash
# One call on the lent GPU machine (H200, 16 cores): the GPU throughput of every shipped model, then the PU 200
# MET models retrained on a sample generated there (tt̄ dileptonic, 4 × 6000 events, seeds 1211–1214; validation
# 1000 events, seed 3202), within a fixed wall-time budget. Run from the repository root with the wheels of
# `../shared/gpu/wheels.sh gen analysis` (without vegas/gvar) in .whl:
#
#   bash benchmarks/gpu_session.sh [TOTAL_SECONDS]
#
# Writes to $OUT (8 files at most come back): bench.log (environment, generation, benchmark tables), train.log
# (both target modes of the Perceiver and DeepMET, one line per epoch), and each model's .safetensors + .json.
# Nothing here is needed on a machine without a GPU: the same trainings run there with --device cpu.
# Smoke test on any machine (no installs, tiny samples, CPU): SMOKE=1 bash benchmarks/gpu_session.sh 200
total=${1:-540}
device=cuda n_train=6000 n_val=1000 n_htt=4000
[ -n "$SMOKE" ] && device=cpu n_train=40 n_val=40 n_htt=300
T0=$SECONDS
OUT=${OUT:-/tmp/gpu_session_out}
mkdir -p "$OUT"
log() { echo "[$((SECONDS - T0)) s] $*" | tee -a "$OUT/bench.log"; }
run_bench() {  # seconds, script, arguments
    local limit=$1; shift
    log "$*"; (cd benchmarks && PYTHONUNBUFFERED=1 timeout "$limit" python3 "$@") >>"$OUT/bench.log" 2>&1 || log "failed: $*"
}

if [ -z "$SMOKE" ]; then
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv >>"$OUT/bench.log" 2>&1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    >>"$OUT/bench.log" 2>&1 || { log "wheel install failed"; exit 1; }
export PYTHONPATH=/tmp/site PYTHIA8DATA=/tmp/site/share/Pythia8/xmldoc COFFEA_MLRECO_CACHE=/tmp/cml-cache
python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --target /tmp/pkg . >>"$OUT/bench.log" 2>&1 \
    || { log "package install failed"; exit 1; }
export PYTHONPATH=/tmp/pkg:/tmp/site PATH=/tmp/pkg/bin:$PATH
python3 -c "import torch, coffea_mlreco; print('torch', torch.__version__, torch.cuda.get_device_name())" >>"$OUT/bench.log" 2>&1
log "installed"
fi

data=/tmp/gpu-data
mkdir -p "$data"
gen() { coffea-mlreco generate "$@" >>/tmp/gen-detail.log 2>&1 || log "generation failed: $*"; }
gen --process ttbar-dilep --events $n_val --pileup 200 --seed 3202 --jobs 8 --output "$data/val_pu200.root" &
gen --process htautau --events $n_htt --pileup 0 --drop PFCands --seed 9401 --jobs 4 --output "$data/htautau.root" &
wait
[ -f "$data/val_pu200.root" ] || { log "no validation sample: see the generation errors"; tail -20 /tmp/gen-detail.log; exit 1; }
log "validation and H→ττ samples generated"
for i in 1 2 3 4; do
    gen --process ttbar-dilep --events $n_train --pileup 200 --seed $((1210 + i)) --jobs 3 --output "$data/train_pu200_$i.root" &
done
gen_pids=$(jobs -p)

# the MET and di-tau benchmarks on the 4 cores the generation leaves free (the generation does not use the GPU)
run_bench 120 met_throughput.py "$data/val_pu200.root" --events 1000 --threads 2 --device $device
run_bench 90 ditau_throughput.py "$data/htautau.root" --events 5000 --threads 2 --device $device
wait $gen_pids
log "training samples generated"
grep -h "^wrote" /tmp/gen-detail.log >>"$OUT/bench.log"

files=("$data"/train_pu200_{1,2,3,4}.root)
NUMBA_NUM_THREADS=3 python3 -c "
import sys
from coffea_mlreco.training.met import load_all_features
sets = load_all_features(sys.argv[2:], sys.argv[1], workers=5)
print('features:', sum(len(s.counts) for s in sets), 'events,', sum(len(s.features) for s in sets), 'candidates')
" "$data/cache" "${files[@]}" "$data/val_pu200.root" >>"$OUT/bench.log" 2>&1 &
features=$!
# GPU-bound benchmarks while the feature caches fill (CPU busy: launch overheads may read a little high)
if [ -z "$SKIP_MODEL_BENCH" ]; then  # SKIP_MODEL_BENCH=1: these two were measured already in this session
    run_bench 90 deepmem_throughput.py --device $device --threads 1
    run_bench 60 mlpf_scaling.py --device $device --repeats 5
    [ -z "$SMOKE" ] && run_bench 60 mlpf_scaling.py --device $device --repeats 5 --half
fi
wait $features || log "feature caching failed"
budget=$((total - (SECONDS - T0) - 50))
[ "$budget" -lt 60 ] && budget=60
log "features cached; training budget $budget s"
train() {  # name, then train-met arguments
    local name=$1; shift
    coffea-mlreco train met "$@" --train "${files[@]}" --validation "$data/val_pu200.root" --cache-dir "$data/cache" \
        --epochs 40 --tokens 262144 --seed 1 --device $device --max-seconds "$budget" --quiet \
        --output "$OUT/$name" 2>&1 | sed -u "s/^/[$name] /" >>"$OUT/train.log"
}
train perceiver_seed_pu200 --model perceiver --target seed &
train perceiver_direct_pu200 --model perceiver --target direct &
train deepmet_pu200 --model deepmet &
wait
log "done"
