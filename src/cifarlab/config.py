"""Every setting a user may vary: dataclasses with defaults, YAML presets, `--set a.b=c` overrides.

A preset is a YAML file in `configs/`. It only lists what differs from the defaults below, so the
dataclasses are the single place where a setting and its meaning live.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import ConfigError

# Presets live in the repository's configs/: a source checkout (editable install) reads them there,
# a wheel carries a copy in cifarlab/presets.
_PACKAGED_PRESETS = Path(__file__).resolve().parent / "presets"
PRESET_DIR = _PACKAGED_PRESETS if _PACKAGED_PRESETS.is_dir() else Path(__file__).resolve().parents[2] / "configs"


@dataclass
class AugmentConfig:
    translate: int = 0  # random crop from an image padded by this many pixels (0 = off)
    pad_mode: str = "reflect"  # padding for translate: reflect | zeros
    flip: str = "none"  # horizontal flip: none | random | alternate (each image flips every other epoch)
    cutout: int = 0  # side of a square zeroed at a random place (0 = off)
    # Progressive resizing: train on images downscaled to `resize_from` px at epoch 0, growing linearly (in
    # 4 px steps) to full size by epoch `resize_until`. Early epochs cost ~(size/32)^2 as much (0 = off).
    resize_from: int = 0
    resize_until: float = 0.0


@dataclass
class DataConfig:
    dir: str | None = None  # CIFAR-10 location; else $CIFAR10_DIR; else the cache (downloaded once)
    val_size: int = 5000  # stratified validation split carved from the 50k training images
    batch_size: int = 256
    eval_batch_size: int = 1000
    train_subset: int = 0  # use only this many training images (0 = all); for smoke runs
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class OptimConfig:
    name: str = "sgd"  # sgd | adamw | muon (orthogonalized updates for conv filters, Nesterov SGD for the rest)
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    norm_lr_scale: float = 1.0  # lr multiplier for normalization-layer parameters (wd divided by it)
    label_smoothing: float = 0.0
    grad_clip: float = 0.0  # max global gradient norm (0 = off)
    betas: list = field(default_factory=lambda: [0.9, 0.999])  # adamw only
    muon_lr: float = 0.24  # muon only: lr of the conv filters (their updates are orthogonalized, so no batch scaling)
    muon_momentum: float = 0.6  # muon only: momentum of the conv filters


@dataclass
class ScheduleConfig:
    name: str = "constant"  # constant | step | cosine | onecycle | linear
    warmup_epochs: float = 0.0  # linear warmup from start_factor (cosine, linear, step, constant)
    start_factor: float = 0.0  # lr multiplier at step 0 of the warmup
    final_factor: float = 0.0  # lr multiplier at the last step (cosine, linear, onecycle)
    step_epochs: float = 10.0  # step: decay every this many epochs
    gamma: float = 0.1  # step: decay factor
    peak_at: float = 0.25  # onecycle: fraction of training at which lr peaks


@dataclass
class TrainConfig:
    epochs: float = 10.0  # may be fractional: training stops after that many epochs' worth of steps
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    precision: str = "auto"  # auto (bf16 where the hardware has it natively) | bf16 | fp16 | fp32
    channels_last: bool = True
    compile: bool = False  # torch.compile the model (pays a one-off compile time)
    # Images per forward/backward pass: a batch's gradients accumulate over its micro-batches, then one
    # optimizer step. BatchNorm normalizes each micro-batch ("ghost" BN). 0 = auto: 128 when training in fp32
    # on a CPU, where small passes keep activations in cache (advanced preset: ~30% faster on a 2-core AVX2
    # CPU), else the whole batch. Set it to data.batch_size to always take the whole batch.
    micro_batch: int = 0
    whiten_bias_epochs: float = 0.0  # train the whitening stem's bias only this long (0 = always)
    ema: float = 0.0  # keep an exponential moving average of weights with this decay (0 = off)
    lookahead_every: int = 0  # every k steps pull the weights to a slow average whose decay grows to 0.95^5 (0 = off)
    tensorboard: bool = True
    log_every: int = 10  # steps between per-step scalars


@dataclass
class EvalConfig:
    tta: str = "none"  # none | flip | flip_translate (6 views)


@dataclass
class Config:
    name: str = "custom"
    description: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    model: dict = field(default_factory=dict)  # see cifarlab.models.builder for the format
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


CHOICES = {
    "data.augment.pad_mode": ("reflect", "zeros"),
    "data.augment.flip": ("none", "random", "alternate"),
    "optim.name": ("sgd", "adamw", "muon"),
    "schedule.name": ("constant", "step", "cosine", "onecycle", "linear"),
    "train.precision": ("auto", "bf16", "fp16", "fp32"),
    "eval.tta": ("none", "flip", "flip_translate"),
}


def list_presets() -> dict[str, str]:
    """Preset name -> one-line description."""
    out = {}
    for path in sorted(PRESET_DIR.glob("*.yaml")):
        raw = yaml.safe_load(path.read_text()) or {}
        out[path.stem] = str(raw.get("description", "")).strip().splitlines()[0] if raw.get("description") else ""
    return out


def load_preset(name_or_path: str) -> Config:
    path = Path(name_or_path)
    is_yaml = path.suffix in (".yaml", ".yml")
    if not (is_yaml and path.exists()):
        preset = PRESET_DIR / f"{name_or_path}.yaml"
        if not preset.exists():
            names = ", ".join(list_presets())
            if is_yaml:
                raise ConfigError(f"no config file at {path}: check the path, or use a preset ({names})")
            if path.is_file():
                raise ConfigError(f"{path} is not a YAML config (.yaml or .yml): give a preset ({names}) "
                                  "or a YAML file")
            raise ConfigError(f"unknown preset '{name_or_path}': choose one of {names}, or give a path to a YAML file")
        path = preset
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read the config {path} ({getattr(e, 'strerror', None) or e}): "
                          "give a readable YAML file") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config must be a mapping of sections, got {type(raw).__name__}")
    raw.setdefault("name", path.stem)
    return from_dict(raw)


def from_dict(raw: dict) -> Config:
    cfg = _build(Config, raw, "")
    validate(cfg)
    return cfg


def _build(cls, raw: Any, prefix: str):
    if not isinstance(raw, dict):
        raise ConfigError(f"'{prefix.rstrip('.') or 'config'}' must be a mapping, got {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(raw) - set(fields)
    if unknown:
        key = sorted(unknown)[0]
        raise ConfigError(f"unknown config key '{prefix}{key}': valid keys are {', '.join(prefix + k for k in fields)}")
    kwargs = {}
    for name, value in raw.items():
        f = fields[name]
        sub = _dataclass_of(f)
        kwargs[name] = _build(sub, value, f"{prefix}{name}.") if sub else _coerce(f, value, prefix + name)
    return cls(**kwargs)


def _dataclass_of(f):
    default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    return type(default) if dataclasses.is_dataclass(default) else None


def _coerce(f, value, key):
    """Check a leaf value against the type of its default; ints are accepted where floats are."""
    default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    if default is None or value is None:
        return value
    want = type(default)
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if want is float and isinstance(value, str):  # YAML 1.1 reads '1e-3' (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if want is bool and not isinstance(value, bool) or want is not bool and isinstance(value, bool):
        raise ConfigError(f"bad value for '{key}': expected {want.__name__}, got {value!r}")
    if not isinstance(value, want):
        raise ConfigError(f"bad value for '{key}': expected {want.__name__}, got {value!r}")
    return value


def validate(cfg: Config) -> None:
    tree = cfg.to_dict()
    flat = flatten(tree)
    for key, value in _leaves(tree):
        # nan slips through every range check below (all comparisons are false) and inf trains to nan
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"bad value for '{key}': {value}; must be a finite number")
    for key, choices in CHOICES.items():
        if flat[key] not in choices:
            raise ConfigError(f"bad value for '{key}': {flat[key]!r}; choose one of {', '.join(choices)}")
    positive = ["data.batch_size", "data.eval_batch_size", "train.epochs", "optim.lr", "optim.muon_lr"]
    for key in positive:
        if not flat[key] > 0:
            raise ConfigError(f"bad value for '{key}': {flat[key]!r}; must be > 0")
    non_negative = ["data.val_size", "data.train_subset", "data.augment.translate", "data.augment.cutout",
                    "optim.weight_decay", "optim.label_smoothing", "optim.grad_clip", "schedule.warmup_epochs",
                    "train.micro_batch"]
    for key in non_negative:
        if flat[key] < 0:
            raise ConfigError(f"bad value for '{key}': {flat[key]!r}; must be >= 0")
    if not 0 <= cfg.optim.label_smoothing < 1:
        raise ConfigError(f"bad value for 'optim.label_smoothing': {cfg.optim.label_smoothing}; must be in [0, 1)")
    for key in ("optim.momentum", "optim.muon_momentum"):
        if not 0 <= flat[key] < 1:
            raise ConfigError(f"bad value for '{key}': {flat[key]!r}; must be in [0, 1)")
    if not 0 <= cfg.train.ema < 1:
        raise ConfigError(f"bad value for 'train.ema': {cfg.train.ema}; must be in [0, 1)")
    a = cfg.data.augment
    if a.resize_from and not 8 <= a.resize_from <= 32:
        raise ConfigError(f"bad value for 'data.augment.resize_from': {a.resize_from}; must be 0 (off) or 8..32 px")
    if a.resize_from and not a.resize_until > 0:
        raise ConfigError("'data.augment.resize_from' needs 'data.augment.resize_until' > 0 (the epoch reaching 32 px)")
    if cfg.data.val_size >= 50000:
        raise ConfigError(f"bad value for 'data.val_size': {cfg.data.val_size}; must leave training images")
    if not isinstance(cfg.model, dict) or not cfg.model.get("stages"):
        raise ConfigError("the config has no model: give 'model.stages' (see configs/baseline.yaml)")
    from .models import build_model

    build_model(cfg.model)  # a bad network is reported now, before data is loaded (or downloaded)


def _leaves(tree, prefix: str = ""):
    """(dotted key, value) for every scalar in nested dicts and lists, model included."""
    if isinstance(tree, dict):
        items = tree.items()
    elif isinstance(tree, list):
        items = enumerate(tree)
    else:
        yield prefix.rstrip("."), tree
        return
    for k, v in items:
        yield from _leaves(v, f"{prefix}{k}.")


def flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and k != "model":
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def apply_overrides(cfg: Config, overrides: list[str]) -> Config:
    """Apply `key=value` strings; values are parsed as YAML (`0.1`, `true`, `[1,2]`, `{bn: true}`).

    Keys inside `model` may index lists: `model.stages.0.channels=128`.
    """
    raw = copy.deepcopy(cfg.to_dict())
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"bad --set '{item}': expected key=value, e.g. optim.lr=0.1")
        key, text = item.split("=", 1)
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        _set_path(raw, key.strip().split("."), value, key)
    return from_dict(raw)


DEFAULT_PRESET = "advanced"


def resolve(preset: str | None = None, overrides=(), epochs=None, seed=None, device=None, fp32=False) -> Config:
    """A preset (default: advanced) with `--set` overrides and the shorthand options of the CLI applied."""
    extra = list(overrides)
    for key, value in (("train.epochs", epochs), ("train.seed", seed), ("train.device", device or None),
                       ("train.precision", "fp32" if fp32 else None)):
        if value is not None:
            extra.append(f"{key}={value}")
    cfg = load_preset(preset or DEFAULT_PRESET)
    return apply_overrides(cfg, extra) if extra else cfg


def _set_path(node: Any, parts: list[str], value: Any, key: str) -> None:
    valid_top = ", ".join(k for k in flatten(Config().to_dict()))
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        in_model = parts[0] == "model"
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"bad key '{key}': '{part}' is not an index of a list of {len(node)}")
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        elif isinstance(node, dict):
            if part not in node and not (in_model and i > 0):
                raise ConfigError(f"unknown config key '{key}': valid keys are {valid_top}")
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
        else:
            raise ConfigError(f"bad key '{key}': '{'.'.join(parts[:i])}' is a value, not a section")


def save_yaml(cfg: Config, path: Path) -> None:
    from .io import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
