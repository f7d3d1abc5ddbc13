#!/usr/bin/env bash
# One lent-GPU session, as one prepared script (benchmarks/RESULTS.md, "GPU session"):
#   1. the CUDA tests (padding, CUDA graphs, concurrent streams, fused steps, every family CUDA = CPU);
#   2. the step benchmark (benchmarks/bench_gpu_step.py): one chunk-step eager, replayed, and with other
#      chunks on their own streams: the launch cost and throughput behind a sweep's time;
#   3. the mixed-sweep benchmark (benchmarks/bench_gpu_sweep.py) on one plan of the large space;
#   4. the GPU atlas: an all-family sweep for the time left, packed with its manifest.
# plus, with STEPS naming it, `profile`: one shard of the large space timed alone and under cProfile
# (benchmarks/profile_shard.py). STEPS (default "tests step sweep atlas") picks the steps, so that a
# session can split them over two calls and size the second from the first's numbers.
# The first session (2026-11-30, benchmarks/RESULTS.md "GPU session") found 60 s too short for a 32-run
# shard of the large space; the limits below are longer. The second ("GPU session 2") ran 16-run shards:
# a shard of the large space holds only 3-7 chunks, too few for 16 streams to interleave, so the sweep
# below cuts 64-run shards of a 512-run plan (the fewest runs a sweep cuts into 8 such shards; rows are counted
# when a shard is written, so a stopped variant gives only a lower bound).
# Run from the repository root on the GPU machine: `OUT=/some/dir bash benchmarks/gpu_session.sh`.
# Every step has its own time limit, so the whole script ends within about BUDGET seconds (default 520);
# a step that fails does not stop the next. Wheels of packages the machine lacks (mnist1d) may be carried
# in .whl/ (see the device tool's README).
set -u
OUT=${OUT:-/tmp/gpu_session}
BUDGET=${BUDGET:-520}
ATLAS_RUNS=${ATLAS_RUNS:-4000}
ATLAS_WORKERS=${ATLAS_WORKERS:-4}
ATLAS_STREAMS=${ATLAS_STREAMS:-16}
ATLAS_SHARD=${ATLAS_SHARD:-128}
STEPS=${STEPS:-tests step sweep atlas}
SWEEP_VARIANTS=${SWEEP_VARIANTS:---variant on:1:streams=16 --variant on:1:streams=64}
want() { case " $STEPS " in *" $1 "*) return 0;; esac; return 1; }
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

if want tests; then
echo "== 1. CUDA tests ($(left) s left)"
timeout "${TESTS_LIMIT:-150}" python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_engine.py tests/test_fused.py tests/test_measure.py \
  -k cuda 2>&1 | tee "$OUT/tests.log" | tail -25
fi

if want step; then
echo "== 2. step benchmark ($(left) s left)"
timeout "${STEP_LIMIT:-120}" python3 benchmarks/bench_gpu_step.py --models "${STEP_MODELS:-8,64,512}" --widths 32,256 \
  --streams "${STEP_STREAMS:-4,16}" 2>&1 | tee "$OUT/step.log"
fi

if want profile; then
echo "== 2b. one shard, timed and profiled ($(left) s left)"
for sh in ${PROFILE_SHARDS:-0 1}; do
  timeout "${PROFILE_LIMIT:-80}" python3 benchmarks/profile_shard.py --space large --runs 1024 --seed 1 \
    --shard-size 16 --shard "$sh" --device cuda --streams 1,16 --profile 16 --kernels 16 --top 30 2>&1 | tee "$OUT/profile_$sh.log"
done
fi

if want sweep; then
echo "== 3. mixed-sweep benchmark ($(left) s left)"
# before (the code of OLD_SRC, if carried: e.g. `git archive COMMIT runs_generator causal | tar -x -C .old`),
# then this checkout with 16 and with 64 streams
BEFORE=""
# (off by default: in the first session it wrote no 32-run shard of this plan in 60 s; RUN_BEFORE=1 adds it)
if [ "${RUN_BEFORE:-0}" = 1 ] && [ -d "${OLD_SRC:-.old}/runs_generator" ]; then
  BEFORE="--variant old:1 --old-src ${OLD_SRC:-.old}"
fi
python3 benchmarks/bench_gpu_sweep.py --space large --runs "${SWEEP_RUNS:-512}" --seed 1 --shard-size "${SWEEP_SHARD:-64}" --device cuda \
  $BEFORE $SWEEP_VARIANTS --limit "${BENCH_LIMIT:-150}" --out /tmp/bench 2>&1 | tee "$OUT/bench.log"
cp /tmp/bench/*.log "$OUT/" 2>/dev/null || true
fi

ATLAS_LIMIT=$(( $(left) - 25 ))
if want atlas && [ "$ATLAS_LIMIT" -gt 30 ]; then
  echo "== 4. GPU atlas ($(left) s left)"
  python3 benchmarks/bench_gpu_sweep.py --space all --runs "$ATLAS_RUNS" --seed "${ATLAS_SEED:-2026}" --shard-size "$ATLAS_SHARD" --device cuda \
    --variant "on:$ATLAS_WORKERS:streams=$ATLAS_STREAMS" --limit "$ATLAS_LIMIT" --out /tmp/atlas 2>&1 | tee "$OUT/atlas.log"
  d=/tmp/atlas/pad-on_w${ATLAS_WORKERS}_s$ATLAS_STREAMS
  python3 -m causal.cli status "$d" > "$OUT/atlas_status.txt" 2>&1
  tar czf "$OUT/atlas.tgz" --exclude=_sources -C "$d" .
fi
echo "== done in $(( $(date +%s) - START )) s"
ls -la "$OUT"
