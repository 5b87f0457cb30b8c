#!/bin/bash
# Second screen, after queue_screen.sh (same host, budget and protocol): Patch Gaussian on a tenth of each batch
# (the share of the corruption mix that the robust candidate uses), paired by seed with queue_screen.sh's preset runs.
export CIFAR10_DIR=/work/shared/data/cifar-10-batches-py
cd /work/main && source .venv/bin/activate
out=runs/patch_gaussian
while [ ! -f $out/done ]; do sleep 20; done
for seed in 0 1 2; do
  cifarlab bench advanced --dev --epochs 2 --seeds 1 --first-seed $seed --out $out --robust-n 500 --name patch10 \
    --set data.augment.corrupt=0.1 --set 'data.augment.corrupt_ops=[patch_gaussian]' > $out/patch10_$seed.log 2>&1
done
date +%s > $out/done2
