"""Every setting a user may vary: dataclasses with defaults, YAML presets, `--set a.b=c` overrides.

A preset is a YAML file in `configs/`. It only lists what differs from the defaults below, so the
dataclasses are the single place where a setting, its choices (`Literal[...]`) and its meaning live.
The recipe (data, model, optim, loss, schedule, train, eval) is apart from the runtime (where and how it
runs: device, precision, passes, logging), which changes speed but not what is learned.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import hashlib
import inspect
import json
import math
import re
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from .data.augment import JPEG_QUALITY, TRAIN_CORRUPTIONS
from .errors import ConfigError
from .io import atomic_write_text
from .models import check_spec, spec_schema

# Presets live in the repository's configs/: a source checkout (editable install) reads them there,
# a wheel carries a copy in cifarlab/presets.
_PACKAGED_PRESETS = Path(__file__).resolve().parent / "presets"
PRESET_DIR = _PACKAGED_PRESETS if _PACKAGED_PRESETS.is_dir() else Path(__file__).resolve().parents[2] / "configs"
DEFAULT_PRESET = "advanced"


@dataclass
class AugmentConfig:
    translate: int = 0  # random crop from an image padded by this many pixels (0 = off)
    pad_mode: Literal["reflect", "zeros"] = "reflect"  # padding for translate
    flip: Literal["none", "random", "alternate"] = "none"  # alternate: each image flips every other epoch
    cutout: int = 0  # side of a square zeroed at a random place (0 = off)
    # Progressive resizing: train on images downscaled to `resize_from` px at epoch 0, growing linearly (in
    # 4 px steps) to full size by epoch `resize_until`. Early epochs cost ~(size/32)^2 as much (0 = off).
    resize_from: int = 0
    resize_until: float = 0.0
    # Colour jitter per image (hiverge's cifar10-speedrun): brightness shifted by up to +/- this fraction of
    # the pixel range, contrast scaled by 1 +/- this around the image's mean (0 = off).
    brightness: float = 0.0
    contrast: float = 0.0
    # Corruption share: this fraction of each batch takes one of `corrupt_ops` at a random strength (noise:
    # Gaussian or salt and pepper; patch_gaussian: Gaussian noise in a 25 px square; jpeg: a quality in `jpeg_quality`;
    # pixelate: down to 50-100% and back). Each op makes its CIFAR-10-C families "seen" in evaluation (0 = off).
    corrupt: float = 0.0
    corrupt_ops: list = field(default_factory=lambda: ["noise", "jpeg", "pixelate"])
    # The jpeg op's quality, drawn per image from [low, high] (libjpeg's 1-100): one value trains on one quality
    jpeg_quality: list = field(default_factory=lambda: list(JPEG_QUALITY))
    # AugMix share: this fraction of each batch is mixed with chains of posterize, solarize, rotate, shear and
    # translate (AugMix without its contrast ops); the warps make elastic_transform "seen" (0 = off).
    augmix: float = 0.0
    # Clean tail: the corruption and AugMix shares stop at this epoch (fractional: 9.35 of 11 leaves the last
    # 15% of steps clean), so the low-lr end of the schedule fits clean images (0 = every epoch).
    robust_until: float = 0.0


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
    # muon: orthogonalized updates for conv filters, Nesterov SGD for the rest
    name: Literal["sgd", "adamw", "muon"] = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    norm_lr_scale: float = 1.0  # lr multiplier for normalization-layer parameters (wd divided by it)
    grad_clip: float = 0.0  # max global gradient norm (0 = off)
    betas: list = field(default_factory=lambda: [0.9, 0.999])  # adamw only
    muon_lr: float = 0.24  # muon only: lr of the conv filters (their updates are orthogonalized, so no batch scaling)
    muon_momentum: float = 0.6  # muon only: momentum of the conv filters


@dataclass
class LossConfig:
    label_smoothing: float = 0.0  # cross-entropy against (1 - s) one-hot + s uniform


@dataclass
class ScheduleConfig:
    name: Literal["constant", "step", "cosine", "onecycle", "linear"] = "constant"
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
    ema: float = 0.0  # keep an exponential moving average of weights with this decay (0 = off)
    lookahead_every: int = 0  # every k steps pull the weights to a slow average whose decay grows to 0.95^5 (0 = off)
    # Hard-example selection: forward the whole batch without gradients, then train on this fraction of it
    # with the highest loss (1 = every image).
    select_fraction: float = 1.0
    # Which epoch best.pt holds, the checkpoint that the test row, evaluate, predict and export serve: "best" =
    # the top validation accuracy; "last" = the final weights, for schedules that anneal the lr to zero, where
    # the argmax over a small split's noisy epochs can pick an earlier, worse one (docs/experiments.md).
    checkpoint: Literal["best", "last"] = "best"


@dataclass
class RuntimeConfig:
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"  # auto: bf16 where the hardware has it natively
    channels_last: bool = True
    compile: bool = False  # torch.compile the model (pays a one-off compile time)
    # Images per forward/backward pass: a batch's gradients accumulate over its micro-batches, then one
    # optimizer step; BatchNorm normalizes each micro-batch ("ghost" BN). 0 = auto: 128 when training in fp32
    # on a CPU (activations stay in cache), else the whole batch.
    micro_batch: int = 0
    tensorboard: bool = True
    log_every: int = 10  # steps between per-step scalars


@dataclass
class EvalConfig:
    tta: Literal["none", "flip", "flip_translate"] = "none"  # flip_translate: 6 views
    # Selective TTA: one plain pass, then the other views only for this fraction of the images, the least
    # confident (1 = every image takes every view).
    tta_fraction: float = 1.0


@dataclass
class Config:
    name: str = "custom"
    description: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    model: dict = field(default_factory=dict)  # validated by cifarlab.models.check_spec; format in models.builder
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def recipe(cfg: Config) -> dict:
    """What is learned and how it is scored: the config less its name, runtime, seed and data location."""
    d = cfg.to_dict()
    for k in ("name", "description", "runtime"):
        d.pop(k)
    d["train"].pop("seed")
    d["data"].pop("dir")
    return d


# Keys added since fingerprints were first recorded, at the value that leaves a recipe as it was. The fingerprint
# leaves such a key out at that value, so adding a lever does not rename every recipe recorded before it (a test
# re-resolves the recipes in results/ and fails when a new key is missing here).
ADDED_KEYS = {
    "data.augment.augmix": 0.0,
    "data.augment.robust_until": 0.0,
    "data.augment.jpeg_quality": [20, 95],
    "train.checkpoint": "best",
}


def recipe_fingerprint(rec: dict) -> str:
    """A short fingerprint of a recipe (config.recipe): runs that share it may be averaged into one row."""
    rec = copy.deepcopy(rec)
    for dotted, neutral in ADDED_KEYS.items():
        *path, leaf = dotted.split(".")
        node = rec
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and leaf in node and node[leaf] == neutral:
            del node[leaf]
    return hashlib.sha256(json.dumps(rec, sort_keys=True).encode()).hexdigest()[:10]


def recipe_id(cfg: Config) -> str:
    """The fingerprint of a config's recipe: runs that share it may be averaged into one row, others may not."""
    return recipe_fingerprint(recipe(cfg))


