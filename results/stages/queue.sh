#!/bin/bash
# the stage decomposition on one machine, one run at a time: stage 2's network with stage 3's training, then the
# baseline and intermediate stages; each run's corruption suite (1,000 test images, 19 families x 5 severities)
export CIFAR10_DIR=/work/shared/data/cifar-10-batches-py
cd /work/main && source .venv/bin/activate
for p in intermediate-techniques baseline intermediate; do
  date +%s > runs/decomp/$p.t0
  cifarlab bench $p --seeds 3 --out runs/decomp/$p > runs/decomp/$p.log 2>&1
  for run in runs/decomp/$p/*-$p; do
    cifarlab evaluate $run --robustness-n 1000 --json > $run.eval.json 2> $run.eval.err
  done
  date +%s > runs/decomp/$p.t1
done
