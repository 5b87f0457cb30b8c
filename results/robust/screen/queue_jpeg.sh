#!/bin/bash
# after queue3.sh: a JPEG-only share (a quarter of each batch through the vectorized encoder, quality 20-95)
# screened on validation against the preset (the `stem` dev runs), 3 seeds at 2 epochs, then the real-file
# JPEG gap on 1,000 validation images of each of the six runs (the test set is not opened)
export CIFAR10_DIR=/work/shared/data/cifar-10-batches-py
cd /work/main && source .venv/bin/activate
while [ ! -f runs/seed2/t2 ]; do sleep 20; done
date +%s > runs/jpeg/t0
cifarlab bench advanced --dev --epochs 2 --seeds 3 --out runs/dev1 --robust-n 500 --set runtime.precision=fp32 \
  --set data.augment.corrupt=0.25 --set 'data.augment.corrupt_ops=[jpeg]' --name jpeg25 \
  --against runs/dev1/stem.dev.json > runs/jpeg/jpeg25.log 2>&1
date +%s > runs/jpeg/t1
runs=$(python -c "import json; print(' '.join(r['run_dir'] for n in ('stem','jpeg25') for r in json.load(open(f'runs/dev1/{n}.dev.json'))['runs']))")
python tools/real_files.py $runs --split val --n 1000 --out runs/jpeg/real_files_val.json > runs/jpeg/real.log 2>&1
date +%s > runs/jpeg/t2
