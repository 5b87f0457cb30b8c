#!/bin/bash
# Stage 3 as the robust recipe (recipe 7922189f7c, then `advanced-robust`, now `advanced`) on test, one run at a
# time, fp32, from a checkout of the commit before the rename (PYTHONPATH points at it). Started for seeds 0-2;
# on this 2-core AMD EPYC (AVX2, ~1.7x slower than the Xeon of the other stage runs) a run took about an hour,
# so the bench was stopped once seeds 0 and 1 had finished (the session's time). Each run is then scored on the
# 19 families (1,000 test images, severities 1-5), seed 0 also as PNG / JPEG files through `cifarlab predict`.
# The records (without checkpoints) are copied beside the other stages' runs for `make report`.
export CIFAR10_DIR=${CIFAR10_DIR:-/work/shared/data/cifar-10-batches-py}
src=${SRC:-/work/train}
out=/work/main/runs/stage3
source /work/main/.venv/bin/activate
export PYTHONPATH=$src/src
cd $src && mkdir -p $out
date +%s > $out/t0
cifarlab bench advanced-robust --seeds 3 --first-seed 0 --set runtime.precision=fp32 --out $out > $out/bench.log 2>&1 &
bench=$!
while [ "$(ls $out/*-advanced-robust/summary.json 2>/dev/null | wc -l)" -lt 2 ]; do sleep 30; done
kill $bench; wait $bench
date +%s > $out/t1
for run in $(ls -d $out/*-advanced-robust | head -2); do
  cifarlab evaluate $run --robustness-n 1000 --json > $run.eval.json 2> $run.eval.err
done
date +%s > $out/t2
python tools/real_files.py $(ls -d $out/*-advanced-robust | head -1) --split test --n 1000 \
  --out $out/real_files_test.json > $out/real.log 2>&1
date +%s > $out/t3
