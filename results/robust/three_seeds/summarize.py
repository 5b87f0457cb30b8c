"""The robust preset over three seeds on test (results/robust/three_seeds/table.md), beside the advanced preset.

python results/robust/three_seeds/summarize.py
"""

import json
import statistics
from pathlib import Path

HERE = Path(__file__).parent
SEED1 = HERE.parent / "maxblur_full"  # seed 1, an earlier sitting on the same machine
PRESET = HERE.parent / "full_ab"  # the advanced preset at seeds 1 and 2 on the same machine


def load(path: Path):
    return json.loads(path.read_text())


def families(rob) -> dict[str, float]:
    return {f: 100 * statistics.fmean(v) for f, v in rob["per_corruption"].items()}


def held_out(rob, seen) -> float:
    return statistics.fmean(v for f, v in families(rob).items() if f not in seen)


def mean_std(xs) -> str:
    return f"{statistics.fmean(xs):.2f} ± {statistics.stdev(xs):.2f}"


def per_seed() -> list[dict]:
    bench = load(HERE / "advanced-robust.bench.json")
    rows = []
    for run in bench["runs"]:
        seed = run["seed"]
        ev, real = (
            (SEED1 / "advanced-robust.evaluation.json", SEED1 / "advanced-robust.real_files_test.json")
            if seed == 1
            else (HERE / f"seed{seed}.evaluation.json", HERE / f"seed{seed}.real_files_test.json")
        )
        rob, real = load(ev)["robustness"], load(real)[0]
        rows.append(dict(seed=seed, clean=100 * run["test_acc"], wall=run["wall_time_s"], ips=run["train_img_per_s"],
                         held=held_out(rob, rob["seen"]), n_held=len(rob["per_corruption"]) - len(rob["seen"]),
                         seen=statistics.fmean(v for f, v in families(rob).items() if f in rob["seen"]),
                         all19=statistics.fmean(families(rob).values()), jpeg=100 * real["jpeg75"],
                         png=100 * real["png"], gap=real["jpeg75_gap_points"], rob=rob))  # fmt: skip
    return rows


def main() -> None:
    rows = per_seed()
    bench = load(HERE / "advanced-robust.bench.json")
    lines = [f"advanced-robust (recipe {bench['recipe_id']}) on test, {bench['device']}, {bench['dtype']}; "
             "1,000 corrupted test images x 19 families x 5 severities; final rows:", "",
             "| seed | clean test (TTA) | wall / run | train img/s | held-out | seen (7) | all 19 | JPEG-75 / PNG files | gap |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in rows:
        lines.append(f"| {r['seed']} | {r['clean']:.2f}% | {r['wall']:.0f} s | {r['ips']:.0f} | {r['held']:.2f}% ({r['n_held']}) | "
                     f"{r['seen']:.2f}% | {r['all19']:.2f}% | {r['jpeg']:.1f} / {r['png']:.1f} | {r['gap']:.1f} |")  # fmt: skip
    col = {k: [r[k] for r in rows] for k in ("clean", "held", "seen", "all19", "gap")}
    lines.append(f"| mean ± std | {mean_std(col['clean'])} | | | {mean_std(col['held'])} | {mean_std(col['seen'])} | "
                 f"{mean_std(col['all19'])} | | {mean_std(col['gap'])} |")  # fmt: skip
    # the advanced preset on this machine: seeds 1 and 2 (full_ab) and seed 1 again (maxblur_full)
    preset = [load(PRESET / f)["runs"][0] for f in ("preset.bench.json", "preset2.bench.json")]
    p_rob = load(PRESET / "preset.evaluation.json")["robustness"]
    p_real = load(PRESET / "preset.real_files_test.json")[0]
    seen = rows[0]["rob"]["seen"]
    lines += ["", "The advanced preset on the same machine (`results/robust/full_ab/`): clean "
              + ", ".join(f"{100 * r['test_acc']:.2f}% (seed {r['seed']})" for r in preset)
              + f"; seed 1 on the same {rows[0]['n_held']} held-out families {held_out(p_rob, seen):.2f}%, all 19 "
              f"{statistics.fmean(families(p_rob).values()):.2f}%, JPEG-75 / PNG files "
              f"{100 * p_real['jpeg75']:.1f} / {100 * p_real['png']:.1f} (gap {p_real['jpeg75_gap_points']:.1f})."]
    (HERE / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
