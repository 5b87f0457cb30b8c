#!/bin/bash
# the advanced preset's third seed: seed 1 (trained last session, runs/decomp/advanced) evaluated on the suite,
# then seed 2 trained alone and evaluated the same way (19 families x 5 severities, 1,000 test images)
export CIFAR10_DIR=/work/shared/data/cifar-10-batches-py
cd /work/main && source .venv/bin/activate
run1=$(ls -d runs/decomp/advanced/*-advanced | head -1)
cifarlab evaluate $run1 --robustness-n 1000 --json > runs/seed2/seed1.eval.json 2> runs/seed2/seed1.eval.err
date +%s > runs/seed2/t0
cifarlab bench advanced --seeds 1 --first-seed 2 --out runs/seed2/advanced > runs/seed2/advanced.log 2>&1
date +%s > runs/seed2/t1
run2=$(ls -d runs/seed2/advanced/*-advanced | head -1)
cifarlab evaluate $run2 --robustness-n 1000 --json > runs/seed2/seed2.eval.json 2> runs/seed2/seed2.eval.err
date +%s > runs/seed2/t2
