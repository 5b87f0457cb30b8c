#!/bin/bash
# whole-run A/B on one machine, one at a time: today's preset, the stem-only lever, then airbench94_muon (CPU port)
export CIFAR10_DIR=/work/shared/data/cifar-10-batches-py
cd /work/main && source .venv/bin/activate
date +%s > runs/ab/t0
cifarlab bench advanced --seeds 1 --out runs/ab/preset --set runtime.precision=fp32 > runs/ab/preset.log 2>&1
date +%s > runs/ab/t1
cifarlab bench advanced --seeds 1 --out runs/ab/stem --set runtime.precision=fp32 --set model.stem.eps=0.1 --set model.stem.contrast_norm=true > runs/ab/stem.log 2>&1
date +%s > runs/ab/t2
python ../shared/peers/airbench94_muon_cpu.py --seed 0 > runs/ab/airbench.log 2>&1
date +%s > runs/ab/t3
