#!/usr/bin/env bash
# One lent-GPU session, as one prepared script (benchmarks/RESULTS.md, "GPU session"):
#   1. the CUDA tests (padding, CUDA graphs, fused steps, rows that depend only on config and seed);
#   2. the mixed-sweep benchmark (benchmarks/bench_gpu_sweep.py) on one plan of the large space;
#   3. the GPU atlas: an all-family sweep for the time left, packed with its manifest.
# Run from the repository root on the GPU machine: `OUT=/some/dir bash benchmarks/gpu_session.sh`.
# Every step has its own time limit, so the whole script ends within about BUDGET seconds (default 520);
# a step that fails does not stop the next. Wheels of packages the machine lacks (mnist1d) may be carried
# in .whl/ (see the device tool's README).
set -u
OUT=${OUT:-/tmp/gpu_session}
BUDGET=${BUDGET:-520}
ATLAS_RUNS=${ATLAS_RUNS:-4000}
ATLAS_WORKERS=${ATLAS_WORKERS:-14}
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
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_engine.py tests/test_fused.py tests/test_measure.py \
  -k cuda 2>&1 | tee "$OUT/tests.log" | tail -25

echo "== 2. mixed-sweep benchmark ($(left) s left)"
# before (the code of OLD_SRC, if carried: e.g. `git archive COMMIT runs_generator causal | tar -x -C .old`),
# then this checkout in one process and in 12
BEFORE=""
if [ -d "${OLD_SRC:-.old}/runs_generator" ]; then BEFORE="--variant old:1 --old-src ${OLD_SRC:-.old}"; fi
python3 benchmarks/bench_gpu_sweep.py --space large --runs 1024 --seed 1 --shard-size 32 --device cuda \
  $BEFORE --variant on:1 --variant on:12 --limit "${BENCH_LIMIT:-60}" --out /tmp/bench 2>&1 \
  | tee "$OUT/bench.log"
cp /tmp/bench/*.log "$OUT/" 2>/dev/null || true

echo "== 3. GPU atlas ($(left) s left)"
ATLAS_LIMIT=$(( $(left) - 25 ))
if [ "$ATLAS_LIMIT" -gt 30 ]; then
  python3 benchmarks/bench_gpu_sweep.py --space all --runs "$ATLAS_RUNS" --seed 2026 --shard-size 50 --device cuda \
    --variant "on:$ATLAS_WORKERS" --limit "$ATLAS_LIMIT" --out /tmp/atlas 2>&1 | tee "$OUT/atlas.log"
  d=/tmp/atlas/pad-on_w$ATLAS_WORKERS
  python3 -m causal.cli status "$d" > "$OUT/atlas_status.txt" 2>&1
  tar czf "$OUT/atlas.tgz" --exclude=_sources -C "$d" .
fi
echo "== done in $(( $(date +%s) - START )) s"
ls -la "$OUT"
