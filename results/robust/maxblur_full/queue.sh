#!/bin/bash
# Anti-aliased pooling on top of the robust preset, at full budget, on one machine, one run at a time:
# 1-2 decide (validation: 45,000 train / 5,000 held out, seed 0, 1,000 corrupted validation images; the test set
# is not opened), 3-4 are final rows on test (seed 1) and the whole-run time against the advanced preset.
export CIFAR10_DIR=${CIFAR10_DIR:-/work/shared/data/cifar-10-batches-py}
cd "$(dirname "$0")/../../.." && source .venv/bin/activate
out=runs/maxblur_full
mkdir -p $out
stage=${1:-all}  # dev | test | all: the decision (validation) and the final rows can be run apart
blur="--set model.stages.0.pool=maxblur --set model.stages.1.pool=maxblur --set model.stages.2.pool=maxblur"
if [ "$stage" != test ]; then
date +%s > $out/t0
cifarlab bench advanced-robust --dev --seeds 1 --first-seed 0 --out $out/dev --robust-n 1000 --name robust > $out/dev_robust.log 2>&1
date +%s > $out/t1
cifarlab bench advanced-robust --dev --seeds 1 --first-seed 0 --out $out/dev --robust-n 1000 --name robust_maxblur $blur \
  --against $out/dev/robust.dev.json > $out/dev_robust_maxblur.log 2>&1
date +%s > $out/t2
for v in robust robust_maxblur; do
  run=$(python -c "import json,sys; print(json.load(open(sys.argv[1]))['runs'][0]['run_dir'])" $out/dev/$v.dev.json)
  python tools/real_files.py $run --split val --n 1000 --out $out/$v.real_files_val.json > $out/$v.real_val.log 2>&1
done
date +%s > $out/t3
fi
[ "$stage" = dev ] && exit 0
cifarlab bench advanced-robust --seeds 1 --first-seed 1 --out $out/test_maxblur $blur > $out/test_maxblur.log 2>&1
date +%s > $out/t4
cifarlab bench advanced --seeds 1 --first-seed 1 --out $out/test_preset > $out/test_preset.log 2>&1
date +%s > $out/t5
run=$(ls -d $out/test_maxblur/*-advanced-robust | head -1)
cifarlab evaluate $run --robustness-n 1000 --json > $out/test_maxblur.eval.json 2> $out/test_maxblur.eval.err
python tools/real_files.py $run --split test --n 1000 --out $out/test_maxblur.real_files_test.json > $out/test_maxblur.real.log 2>&1
date +%s > $out/t6
