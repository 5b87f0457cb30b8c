"""Config -> nn.Module. A network is data:

    stem:   {type: conv | whiten, channels: 32, kernel: 3, bn: false, act: relu}
    stages: [{block: conv, channels: 64, depth: 2, pool: max, <block options>}, ...]
    head:   {pool: max | avg, dropout: 0.0, scale: 1.0, bias: true}
    defaults: {<block options applied to every stage unless it sets them>}
    freeze: {at: 0.8, layers: 2}   # late freezing (optional)

The whiten stem takes `bias_epochs`: its bias trains that long, then freezes (0 = always); `fit_images`:
the training images its filters are fitted on; `fast_bias`: its bias trains at the BN shifts' lr; `eps` (a
fraction of the top eigenvalue with `eps_relative: true`): the whitening's eigenvalue regularization;
`contrast_norm`: every image scaled to the training images' mean contrast before the stem; `drop_weakest`:
the faintest patch directions left out (channels 2 x (3 k² - drop_weakest)). `freeze` stops
training the stem and the first `layers` blocks once a fraction `at` of the steps is done: their backward
is then not computed at all.
Block options: kernel, bn (true or {momentum, eps, freeze_scale}), act, attention (se | cbam | none),
dropout, identity_init; `self_attention` blocks take `heads`. `pool` downsamples by 2 in the first
block of the stage.
"""

from __future__ import annotations

import contextlib
import inspect

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from ..errors import ConfigError
from .blocks import ACTIVATIONS, ATTENTION, BLOCKS, POOLS, activation, norm
from .whitening import WhiteningStem

WHITEN_KEYS = ("bias_epochs", "fit_images", "fast_bias", "eps", "eps_relative", "contrast_norm", "drop_weakest")
STEM_KEYS = {"type", "channels", "kernel", "bn", "act", *WHITEN_KEYS}
HEAD_KEYS = {"pool", "dropout", "scale", "bias"}
STEM_TYPES = ("conv", "whiten", "none")
HEAD_POOLS = ("avg", "max")
MODEL_KEYS = {"stem", "stages", "head", "defaults", "freeze"}
FREEZE_KEYS = {"at", "layers"}


class Net(nn.Module):
    """stem -> stages -> head. The net owns its recipe hooks, which the trainer calls without knowing the
    net: `fit_to_data` (data-dependent init, e.g. whitening), `on_step` (what trains when, e.g. the whitening
    bias freeze) and `passes_per_step` (its BN settings under micro-batches)."""

    def __init__(self, stem: nn.Module, stages: nn.Sequential, head: nn.Module, spec: dict):
        super().__init__()
        self.stem, self.stages, self.head = stem, stages, head
        self.spec = spec
        freeze = spec.get("freeze") or {}
        self.freeze_at, self.freeze_layers = freeze.get("at", 0.0), freeze.get("layers", 0)

    def forward(self, x):
        return self.head(self.stages(self.stem(x)))

    @property
    def data_sample(self) -> int:
        """Normalized training images `fit_to_data` wants (0: none)."""
        return self.stem.fit_images if isinstance(self.stem, WhiteningStem) else 0

    @torch.no_grad()
    def fit_to_data(self, images: torch.Tensor) -> None:
        if isinstance(self.stem, WhiteningStem):
            self.stem.init_whitening(images)

    def fast_params(self) -> list[nn.Parameter]:
        """Parameters that train at the normalization layers' lr besides those layers' own (optim.param_groups)."""
        stem = self.stem
        return [stem.conv.bias] if isinstance(stem, WhiteningStem) and stem.fast_bias else []

    def on_step(self, step: int, steps_per_epoch: int, total_steps: int) -> None:
        """Called before every optimizer step (and after a resume) with the steps taken so far."""
        if isinstance(self.stem, WhiteningStem):
            self.stem.on_step(step, steps_per_epoch)
        if self.freeze_at and step >= int(round(self.freeze_at * total_steps)):
            for p in self.frozen_late().parameters():
                p.requires_grad_(False)  # no input needs a gradient either, so autograd skips their backward

    def frozen_late(self) -> nn.Module:
        """The layers late freezing stops: the stem and the first `freeze.layers` blocks."""
        return nn.ModuleList([self.stem, *self.stages[: self.freeze_layers]])

    def passes_per_step(self, k: int) -> None:
        """BN running statistics update once per pass: with k passes a step, keep their horizon in images."""
        for m in self.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.momentum:
                m.momentum = 1 - (1 - m.momentum) ** (1 / k)


