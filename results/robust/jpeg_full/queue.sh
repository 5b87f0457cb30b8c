#!/bin/bash
# after queue_jpeg.sh: the JPEG-only share at full budget, one seed (a first look on test, not a confirmation),
# evaluated on the suite and on real files (PNG / JPEG-90 / JPEG-75 of 1,000 test images)
export CIFAR10_DIR=/work/shared/data/cifar-10-batches-py
cd /work/main && source .venv/bin/activate
while [ ! -f runs/jpeg/t2 ]; do sleep 20; done
date +%s > runs/jpeg/t3
cifarlab bench advanced --seeds 1 --out runs/jpeg/full --set data.augment.corrupt=0.25 \
  --set 'data.augment.corrupt_ops=[jpeg]' > runs/jpeg/full.log 2>&1
date +%s > runs/jpeg/t4
run=$(ls -d runs/jpeg/full/*-advanced | head -1)
cifarlab evaluate $run --robustness-n 1000 --json > runs/jpeg/full.eval.json 2> runs/jpeg/full.eval.err
python tools/real_files.py $run --split test --n 1000 --out runs/jpeg/full.real_files_test.json > runs/jpeg/full.real.log 2>&1
date +%s > runs/jpeg/t5
