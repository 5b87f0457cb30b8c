#!/bin/bash
# Stage 3 (`advanced` with train.checkpoint=last, recipe 2d81b24e0c) on test, fp32, on a 2-core AMD EPYC with AVX2,
# one run at a time, alone, from a clean clone of the commit under test (SRC). Seed 0 trains here; seeds 1 and 2
# were trained with `--set train.checkpoint=last` (the same recipe; docs/experiments.md, "The served checkpoint
# at full budget"). Each run is scored as queue5.sh scored its runs (19 families, 1,000 test images; PNG / JPEG
# files through predict).
export CIFAR10_DIR=${CIFAR10_DIR:-/work/shared/data/cifar-10-batches-py}
src=${SRC:-/tmp/q/main}
out=${OUT:-/work/runs/ckpt_last}
cd "$src" && source .venv/bin/activate
cifarlab bench advanced --seeds 1 --first-seed 0 --set runtime.precision=fp32 --out $out/s0 > $out/s0.log 2>&1
runs="$(ls -d $out/s0/*-advanced | head -1) $out/20261207-173846-advanced $out/20261207-183133-advanced"
for run in $runs; do
  cifarlab evaluate $run --robustness-n 1000 --json > $run.eval.json 2> $run.eval.err
  python tools/real_files.py $run --split test --n 1000 --out $run.real_files.json
done