class Head(nn.Module):
    def __init__(self, c: int, num_classes: int, pool="avg", dropout=0.0, scale=1.0, bias=True):
        super().__init__()
        if pool not in HEAD_POOLS:
            raise ConfigError(f"unknown head.pool '{pool}': choose {' or '.join(HEAD_POOLS)}")
        self.pool = nn.AdaptiveMaxPool2d(1) if pool == "max" else nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(dropout) if dropout else nn.Identity()
        self.fc = nn.Linear(c, num_classes, bias=bias)
        self.scale = scale  # a fixed temperature on the logits; < 1 slows the head's early overconfidence

    def forward(self, x):
        return self.fc(self.drop(self.pool(x).flatten(1))) * self.scale


def build_stem(spec: dict) -> tuple[nn.Module, int, int]:
    """Returns (module, out_channels, pixels lost at the border)."""
    _check_keys(spec, STEM_KEYS, "model.stem")
    _check_values(spec, "model.stem")
    kind = spec.get("type", "conv")
    for key in WHITEN_KEYS:
        if key in spec and kind != "whiten":
            raise ConfigError(f"model.stem.{key} is for a whiten stem (type: whiten): remove it")
    if kind == "none":
        return nn.Identity(), 3, 0
    if kind == "whiten":
        k, drop = spec.get("kernel", 2), spec.get("drop_weakest", 0)
        stem = WhiteningStem(
            spec.get("channels", 2 * (3 * k * k - drop)), k, spec.get("act", "gelu"), spec.get("bias_epochs", 0),
            spec.get("fit_images", 5000), spec.get("fast_bias", False), spec.get("eps", 5e-4),
            spec.get("eps_relative", False), spec.get("contrast_norm", False), drop,
        )  # fmt: skip
        return stem, stem.conv.out_channels, k - 1
    if kind == "conv":
        c, k, bn = spec.get("channels", 32), spec.get("kernel", 3), spec.get("bn", False)
        stem = nn.Sequential(
            nn.Conv2d(3, c, k, padding=k // 2, bias=not bn), norm(c, bn), activation(spec.get("act", "relu"))
        )
        return stem, c, 0
    raise ConfigError(f"unknown model.stem.type '{kind}': choose {', '.join(STEM_TYPES[:-1])} or {STEM_TYPES[-1]}")


def build_model(spec: dict, num_classes: int = 10) -> Net:
    if not isinstance(spec, dict):
        raise ConfigError("model must be a mapping with stem, stages and head")
    _check_keys(spec, MODEL_KEYS, "model")
    stem, c, lost = build_stem(spec.get("stem", {}))
    resolution = 32 - lost
    defaults = spec.get("defaults", {}) or {}
    # a default reaches the blocks that take it; a key no block takes is a typo
    _check_keys(defaults, set().union(*(_options(cls) for cls in BLOCKS.values())), "model.defaults")
    layers = []
    stages = spec.get("stages") or []
    if not isinstance(stages, list) or not stages:
        raise ConfigError("model.stages must be a non-empty list of stages")
    for i, stage in enumerate(stages):
        where = f"model.stages.{i}"
        if not isinstance(stage, dict):
            raise ConfigError(f"{where} must be a mapping, got {stage!r}")
        kind = stage.get("block", "conv")
        if kind not in BLOCKS:
            raise ConfigError(f"unknown block '{kind}' in {where}: choose one of {', '.join(BLOCKS)}")
        cls = BLOCKS[kind]
        options = _options(cls)
        stage = {**{k: v for k, v in defaults.items() if k in options}, **stage}
        stage.pop("block", None)
        cout = stage.pop("channels", c)
        depth = stage.pop("depth", 1)
        pool = stage.pop("pool", None)
        if not isinstance(cout, int) or cout <= 0 or not isinstance(depth, int) or depth <= 0:
            raise ConfigError(f"{where}: channels and depth must be positive integers")
        _check_keys(stage, options | {"block", "channels", "depth", "pool"}, where)
        _check_values(stage, where)
        for j in range(depth):
            p = pool if j == 0 else None
            if p not in (None, "none", False) and resolution < 2:
                raise ConfigError(
                    f"{where}: the feature map is already {resolution}x{resolution}, too small to pool "
                    "again: remove a stage or its pool"
                )
            layers.append(_built(where, cls, c, cout, pool=p, resolution=resolution, **stage))
            c = cout
            if p not in (None, "none", False):
                resolution //= 2
    _check_freeze(spec.get("freeze") or {}, len(layers))
    head_spec = spec.get("head", {}) or {}
    _check_keys(head_spec, HEAD_KEYS, "model.head")
    _check_values(head_spec, "model.head")
    head = _built("model.head", Head, c, num_classes, **head_spec)
    return Net(stem, nn.Sequential(*layers), head, spec)


def _check_freeze(freeze: dict, n_layers: int) -> None:
    _check_keys(freeze, FREEZE_KEYS, "model.freeze")
    at, layers = freeze.get("at", 0.0), freeze.get("layers", 0)
    if not (_is_number(at) and 0 <= at < 1):
        raise ConfigError(f"bad value for 'model.freeze.at': {at!r}; must be a fraction of the steps in [0, 1)")
    if not (_is_int(layers) and 0 <= layers < n_layers):
        raise ConfigError(
            f"bad value for 'model.freeze.layers': {layers!r}; must be 0..{n_layers - 1} (blocks after the stem)"
        )


def check_spec(spec: dict) -> None:
    """The one check of a model spec: build it (cheap), so a bad network is a one-line ConfigError now,
    before data is loaded or downloaded."""
    build_model(spec)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# option -> (test, what a good value is); shared by stem, blocks and head
VALUE_CHECKS = {
    "channels": (lambda v: _is_int(v) and v > 0, "a positive integer"),
    "kernel": (lambda v: _is_int(v) and v > 0, "a positive integer"),
    "heads": (lambda v: _is_int(v) and v > 0, "a positive integer"),
    "fit_images": (lambda v: _is_int(v) and v > 0, "a positive integer (training images the whitening is fitted on)"),
    "dropout": (lambda v: _is_number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "scale": (lambda v: _is_number(v) and v > 0, "a positive number"),
    "bias": (lambda v: isinstance(v, bool), "true or false"),
    "bias_epochs": (lambda v: _is_number(v) and v >= 0, "a number >= 0 (epochs; 0 = the bias always trains)"),
    "identity_init": (lambda v: isinstance(v, bool), "true or false"),
    "fast_bias": (lambda v: isinstance(v, bool), "true or false"),
    "eps": (lambda v: _is_number(v) and v > 0, "a positive number (added to each eigenvalue before the square root)"),
    "eps_relative": (lambda v: isinstance(v, bool), "true or false"),
    "contrast_norm": (lambda v: isinstance(v, bool), "true or false"),
    "drop_weakest": (lambda v: _is_int(v) and v >= 0, "an integer >= 0 (patch directions left out)"),
    "bn": (
        lambda v: isinstance(v, bool) or _good_bn(v),
        "true, false or a mapping of momentum (0-1), eps (> 0), freeze_scale (true/false)",
    ),
}


# BatchNorm option -> test of a value given for it (absent options take BatchNorm's own defaults)
BN_CHECKS = {
    "momentum": lambda m: _is_number(m) and 0 <= m <= 1,
    "eps": lambda e: _is_number(e) and e > 0,
    "freeze_scale": lambda f: isinstance(f, bool),
}


def _good_bn(v) -> bool:
    return isinstance(v, dict) and all(k in BN_CHECKS and BN_CHECKS[k](x) for k, x in v.items())


def spec_schema() -> dict:
    """The network spec as a JSON Schema for editors: its sections, their keys, the names a key may take and
    what a good value is (VALUE_CHECKS); `check_spec` stays the check."""
    block_options = set().union(*(_options(cls) for cls in BLOCKS.values()))
    names = {"act": list(ACTIVATIONS), "attention": [*ATTENTION, "none", None], "pool": [*POOLS, "none", None]}

    def section(keys, **props) -> dict:
        def key(k):
            if k in names:
                return {"enum": names[k]}
            return {"description": f"must be {VALUE_CHECKS[k][1]}"} if k in VALUE_CHECKS else {}

        properties = {k: key(k) for k in sorted(keys)} | props
        return {"type": "object", "properties": properties, "additionalProperties": False}

    return {
        "type": "object",
        "description": "the network: stem -> stages -> head (the format: cifarlab/models/builder.py)",
        "properties": {
            "stem": section(STEM_KEYS, type={"enum": list(STEM_TYPES)}),
            "stages": {
                "type": "array",
                "minItems": 1,
                "items": section(block_options | {"channels", "depth", "pool"}, block={"enum": list(BLOCKS)}),
            },
            "head": section(HEAD_KEYS, pool={"enum": list(HEAD_POOLS)}),
            "defaults": section(block_options),
            "freeze": section(FREEZE_KEYS),
        },
        "additionalProperties": False,
    }


def _check_values(d: dict, where: str) -> None:
    """Types and ranges of options, so a typo in a config is a one-line error rather than a torch traceback."""
    for key, value in d.items():
        if key in VALUE_CHECKS and not VALUE_CHECKS[key][0](value):
            raise ConfigError(f"bad value for '{where}.{key}': {value!r}; must be {VALUE_CHECKS[key][1]}")


def _built(where: str, cls, *args, **kwargs) -> nn.Module:
    """Construct a layer; whatever torch rejects in it is reported against the config entry that asked for it."""
    try:
        return cls(*args, **kwargs)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
    except (TypeError, ValueError, RuntimeError, AssertionError) as e:
        raise ConfigError(f"{where}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None


def _options(cls) -> set:
    """The options a block takes from a config (its constructor's, less what the builder passes itself)."""
    return set(inspect.signature(cls.__init__).parameters) - {"self", "cin", "cout", "pool", "resolution"}


def _check_keys(d: dict, valid: set, where: str) -> None:
    if not isinstance(d, dict):
        raise ConfigError(f"{where} must be a mapping, got {d!r}")
    unknown = sorted(set(d) - set(valid))
    if unknown:
        raise ConfigError(f"unknown key '{unknown[0]}' in {where}: valid keys are {', '.join(sorted(valid))}")


@contextlib.contextmanager
def bn_stats_frozen(model: nn.Module):
    """Batch norm still normalizes with batch statistics but leaves its running ones as they are (momentum 0),
    e.g. for a scoring pass that must not count as a training batch."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, mom in zip(bns, saved):
            m.momentum = mom


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module) -> int:
    """Forward FLOPs for one 32x32 image (multiply-add = 2 FLOPs), counted by PyTorch's FlopCounterMode."""
    was_training = model.training
    model.eval()
    p = next(model.parameters())
    x = torch.zeros(1, 3, 32, 32, device=p.device)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    model.train(was_training)
    return int(counter.get_total_flops())
