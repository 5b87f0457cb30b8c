"""The lever table of docs/experiments.md from `cifarlab bench --dev` files: one row per recipe (validation
accuracy, held-out and seen corruption accuracy, wall time, seeds), then the paired differences against a
reference recipe.

    python tools/dev_table.py results/robust/screen/*.dev.json --against results/robust/screen/base.dev.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from cifarlab.commands.bench import dev_compare
from cifarlab.errors import UserError


def cell(values: list[float]) -> str:
    if not values:
        return "-"
    sd = f" ± {100 * statistics.stdev(values):.2f}" if len(values) > 1 else ""
    return f"{100 * statistics.fmean(values):.2f}{sd}"


def row(path: Path) -> str:
    d = json.loads(path.read_text())
    runs = d["runs"]
    rob = runs[0].get("robustness") or {}
    n_fam = len(rob.get("per_corruption", {}))
    n_seen = len(rob.get("seen", []))
    images = f"{runs[0]['robustness']['n']} val" if rob else "-"
    return (
        f"| {d['name']} | {' '.join(d['overrides']) or '(preset)'} | {d['epochs'] or 'preset'} | "
        f"{cell([r['val_acc'] for r in runs])} | {cell([r['val_acc_one_view'] for r in runs])} | "
        f"{cell([r['held_out_acc'] for r in runs if r.get('held_out_acc') is not None])} ({n_fam - n_seen}) | "
        f"{cell([r['seen_acc'] for r in runs if r.get('seen_acc') is not None])} ({n_seen}) | "
        f"{statistics.fmean(r['wall_time_s'] for r in runs):.0f} s | {images} | {len(runs)} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dev_json", nargs="+", type=Path)
    ap.add_argument("--against", type=Path, help="the reference recipe's dev.json for paired differences")
    args = ap.parse_args()
    print("| recipe | overrides | epochs | val acc (TTA) | val acc (one view) | held-out corruptions (families) | "
          "seen (families) | wall / run | corrupted images | seeds |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for p in args.dev_json:
        print(row(p))
    if args.against:
        print()
        for p in args.dev_json:
            if p.resolve() != args.against.resolve():
                try:
                    print("    " + dev_compare(str(p), str(args.against)).replace("\n", "\n    "))
                except UserError as e:
                    print(f"    {p.name}: {e}")


if __name__ == "__main__":
    main()