# Keys of earlier versions -> their home now. Accepted with a one-line note (silently in stored run configs).
RENAMED = {
    f"train.{k}": f"runtime.{k}"
    for k in ("device", "precision", "channels_last", "compile", "micro_batch", "tensorboard", "log_every")
}
RENAMED["optim.label_smoothing"] = "loss.label_smoothing"
RENAMED["train.whiten_bias_epochs"] = "model.stem.bias_epochs"

# (dotted key, test, what a good value is), checked after the types
_POSITIVE = ("data.batch_size", "data.eval_batch_size", "train.epochs", "optim.lr", "optim.muon_lr")
_NON_NEGATIVE = (
    "data.val_size",
    "data.train_subset",
    "data.augment.translate",
    "data.augment.cutout",
    "optim.weight_decay",
    "optim.grad_clip",
    "schedule.warmup_epochs",
    "runtime.micro_batch",
    "data.augment.brightness",
    "data.augment.contrast",
    "data.augment.robust_until",
)
_UNIT = ("loss.label_smoothing", "optim.momentum", "optim.muon_momentum", "train.ema")
RANGES = [
    *((k, lambda v: v > 0, "must be > 0") for k in _POSITIVE),
    *((k, lambda v: v >= 0, "must be >= 0") for k in _NON_NEGATIVE),
    *((k, lambda v: 0 <= v < 1, "must be in [0, 1)") for k in _UNIT),
    ("data.augment.resize_from", lambda v: v == 0 or 8 <= v <= 32, "must be 0 (off) or 8..32 px"),
    ("data.val_size", lambda v: v < 50000, "must leave training images"),
    *((k, lambda v: 0 < v <= 1, "must be in (0, 1]") for k in ("train.select_fraction", "eval.tta_fraction")),
    ("data.augment.corrupt", lambda v: 0 <= v <= 1, "must be in [0, 1] (the share of each batch corrupted)"),
    ("data.augment.augmix", lambda v: 0 <= v <= 1, "must be in [0, 1] (the share of each batch AugMix-mixed)"),
    ("data.augment.contrast", lambda v: v < 1, "must be < 1 (a factor 1 - contrast stays positive)"),
]


