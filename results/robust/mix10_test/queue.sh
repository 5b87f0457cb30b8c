#!/bin/bash
# After the full-budget validation pairs: the mixed share at a tenth (data.augment.corrupt=0.1) on test, three
# seeds, default precision (bf16 on this AMX host): its final rows as a documented opt-in; then the 19 families
# on 1,000 test images and the real files (PNG / JPEG-90 / JPEG-75) of each run.
export CIFAR10_DIR=/work/shared/data/cifar-10-batches-py
cd /work/main && source .venv/bin/activate
while [ ! -f runs/full/done ]; do sleep 20; done
cifarlab bench advanced --seeds 3 --out runs/mix10test --set data.augment.corrupt=0.1 > runs/mix10test/bench.log 2>&1
for run in $(python -c "import json; print(' '.join(r['run_dir'] for r in json.load(open('runs/mix10test/advanced.bench.json'))['runs']))"); do
  cifarlab evaluate $run --robustness-n 1000 --json > $run/evaluate_stdout.json 2> $run/evaluate.err
done
runs=$(python -c "import json; print(' '.join(r['run_dir'] for r in json.load(open('runs/mix10test/advanced.bench.json'))['runs']))")
python tools/real_files.py $runs --split test --n 1000 --out runs/mix10test/real_files_test.json > runs/mix10test/real.log 2>&1
date +%s > runs/mix10test/done
