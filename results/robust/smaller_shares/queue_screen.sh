#!/bin/bash
# Screen (2 epochs, 3 seeds, validation: 45,000 train / 5,000 held out; the test set is not opened), fp32 on the
# 2-core AVX2 EPYC, one run at a time. The robust candidate with a smaller AugMix share (0.2 instead of 0.5), paired
# by seed with results/robust/clean_tail/mix10_augmix50.dev.json and results/robust/patch_gaussian/preset.dev.json
# (same host type, same commands but for the key; their seed 0 reproduced to every digit in a later session).
export CIFAR10_DIR=/work/shared/data/cifar-10-batches-py
cd /work/main && source .venv/bin/activate
out=runs/smaller_shares
mkdir -p $out
for seed in 0 1 2; do
  cifarlab bench advanced --dev --epochs 2 --seeds 1 --first-seed $seed --out $out --robust-n 500 \
    --name mix10_augmix20 --set data.augment.corrupt=0.1 --set data.augment.augmix=0.2 > $out/mix10_augmix20_$seed.log 2>&1
done
date +%s > $out/done
