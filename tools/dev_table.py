"""The lever table of docs/experiments.md from `cifarlab bench --dev` files: one row per recipe (validation
accuracy, held-out and seen corruption accuracy, wall time, seeds), then the paired differences against a
reference recipe.

    python tools/dev_table.py results/robust/screen/*.dev.json --against results/robust/screen/base.dev.json
    python tools/dev_table.py results/robust/screen/{base,stem,stem_aug25}.dev.json --families  # per family
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from cifarlab.commands.bench import dev_compare, family_mean, read_dev
from cifarlab.errors import UserError, exit_code


def cell(values: list[float]) -> str:
    if not values:
        return "-"
    sd = f" ± {100 * statistics.stdev(values):.2f}" if len(values) > 1 else ""
    return f"{100 * statistics.fmean(values):.2f}{sd}"


def row(path: Path) -> str:
    d = read_dev(path)
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


def family_table(paths: list[Path]) -> str:
    """Mean accuracy per corruption family (severities and seeds averaged), one column per recipe; * marks seen."""
    data = [read_dev(p) for p in paths]
    fams = list(data[0]["runs"][0]["robustness"]["per_corruption"])
    lines = ["| family | " + " | ".join(d["name"] for d in data) + " |", "|---|" + "---:|" * len(data)]
    for f in fams:
        cells = []
        for d in data:
            per_run = [family_mean(r, [f]) for r in d["runs"]]
            seen = "*" if f in d["runs"][0]["robustness"].get("seen", []) else ""
            cells.append(f"{100 * statistics.fmean(per_run):.1f}{seen}")
        lines.append(f"| {f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dev_json", nargs="+", type=Path)
    ap.add_argument("--against", type=Path, help="the reference recipe's dev.json for paired differences")
    ap.add_argument("--families", action="store_true", help="also print the mean accuracy per corruption family")
    args = ap.parse_args(argv)
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
    if args.families:
        print()
        print(family_table([p for p in args.dev_json if read_dev(p)["runs"][0].get("robustness")]))


if __name__ == "__main__":
    raise SystemExit(exit_code(main))
