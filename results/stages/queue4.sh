#!/bin/bash
# Stage 3 as the robust recipe (recipe 7922189f7c, then `advanced-robust`, now `advanced`) on test, fp32, from a
# checkout of the commit before the rename (PYTHONPATH points at it). Started for seeds 0-2; on this 2-core AMD
# EPYC (AVX2 only) a run took an hour, so the bench was stopped during seed 1 (the session's time) and only
# seed 0 was kept: scored on the 19 families (1,000 test images, severities 1-5) and as PNG / JPEG files through
# `cifarlab predict`. Its record (without checkpoints) went beside the other stages' runs, named
# 20261206-224312-advanced, for `make report RUNS=results/stages ABLATION=results/levers/ablation.json`.
export CIFAR10_DIR=${CIFAR10_DIR:-/work/shared/data/cifar-10-batches-py}
src=${SRC:-/work/train}
out=runs/stage3
cd "$(dirname "$0")/../.." && source .venv/bin/activate
export PYTHONPATH=$src/src
cifarlab bench advanced-robust --seeds 3 --first-seed 0 --set runtime.precision=fp32 --out $out > $out.log 2>&1
run=$(ls -d $out/*-advanced-robust | head -1)
cifarlab evaluate $run --robustness-n 1000 --json > $run.eval.json 2> $run.eval.err
python tools/real_files.py $run --split test --n 1000 --out results/stages/real_files_advanced_test.json
d=results/stages/$(basename $run)
d=${d%-robust}  # named by today's preset
mkdir -p $d && cp $run/{config.yaml,evaluation.json,metrics.jsonl,summary.json} $d/
