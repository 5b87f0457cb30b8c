#!/bin/bash
# Whole-run wall time, the speed bound at a reduced budget: the preset as it was before the stem levers
# (eps 5e-4, no contrast normalization) against today's preset, 3 epochs each on 45,000 images (--dev, the test
# set is not opened, no corrupted scoring), interleaved A B A B, one run at a time, default precision (auto).
export CIFAR10_DIR=/work/shared/data/cifar-10-batches-py
cd /work/main && source .venv/bin/activate
while [ ! -f runs/share10/t3 ]; do sleep 20; done
for rep in 0 1; do
  cifarlab bench advanced --dev --epochs 3 --seeds 1 --first-seed $rep --robust-n 0 --out runs/speed --name old \
    --set model.stem.eps=0.0005 --set model.stem.contrast_norm=false > runs/speed/old$rep.log 2>&1
  cifarlab bench advanced --dev --epochs 3 --seeds 1 --first-seed $rep --robust-n 0 --out runs/speed --name preset \
    > runs/speed/preset$rep.log 2>&1
done
date +%s > runs/speed/done
