"""The report's stage-3 runs (`advanced`, seeds 0-2, one 2-core AMD EPYC with AVX2) in one table:
DIR/advanced_seeds.md, DIR results/stages/ (or results/stages/split_pick/, the same trainings served by the
split's pick).

python results/stages/summarize_advanced.py [DIR]
"""

import json
import sys
from pathlib import Path

from cifarlab import metrics

HERE = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent


def load(path: Path):
    return json.loads(path.read_text())


def real_files() -> dict[str, dict]:
    """tools/real_files.py's records of these runs, by the run's start time (its directory's name begins with it)."""
    out = {}
    for path in sorted(HERE.glob("real_files_advanced_test*.json")):
        for rec in load(path):
            out[Path(rec["run"]).name[:15]] = rec
    return out


def mean_std(xs) -> str:
    mean, std = metrics.mean_std(xs)
    return f"{mean:.2f} ± {std:.2f}" if len(xs) > 1 else f"{mean:.2f}"


def main() -> None:
    real = real_files()
    rows = []
    for run in sorted(HERE.glob("*-advanced")):
        s, rob = load(run / "summary.json"), load(run / "evaluation.json")["robustness"]
        r = real[run.name[:15]]
        rows.append(dict(seed=s["seed"], clean=100 * s["test_acc"], wall=s["wall_time_s"], ips=s["train_img_per_s"],
                         held=100 * rob["held_out_acc"], seen=100 * rob["seen_acc"], all19=100 * rob["mean_corruption_acc"],
                         files=f"{100 * r['jpeg75']:.1f} / {100 * r['jpeg90']:.1f} / {100 * r['png']:.1f}",
                         gap=r["jpeg75_gap_points"], recipe=s["recipe_id"], device=s["device"], dtype=s["dtype"]))  # fmt: skip
    assert len({(r["recipe"], r["device"], r["dtype"]) for r in rows}) == 1, "runs of another recipe or machine"
    lines = [f"advanced (recipe {rows[0]['recipe']}) on test, {rows[0]['device']}, {rows[0]['dtype']}; 1,000 corrupted "
             "test images x 19 families x 5 severities; final rows:", "",
             "| seed | clean test (TTA) | wall / run | train img/s | held-out (12) | seen (7) | all 19 | JPEG-75 / JPEG-90 / PNG files | JPEG-75 gap |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in sorted(rows, key=lambda r: r["seed"]):
        lines.append(f"| {r['seed']} | {r['clean']:.2f}% | {r['wall']:.0f} s | {r['ips']:.0f} | {r['held']:.2f}% | "
                     f"{r['seen']:.2f}% | {r['all19']:.2f}% | {r['files']} | {r['gap']:.1f} |")  # fmt: skip
    col = {k: [r[k] for r in rows] for k in ("clean", "held", "seen", "all19", "gap")}
    lines.append(f"| mean ± std | {mean_std(col['clean'])} | | | {mean_std(col['held'])} | {mean_std(col['seen'])} | "
                 f"{mean_std(col['all19'])} | | {mean_std(col['gap'])} |")  # fmt: skip
    (HERE / "advanced_seeds.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
