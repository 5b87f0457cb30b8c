#!/bin/bash
# Screen (2 epochs, 3 seeds, validation: 45,000 train / 5,000 held out; the test set is not opened), fp32 on the
# 2-core AVX2 EPYC, one run at a time. First the robust candidate's seed 0 again (it must reproduce
# results/robust/clean_tail/mix10_augmix50.dev.json to the digit, so its 3 seeds pair with these), then, interleaved
# per seed, Patch Gaussian on half of each batch against today's preset at the same budget.
export CIFAR10_DIR=/work/shared/data/cifar-10-batches-py
cd /work/main && source .venv/bin/activate
out=runs/patch_gaussian
mkdir -p $out
bench() { cifarlab bench advanced --dev --epochs 2 --seeds 1 --out $out --robust-n 500 "$@"; }
bench --first-seed 0 --name mix10_augmix50_again --set data.augment.corrupt=0.1 --set data.augment.augmix=0.5 \
  > $out/mix10_augmix50_again_0.log 2>&1
for seed in 0 1 2; do
  bench --first-seed $seed --name patch50 --set data.augment.corrupt=0.5 --set 'data.augment.corrupt_ops=[patch_gaussian]' \
    > $out/patch50_$seed.log 2>&1
  bench --first-seed $seed --name preset > $out/preset_$seed.log 2>&1
done
date +%s > $out/done
