#!/bin/bash
# after the trainings: the corruption suite (1,000 test images) and real files (1,000) for both runs
export CIFAR10_DIR=/work/shared/data/cifar-10-batches-py
cd /work/main && source .venv/bin/activate
while [ ! -f runs/ab/t3 ]; do sleep 20; done
for v in preset stem; do
  run=$(ls -d runs/ab/$v/*-advanced | head -1)
  cifarlab evaluate $run --robustness-n 1000 --json > runs/ab/$v.eval.json 2> runs/ab/$v.eval.err
  python tools/real_files.py $run --split test --n 1000 --out runs/ab/$v.real_files_test.json > runs/ab/$v.real.log 2>&1
done
date +%s > runs/ab/t4
