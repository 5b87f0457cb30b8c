#!/bin/bash
# The corruption share alone (mix10, the earlier opt-in) on the same host type, same screen, so that the frontier
# figure has the preset, mix10, mix10_augmix20 and mix10_augmix50 from one kind of machine. One run at a time.
export CIFAR10_DIR=/work/shared/data/cifar-10-batches-py
cd /work/main && source .venv/bin/activate
out=runs/smaller_shares
for seed in 0 1 2; do
  cifarlab bench advanced --dev --epochs 2 --seeds 1 --first-seed $seed --out $out --robust-n 500 \
    --name mix10 --set data.augment.corrupt=0.1 > $out/mix10_$seed.log 2>&1
done
date +%s > $out/done2