def choices(key: str) -> tuple:
    """The values a `Literal` field allows, e.g. choices('eval.tta')."""
    *path, name = key.split(".")
    cls = Config
    for part in path:
        cls = _section_type(cls, part)
    return typing.get_args(typing.get_type_hints(cls)[name])


def _section_type(cls, name: str):
    f = {f.name: f for f in dataclasses.fields(cls)}[name]
    return type(f.default_factory())


# The presets in stage order: reports and results tables list them so, then the rest. intermediate-techniques
# (stage 2's network, stage 3's training) splits the stage-3 gain into what the training and the network buy.
# advanced-clean (stage 3 before its robustness training) splits what the faster network and the robustness
# levers each add.
STAGES = ("baseline", "intermediate", "intermediate-techniques", "advanced-clean", "advanced")


def list_presets() -> dict[str, str]:
    """Preset name -> one-line description, the stages first in their order."""
    out = {}
    rank = {name: i for i, name in enumerate(STAGES)}
    for path in sorted(PRESET_DIR.glob("*.yaml"), key=lambda p: (rank.get(p.stem, len(STAGES)), p.stem)):
        raw = yaml.safe_load(path.read_text()) or {}
        out[path.stem] = str(raw.get("description", "")).strip().splitlines()[0] if raw.get("description") else ""
    return out


@functools.cache
def preset_recipes() -> dict[str, str]:
    """Preset name -> the fingerprint of its recipe today."""
    return {name: recipe_id(load_preset(name)) for name in list_presets()}


# Presets renamed since runs were recorded under their names: a record of such a name whose recipe no preset has
# today ran an earlier recipe of the preset it became (`advanced-robust` became `advanced`).
RENAMED_PRESETS = {"advanced-robust": "advanced"}


def preset_of(recorded: str, rid: str | None) -> str:
    """The preset a recorded run or bench is today: the one whose recipe it ran (a renamed preset keeps its
    recipe: the `advanced` of before the robust recipe is `advanced-clean`), else the name it was recorded under
    (or the preset that name became)."""
    if rid is not None:  # an unrecorded recipe matches no preset: no need to load them
        matches = [name for name, r in preset_recipes().items() if r == rid]
        if matches:
            return recorded if recorded in matches else matches[0]
    return RENAMED_PRESETS.get(recorded, recorded)


