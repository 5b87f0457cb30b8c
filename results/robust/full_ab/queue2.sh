#!/bin/bash
# The second half of the whole-run A B A B (after queue.sh, alone on the machine): today's preset (A), then the
# robust preset by its name (B: configs/advanced-robust.yaml, the same recipe fingerprint as queue.sh's B), seed 2.
export CIFAR10_DIR=${CIFAR10_DIR:-/work/shared/data/cifar-10-batches-py}
cd "$(dirname "$0")/../../.." && source .venv/bin/activate
out=runs/full_ab
date +%s > $out/t4
cifarlab bench advanced --seeds 1 --first-seed 2 --out $out/preset2 > $out/preset2.log 2>&1
date +%s > $out/t5
cifarlab bench advanced-robust --seeds 1 --first-seed 2 --out $out/robust2 > $out/robust2.log 2>&1
date +%s > $out/t6
