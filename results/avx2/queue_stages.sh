#!/bin/bash
# Stages 1 and 2 at today's recipes, three seeds each, on a 2-core AMD EPYC with AVX2 (the machine kind of the
# `advanced` rows in results/avx2/), one run at a time, alone, from a clean clone of the commit under test (SRC),
# so that one machine holds all three stages at today's recipes. Their bench files replace results/avx2/{baseline,intermediate}.bench.json.
export CIFAR10_DIR=${CIFAR10_DIR:-/work/shared/data/cifar-10-batches-py}
src=${SRC:-/tmp/stagesrc}
out=${OUT:-/work/runs/avx2stages}
py=${PY:-/work/main/.venv/bin/python}
cd "$src"
for preset in baseline intermediate; do
  PYTHONPATH=$src/src $py -m cifarlab bench $preset --seeds 3 --out $out/$preset > $out/$preset.log 2>&1
done
