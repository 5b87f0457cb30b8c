#!/bin/bash
# Screen (2 epochs, 3 seeds, validation: 45,000 train / 5,000 held out; the test set is not opened), bf16 (auto)
# on the AMX host, one run at a time, interleaved per seed: the mixed share at a tenth (mix10, the recommended
# opt-in), mix10 plus an AugMix share of half of each batch (mix10_augmix50), and the AugMix share alone (augmix50).
export CIFAR10_DIR=/work/shared/data/cifar-10-batches-py
cd /work/main && source .venv/bin/activate
mkdir -p runs/augmix
for seed in 0 1 2; do
  cifarlab bench advanced --dev --epochs 2 --seeds 1 --first-seed $seed --out runs/augmix --robust-n 500 \
    --name mix10 --set data.augment.corrupt=0.1 > runs/augmix/mix10_$seed.log 2>&1
  cifarlab bench advanced --dev --epochs 2 --seeds 1 --first-seed $seed --out runs/augmix --robust-n 500 \
    --name mix10_augmix50 --set data.augment.corrupt=0.1 --set data.augment.augmix=0.5 > runs/augmix/mix10_augmix50_$seed.log 2>&1
  cifarlab bench advanced --dev --epochs 2 --seeds 1 --first-seed $seed --out runs/augmix --robust-n 500 \
    --name augmix50 --set data.augment.augmix=0.5 > runs/augmix/augmix50_$seed.log 2>&1
done
date +%s > runs/augmix/done
