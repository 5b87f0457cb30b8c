#!/bin/bash
# The robust preset's seeds 2 and 3 on test (final rows), on the machine of seed 1 (results/robust/maxblur_full/,
# fp32 there, so fp32 here: the start-up timing may pick bf16 on this host), one run at a time, alone; each then
# scored on the 19 families (1,000 test images, severities 1-5) and as PNG / JPEG files through `cifarlab predict`;
# last, the three seeds' bench file from seed 1's bench file and these runs (`bench --from-runs`).
export CIFAR10_DIR=${CIFAR10_DIR:-/work/shared/data/cifar-10-batches-py}
here=results/robust/three_seeds
cd "$(dirname "$0")/../../.." && source .venv/bin/activate
out=runs/maxblur_full/test_s23
[ -f $out/advanced-robust.bench.json ] || \
  cifarlab bench advanced-robust --seeds 2 --first-seed 2 --set runtime.precision=fp32 --out $out > $out.log 2>&1
cp $out/advanced-robust.bench.json $here/seeds23.bench.json
for run in $(ls -d $out/*-advanced-robust); do
  seed=$(python -c "import json,sys; print(json.load(open(sys.argv[1] + '/summary.json'))['seed'])" $run)
  cifarlab evaluate $run --robustness-n 1000 --json > $here/seed$seed.evaluation.json 2> $here/seed$seed.eval.err
  python tools/real_files.py $run --split test --n 1000 --out $here/seed$seed.real_files_test.json > $here/seed$seed.real.log 2>&1
done
cifarlab bench advanced-robust --from-runs results/robust/maxblur_full/advanced-robust.bench.json $out/*-advanced-robust \
  --out $here > $here/merge.log 2>&1

# the advanced preset on the same machine: seeds 1-2 of results/robust/full_ab/ and seed 3 (queue_preset3.sh)
cifarlab bench advanced --from-runs results/robust/full_ab/preset.bench.json results/robust/full_ab/preset2.bench.json \
  $here/preset_seed3.bench.json --out $here

