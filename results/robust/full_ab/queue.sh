#!/bin/bash
# Whole-run A/B at full budget on one machine, one at a time: today's preset (A), then the robust preset (B,
# corrupt 0.1 + AugMix 0.5), seed 1 each; then both scored on test (final rows: the corruption suite on 1,000
# test images, real files through `cifarlab predict`).
export CIFAR10_DIR=${CIFAR10_DIR:-/work/shared/data/cifar-10-batches-py}
cd "$(dirname "$0")/../../.." && source .venv/bin/activate
out=runs/full_ab
date +%s > $out/t0
cifarlab bench advanced --seeds 1 --first-seed 1 --out $out/preset > $out/preset.log 2>&1
date +%s > $out/t1
cifarlab bench advanced --seeds 1 --first-seed 1 --out $out/robust \
  --set data.augment.corrupt=0.1 --set data.augment.augmix=0.5 > $out/robust.log 2>&1
date +%s > $out/t2
for v in preset robust; do
  run=$(ls -d $out/$v/*-advanced | head -1)
  cifarlab evaluate $run --robustness-n 1000 --json > $out/$v.eval.json 2> $out/$v.eval.err
  python tools/real_files.py $run --split test --n 1000 --out $out/$v.real_files_test.json > $out/$v.real.log 2>&1
done
date +%s > $out/t3
