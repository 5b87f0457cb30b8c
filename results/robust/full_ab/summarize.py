"""The full-budget A B A B in one table (results/robust/full_ab/table.md), from the files in this folder.

python results/robust/full_ab/summarize.py
"""

import json
import statistics
from pathlib import Path

HERE = Path(__file__).parent


def load(name: str):
    path = HERE / name
    return json.loads(path.read_text()) if path.exists() else None


def family_means(ev) -> dict[str, float]:
    return {f: 100 * statistics.fmean(v) for f, v in ev["robustness"]["per_corruption"].items()}


def main() -> None:
    robust_ev = load("robust.evaluation.json")
    held = [f for f in robust_ev["robustness"]["per_corruption"] if f not in robust_ev["robustness"]["seen"]]
    lines = [
        "| run | seed | clean test (TTA) | wall / run | train img/s | held-out by the robust recipe (12) | all 19 | "
        "JPEG-75 / PNG files | gap |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    benches = {n: b for n in ("preset", "robust", "preset2", "robust2") if (b := load(f"{n}.bench.json"))}
    for name, bench in benches.items():
        run = bench["runs"][0]
        cells = [name, str(bench["seeds"][0]), f"{100 * bench['test_acc_mean']:.2f}%", f"{run['wall_time_s']:.0f} s",
                 f"{run['train_img_per_s']:.0f}"]  # fmt: skip
        ev, real = load(f"{name}.evaluation.json"), load(f"{name}.real_files_test.json")
        if ev:
            fam = family_means(ev)
            cells += [f"{statistics.fmean(fam[f] for f in held):.2f}%", f"{statistics.fmean(fam.values()):.2f}%"]
        else:
            cells += ["-", "-"]
        if real:
            r = real[0]
            cells += [f"{100 * r['jpeg75']:.1f} / {100 * r['png']:.1f}", f"{r['jpeg75_gap_points']:.1f}"]
        else:
            cells += ["-", "-"]
        lines.append("| " + " | ".join(cells) + " |")
    walls = {n: b["runs"][0]["wall_time_s"] for n, b in benches.items()}
    pairs = [(a, b) for a, b in (("preset", "robust"), ("preset2", "robust2")) if a in walls and b in walls]
    for a, b in pairs:
        lines.append(f"\nwall {b} / {a}: {walls[b] / walls[a]:.3f}")
    if len(pairs) == 2:
        ratio = (walls["robust"] + walls["robust2"]) / (walls["preset"] + walls["preset2"])
        lines.append(f"\nwall, both pairs: {ratio:.3f}")
    (HERE / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
