"""`cifarlab bench`: a preset over several seeds (mean ± std of accuracy, wall time, img/s), and
`cifarlab results`: the Markdown results table built from such bench files."""

from __future__ import annotations

import dataclasses
import json
import statistics
from pathlib import Path

import torch

from ..callbacks import default_callbacks
from ..checkpoint import model_from_checkpoint
from ..config import STAGES, is_earlier_recipe, list_presets, recipe, recipe_changes, resolve
from ..data import load_cifar10, locate
from ..data.corruptions import seen_families
from ..errors import ConfigError, UserError
from ..hardware import select_device, select_precision
from ..inference import predict_logits, robustness
from ..io import atomic_write_text
from ..metrics import accuracy_cell, mean_std, paired_difference
from ..rundir import BenchResult, Summary, read_bench, read_summary, summary_from_dict, write_bench
from ..train import build_run, make_loaders, train

DEV_VAL_SIZE = 5000  # `bench --dev`: 45,000 images train, 5,000 held out of training score


def bench(
    preset: str,
    seeds: int,
    overrides=(),
    data=None,
    out="runs/bench",
    epochs=None,
    device=None,
    quiet: bool = False,
    first_seed: int = 0,
) -> BenchResult:
    """Train `seeds` runs (seeds first_seed, first_seed + 1, ...) and write their mean as <out>/<preset>.bench.json."""
    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    if first_seed < 0:
        raise ConfigError(f"--first-seed must be >= 0, got {first_seed}")
    summaries = []
    for seed in range(first_seed, first_seed + seeds):
        cfg = resolve(preset, overrides, epochs, seed, device)
        run_dir, summary = train(cfg, out, data, default_callbacks(tensorboard=False, quiet=quiet, live=False))
        if summary is None:
            raise KeyboardInterrupt
        summary.run_dir = str(run_dir)
        summaries.append(summary)
    return write_result(aggregate(summaries, list(overrides)), out)


def bench_from_runs(preset: str, sources, out="runs/bench") -> BenchResult:
    """The bench file of finished runs of one recipe, trained apart (seeds on different days): no training.
    A source is a run directory or a bench file, whose recorded runs join (their directories may be gone).
    Refuses runs of another preset, recipe, machine or precision, or two runs of one seed."""
    summaries = []
    for src in sources:
        for s in _summaries_of(Path(src)):
            if s.preset != preset:
                raise UserError(f"{src} holds a run of '{s.preset}', not '{preset}': give runs of one preset")
            summaries.append(s)
    seeds = [s.seed for s in summaries]
    if len(set(seeds)) < len(seeds):
        raise UserError(f"two runs of one seed among {seeds}: give each seed once")
    setups = sorted({f"{s.device}, {s.dtype}" for s in summaries})
    if len(setups) > 1:  # a mean wall time over two machines or precisions describes neither
        raise UserError(f"the runs were trained on {len(setups)} machines or precisions ({'; '.join(setups)}): "
                        "bench each apart")  # fmt: skip
    recorded = summaries[0].recipe
    changes = recipe_changes(preset, recorded) if recorded and preset in list_presets() else []
    return write_result(aggregate(sorted(summaries, key=lambda s: s.seed), changes), out)


def _summaries_of(src: Path) -> list[Summary]:
    """A run directory's summary, or the runs a bench file recorded (with the run_dir each had)."""
    if src.is_file():
        return [summary_from_dict(run, src) for run in read_bench(src).runs]
    s = read_summary(src)
    s.run_dir = str(src)
    return [s]


def write_result(result: BenchResult, out) -> BenchResult:
    out_dir = Path(out)
    write_bench(out_dir / f"{result.preset}.bench.json", result)
    atomic_write_text(out_dir / f"{result.preset}.bench.md", table_header() + markdown_row(result) + "\n")
    print(json.dumps({k: v for k, v in dataclasses.asdict(result).items() if k != "runs"}, indent=2))
    print(table_header() + markdown_row(result))
    return result