def _flat(d: dict, prefix: str = "") -> dict:
    """A recipe as dotted keys, as `--set` names them (list items of mappings by index)."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out |= _flat(v, f"{prefix}{k}.")
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for i, x in enumerate(v):
                out |= _flat(x, f"{prefix}{k}.{i}.")
        else:
            out[f"{prefix}{k}"] = v
    return out


def recipe_changes(name: str, rec: dict) -> list[str]:
    """The `--set KEY=VALUE`s that turn preset `name`'s recipe today into `rec` (a recorded recipe), so that a
    record of finished runs can say what they ran; keys added since read as their neutral value."""
    now, then = _flat(recipe(load_preset(name))), _flat(rec)
    for key, neutral in ADDED_KEYS.items():
        then.setdefault(key, neutral)
    return [f"{k}={_as_set_value(then.get(k))}" for k in sorted(now.keys() | then.keys()) if now.get(k) != then.get(k)]


def _as_set_value(v) -> str:
    """A value as `--set` reads it (YAML): 0.5, jpeg, true, null, [jpeg, noise]."""
    if isinstance(v, (list, dict)):
        return yaml.safe_dump(v, default_flow_style=True, width=10**6).strip()
    return v if isinstance(v, str) else json.dumps(v)


def is_earlier_recipe(name: str, rid: str | None) -> bool:
    """Whether a record under a preset's name ran another (or an unrecorded) recipe than the preset's today."""
    return name in preset_recipes() and preset_recipes()[name] != rid


def _preset_path(name_or_path: str) -> Path:
    path = Path(name_or_path)
    is_yaml = path.suffix in (".yaml", ".yml")
    if is_yaml and path.exists():
        return path
    preset = PRESET_DIR / f"{name_or_path}.yaml"
    if preset.exists():
        return preset
    names = ", ".join(list_presets())
    if is_yaml:
        raise ConfigError(f"no config file at {path}: check the path, or use a preset ({names})")
    if path.is_file():
        raise ConfigError(f"{path} is not a YAML config (.yaml or .yml): give a preset ({names}) or a YAML file")
    raise ConfigError(f"unknown preset '{name_or_path}': choose one of {names}, or give a path to a YAML file")


def load_preset(name_or_path: str) -> Config:
    return from_dict(_preset_raw(name_or_path, ()))


def _preset_raw(name_or_path: str, chain: tuple[Path, ...]) -> dict:
    """A preset's settings as nested dicts, its `base` (a preset name, or a YAML path relative to the file)
    resolved: the base's settings first, the file's own on top (mappings merge key by key, lists replace)."""
    path = _preset_path(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(
            f"cannot read the config {path} ({getattr(e, 'strerror', None) or e}): give a readable YAML file"
        ) from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config must be a mapping of sections, got {type(raw).__name__}")
    raw.setdefault("name", path.stem)
    if "base" not in raw:
        return raw
    base = raw.pop("base")
    if not isinstance(base, str) or not base.strip():
        raise ConfigError(f"{path}: 'base' must be a preset name or a YAML path, got {base!r}")
    if path.resolve() in chain:
        loop = " -> ".join(p.name for p in (*chain, path.resolve()))
        raise ConfigError(f"{path}: its 'base' chain comes back to itself ({loop}): end the chain at a full config")
    if Path(base).suffix in (".yaml", ".yml") and not Path(base).is_absolute():
        base = str(path.parent / base)  # relative to the file, not to where cifarlab runs
    return _merged(_preset_raw(base, (*chain, path.resolve())), raw)


def _merged(base: dict, top: dict) -> dict:
    """`top` over `base`: mappings merge key by key, any other value (a list included) replaces."""
    out = copy.deepcopy(base)
    for key, value in top.items():
        both = isinstance(out.get(key), dict) and isinstance(value, dict)
        out[key] = _merged(out[key], value) if both else copy.deepcopy(value)
    return out


def from_dict(raw: dict, note_renamed: bool = True) -> Config:
    """A validated Config from nested dicts; keys of earlier versions move to their new home (with a note
    on stderr when `note_renamed`, as for a user's preset; a run's stored config moves silently)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"'config' must be a mapping, got {raw!r}")
    cfg = _build(Config, _migrate(copy.deepcopy(raw), note_renamed), "")
    validate(cfg)
    return cfg


def _migrate(raw: dict, note: bool) -> dict:
    for old, new in RENAMED.items():
        section, key = old.split(".")
        if not isinstance(raw.get(section), dict) or key not in raw[section]:
            continue
        value = raw[section].pop(key)
        if old == "train.whiten_bias_epochs" and not _moves_to_stem(raw, value):
            continue  # 0, or a net without a whitening stem: the old key had no effect there
        *path, name = new.split(".")
        node = raw
        for part in path:
            node = node.setdefault(part, {})
        node[name] = value
        if note:
            _note_renamed(old, new)
    return raw


def _moves_to_stem(raw: dict, value) -> bool:
    stem = (raw.get("model") or {}).get("stem") or {}
    return bool(value) and isinstance(stem, dict) and stem.get("type") == "whiten"


def _note_renamed(old: str, new: str) -> None:
    print(f"note: config key '{old}' is now '{new}'; the old name still works", file=sys.stderr)


