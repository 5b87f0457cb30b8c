#!/bin/bash
# Stage 3 (`advanced`, recipe 7922189f7c) seeds 1 and 2 on test, fp32, on a 2-core AMD EPYC with AVX2 (the
# machine kind of seed 0, queue4.sh), one run at a time, alone, from a clean clone of the commit under test
# (SRC): each run is scored as seed 0 was (19 families, 1,000 test images; PNG / JPEG files through predict),
# then its record (without checkpoints) joins results/stages/ for the report.
export CIFAR10_DIR=${CIFAR10_DIR:-/work/shared/data/cifar-10-batches-py}
src=${SRC:-/tmp/ci/main}
out=${OUT:-/work/runs/stage3}
cd "$src" && source .venv/bin/activate
for seed in 1 2; do
  cifarlab bench advanced --seeds 1 --first-seed $seed --set runtime.precision=fp32 --out $out/s$seed > $out/s$seed.log 2>&1
  run=$(ls -d $out/s$seed/*-advanced | head -1)
  cifarlab evaluate $run --robustness-n 1000 --json > $run.eval.json 2> $run.eval.err
  python tools/real_files.py $run --split test --n 1000 --out $out/real_files_advanced_test_s$seed.json
done
