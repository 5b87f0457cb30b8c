"""Benchmarks: a preset over several seeds, and the README results table built from their outputs."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from .io import atomic_write_json, atomic_write_text, read_json


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def accuracy_cell(mean: float, std: float, n: int) -> str:
    """Mean test accuracy of n seeds in percent, with their std; one seed has no spread ("± 0.00" would claim one)."""
    return f"{100 * mean:.2f}%" + (f" ± {100 * std:.2f}" if n > 1 else "")


def bench(preset: str, seeds: int, overrides=(), data=None, out="runs/bench", epochs=None, device=None,
          quiet: bool = False) -> dict:
    from .config import resolve
    from .live import default_callbacks
    from .train import train

    if seeds < 1:
        from . import ConfigError

        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    summaries = []
    for seed in range(seeds):
        cfg = resolve(preset, overrides, epochs, seed, device)
        cbs = default_callbacks(tensorboard=False, quiet=quiet, live=False)
        run_dir, summary = train(cfg, out, data, cbs)
        if summary is None:
            raise KeyboardInterrupt
        summary["run_dir"] = str(run_dir)
        summaries.append(summary)
    result = aggregate(summaries)
    result["overrides"] = list(overrides)  # a row made with --set must not pass for the preset itself
    out_dir = Path(out)
    atomic_write_json(out_dir / f"{result['preset']}.bench.json", result)
    atomic_write_text(out_dir / f"{result['preset']}.bench.md", table_header() + markdown_row(result) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2))
    print(table_header() + markdown_row(result))
    return result


def aggregate(summaries: list[dict]) -> dict:
    acc = [s["test_acc"] for s in summaries]
    wall = [s["wall_time_s"] for s in summaries]
    ips = [s["train_img_per_s"] for s in summaries]
    first = summaries[0]
    tta = {k: [s["time_to_val_acc"].get(k) for s in summaries] for k in first["time_to_val_acc"]}
    acc_mean, acc_std = mean_std(acc)
    wall_mean, wall_std = mean_std(wall)
    return {
        "preset": first["preset"], "seeds": [s["seed"] for s in summaries],
        "test_acc_mean": acc_mean, "test_acc_std": acc_std, "test_acc": acc,
        "wall_time_mean_s": wall_mean, "wall_time_std_s": wall_std, "wall_time_max_s": max(wall),
        # epochs' worth of steps (8.5, not the 9 epochs begun); summaries before that field had whole epochs
        "train_img_per_s_mean": statistics.fmean(ips), "epochs": first.get("epochs_trained", first["epochs"]),
        "tta": first["tta"], "train_images": first.get("n_train"), "val_images": first.get("n_val"),
        "params": first["params"], "flops_per_image": first["flops_per_image"],
        "time_to_val_acc_epochs": tta, "device": first["device"], "dtype": first["dtype"],
        "torch": first["torch"], "runs": summaries,
    }


def table_header() -> str:
    return ("| stage | test accuracy (mean ± std) | seeds | wall time / run | train img/s | epochs | train / val images | "
            "epoch reaching val 90 / 93 / 94% | params | MFLOPs/img | TTA | hardware |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|\n")


def _time_to(r: dict) -> str:
    """Per threshold, the epochs of the seeds that reached it (- for a seed that did not)."""
    parts = []
    for k in ("90", "93", "94"):
        vals = r["time_to_val_acc_epochs"].get(k, [])
        parts.append("-" if not any(vals) else ",".join(str(v) if v else "-" for v in vals))
    return " / ".join(parts)


ROW_KEYS = {"preset", "test_acc_mean", "test_acc_std", "seeds", "wall_time_mean_s", "wall_time_max_s",
            "train_img_per_s_mean", "epochs", "time_to_val_acc_epochs", "params", "flops_per_image", "tta", "device",
            "dtype"}


def _split(r: dict) -> tuple[int | None, int | None]:
    """Training and validation images of a bench result (results written before these keys: from its runs)."""
    first = (r.get("runs") or [{}])[0]
    return r.get("train_images", first.get("n_train")), r.get("val_images", first.get("n_val"))


def markdown_row(r: dict) -> str:
    stage = r["preset"] + (f" ({', '.join(r['overrides'])})" if r.get("overrides") else "")
    stage = stage.replace("|", "\\|")  # a value with a pipe must not split the Markdown row
    split = " / ".join("?" if n is None else f"{n:,}" for n in _split(r))
    return (f"| {stage} | {accuracy_cell(r['test_acc_mean'], r['test_acc_std'], len(r['seeds']))} | {len(r['seeds'])} | "
            f"{r['wall_time_mean_s']:.0f} s (max {r['wall_time_max_s']:.0f}) | {r['train_img_per_s_mean']:.0f} | "
            f"{round(float(r['epochs']), 2):g} | {split} | {_time_to(r)} | {r['params'] / 1e6:.2f}M | {r['flops_per_image'] / 1e6:.0f} | "
            f"{r['tta']} | {r['device']}, {r['dtype']} |")


def results_table(paths: list[Path]) -> str:
    from . import UserError

    order = {"baseline": 0, "intermediate": 1, "advanced": 2}
    rows = []
    for p in paths:
        r = read_json(p, "bench result")
        missing = sorted(ROW_KEYS - set(r)) if isinstance(r, dict) else None
        if missing is None or missing:
            why = f"no {', '.join(missing)}" if missing else "not a JSON object"
            raise UserError(f"{p} is not a bench result written by `cifarlab bench` ({why})")
        try:  # a hand-edited file: a value of the wrong type
            # one block of stages per machine; a preset's variants (more images, more epochs) after it
            key = (str(r["device"]), order.get(r["preset"], 9), _split(r)[0] or 0, float(r["epochs"]))
            rows.append((key, markdown_row(r)))
        except (TypeError, ValueError, KeyError, AttributeError) as e:
            raise UserError(f"{p} is not a bench result written by `cifarlab bench` (bad value: {e})") from None
    rows.sort(key=lambda kr: kr[0])
    return table_header() + "\n".join(row for _, row in rows)


START, END = "<!-- results:start -->", "<!-- results:end -->"


def update_readme(path: Path, table: str) -> None:
    """Replace what lies between the results markers of a README with `table`."""
    from . import UserError

    text = path.read_text()
    if START not in text or END not in text:
        raise UserError(f"{path} has no '{START}' ... '{END}' markers to put the table between")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    note = "\n_Generated by `make results` (`cifarlab results BENCH_JSON... --readme README.md`) from `results/`._\n"
    atomic_write_text(path, f"{head}{START}\n{table}\n{note}{END}{tail}")