def dev_bench(
    preset: str,
    seeds: int,
    overrides=(),
    data=None,
    out="runs/dev",
    epochs=None,
    device=None,
    name=None,
    robust_n: int = 1000,
    quiet: bool = False,
    first_seed: int = 0,
    rescore: str | None = None,
) -> dict:
    """Train on 45,000 images and score on the 5,000 held out of training: clean validation accuracy (the recipe's
    TTA and one view) and the CIFAR-10-C families on `robust_n` of those images (held-out and seen means).
    The test set is never opened: this is how recipes are chosen. Writes <out>/<name>.dev.json, keeping the
    other seeds of an earlier bench of that name (a later call adds seeds). With `rescore` (a dev bench file),
    its trained checkpoints are scored under this recipe's evaluation settings instead of training again."""
    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    if robust_n < 0:
        raise ConfigError(f"--robust-n must be >= 0, got {robust_n}")
    name = name or preset
    path = Path(out) / f"{name}.dev.json"
    rows = []
    if rescore:
        rows = rescore_dev(rescore, preset, overrides, data, epochs, device, robust_n)
    for seed in range(first_seed, first_seed + seeds) if not rescore else ():
        cfg = resolve(preset, [*overrides, f"data.val_size={DEV_VAL_SIZE}"], epochs, seed, device)
        trainer = build_run(cfg, out, data, default_callbacks(tensorboard=False, quiet=quiet, live=False))
        trainer.fit()
        if trainer.stop_requested:
            raise KeyboardInterrupt
        summary = trainer.finish(test=False)
        rows.append(
            score_on_validation(
                trainer.eval_model(),
                trainer.val_loader,
                trainer.dtype,
                trainer.cfg,
                str(trainer.dir),
                summary.wall_time_s,
                summary.train_img_per_s,
                robust_n,
            )
        )
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "robustness"}))
    new = {r["seed"] for r in rows}
    if path.exists():
        rows = [r for r in json.loads(path.read_text())["runs"] if r["seed"] not in new] + rows
    rows.sort(key=lambda r: r["seed"])
    result = {"name": name, "preset": preset, "overrides": list(overrides), "epochs": epochs, "runs": rows}
    for key in ("val_acc", "val_acc_one_view", "held_out_acc", "seen_acc", "wall_time_s"):
        vals = [r[key] for r in rows if r.get(key) is not None]
        if vals:
            result[f"{key}_mean"], result[f"{key}_std"] = mean_std(vals)
    atomic_write_text(path, json.dumps(result, indent=2) + "\n")
    print(dev_line(result))
    return result


@torch.no_grad()
def score_on_validation(model, loader, dtype, cfg, run_dir: str, wall_s, img_per_s, robust_n: int) -> dict:
    """A trained net on the validation split, clean (the recipe's TTA and one view) and corrupted."""
    logits, y = predict_logits(model, loader, dtype, cfg.eval.tta, cfg.eval.tta_fraction)
    plain, _ = predict_logits(model, loader, dtype, "none")
    row = {
        "seed": cfg.train.seed,
        "run_dir": run_dir,
        "val_acc": float((logits.argmax(-1) == y).float().mean()),
        "val_acc_one_view": float((plain.argmax(-1) == y).float().mean()),
        "wall_time_s": wall_s,
        "train_img_per_s": img_per_s,
    }
    if robust_n:
        n = min(robust_n, len(y))
        idx = torch.arange(len(y), device=y.device)[:: max(1, len(y) // n)][:n]
        rob = robustness(model, loader.x[idx], y[idx], loader.normalize, dtype,
                         seen=seen_families(cfg.data.augment), seed=1)  # fmt: skip
        rob["clean_acc_same_images"] = float((plain[idx].argmax(-1) == y[idx]).float().mean())
        row.update(held_out_acc=rob["held_out_acc"], seen_acc=rob["seen_acc"], robustness=rob)
    return row


def training_recipe(cfg) -> dict:
    """The part of a recipe that training sees: evaluation settings may change without training again."""
    return {k: v for k, v in recipe(cfg).items() if k != "eval"}


def read_dev(path, what: str = "") -> dict:
    """A dev bench file (`bench --dev`), or a one-line error naming `what` read it."""
    try:
        d = json.loads(Path(path).read_text())
        if not isinstance(d, dict) or not {"runs", "overrides", "epochs"} <= d.keys():
            raise ValueError("it lacks runs, overrides or epochs")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"{what}{path}: not a dev bench file ({e}); give one written by `bench --dev`") from None
    return d


def rescore_dev(path: str, preset, overrides, data, epochs, device, robust_n: int) -> list[dict]:
    """Score the best checkpoints of dev bench `path` under this recipe's evaluation settings (TTA, its
    fraction): the same trained nets, so that two evaluation choices are paired exactly. Refuses checkpoints
    trained to another recipe."""
    runs = read_dev(path, "--rescore ")["runs"]
    base = resolve(preset, [*overrides, f"data.val_size={DEV_VAL_SIZE}"], epochs, None, device)
    dev = select_device(base.runtime.device)
    dtype = select_precision(dev, base.runtime.precision)
    _, val, _, _ = make_loaders(base, load_cifar10(locate(data or base.data.dir)), dev)  # the split has no seed
    rows = []
    for old in runs:
        cfg = resolve(preset, [*overrides, f"data.val_size={DEV_VAL_SIZE}"], epochs, old["seed"], device)
        ckpt_path = Path(old["run_dir"]) / "best.pt"
        if not ckpt_path.is_file():
            raise UserError(f"--rescore: {ckpt_path} is missing; rescore on the machine that trained the bench")
        model, trained, _ = model_from_checkpoint(ckpt_path, dev)
        if training_recipe(trained) != training_recipe(cfg):
            raise UserError(f"--rescore: {ckpt_path} was trained to another recipe than {preset} with these "
                            "--set options; only eval.* settings may differ")  # fmt: skip
        if cfg.runtime.channels_last:
            model = model.to(memory_format=torch.channels_last)
        rows.append(score_on_validation(model, val, dtype, cfg, old["run_dir"], old["wall_time_s"],
                                        old.get("train_img_per_s"), robust_n))  # fmt: skip
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "robustness"}))
    return rows


