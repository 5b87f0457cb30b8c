"""`cifarlab ablate`: the same run with one technique removed at a time (augmentation, BN, dropout, schedule, ...)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import yaml

from ..callbacks import default_callbacks
from ..config import apply_overrides, from_dict, resolve
from ..errors import ConfigError, UserError
from ..models import build_model
from ..rundir import AblationRow, read_ablation, read_summary, write_ablation
from ..train import train
from .evaluate import evaluate_run


def _without_attention(cfg):
    """Every attention option set to none and self-attention layers dropped, wherever the preset has them."""
    raw = cfg.to_dict()
    model = raw["model"]
    for spec in [model.get("defaults") or {}, *model.get("stages", [])]:
        if "attention" in spec:
            spec["attention"] = "none"
    model["stages"] = [s for s in model.get("stages", []) if s.get("block") != "self_attention"]
    return from_dict(raw)


def _without_antialiasing(cfg):
    """Every anti-aliased max-pool (maxblur) back to a plain max-pool."""
    raw = cfg.to_dict()
    for spec in [raw["model"].get("defaults") or {}, *raw["model"].get("stages", [])]:
        if spec.get("pool") == "maxblur":
            spec["pool"] = "max"
    return from_dict(raw)


# variant -> (what is removed, overrides or a function of the config). TTA needs no retraining: the full run is
# re-evaluated without it.
VARIANTS = {
    "full": ("nothing", []),
    "no_augmentation": (
        "augmentation",
        [  # every augmentation the loader has: geometry, colour jitter, progressive resizing, corruptions
            "data.augment.translate=0",
            "data.augment.flip=none",
            "data.augment.cutout=0",
            "data.augment.brightness=0",
            "data.augment.contrast=0",
            "data.augment.resize_from=0",
            "data.augment.corrupt=0",
            "data.augment.augmix=0",
            "data.augment.robust_until=0",
        ],
    ),
    "no_robust_shares": ("corruption and AugMix shares", ["data.augment.corrupt=0", "data.augment.augmix=0"]),
    "no_antialiasing": ("anti-aliased pooling", _without_antialiasing),
    "no_batchnorm": ("batch norm", ["model.defaults.bn=false"]),
    "no_dropout": ("dropout", ["model.head.dropout=0.0"]),
    "no_schedule": ("lr schedule", ["schedule.name=constant", "schedule.warmup_epochs=0"]),
    "no_label_smoothing": ("label smoothing", ["loss.label_smoothing=0.0"]),
    "no_muon": (
        "Muon (replaced by Nesterov SGD + lookahead)",
        [
            "optim.name=sgd",
            "schedule.name=onecycle",
            "schedule.start_factor=0.2",
            "schedule.peak_at=0.23",
            "train.lookahead_every=5",
        ],
    ),
    "no_lookahead": ("lookahead", ["train.lookahead_every=0"]),
    "no_attention": ("attention", _without_attention),
    "no_tta": ("test-time augmentation", None),
}


def apply_variant(cfg, change):
    """The config with one technique removed; `change` is a list of overrides or a function of the config."""
    return change(cfg) if callable(change) else apply_overrides(cfg, change)


def uses(cfg, change) -> bool:
    """Whether the config has the technique a variant removes, i.e. whether removing it changes the run.

    Models are compared as built, since `model.defaults.bn=false` on a net without batch norm adds a key but
    changes nothing. Running such a variant would retrain the full run under another name.
    """
    if change is None:  # no_tta
        return cfg.eval.tta != "none"
    if change is VARIANTS["no_muon"][1] and cfg.optim.name != "muon":
        return False  # no_muon swaps the optimizer, which only makes sense when Muon is there to remove
    try:
        ablated = apply_variant(cfg, change)
    except ConfigError:  # e.g. a stage index the preset does not have
        return False
    strip = lambda c: {k: v for k, v in c.to_dict().items() if k != "model"}  # noqa: E731
    if strip(ablated) != strip(cfg):
        return True
    return repr(build_model(ablated.model)) != repr(build_model(cfg.model))


def ablate(
    preset="advanced", overrides=(), epochs=None, only=None, out="runs/ablation", data=None, device=None, full=None
) -> list[AblationRow]:
    """Train each variant into `out` and collect ablation.json there. Rows already in that file for variants
    not run now are kept, so variants can be run one call at a time; `full` takes a finished run of the same
    config (e.g. a bench seed) as the full recipe instead of training it again."""
    base = resolve(preset, overrides, epochs, None, device)
    names = _variants_to_run(base, only)
    path = Path(out) / "ablation.json"
    done = {r.variant: r for r in read_ablation(path)} if path.exists() else {}
    if full is not None:
        done["full"] = _full_row(Path(full), base)
        names = [n for n in names if n != "full"]
    if "no_tta" in names and "full" not in names and "full" not in done:
        names = ["full", *names]
    for name in names:
        removed, extra = VARIANTS[name]
        if extra is None:  # no_tta: the full run re-evaluated without it
            full_dir = done["full"].run_dir
            ev = evaluate_run(str(full_dir), data_path=data, tta="none", write=False, robustness_n=0, speed=False)
            done[name] = AblationRow(name, removed, ev.test_acc, str(full_dir))
            continue
        cfg = apply_variant(base, extra)
        cfg.name = f"{cfg.name}-{name}"
        run_dir, summary = train(cfg, out, data, default_callbacks(tensorboard=False, live=False))
        if summary is None:
            raise KeyboardInterrupt
        done[name] = AblationRow(name, removed, summary.test_acc, str(run_dir), summary.wall_time_s)
        write_ablation(path, _ordered(done))
    rows = _ordered(done)
    write_ablation(path, rows)
    print(json.dumps([dataclasses.asdict(r) for r in rows], indent=2))
    return rows


def _ordered(rows: dict) -> list[AblationRow]:
    return [rows[n] for n in VARIANTS if n in rows]


def _full_row(run_dir: Path, base) -> AblationRow:
    """A finished run as the ablation's full recipe, once its config is the one being ablated."""
    summary = read_summary(run_dir)
    cfg_path = run_dir / "config.yaml"
    ran = from_dict(yaml.safe_load(cfg_path.read_text()), note_renamed=False) if cfg_path.exists() else None
    strip = lambda c: {k: v for k, v in c.to_dict().items() if k not in ("name", "description")}  # noqa: E731
    if ran is None or strip(ran) != strip(base):
        raise UserError(f"--full {run_dir}: that run's config differs from the one ablated; give a run of the same")
    return AblationRow("full", "nothing", summary.test_acc, str(run_dir), summary.wall_time_s)


def _variants_to_run(base, only) -> list[str]:
    names = only or list(VARIANTS)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise UserError(f"unknown ablation variant '{unknown[0]}': choose from {', '.join(VARIANTS)}")
    skipped = [n for n in names if n != "full" and not uses(base, VARIANTS[n][1])]
    for n in skipped:
        print(f"skipping {n}: the run does not use {VARIANTS[n][0]}")
    names = [n for n in names if n not in skipped]
    if skipped and not [n for n in names if n != "full"]:
        raise ConfigError(
            f"nothing to ablate: the run uses none of {', '.join(n[3:] for n in skipped)}; "
            "ablate the advanced preset or a config that uses them"
        )
    return names
