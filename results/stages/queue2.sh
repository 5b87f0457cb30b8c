#!/bin/bash
# after the stage runs: real files (PNG, JPEG 90/75 through `cifarlab predict`, 1,000 test images) for each stage's seed 0
export CIFAR10_DIR=/work/shared/data/cifar-10-batches-py
cd /work/main && source .venv/bin/activate
while [ ! -f runs/decomp/intermediate.t1 ]; do sleep 20; done
runs=$(for p in baseline intermediate intermediate-techniques; do ls -d runs/decomp/$p/*-$p | head -1; done)
python tools/real_files.py $runs --split test --n 1000 --out runs/decomp/real_files_test.json > runs/decomp/real.log 2>&1
date +%s > runs/decomp/real.t1
