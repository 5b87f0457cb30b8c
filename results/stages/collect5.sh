#!/bin/bash
# After queue5.sh: the new stage-3 runs' records (without checkpoints) join results/stages/, their bench file
# (seeds 0-2 of one machine kind, with seed 0 of queue4.sh) goes to results/avx2/, then the tables and the report.
out=${OUT:-/work/runs/stage3}
cd "$(dirname "$0")/../.." && source .venv/bin/activate
for seed in 1 2; do
  run=$(ls -d $out/s$seed/*-advanced 2>/dev/null | head -1)
  [ -f "$run/evaluation.json" ] || continue
  mkdir -p results/stages/$(basename $run) && cp $run/{config.yaml,evaluation.json,metrics.jsonl,summary.json} results/stages/$(basename $run)/
  cp $out/real_files_advanced_test_s$seed.json results/stages/
done
cifarlab bench advanced --from-runs results/stages/*-advanced --out results/avx2
python results/stages/summarize_advanced.py
make results
make report RUNS=results/stages ABLATION=results/levers/ablation.json
python tools/build_notebook.py
