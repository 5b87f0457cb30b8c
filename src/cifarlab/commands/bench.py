"""`cifarlab bench`: a preset over several seeds (mean ± std of accuracy, wall time, img/s), and
`cifarlab results`: the Markdown results table built from such bench files."""

from __future__ import annotations

import dataclasses
import json
import statistics
from pathlib import Path

from ..callbacks import default_callbacks
from ..config import resolve
from ..errors import ConfigError, UserError
from ..io import atomic_write_text
from ..metrics import accuracy_cell, mean_std
from ..rundir import BenchResult, Summary, read_bench, write_bench
from ..train import train

STAGE_ORDER = {"baseline": 0, "intermediate": 1, "advanced": 2}


def bench(
    preset: str, seeds: int, overrides=(), data=None, out="runs/bench", epochs=None, device=None, quiet: bool = False
) -> BenchResult:
    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    summaries = []
    for seed in range(seeds):
        cfg = resolve(preset, overrides, epochs, seed, device)
        run_dir, summary = train(cfg, out, data, default_callbacks(tensorboard=False, quiet=quiet, live=False))
        if summary is None:
            raise KeyboardInterrupt
        summary.run_dir = str(run_dir)
        summaries.append(summary)
    result = aggregate(summaries, list(overrides))
    out_dir = Path(out)
    write_bench(out_dir / f"{result.preset}.bench.json", result)
    atomic_write_text(out_dir / f"{result.preset}.bench.md", table_header() + markdown_row(result) + "\n")
    print(json.dumps({k: v for k, v in dataclasses.asdict(result).items() if k != "runs"}, indent=2))
    print(table_header() + markdown_row(result))
    return result


def aggregate(summaries: list[Summary], overrides: list | None = None) -> BenchResult:
    acc = [s.test_acc for s in summaries]
    wall = [s.wall_time_s for s in summaries]
    first = summaries[0]
    acc_mean, acc_std = mean_std(acc)
    wall_mean, wall_std = mean_std(wall)
    return BenchResult(
        preset=first.preset,
        seeds=[s.seed for s in summaries],
        test_acc_mean=acc_mean,
        test_acc_std=acc_std,
        test_acc=acc,
        wall_time_mean_s=wall_mean,
        wall_time_std_s=wall_std,
        wall_time_max_s=max(wall),
        train_img_per_s_mean=statistics.fmean(s.train_img_per_s for s in summaries),
        epochs=first.epochs_trained,
        time_to_val_acc_epochs={k: [s.time_to_val_acc.get(k) for s in summaries] for k in first.time_to_val_acc},
        params=first.params,
        flops_per_image=first.flops_per_image,
        tta=first.tta,
        device=first.device,
        dtype=first.dtype,
        train_images=first.n_train,
        val_images=first.n_val,
        torch=first.torch,
        runs=[dataclasses.asdict(s) for s in summaries],
        overrides=list(overrides or []),
    )


def table_header() -> str:
    return (
        "| stage | test accuracy (mean ± std) | seeds | wall time / run | train img/s | epochs | train / val images | "
        "epoch reaching val 90 / 93 / 94% | params | MFLOPs/img | TTA | hardware |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )


def _time_to(r: BenchResult) -> str:
    """Per threshold, the epochs of the seeds that reached it (- for a seed that did not)."""
    parts = []
    for k in ("90", "93", "94"):
        vals = r.time_to_val_acc_epochs.get(k, [])
        parts.append("-" if not any(vals) else ",".join(str(v) if v else "-" for v in vals))
    return " / ".join(parts)


def markdown_row(r: BenchResult) -> str:
    stage = r.preset + (f" ({', '.join(r.overrides)})" if r.overrides else "")
    stage = stage.replace("|", "\\|")  # a value with a pipe must not split the Markdown row
    split = " / ".join("?" if n is None else f"{n:,}" for n in (r.train_images, r.val_images))
    return (
        f"| {stage} | {accuracy_cell(r.test_acc_mean, r.test_acc_std, len(r.seeds))} | {len(r.seeds)} | "
        f"{r.wall_time_mean_s:.0f} s (max {r.wall_time_max_s:.0f}) | {r.train_img_per_s_mean:.0f} | "
        f"{round(float(r.epochs), 2):g} | {split} | {_time_to(r)} | {r.params / 1e6:.2f}M | "
        f"{r.flops_per_image / 1e6:.0f} | {r.tta} | {r.device}, {r.dtype} |"
    )


def results_table(paths: list[Path]) -> str:
    """One block of stages per machine; a preset's variants (more images, more epochs) after it."""
    rows = []
    for p in paths:
        r = read_bench(p)
        key = (r.device, STAGE_ORDER.get(r.preset, 9), r.train_images or 0, float(r.epochs))
        rows.append((key, markdown_row(r)))
    rows.sort(key=lambda kr: kr[0])
    return table_header() + "\n".join(row for _, row in rows)


def check_no_readme(readme: str | None) -> None:
    if readme:
        raise UserError(
            "--readme moved out of cifarlab: `make results` (tools/readme_table.py) writes the README "
            "table; `cifarlab results` prints it"
        )
