#!/bin/bash
# After queue6.sh: the report's stage-3 runs become the three runs that serve their last epoch (recipe 2d81b24e0c).
# The records of the split's pick (recipe 7922189f7c) move to results/stages/split_pick/ with their table; the
# new records (without checkpoints) join results/stages/, their bench file goes to results/checkpoint_rule/, then
# the tables, the report and the notebook.
set -e
out=${OUT:-/work/runs/ckpt_last}
cd "$(dirname "$0")/../.." && source .venv/bin/activate
mkdir -p results/stages/split_pick
git mv results/stages/20261206-224312-advanced results/stages/20261207-123002-advanced \
  results/stages/20261207-132740-advanced results/stages/real_files_advanced_test.json \
  results/stages/real_files_advanced_test_s1.json results/stages/real_files_advanced_test_s2.json \
  results/stages/advanced_seeds.md results/stages/split_pick/
seed0=$(ls -d $out/s0/*-advanced | head -1)
python results/checkpoint_rule/same_training.py results/stages/split_pick/20261206-224312-advanced $seed0 \
  > results/checkpoint_rule/seed0_last.md
for run in $seed0 $out/20261207-173846-advanced $out/20261207-183133-advanced; do
  dst=results/stages/$(basename $run)
  mkdir -p $dst && cp $run/{config.yaml,evaluation.json,metrics.jsonl,summary.json} $dst/
  cp $run.real_files.json results/stages/real_files_advanced_test_$(basename $run | cut -c1-15).json
done
rm -rf results/checkpoint_rule/runs  # the reruns' records (never committed: runs/ is ignored) now live in results/stages/
cifarlab bench advanced --from-runs results/stages/*-advanced --out results/checkpoint_rule
python results/stages/summarize_advanced.py
python results/stages/summarize_advanced.py results/stages/split_pick > /dev/null
python results/checkpoint_rule/last_vs_previous.py > results/checkpoint_rule/table.md
make results
make report RUNS=results/stages ABLATION=results/levers/ablation.json
python tools/build_notebook.py
