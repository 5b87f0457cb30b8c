#!/usr/bin/env bash
# corrupt 0.1 + AugMix 0.5 at full budget on the 2-core AMD EPYC (AVX2, fp32), seed 0, alone on the machine;
# then its test images as PNG / JPEG-90 / JPEG-75 files through `cifarlab predict` (final rows only).
set -e
export CIFAR10_DIR=${CIFAR10_DIR:-../shared/data/cifar-10-batches-py}
cifarlab bench advanced --seeds 1 --out runs/augmix_cpu --set data.augment.corrupt=0.1 --set data.augment.augmix=0.5
python tools/real_files.py runs/augmix_cpu/*-advanced --split test --n 1000 --out runs/augmix_cpu/real_files_test.json
touch runs/augmix_cpu/done