def _build(cls, raw: Any, prefix: str):
    if not isinstance(raw, dict):
        raise ConfigError(f"'{prefix.rstrip('.') or 'config'}' must be a mapping, got {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = set(raw) - set(fields)
    if unknown:
        raise ConfigError(unknown_key_message(prefix + sorted(unknown)[0]))
    kwargs = {}
    for name, value in raw.items():
        key = prefix + name
        if dataclasses.is_dataclass(hints[name]):
            kwargs[name] = _build(hints[name], value, f"{key}.")
        else:
            kwargs[name] = _coerce(hints[name], _default(fields[name]), value, key)
    return cls(**kwargs)


def _default(f):
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def _optional_type(hint) -> type:
    """X of an optional setting's `X | None`."""
    return next(a for a in typing.get_args(hint) if a is not type(None))


def _coerce(hint, default, value, key):
    """Check a leaf value against its declared choices or the type of its default; ints pass for floats."""
    if hint is not None and typing.get_origin(hint) is Literal:
        if value not in typing.get_args(hint):
            raise ConfigError(f"bad value for '{key}': {value!r}; choose one of {', '.join(typing.get_args(hint))}")
        return value
    if value is None:
        if default is None:  # an optional setting (data.dir): null means "not set"
            return value
        raise ConfigError(f"bad value for '{key}': null; expected {type(default).__name__} (e.g. {default!r})")
    if default is None:
        want = _optional_type(hint)
        if not isinstance(value, want):
            raise ConfigError(f"bad value for '{key}': expected {want.__name__} or null, got {value!r}")
        return value
    want = type(default)
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if want is float and isinstance(value, str):  # YAML 1.1 reads '1e-3' (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if (want is bool) != isinstance(value, bool) or not isinstance(value, want):
        raise ConfigError(f"bad value for '{key}': expected {want.__name__}, got {value!r}")
    if want is list and default:  # a list holds values of its default's kind (and as many where that is fixed)
        value = [_coerce(None, default[0], v, key) for v in value]
        if key == "optim.betas" and len(value) != len(default):
            raise ConfigError(f"bad value for '{key}': {value!r}; expected {len(default)} numbers, e.g. {default}")
    return value


def json_schema() -> dict:
    """The config as a JSON Schema (draft 2020-12), for an editor to complete and check a preset as it is typed:
    the dataclasses' keys, types, choices and defaults, their comments and range rules as descriptions, the
    network's keys from the builder. Old key names stay valid (marked deprecated). `from_dict` stays the check."""
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "cifarlab config"}
    rules = {}
    for key, _, what in RANGES:
        rules[key] = f"{rules[key]}, {what}" if key in rules else what
    schema |= _section_schema(Config, "", rules)
    for old, new in RENAMED.items():
        section, key = old.split(".")
        schema["properties"][section]["properties"][key] = {"deprecated": True, "description": f"now '{new}'"}
    schema["properties"]["base"] = {
        "type": "string",
        "description": "a preset name or a YAML path (relative to this file) whose settings this file starts from; "
        "its own keys override (mappings merge key by key, lists replace)",
    }
    return schema


def _section_schema(cls, prefix: str, rules: dict[str, str]) -> dict:
    hints, docs = typing.get_type_hints(cls), _field_docs(cls)
    properties = {}
    for f in dataclasses.fields(cls):
        key, hint, default = prefix + f.name, hints[f.name], _default(f)
        if dataclasses.is_dataclass(hint):
            prop = _section_schema(hint, f"{key}.", rules)
        elif key == "model":
            prop = spec_schema()
        else:
            prop = _leaf_schema(hint, default) | {"default": default}
        text = "; ".join(t.rstrip(".") for t in (docs.get(f.name), rules.get(key)) if t)
        properties[f.name] = prop | ({"description": text} if text and "description" not in prop else {})
    return {"type": "object", "properties": properties, "additionalProperties": False}


_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}


def _leaf_schema(hint, default) -> dict:
    if typing.get_origin(hint) is Literal:
        return {"enum": list(typing.get_args(hint))}
    if default is None:  # an optional setting: its type or null
        return {"type": [_JSON_TYPES[_optional_type(hint)], "null"]}
    out = {"type": _JSON_TYPES[type(default)]}
    if isinstance(default, list) and default:
        out["items"] = {"type": _JSON_TYPES[type(default[0])]}
    return out


def _field_docs(cls) -> dict[str, str]:
    """Each field's comment in the source (the comment lines just above it and its own), the meaning a user
    reads beside the key; the dataclass stays the one place it is written."""
    docs, above = {}, []
    for line in inspect.getsource(cls).splitlines()[1:]:
        text = line.strip()
        if text.startswith("#"):
            above.append(text.lstrip("#").strip())
            continue
        m = re.match(r"(\w+): [^#]*(?:#\s*(.*))?$", text)
        if m:
            docs[m[1]] = " ".join([*above, m[2] or ""]).strip()
        above = []
    return docs


