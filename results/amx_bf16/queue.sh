#!/bin/bash
# Today's `advanced` (recipe 2d81b24e0c) and `advanced-clean` on a 2-core Intel Xeon with AMX, in bf16 (what
# `cifarlab info` picks there), interleaved A B A B A, one run at a time, alone, from a clean clone of the commit
# under test (SRC). Final rows on test: nothing is chosen from them. Each advanced run is then scored as the
# report's stage-3 runs were (19 families x 5 severities on 1,000 test images; PNG / JPEG files through predict).
export CIFAR10_DIR=${CIFAR10_DIR:-/work/shared/data/cifar-10-batches-py}
src=${SRC:-/tmp/q/main}
out=${OUT:-/work/runs/amx_bf16}
mkdir -p $out && cd "$src" && source /work/main/.venv/bin/activate && export PYTHONPATH=$src/src
for step in "advanced 0" "advanced-clean 0" "advanced 1" "advanced-clean 1" "advanced 2"; do
  set -- $step
  cifarlab bench $1 --seeds 1 --first-seed $2 --out $out/$1-s$2 > $out/$1-s$2.log 2>&1
done
for run in $out/advanced-s*/*-advanced; do
  cifarlab evaluate $run --robustness-n 1000 --json > $run.eval.json 2> $run.eval.err
  python tools/real_files.py $run --split test --n 1000 --out $run.real_files.json
done
