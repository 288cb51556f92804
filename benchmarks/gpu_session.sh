#!/usr/bin/env bash
# One call on the lent GPU machine (H200, 16 cores): generate a PU 200 tt̄ dileptonic training sample there and
# train the Perceiver MET models on it within a fixed wall-time budget, with the features resident on the GPU.
# Run from the repository root with the wheels of `../shared/gpu/wheels.sh gen analysis` (without vegas/gvar)
# in .whl:
#
#   bash benchmarks/gpu_session.sh [TOTAL_SECONDS]
#
# Sample: N_FILES files of N_TRAIN events (seeds 1211, 1212, ...; default 16 × 2500 = 40k events), each file's
# feature cache filled by its own process as soon as it is written; validation 1000 events, seed 3202.
# Trainings (in parallel, sharing the GPU): the Perceiver's `direct` and `seed` target modes (dim 64, 64 latents)
# and a wider `direct` Perceiver (dim 96). While the sample is generated (GPU idle) the bare-model GPU throughput
# of the shipped models and of the untrained sizes is measured; BENCH=1 adds the end-to-end MET, di-tau, DeepMEM
# and MLPF benchmarks of the first GPU session.
# Writes to $OUT (8 files at most come back): bench.log (environment, generation, benchmark tables), train.log
# (one line per epoch and training) and each model directory $OUT/<name>/<model>.{safetensors,json}.
# Nothing here is needed on a machine without a GPU: the same trainings run there with --device cpu.
# Smoke test on any machine (no installs, tiny samples, CPU): SMOKE=1 bash benchmarks/gpu_session.sh 200
total=${1:-560}
device=cuda n_files=${N_FILES:-16} n_train=${N_TRAIN:-2500} n_val=1000 n_htt=4000 val_jobs=16
[ -n "$SMOKE" ] && device=cpu n_files=2 n_train=30 n_val=30 n_htt=300 val_jobs=1
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
rm -rf /tmp/pkg
python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --target /tmp/pkg . >>"$OUT/bench.log" 2>&1 \
    || { log "package install failed"; exit 1; }
export PYTHONPATH=/tmp/pkg:/tmp/site PATH=/tmp/pkg/bin:$PATH
python3 -c "import torch, coffea_mlreco; print('torch', torch.__version__, torch.cuda.get_device_name())" >>"$OUT/bench.log" 2>&1
log "installed"
fi

data=/tmp/gpu-data
rm -rf "$data" /tmp/gen-detail.log
mkdir -p "$data"
gen() { coffea-mlreco generate "$@" >>/tmp/gen-detail.log 2>&1 || log "generation failed: $*"; }
cache() {  # fill one file's feature cache (PUPPI weights and candidate features), one numba thread
    NUMBA_NUM_THREADS=1 python3 -c "import sys; from coffea_mlreco.met.training import load_features as f; f(*sys.argv[1:])" \
        "$1" "$data/cache" >>/tmp/gen-detail.log 2>&1 || log "feature caching failed: $1"
}
# the validation sample first: its generation also builds the pileup library the other processes reuse
gen --process ttbar-dilep --events $n_val --pileup 200 --seed 3202 --jobs $val_jobs --output "$data/val_pu200.root"
[ -f "$data/val_pu200.root" ] || { log "no validation sample: see the generation errors"; tail -20 /tmp/gen-detail.log; exit 1; }
cache "$data/val_pu200.root" &
log "validation sample generated"
files=()
for i in $(seq 1 "$n_files"); do
    f="$data/train_pu200_$i.root"
    files+=("$f")
    (gen --process ttbar-dilep --events "$n_train" --pileup 200 --seed $((1210 + i)) --jobs 1 --output "$f" && cache "$f") &
done

# the GPU is idle while the sample is generated: bare-model throughput of the shipped and the candidate sizes
run_bench 150 met_throughput.py "$data/val_pu200.root" --events 1000 --threads 1 --device $device --bare-only \
    --perceiver-sizes 64x64 96x64
if [ -n "$BENCH" ]; then  # the end-to-end benchmarks of the first GPU session (cores shared with the generation)
    gen --process htautau --events $n_htt --pileup 0 --drop PFCands --seed 9401 --jobs 1 --output "$data/htautau.root"
    run_bench 120 met_throughput.py "$data/val_pu200.root" --events 1000 --threads 2 --device $device
    run_bench 90 ditau_throughput.py "$data/htautau.root" --events 5000 --threads 2 --device $device
    run_bench 90 deepmem_throughput.py --device $device --threads 1
    run_bench 60 mlpf_scaling.py --device $device --repeats 5
fi
wait
log "training sample generated and its features cached"
grep -h "^wrote" /tmp/gen-detail.log >>"$OUT/bench.log"

budget=$((total - (SECONDS - T0) - 40))
[ "$budget" -lt 60 ] && budget=60
log "training budget $budget s"
train() {  # name, then train-met arguments
    local name=$1; shift
    coffea-mlreco train met "$@" --train "${files[@]}" --validation "$data/val_pu200.root" --cache-dir "$data/cache" \
        --epochs 40 --tokens 262144 --seed 1 --device $device --max-seconds "$budget" --quiet \
        --output "$OUT/$name" 2>&1 | sed -u "s/^/[$name] /" >>"$OUT/train.log"
}
train perceiver_direct_pu200 --model perceiver --target direct &
train perceiver_seed_pu200 --model perceiver --target seed &
train perceiver_wide_pu200 --model perceiver --target direct --dim 96 &
wait
nvidia-smi --query-gpu=memory.used --format=csv >>"$OUT/bench.log" 2>&1
log "done"
