"""Anti-aliased pooling in the robust preset, at full budget, in two tables (results/robust/maxblur_full/table.md).

python results/robust/maxblur_full/summarize.py
"""

import json
import statistics
from pathlib import Path

HERE = Path(__file__).parent
ROBUST_BEFORE = HERE.parent / "full_ab"  # last session's robust run on test, seed 1: accuracies only


def load(path: Path):
    return json.loads(path.read_text()) if path.exists() else None


def families(rob) -> dict[str, float]:
    return {f: 100 * statistics.fmean(v) for f, v in rob["per_corruption"].items()}


def held_out_mean(rob, seen) -> float:
    fam = families(rob)
    return statistics.fmean(v for f, v in fam.items() if f not in seen)


def dev_table() -> list[str]:
    lines = ["Validation (45,000 train / 5,000 held out, 11 epochs, seed 0; 1,000 corrupted validation images):", "",
             "| recipe | val (TTA) | one view | held-out (12) | seen (7) | all 19 | JPEG-75 / PNG val files | gap | wall |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    runs = {}
    for name in ("robust", "robust_maxblur"):
        run, real = load(HERE / f"{name}.dev.json")["runs"][0], load(HERE / f"{name}.real_files_val.json")[0]
        runs[name] = run
        rob = run["robustness"]
        lines.append(
            f"| {name} | {100 * run['val_acc']:.2f} | {100 * run['val_acc_one_view']:.2f} | "
            f"{100 * rob['held_out_acc']:.2f} | {100 * rob['seen_acc']:.2f} | {100 * rob['mean_corruption_acc']:.2f} | "
            f"{100 * real['jpeg75']:.1f} / {100 * real['png']:.1f} | {real['jpeg75_gap_points']:.1f} | "
            f"{run['wall_time_s']:.0f} s |"
        )
    a, b = (families(runs[n]["robustness"]) for n in ("robust", "robust_maxblur"))
    lines += ["", "Per family, maxblur minus robust (points, severities 1-5): "
              + ", ".join(f"{f} {b[f] - a[f]:+.1f}" for f in a), "",
              f"wall robust_maxblur / robust: {runs['robust_maxblur']['wall_time_s'] / runs['robust']['wall_time_s']:.3f}"]  # fmt: skip
    return lines


def test_table() -> list[str]:
    lines = ["", "Test (49,000 train, 11 epochs, seed 1; 1,000 corrupted test images; final rows):", "",
             "| run | clean test (TTA) | wall / run | train img/s | held-out (12) | all 19 | JPEG-75 / PNG files | gap |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    rows = {
        "advanced-robust (maxblur), this session": ("advanced-robust.bench.json", "advanced-robust.evaluation.json",
                                                    "advanced-robust.real_files_test.json", HERE),
        "advanced, this session": ("advanced.bench.json", "", "", HERE),
        "advanced-robust before maxblur, last session": ("robust.bench.json", "robust.evaluation.json",
                                                         "robust.real_files_test.json", ROBUST_BEFORE),
    }  # fmt: skip
    walls = {}
    for label, (bench_name, ev_name, real_name, folder) in rows.items():
        bench = load(folder / bench_name)
        if not bench:
            continue
        run = bench["runs"][0]
        walls[label] = run["wall_time_s"]
        cells = [label, f"{100 * bench['test_acc_mean']:.2f}%", f"{run['wall_time_s']:.0f} s", f"{run['train_img_per_s']:.0f}"]
        ev = load(folder / ev_name) if ev_name else None
        if ev:
            rob = ev["robustness"]
            cells += [f"{held_out_mean(rob, rob['seen']):.2f}%", f"{statistics.fmean(families(rob).values()):.2f}%"]
        else:
            cells += ["-", "-"]
        real = load(folder / real_name) if real_name else None
        cells += [f"{100 * real[0]['jpeg75']:.1f} / {100 * real[0]['png']:.1f}", f"{real[0]['jpeg75_gap_points']:.1f}"] if real else ["-", "-"]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    this = [k for k in walls if k.endswith("this session")]
    if len(this) == 2:
        lines += ["", f"wall advanced-robust / advanced (this session, one after the other): {walls[this[0]] / walls[this[1]]:.3f}"]  # fmt: skip
    return lines


def main() -> None:
    lines = dev_table() + test_table()
    (HERE / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
