#!/bin/bash
# The stem without its 6 faintest patch directions (chroma detail, which JPEG's colour subsampling erases),
# screened on validation against the preset (the `stem` dev runs), 3 seeds at 2 epochs; then the real-file
# JPEG gap on 1,000 validation images of each new run (the test set is not opened)
export CIFAR10_DIR=/work/shared/data/cifar-10-batches-py
cd /work/main && source .venv/bin/activate
date +%s > runs/drop/t0
cifarlab bench advanced --dev --epochs 2 --seeds 3 --out runs/dev1 --robust-n 500 --set runtime.precision=fp32 \
  --set model.stem.drop_weakest=6 --set model.stem.channels=12 --name drop6 \
  --against runs/dev1/stem.dev.json > runs/drop/drop6.log 2>&1
date +%s > runs/drop/t1
runs=$(python -c "import json; print(' '.join(r['run_dir'] for r in json.load(open('runs/dev1/drop6.dev.json'))['runs']))")
python tools/real_files.py $runs --split val --n 1000 --out runs/drop/real_files_val.json > runs/drop/real.log 2>&1
date +%s > runs/drop/t2
