#!/bin/bash
# After the speed A/B: today's preset against the mixed share at a tenth of each batch at FULL budget (11 epochs)
# on validation (45,000 train / 5,000 held out; the test set is not opened), 3 seeds, interleaved per seed
# (preset, mix10, preset, mix10, ...) so the wall times pair too; default precision (auto: bf16 on this AMX
# host); then the real-file JPEG gap on 1,000 validation images of each run.
export CIFAR10_DIR=/work/shared/data/cifar-10-batches-py
cd /work/main && source .venv/bin/activate
while [ ! -f runs/speed/done ]; do sleep 20; done
for seed in 0 1 2; do
  cifarlab bench advanced --dev --seeds 1 --first-seed $seed --out runs/full --robust-n 500 --name preset \
    > runs/full/preset$seed.log 2>&1
  cifarlab bench advanced --dev --seeds 1 --first-seed $seed --out runs/full --robust-n 500 --name mix10 \
    --set data.augment.corrupt=0.1 > runs/full/mix10$seed.log 2>&1
done
runs=$(python -c "import json; print(' '.join(r['run_dir'] for n in ('preset','mix10') for r in json.load(open(f'runs/full/{n}.dev.json'))['runs']))")
python tools/real_files.py $runs --split val --n 1000 --out runs/full/real_files_val.json > runs/full/real.log 2>&1
date +%s > runs/full/done
