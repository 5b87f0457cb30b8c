#!/bin/bash
# Screen (2 epochs, 3 seeds, validation: 45,000 train / 5,000 held out; the test set is not opened), fp32 on the
# 2-core AVX2 EPYC, one run at a time: the robust opt-in (corrupt 0.1 + AugMix 0.5) with the stem's eps at 1.0
# instead of 0.1, paired by seed with the same day's mix10_augmix50 runs of results/robust/clean_tail/.
export CIFAR10_DIR=/work/shared/data/cifar-10-batches-py
cd /work/main && source .venv/bin/activate
mkdir -p runs/stem_eps
for seed in 0 1 2; do
  cifarlab bench advanced --dev --epochs 2 --seeds 1 --first-seed $seed --out runs/stem_eps --robust-n 500 \
    --name mix10_augmix50_eps1 --set data.augment.corrupt=0.1 --set data.augment.augmix=0.5 \
    --set model.stem.eps=1.0 > runs/stem_eps/mix10_augmix50_eps1_$seed.log 2>&1
done
date +%s > runs/stem_eps/done
