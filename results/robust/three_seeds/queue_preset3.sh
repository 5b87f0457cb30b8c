#!/bin/bash
# The advanced preset's seed 3 on the machine of queue.sh, fp32, in the robust seeds' session, scored as they were.
export CIFAR10_DIR=${CIFAR10_DIR:-/work/shared/data/cifar-10-batches-py}
here=results/robust/three_seeds
cd "$(dirname "$0")/../../.." && source .venv/bin/activate
p=runs/maxblur_full/preset_s3
mkdir -p $p
cifarlab bench advanced --seeds 1 --first-seed 3 --set runtime.precision=fp32 --out $p > $p.log 2>&1
run=$(ls -d $p/*-advanced | head -1)
cp $p/advanced.bench.json $here/preset_seed3.bench.json
cifarlab evaluate $run --robustness-n 1000 --json > $here/preset_seed3.evaluation.json 2> $here/preset_seed3.eval.err
python tools/real_files.py $run --split test --n 1000 --out $here/preset_seed3.real_files_test.json > $here/preset_seed3.real.log 2>&1
