#!/usr/bin/env bash
# One lent-GPU session, as one prepared script (benchmarks/RESULTS.md, "GPU session"):
#   1. the CUDA tests (padding, CUDA graphs, concurrent streams, fused steps, every family CUDA = CPU);
#   2. the step benchmark (benchmarks/bench_gpu_step.py): one chunk-step eager, replayed, and with other
#      chunks on their own streams: the launch cost and throughput behind a sweep's time;
#   3. the mixed-sweep benchmark (benchmarks/bench_gpu_sweep.py) on one plan of the large space;
#   4. the GPU atlas: an all-family sweep for the time left, packed with its manifest.
# The first session (2026-11-30, benchmarks/RESULTS.md "GPU session") found 60 s too short for a 32-run
# shard of the large space; the limits below are longer.
# Run from the repository root on the GPU machine: `OUT=/some/dir bash benchmarks/gpu_session.sh`.
# Every step has its own time limit, so the whole script ends within about BUDGET seconds (default 520);
# a step that fails does not stop the next. Wheels of packages the machine lacks (mnist1d) may be carried
# in .whl/ (see the device tool's README).
set -u
OUT=${OUT:-/tmp/gpu_session}
BUDGET=${BUDGET:-520}
ATLAS_RUNS=${ATLAS_RUNS:-4000}
ATLAS_WORKERS=${ATLAS_WORKERS:-2}
ATLAS_STREAMS=${ATLAS_STREAMS:-16}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
START=$(date +%s)
left() { echo $(( BUDGET - ($(date +%s) - START) )); }

if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, torch.cuda.get_device_name(0))"
  nproc
  git log --oneline -1 2>/dev/null || true
} 2>&1 | tee "$OUT/machine.txt"

echo "== 1. CUDA tests ($(left) s left)"
timeout 120 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_engine.py tests/test_fused.py tests/test_measure.py \
  -k cuda 2>&1 | tee "$OUT/tests.log" | tail -25

echo "== 2. step benchmark ($(left) s left)"
timeout 120 python3 benchmarks/bench_gpu_step.py --models 8,64,512 --widths 32,256 --streams 4,16 2>&1 \
  | tee "$OUT/step.log"

echo "== 3. mixed-sweep benchmark ($(left) s left)"
# before (the code of OLD_SRC, if carried: e.g. `git archive COMMIT runs_generator causal | tar -x -C .old`),
# then this checkout in one process and in 12
BEFORE=""
# (off by default: in the first session it wrote no 32-run shard of this plan in 60 s; RUN_BEFORE=1 adds it)
if [ "${RUN_BEFORE:-0}" = 1 ] && [ -d "${OLD_SRC:-.old}/runs_generator" ]; then
  BEFORE="--variant old:1 --old-src ${OLD_SRC:-.old}"
fi
python3 benchmarks/bench_gpu_sweep.py --space large --runs 1024 --seed 1 --shard-size 32 --device cuda \
  $BEFORE --variant on:1 --variant on:1:streams=16 --limit "${BENCH_LIMIT:-100}" --out /tmp/bench 2>&1 \
  | tee "$OUT/bench.log"
cp /tmp/bench/*.log "$OUT/" 2>/dev/null || true

echo "== 4. GPU atlas ($(left) s left)"
ATLAS_LIMIT=$(( $(left) - 25 ))
if [ "$ATLAS_LIMIT" -gt 30 ]; then
  python3 benchmarks/bench_gpu_sweep.py --space all --runs "$ATLAS_RUNS" --seed 2026 --shard-size 200 --device cuda \
    --variant "on:$ATLAS_WORKERS:streams=$ATLAS_STREAMS" --limit "$ATLAS_LIMIT" --out /tmp/atlas 2>&1 | tee "$OUT/atlas.log"
  d=/tmp/atlas/pad-on_w${ATLAS_WORKERS}_s$ATLAS_STREAMS
  python3 -m causal.cli status "$d" > "$OUT/atlas_status.txt" 2>&1
  tar czf "$OUT/atlas.tgz" --exclude=_sources -C "$d" .
fi
echo "== done in $(( $(date +%s) - START )) s"
ls -la "$OUT"