def dev_line(r: dict) -> str:
    def cell(key):
        if f"{key}_mean" not in r:
            return "-"
        return f"{100 * r[key + '_mean']:.2f} ± {100 * r[key + '_std']:.2f}"

    return (
        f"{r['name']}: {len(r['runs'])} seeds, val {cell('val_acc')} (one view {cell('val_acc_one_view')}), "
        f"held-out corruptions {cell('held_out_acc')}, seen {cell('seen_acc')}, "
        f"wall {r.get('wall_time_s_mean', 0):.0f} s"
    )


def dev_compare(a_path: str, b_path: str) -> str:
    """Paired (by seed) differences A - B of two dev benches: mean, 95% interval, p. Corruption accuracy is
    compared over the families held out for both recipes (the same families on both sides) and over all."""
    a, b = (json.loads(Path(p).read_text()) for p in (a_path, b_path))
    by_seed = {r["seed"]: r for r in b["runs"]}
    pairs = [(r, by_seed[r["seed"]]) for r in a["runs"] if r["seed"] in by_seed]
    if len(pairs) < 2:
        raise UserError(f"{a_path} and {b_path} share {len(pairs)} seeds: a paired comparison needs at least 2")
    lines = [f"{a['name']} - {b['name']} over {len(pairs)} paired seeds:"]
    metrics = {k: [(ra[k], rb[k]) for ra, rb in pairs] for k in ("val_acc", "val_acc_one_view")}
    if all(ra.get("robustness") and rb.get("robustness") for ra, rb in pairs):
        rob_a, rob_b = pairs[0][0]["robustness"], pairs[0][1]["robustness"]
        seen = set(rob_a.get("seen", [])) | set(rob_b.get("seen", []))
        common = [f for f in rob_a["per_corruption"] if f in rob_b["per_corruption"] and f not in seen]
        every = [f for f in rob_a["per_corruption"] if f in rob_b["per_corruption"]]
        for label, fams in ((f"held out by both ({len(common)})", common), (f"all families ({len(every)})", every)):
            metrics[label] = [(family_mean(ra, fams), family_mean(rb, fams)) for ra, rb in pairs]
    for key, xs in metrics.items():
        d = paired_difference([u for u, _ in xs], [v for _, v in xs])
        lo, hi = d["ci95"]
        lines.append(f"  {key:<26} {100 * d['mean']:+.2f} points (95% CI {100 * lo:+.2f} to {100 * hi:+.2f}, "
                     f"p {d['p']:.3g})")  # fmt: skip
    ratio = statistics.fmean(ra["wall_time_s"] for ra, _ in pairs) / statistics.fmean(
        rb["wall_time_s"] for _, rb in pairs
    )
    lines.append(f"  wall time ratio            {ratio:.3f}")
    return "\n".join(lines)


