#!/bin/bash
# Step A/B (fp32, 4 timed steps of 1,024 after warm-up), alone on the 2-core AVX-512 EPYC, interleaved:
# the preset's max-pools against the anti-aliased ones (pool: maxblur) in its three stages.
export CIFAR10_DIR=/work/shared/data/cifar-10-batches-py
cd /work/main && source .venv/bin/activate
out=results/robust/blurpool
blur="--set model.stages.0.pool=maxblur --set model.stages.1.pool=maxblur --set model.stages.2.pool=maxblur"
for i in 3 4; do
  python tools/profile_step.py advanced --steps 4 --set runtime.precision=fp32 --out $out/step_max_$i.json
  python tools/profile_step.py advanced --steps 4 --set runtime.precision=fp32 $blur --out $out/step_maxblur_$i.json
done
