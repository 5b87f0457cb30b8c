"""The robust preset over three seeds on test (results/robust/three_seeds/table.md), beside the advanced preset.

python results/robust/three_seeds/summarize.py
"""

import json
import statistics
from pathlib import Path

from cifarlab.metrics import paired_difference

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


def per_seed(bench: dict) -> list[dict]:
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
                         held=100 * rob["held_out_acc"], n_held=len(rob["per_corruption"]) - len(rob["seen"]),
                         seen=100 * rob["seen_acc"], all19=100 * rob["mean_corruption_acc"], jpeg=100 * real["jpeg75"],
                         png=100 * real["png"], gap=real["jpeg75_gap_points"], rob=rob))  # fmt: skip
    return rows


def preset_lines(rows: list[dict]) -> list[str]:
    """The advanced preset on this machine: seeds 1 and 2 (full_ab, an earlier session), seed 3 (queue_preset3.sh,
    this session) when it has run; paired by seed with the robust preset where both seeds exist."""
    files = {1: (PRESET / "preset.bench.json", PRESET / "preset.evaluation.json", PRESET / "preset.real_files_test.json"),
             2: (PRESET / "preset2.bench.json", None, None),
             3: (HERE / "preset_seed3.bench.json", HERE / "preset_seed3.evaluation.json",
                 HERE / "preset_seed3.real_files_test.json")}  # fmt: skip
    seen = rows[0]["rob"]["seen"]
    robust = {r["seed"]: r for r in rows}
    lines = ["", "The advanced preset on the same machine (seeds 1-2: `results/robust/full_ab/`, an earlier session; "
             "seed 3: `queue_preset3.sh`, this session), held-out on the robust preset's 12 families:", "",
             "| seed | clean test (TTA) | wall / run | train img/s | held-out (same 12) | all 19 | JPEG-75 / PNG files | gap |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    clean, wall = {}, {}
    for seed, (bench, ev, real) in files.items():
        if not bench.exists():
            continue
        run = load(bench)["runs"][0]
        clean[seed], wall[seed] = 100 * run["test_acc"], run["wall_time_s"]
        cells = [str(seed), f"{clean[seed]:.2f}%", f"{run['wall_time_s']:.0f} s", f"{run['train_img_per_s']:.0f}"]
        if ev and ev.exists():
            rob = load(ev)["robustness"]
            cells += [f"{held_out(rob, seen):.2f}%", f"{100 * rob['mean_corruption_acc']:.2f}%"]
        else:
            cells += ["-", "-"]
        if real and real.exists():
            r = load(real)[0]
            cells += [f"{100 * r['jpeg75']:.1f} / {100 * r['png']:.1f}", f"{r['jpeg75_gap_points']:.1f}"]
        else:
            cells += ["-", "-"]
        lines.append("| " + " | ".join(cells) + " |")
    both = sorted(set(clean) & set(robust))
    if len(both) >= 2:
        d = paired_difference([robust[k]["clean"] for k in both], [clean[k] for k in both])
        lines += ["", f"Clean, robust minus preset, paired by seed ({', '.join(map(str, both))}): {d['mean']:+.2f} "
                  f"points (95% CI {d['ci95'][0]:+.2f} to {d['ci95'][1]:+.2f}, p {d['p']:.2g})"]  # fmt: skip
    if 3 in wall:
        lines.append(f"Wall time, robust seed 3 / preset seed 3 (this session, one after the other): "
                     f"{robust[3]['wall'] / wall[3]:.3f}")  # fmt: skip
    return lines


def main() -> None:
    bench = load(HERE / "advanced-robust.bench.json")
    rows = per_seed(bench)
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
    lines += preset_lines(rows)
    (HERE / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
