#!/bin/bash
# BN statistics re-estimated on 5,120 clean training images for the robust candidate's three 2-epoch dev runs
# (results/robust/clean_tail/mix10_augmix50.dev.json; runs kept on the machine that trained them), scored on the
# validation split before and after; fp32, the 2-core AVX2 EPYC, alone. The test set is not opened.
export CIFAR10_DIR=/work/shared/data/cifar-10-batches-py
cd /work/main && source .venv/bin/activate
python tools/bn_recalibrate.py runs/clean_tail/mix10_augmix50.dev.json --images 5120 --robust-n 500 \
  --out results/robust/bn_recal/mix10_augmix50.json > results/robust/bn_recal/mix10_augmix50.log 2>&1
