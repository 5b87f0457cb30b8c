"""Ablation of the advanced recipe: the same run with one technique removed at a time."""

from __future__ import annotations

import json
from pathlib import Path

from . import UserError
from .io import atomic_write_json

# variant -> (what is removed, overrides). TTA needs no retraining: the full run is re-evaluated without it.
VARIANTS = {
    "full": ("nothing", []),
    "no_augmentation": ("augmentation", ["data.augment.translate=0", "data.augment.flip=none", "data.augment.cutout=0"]),
    "no_batchnorm": ("batch norm", ["model.defaults.bn=false"]),
    "no_dropout": ("dropout", ["model.head.dropout=0.0"]),
    "no_schedule": ("lr schedule", ["schedule.name=constant", "schedule.warmup_epochs=0"]),
    "no_label_smoothing": ("label smoothing", ["optim.label_smoothing=0.0"]),
    "no_muon": ("Muon (the Nesterov SGD + lookahead recipe instead)",
                ["optim.name=sgd", "schedule.name=onecycle", "schedule.start_factor=0.2", "schedule.peak_at=0.23",
                 "train.lookahead_every=5"]),
    "no_lookahead": ("lookahead", ["train.lookahead_every=0"]),
    "no_attention": ("attention", ["model.defaults.attention=none", "model.stages.2.attention=none"]),
    "no_tta": ("test-time augmentation", None),
}


def ablate(preset="advanced", overrides=(), epochs=None, only=None, out="runs/ablation", data=None, device=None) -> list[dict]:
    from .cli import _config
    from .evaluate import evaluate_run
    from .live import default_callbacks
    from .train import train

    names = only or list(VARIANTS)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise UserError(f"unknown ablation variant '{unknown[0]}': choose from {', '.join(VARIANTS)}")
    if "no_tta" in names and "full" not in names:
        names = ["full", *names]
    results, full_dir = [], None
    for name in names:
        removed, extra = VARIANTS[name]
        if extra is None:  # no_tta
            res = evaluate_run(str(full_dir), data_path=data, tta="none", write=False, robustness_n=0, speed=False)
            results.append({"variant": name, "removed": removed, "test_acc": res["test_acc"], "run_dir": str(full_dir)})
            continue
        cfg = _config(preset, [*overrides, *extra], epochs, None, device)
        cfg.name = f"{cfg.name}-{name}"
        run_dir, summary = train(cfg, out, data, default_callbacks(tensorboard=False, live=False))
        if summary is None:
            raise KeyboardInterrupt
        if name == "full":
            full_dir = run_dir
        results.append({"variant": name, "removed": removed, "test_acc": summary["test_acc"],
                        "wall_time_s": summary["wall_time_s"], "run_dir": str(run_dir)})
        atomic_write_json(Path(out) / "ablation.json", results)
    atomic_write_json(Path(out) / "ablation.json", results)
    print(json.dumps(results, indent=2))
    return results
