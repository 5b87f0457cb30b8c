#!/bin/bash
# A training step of `advanced` with its blur as a depthwise conv (BEFORE: `git archive 26a66bc src configs`
# unpacked there) and as a grouped conv in every precision (AFTER: the same of 829f551), and of `advanced-clean`,
# interleaved, twice, in the host's precision (bf16 on the AMX Xeon) and in fp32: tools/profile_step.py, 4 steps
# of 1024 after 2 of warm-up, alone on the machine. Since 829f551, fp32 keeps the depthwise conv (faster there).
export CIFAR10_DIR=${CIFAR10_DIR:-/work/shared/data/cifar-10-batches-py}
cd "$(dirname "$0")/../.." && source .venv/bin/activate
before=${BEFORE:-/tmp/mb/head}
after=${AFTER:-/tmp/mb/after}
out=results/amx_bf16/step_profiles && mkdir -p $out
for prec in auto fp32; do
  for i in 1 2; do
    PYTHONPATH=$before/src python tools/profile_step.py advanced --steps 4 --warmup 2 --set runtime.precision=$prec \
      --out $out/advanced_depthwise_${prec}_$i.json
    PYTHONPATH=$after/src python tools/profile_step.py advanced --steps 4 --warmup 2 --set runtime.precision=$prec \
      --out $out/advanced_grouped_${prec}_$i.json
    python tools/profile_step.py advanced-clean --steps 4 --warmup 2 --set runtime.precision=$prec \
      --out $out/advanced-clean_${prec}_$i.json
  done
done
python - <<'PY' > $out/table.md
import json, pathlib
rows = {}
for f in sorted(pathlib.Path("results/amx_bf16/step_profiles").glob("*.json")):
    d = json.loads(f.read_text())
    name, prec, _ = f.stem.rsplit("_", 2)
    prec = f"{prec} ({d['dtype']})"
    rows.setdefault((prec, name), []).append(d["img_per_s"])
print("| precision | step of | img/s (two tries, interleaved) |\n|---|---|---|")
for (prec, name), v in sorted(rows.items()):
    print(f"| {prec} | {name} | {' / '.join(f'{x:.0f}' for x in v)} |")
PY
cat $out/table.md
