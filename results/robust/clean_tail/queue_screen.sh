#!/bin/bash
# Screen (2 epochs, 3 seeds, validation: 45,000 train / 5,000 held out; the test set is not opened), fp32 on the
# 2-core AVX2 EPYC, one run at a time, interleaved per seed: the robust opt-in (corrupt 0.1 + AugMix 0.5) against
# the same with a clean tail (robust_until 1.7: the last 15% of steps without the corruption and AugMix shares).
export CIFAR10_DIR=/work/shared/data/cifar-10-batches-py
cd /work/main && source .venv/bin/activate
mkdir -p runs/clean_tail
for seed in 0 1 2; do
  cifarlab bench advanced --dev --epochs 2 --seeds 1 --first-seed $seed --out runs/clean_tail --robust-n 500 \
    --name mix10_augmix50 --set data.augment.corrupt=0.1 --set data.augment.augmix=0.5 > runs/clean_tail/mix10_augmix50_$seed.log 2>&1
  cifarlab bench advanced --dev --epochs 2 --seeds 1 --first-seed $seed --out runs/clean_tail --robust-n 500 \
    --name mix10_augmix50_tail15 --set data.augment.corrupt=0.1 --set data.augment.augmix=0.5 \
    --set data.augment.robust_until=1.7 > runs/clean_tail/mix10_augmix50_tail15_$seed.log 2>&1
done
date +%s > runs/clean_tail/done
