#!/bin/bash
# After queue.sh: the runs' records (no checkpoints) into results/amx_bf16/, their bench files, the advanced
# seeds' table (advanced_seeds.md) and the README's results table.
set -e
out=${OUT:-/work/runs/amx_bf16}
cd "$(dirname "$0")/../.." && source .venv/bin/activate
for run in $out/advanced-s*/*-advanced $out/advanced-clean-s*/*-advanced-clean; do
  dst=results/amx_bf16/$(basename $run)
  mkdir -p $dst && cp $run/{config.yaml,metrics.jsonl,summary.json} $dst/
  if [ -f $run/evaluation.json ]; then cp $run/evaluation.json $dst/; fi
done
for run in $out/advanced-s*/*-advanced; do
  cp $run.real_files.json results/amx_bf16/real_files_advanced_test_$(basename $run | cut -c1-15).json
done
cifarlab bench advanced --from-runs results/amx_bf16/*-advanced --out results/amx_bf16
cifarlab bench advanced-clean --from-runs results/amx_bf16/*-advanced-clean --out results/amx_bf16
python results/stages/summarize_advanced.py results/amx_bf16
make results
