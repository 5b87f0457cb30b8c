#!/bin/bash
# Screen (2 epochs, 3 seeds, validation: 45,000 train / 5,000 held out; the test set is not opened), fp32 on the
# 2-core AVX-512 EPYC, one run at a time, interleaved per seed: the robust candidate (corrupt 0.1 + AugMix 0.5)
# against the same with anti-aliased max-pools (pool: maxblur) in its three stages.
export CIFAR10_DIR=/work/shared/data/cifar-10-batches-py
cd /work/main && source .venv/bin/activate
out=runs/blurpool
mkdir -p $out
robust="--set data.augment.corrupt=0.1 --set data.augment.augmix=0.5"
blur="--set model.stages.0.pool=maxblur --set model.stages.1.pool=maxblur --set model.stages.2.pool=maxblur"
for seed in 0 1 2; do
  cifarlab bench advanced --dev --epochs 2 --seeds 1 --first-seed $seed --out $out --robust-n 500 \
    --set runtime.precision=fp32 --name mix10_augmix50 $robust > $out/mix10_augmix50_$seed.log 2>&1
  cifarlab bench advanced --dev --epochs 2 --seeds 1 --first-seed $seed --out $out --robust-n 500 \
    --set runtime.precision=fp32 --name mix10_augmix50_maxblur $robust $blur > $out/mix10_augmix50_maxblur_$seed.log 2>&1
done
date +%s > $out/done
