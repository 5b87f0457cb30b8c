#!/bin/bash
# A JPEG-75 specialist: every training image through the vectorized JPEG encoder at quality 75, at full budget on
# the validation split; its accuracy on JPEG-75 files bounds what any net of this recipe and budget reaches on them.
export CIFAR10_DIR=${CIFAR10_DIR:-/work/shared/data/cifar-10-batches-py}
cd "$(dirname "$0")/../../.." && source .venv/bin/activate
out=runs/jpeg_bound
mkdir -p $out
date +%s > $out/t0
cifarlab bench advanced --dev --seeds 1 --first-seed 0 --out $out/dev --robust-n 0 --name jpeg75_all \
  --set data.augment.corrupt=1.0 --set 'data.augment.corrupt_ops=[jpeg]' --set 'data.augment.jpeg_quality=[75,75]' \
  --set data.augment.augmix=0 --set runtime.precision=fp32 > $out/dev_jpeg75_all.log 2>&1
date +%s > $out/t1
run=$(python -c "import json,sys; print(json.load(open(sys.argv[1]))['runs'][0]['run_dir'])" $out/dev/jpeg75_all.dev.json)
python tools/real_files.py $run --split val --n 1000 --out $out/jpeg75_all.real_files_val.json > $out/jpeg75_all.real_val.log 2>&1
date +%s > $out/t2
