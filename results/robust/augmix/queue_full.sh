#!/bin/bash
# After the screen: today's preset against mix10 + the AugMix share (mix10_augmix50) at FULL budget (11 epochs) on
# validation (45,000 train / 5,000 held out; the test set is not opened), 3 seeds, interleaved per seed (preset,
# candidate, preset, candidate, ...) so the wall times pair too; bf16 (auto) on the AMX host; then the real-file
# JPEG gap on 1,000 validation images of each run.
export CIFAR10_DIR=/work/shared/data/cifar-10-batches-py
cd /work/main && source .venv/bin/activate
mkdir -p runs/augfull
for seed in 0 1 2; do
  cifarlab bench advanced --dev --seeds 1 --first-seed $seed --out runs/augfull --robust-n 500 --name preset \
    > runs/augfull/preset$seed.log 2>&1
  cifarlab bench advanced --dev --seeds 1 --first-seed $seed --out runs/augfull --robust-n 500 --name mix10_augmix50 \
    --set data.augment.corrupt=0.1 --set data.augment.augmix=0.5 > runs/augfull/mix10_augmix50_$seed.log 2>&1
done
runs=$(python -c "import json; print(' '.join(r['run_dir'] for n in ('preset','mix10_augmix50') for r in json.load(open(f'runs/augfull/{n}.dev.json'))['runs']))")
python tools/real_files.py $runs --split val --n 1000 --out runs/augfull/real_files_val.json > runs/augfull/real.log 2>&1
date +%s > runs/augfull/done