def family_mean(run: dict, families: list[str]) -> float:
    """A dev run's corruption accuracy over `families`, every severity weighted alike."""
    per = run["robustness"]["per_corruption"]
    vals = [a for f in families for a in per[f]]
    return sum(vals) / len(vals)


def check_one_recipe(ids: list, what: str) -> None:
    """One row averages one recipe: runs whose recipe fingerprints differ are refused together."""
    distinct = sorted({i or "unrecorded" for i in ids})
    if len(distinct) > 1:
        raise UserError(f"{what} holds runs of {len(distinct)} recipes ({', '.join(distinct)}): bench each apart")


def aggregate(summaries: list[Summary], overrides: list | None = None) -> BenchResult:
    check_one_recipe([s.recipe_id for s in summaries], "this bench")
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
        recipe_id=first.recipe_id,
        recipe=first.recipe,
    )


def table_header() -> str:
    return (
        "| stage | recipe | test accuracy (mean ± std) | seeds | wall time / run | train img/s | epochs | "
        "train / val images | epoch reaching val 90 / 93 / 94% | params | MFLOPs/img | TTA | hardware |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )


def _time_to(r: BenchResult) -> str:
    """Per threshold, the epochs of the seeds that reached it (- for a seed that did not)."""
    parts = []
    for k in ("90", "93", "94"):
        vals = r.time_to_val_acc_epochs.get(k, [])
        parts.append("-" if not any(vals) else ",".join(str(v) if v else "-" for v in vals))
    return " / ".join(parts)


def ran_earlier_recipe(r: BenchResult) -> bool:
    """The bench ran a recipe its preset no longer has, and its overrides of the recipe do not explain it."""
    recipe_overrides = [o for o in r.overrides if not str(o).startswith("runtime.")]
    return is_earlier_recipe(r.preset, r.recipe_id) and not recipe_overrides


def _label(r: BenchResult) -> str:
    """The row's preset and overrides, marked when it ran an earlier recipe, so an old row does not pass for
    today's preset."""
    label = r.preset + (", an earlier recipe" if ran_earlier_recipe(r) else "")
    return label + (f" ({', '.join(r.overrides)})" if r.overrides else "")


def markdown_row(r: BenchResult) -> str:
    stage = _label(r)
    stage = stage.replace("|", "\\|")  # a value with a pipe must not split the Markdown row
    split = " / ".join("?" if n is None else f"{n:,}" for n in (r.train_images, r.val_images))
    return (
        f"| {stage} | {r.recipe_id or 'unrecorded'} | "
        f"{accuracy_cell(r.test_acc_mean, r.test_acc_std, len(r.seeds))} | {len(r.seeds)} | "
        f"{r.wall_time_mean_s:.0f} s (max {r.wall_time_max_s:.0f}) | {r.train_img_per_s_mean:.0f} | "
        f"{round(float(r.epochs), 2):g} | {split} | {_time_to(r)} | {r.params / 1e6:.2f}M | "
        f"{r.flops_per_image / 1e6:.0f} | {r.tta} | {r.device}, {r.dtype} |"
    )


def results_table(paths: list[Path], current: bool = False) -> str:
    """One block of stages per machine; a preset's variants (more images, more epochs) after it. `current`:
    only the rows of recipes a preset has today (what a user's run of it reproduces)."""
    rows = []
    for p in paths:
        r = read_bench(p)
        check_one_recipe([run.get("recipe_id") for run in r.runs if isinstance(run, dict)] or [r.recipe_id], str(p))
        if current and ran_earlier_recipe(r):
            continue
        stage = STAGES.index(r.preset) if r.preset in STAGES else len(STAGES)
        key = (r.device, stage, r.train_images or 0, float(r.epochs))
        rows.append((key, markdown_row(r)))
    rows.sort(key=lambda kr: kr[0])
    return table_header() + "\n".join(row for _, row in rows)


def check_no_readme(readme: str | None) -> None:
    if readme:
        raise UserError(
            "--readme moved out of cifarlab: `make results` (tools/readme_table.py) writes the README "
            "table; `cifarlab results` prints it"
        )
