#!/bin/bash
# The preset beside the JPEG-75 specialist (queue.sh) on the same host, the same split and the same budget; then
# both scored on all 5,000 validation images written as PNG, JPEG-90 and JPEG-75 files (the test set is not opened).
export CIFAR10_DIR=${CIFAR10_DIR:-/work/shared/data/cifar-10-batches-py}
cd "$(dirname "$0")/../../.." && source .venv/bin/activate
out=runs/jpeg_bound
date +%s > $out/t3
cifarlab bench advanced --dev --seeds 1 --first-seed 0 --out $out/dev --robust-n 0 --name preset \
  --set runtime.precision=fp32 > $out/dev_preset.log 2>&1
date +%s > $out/t4
for v in jpeg75_all preset; do
  run=$(python -c "import json,sys; print(json.load(open(sys.argv[1]))['runs'][0]['run_dir'])" $out/dev/$v.dev.json)
  python tools/real_files.py $run --split val --n 5000 --out $out/$v.real_files_val5000.json > $out/$v.real_val5000.log 2>&1
done
date +%s > $out/t5
