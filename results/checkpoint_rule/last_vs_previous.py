"""Does a 1,000-image validation split pick the right checkpoint of a run whose lr anneals to zero? Validation
figures only (the test set is not read): per run, the last epoch's validation accuracy minus the one before (an
unbiased paired difference on the same images), and over the bench files how often best.pt held an earlier
epoch than the last.

    python results/checkpoint_rule/last_vs_previous.py > results/checkpoint_rule/table.md
"""

import glob
import json
from pathlib import Path

from cifarlab.metrics import paired_difference

ROOT = Path(__file__).resolve().parents[1]


def curves() -> list[tuple[str, str, list[float]]]:
    """(run, preset, validation accuracy per epoch) of every committed run with a 1,000-image split; a later rerun
    that repeats a training bit for bit (same seed, same curve: the checkpoint-rule reruns) counts once, as the first."""
    runs = []
    for m in glob.glob(str(ROOT / "**" / "metrics.jsonl"), recursive=True):
        summary = json.loads((Path(m).parent / "summary.json").read_text())
        val = [r["val_acc"] for r in map(json.loads, Path(m).read_text().splitlines()) if r.get("val_acc") is not None]
        if summary.get("n_val") == 1000 and len(val) >= 3:
            runs.append((summary.get("finished", ""), str(Path(m).parent.relative_to(ROOT)), summary, val))
    out, seen = [], set()
    for _, run, summary, val in sorted(runs):
        if (summary.get("seed"), tuple(val)) not in seen:
            seen.add((summary.get("seed"), tuple(val)))
            out.append((run, summary["preset"], val))
    return sorted(out)


def selections() -> tuple[int, int]:
    """(runs whose best.pt held an earlier epoch than the last, runs) over the bench files' 1,000-split runs."""
    seen, early = set(), 0
    for f in glob.glob(str(ROOT / "**" / "*.bench.json"), recursive=True):
        bench = json.loads(Path(f).read_text())
        if ((bench.get("recipe") or {}).get("train") or {}).get("checkpoint") == "last":
            continue  # served the last epoch by rule: nothing was picked
        for r in bench["runs"]:
            key = (Path(r["run_dir"]).name, r["seed"], r["best_val_acc"])
            if r.get("n_val") == 1000 and r.get("best_epoch") and key not in seen:
                seen.add(key)
                early += r["best_epoch"] < r["epochs"]
    return early, len(seen)


def main() -> None:
    rows = curves()
    print("| run | preset (as named when it ran) | epochs | val, last epoch | val, the one before | "
          "last minus before (points) |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|")
    for run, preset, val in rows:
        print(f"| {run} | {preset} | {len(val)} | {100 * val[-1]:.1f} | {100 * val[-2]:.1f} | "
              f"{100 * (val[-1] - val[-2]):+.1f} |")  # fmt: skip
    last, before = [100 * v[-1] for _, _, v in rows], [100 * v[-2] for _, _, v in rows]
    d = paired_difference(last, before)
    early, total = selections()
    print()
    print(f"Last minus the epoch before, over {d['n']} runs: {d['mean']:+.2f} points (95% CI {d['ci95'][0]:+.2f} to "
          f"{d['ci95'][1]:+.2f}; sd of one run's difference {d['sd']:.2f}).")  # fmt: skip
    print(f"best.pt held an earlier epoch than the last in {early} of {total} benched runs with a 1,000-image split.")


if __name__ == "__main__":
    main()
