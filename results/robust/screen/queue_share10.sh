#!/bin/bash
# Smaller corruption shares (a tenth of each batch instead of a quarter), screened on validation against the
# preset (the `stem` dev runs, results/robust/screen/stem.dev.json), 3 seeds at 2 epochs: JPEG only, then the
# mixed share (noise, JPEG, pixelate); then the real-file JPEG gap on 1,000 validation images of each new run
# (the test set is not opened). fp32 as the earlier screens, one run at a time.
export CIFAR10_DIR=/work/shared/data/cifar-10-batches-py
cd /work/main && source .venv/bin/activate
date +%s > runs/share10/t0
cifarlab bench advanced --dev --epochs 2 --seeds 3 --out runs/dev1 --robust-n 500 --set runtime.precision=fp32 \
  --set data.augment.corrupt=0.1 --set 'data.augment.corrupt_ops=[jpeg]' --name jpeg10 \
  --against results/robust/screen/stem.dev.json > runs/share10/jpeg10.log 2>&1
date +%s > runs/share10/t1
cifarlab bench advanced --dev --epochs 2 --seeds 3 --out runs/dev1 --robust-n 500 --set runtime.precision=fp32 \
  --set data.augment.corrupt=0.1 --name mix10 \
  --against results/robust/screen/stem.dev.json > runs/share10/mix10.log 2>&1
date +%s > runs/share10/t2
runs=$(python -c "import json; print(' '.join(r['run_dir'] for n in ('jpeg10','mix10') for r in json.load(open(f'runs/dev1/{n}.dev.json'))['runs']))")
python tools/real_files.py $runs --split val --n 1000 --out runs/share10/real_files_val.json > runs/share10/real.log 2>&1
date +%s > runs/share10/t3