def unknown_key_message(key: str) -> str:
    """'unknown config key ...' naming the nearest valid keys, not all of them."""
    valid = list(flatten(Config().to_dict()))
    near = difflib.get_close_matches(key, valid, n=3, cutoff=0.6)
    if not near:  # a typo in the section: the keys of the section that matches best
        section = difflib.get_close_matches(key.split(".")[0], sorted({k.split(".")[0] for k in valid}), n=1)
        near = [k for k in valid if section and k.split(".")[0] == section[0]][:6]
    return f"unknown config key '{key}': did you mean {' or '.join(near)}?" if near else f"unknown config key '{key}'"


def validate(cfg: Config) -> None:
    for key, value in _leaves(cfg.to_dict()):
        # nan slips through every range check below (all comparisons are false) and inf trains to nan
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"bad value for '{key}': {value}; must be a finite number")
    flat = flatten(cfg.to_dict())
    for key, ok, what in RANGES:
        if not ok(flat[key]):
            raise ConfigError(f"bad value for '{key}': {flat[key]!r}; {what}")
    a = cfg.data.augment
    if not all(0 <= b < 1 for b in cfg.optim.betas):
        raise ConfigError(f"bad value for 'optim.betas': {cfg.optim.betas!r}; each must be in [0, 1)")
    ops = a.corrupt_ops
    if not isinstance(ops, list) or not ops or any(op not in TRAIN_CORRUPTIONS for op in ops):
        allowed = ", ".join(TRAIN_CORRUPTIONS)
        raise ConfigError(f"bad value for 'data.augment.corrupt_ops': {ops!r}; must be a non-empty list of {allowed}")
    q = a.jpeg_quality
    if not (isinstance(q, list) and len(q) == 2 and all(type(v) is int for v in q) and 1 <= q[0] <= q[1] <= 100):
        raise ConfigError(
            f"bad value for 'data.augment.jpeg_quality': {q!r}; "
            "must be [low, high], integers with 1 <= low <= high <= 100"
        )
    if a.resize_from and not a.resize_until > 0:
        raise ConfigError("'data.augment.resize_from' needs 'data.augment.resize_until' > 0 (the epoch reaching 32 px)")
    if a.robust_until and not (a.corrupt or a.augmix):
        raise ConfigError(
            "'data.augment.robust_until' ends the corruption and AugMix shares, but both are 0: "
            "set 'data.augment.corrupt' or 'data.augment.augmix', or leave robust_until at 0"
        )
    if not isinstance(cfg.model, dict) or not cfg.model.get("stages"):
        raise ConfigError("the config has no model: give 'model.stages' (see configs/baseline.yaml)")
    check_spec(cfg.model)


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
    """Dotted keys of the sections; `model` stays one value (its spec is the network's, not a section)."""
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
    raw = cfg.to_dict()
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"bad --set '{item}': expected key=value, e.g. optim.lr=0.1")
        key, text = (s.strip() for s in item.split("=", 1))
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        if key in RENAMED:  # put where it was; from_dict moves it, with the note
            section, name = key.split(".")
            raw[section][name] = value
            continue
        _set_path(raw, key.split("."), value, key)
    return from_dict(raw)


def resolve(preset: str | None = None, overrides=(), epochs=None, seed=None, device=None, fp32=False) -> Config:
    """A preset (default: advanced) with `--set` overrides and the shorthand options of the CLI applied."""
    extra = list(overrides)
    for key, value in (
        ("train.epochs", epochs),
        ("train.seed", seed),
        ("runtime.device", device or None),
        ("runtime.precision", "fp32" if fp32 else None),
    ):
        if value is not None:
            extra.append(f"{key}={value}")
    cfg = load_preset(preset or DEFAULT_PRESET)
    return apply_overrides(cfg, extra) if extra else cfg


def _set_path(node: Any, parts: list[str], value: Any, key: str) -> None:
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"bad key '{key}': '{part}' is not an index of a list of {len(node)}")
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        elif isinstance(node, dict):
            if part not in node and not (parts[0] == "model" and i > 0):  # the model spec takes new keys
                raise ConfigError(unknown_key_message(key))
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
        else:
            raise ConfigError(f"bad key '{key}': '{'.'.join(parts[:i])}' is a value, not a section")


def save_yaml(cfg: Config, path: Path) -> None:
    atomic_write_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
