#!/usr/bin/env bash
# The wall-time ratio on this 2-core CPU (AMD EPYC, AVX2, fp32), one run at a time: the preset, then
# corrupt 0.1 + AugMix 0.5, seed 0 each, full budget, test set (final rows only, no choice made from them).
set -e
export CIFAR10_DIR=${CIFAR10_DIR:-../shared/data/cifar-10-batches-py}
cifarlab bench advanced --seeds 1 --out runs/cpu_ab/preset
cifarlab bench advanced --seeds 1 --out runs/cpu_ab/mix10_augmix50 --set data.augment.corrupt=0.1 --set data.augment.augmix=0.5
touch runs/cpu_ab/done
