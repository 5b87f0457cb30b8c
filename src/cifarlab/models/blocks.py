"""Building blocks, registered by name so a config can ask for them.

Every block is built as `Block(in_channels, out_channels, pool=..., **options)`; options shared by all
blocks (bn, act, attention, dropout) are handled here so a preset turns a technique on with one key.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError

BLOCKS: dict[str, type[nn.Module]] = {}
ATTENTION: dict[str, type[nn.Module]] = {}
ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "none": nn.Identity}


def register(table: dict, name: str):
    def deco(cls):
        table[name] = cls
        return cls

    return deco


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ConfigError(f"unknown activation '{name}': choose one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


class BatchNorm(nn.BatchNorm2d):
    """BatchNorm whose scale can be frozen at 1 (then only the shift learns: fewer, better-behaved params)."""

    def __init__(self, c: int, momentum: float = 0.1, eps: float = 1e-5, freeze_scale: bool = False):
        super().__init__(c, momentum=momentum, eps=eps)
        self.weight.requires_grad_(not freeze_scale)


def norm(c: int, bn: bool | dict) -> nn.Module:
    if not bn:
        return nn.Identity()
    opts = bn if isinstance(bn, dict) else {}
    return BatchNorm(c, **opts)


# channels per group of the anti-aliasing blur in bf16 on a CPU: 8 ran as fast as 16-64 (AMX Xeon)
BLUR_GROUP_WIDTH = 8


class MaxBlurPool2d(nn.Module):
    """Anti-aliased max-pool (Zhang 2019): a dense 2x2 max, then a [1,2,1] binomial low-pass taken every 2 pixels.

    Why: a strided max aliases high frequencies (noise, JPEG blocks, pixel grids) into the coarse map; the low-pass
    before subsampling keeps them out. Output sizes are max-pool's (floor of half).
    """

    def __init__(self, channels: int):
        super().__init__()
        taps = torch.tensor([1.0, 2.0, 1.0])
        kernel = taps[:, None] * taps[None, :] / 16
        width = math.gcd(channels, BLUR_GROUP_WIDTH)
        grouped = torch.zeros(channels, width, 3, 3)
        grouped[torch.arange(channels), torch.arange(channels) % width] = kernel  # each channel blurs only itself
        # Fixed-shape kernels (ONNX needs the shape); not saved: checkpoints stay as they were.
        self.register_buffer("blur", kernel.expand(channels, 1, 3, 3).contiguous(), persistent=False)
        self.register_buffer("grouped_blur", grouped, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(x, 2, stride=1)  # H -> H-1, then the strided blur -> floor(H/2)
        if x.device.type == "cpu" and x.dtype == torch.bfloat16:
            # The same sums as the depthwise conv, which oneDNN ran 5-15x slower in bf16 (docs/experiments.md).
            weight = self.grouped_blur
        else:
            weight = self.blur  # depthwise: faster in fp32, and what GPUs and export always ran
        out = F.conv2d(x, weight.to(x.dtype), stride=2, padding=1, groups=x.shape[1] // weight.shape[1])
        # Border outputs average only the taps inside the image: zero padding would darken the edges.
        inside = F.conv2d(torch.ones_like(x[:1, :1]), self.blur[:1].to(x.dtype), stride=2, padding=1)
        return out / inside


# a stage's downsampling by 2 (or none), built for the channels it sees
POOLS = {"max": lambda c: nn.MaxPool2d(2), "avg": lambda c: nn.AvgPool2d(2), "maxblur": MaxBlurPool2d}


def pool_layer(kind: str | None, channels: int) -> nn.Module:
    if kind in (None, "none", False):
        return nn.Identity()
    if kind in POOLS:
        return POOLS[kind](channels)
    raise ConfigError(f"unknown pool '{kind}': choose {', '.join(POOLS)} or none")


def conv(cin: int, cout: int, k: int = 3, bias: bool = True, identity_init: bool = False) -> nn.Conv2d:
    layer = nn.Conv2d(cin, cout, k, padding=k // 2, bias=bias)
    if identity_init:
        # Start as (partly) the identity map: the first min(cin, cout) filters pass their input through,
        # which lets deep plain stacks train from the first step.
        with torch.no_grad():
            n = min(cin, cout)
            nn.init.dirac_(layer.weight[:n, :n])
    return layer


# ------------------------------------------------------------------------------------------ attention
@register(ATTENTION, "se")
class SqueezeExcite(nn.Module):
    """Channel attention (Hu et al. 2018): reweight channels by a gate computed from their global mean."""

    def __init__(self, c: int, reduction: int = 8):
        super().__init__()
        hidden = max(4, c // reduction)
        self.fc1, self.fc2 = nn.Conv2d(c, hidden, 1), nn.Conv2d(hidden, c, 1)
        self.last_weights: torch.Tensor | None = None
        self.record = False  # keep the gates of the last batch (for inspection; off in training and export)

    def forward(self, x):
        w = torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean((2, 3), keepdim=True)))))
        if self.record:
            self.last_weights = w.detach()
        return x * w


@register(ATTENTION, "cbam")
class CBAM(nn.Module):
    """Channel then spatial attention (Woo et al. 2018). With `record` set, the maps are kept for visualization."""

    def __init__(self, c: int, reduction: int = 8, kernel: int = 7):
        super().__init__()
        hidden = max(4, c // reduction)
        self.mlp = nn.Sequential(nn.Conv2d(c, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, c, 1))
        self.spatial = nn.Conv2d(2, 1, kernel, padding=kernel // 2)
        self.last_channel: torch.Tensor | None = None
        self.last_spatial: torch.Tensor | None = None
        self.record = False

    def forward(self, x):
        ch = torch.sigmoid(self.mlp(x.mean((2, 3), keepdim=True)) + self.mlp(x.amax((2, 3), keepdim=True)))
        x = x * ch
        sp = torch.sigmoid(self.spatial(torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)))
        if self.record:
            self.last_channel, self.last_spatial = ch.detach(), sp.detach()
        return x * sp


def make_attention(kind: str | None, c: int) -> nn.Module:
    if kind in (None, "none", False):
        return nn.Identity()
    if kind not in ATTENTION:
        raise ConfigError(f"unknown attention '{kind}': choose one of {', '.join(ATTENTION)} or none")
    return ATTENTION[kind](c)


# --------------------------------------------------------------------------------------------- blocks
@register(BLOCKS, "conv")
class ConvBlock(nn.Module):
    """conv -> [pool] -> [bn] -> act -> [attention] -> [dropout].

    Pooling right after the conv (before norm and activation) does those at a quarter of the pixels;
    max-pool commutes with a monotone activation, so the function is nearly the same and cheaper.
    """

    def __init__(
        self,
        cin,
        cout,
        pool=None,
        kernel=3,
        bn=False,
        act="relu",
        attention=None,
        dropout=0.0,
        identity_init=False,
        resolution=None,
    ):
        super().__init__()
        self.conv = conv(cin, cout, kernel, bias=not bn, identity_init=identity_init)
        self.pool = pool_layer(pool, cout)
        self.norm = norm(cout, bn)
        self.act = activation(act)
        self.attn = make_attention(attention, cout)
        self.drop = nn.Dropout2d(dropout) if dropout else nn.Identity()

    def forward(self, x):
        return self.drop(self.attn(self.act(self.norm(self.pool(self.conv(x))))))


@register(BLOCKS, "residual")
class ResidualBlock(nn.Module):
    """Basic residual block: [pool] -> conv-bn-act-conv-bn -> [attention] -> + shortcut -> act."""

    def __init__(
        self,
        cin,
        cout,
        pool=None,
        kernel=3,
        bn=False,
        act="relu",
        attention=None,
        dropout=0.0,
        identity_init=False,
        resolution=None,
    ):
        super().__init__()
        self.pool = pool_layer(pool, cin)
        self.conv1 = conv(cin, cout, kernel, bias=not bn, identity_init=identity_init)
        self.norm1, self.act1 = norm(cout, bn), activation(act)
        self.conv2, self.norm2 = conv(cout, cout, kernel, bias=not bn, identity_init=identity_init), norm(cout, bn)
        self.attn = make_attention(attention, cout)
        self.shortcut = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1, bias=False)
        self.act = activation(act)
        self.drop = nn.Dropout2d(dropout) if dropout else nn.Identity()
        if bn and self.norm2.weight.requires_grad:
            # Zero-init the last scale so each block starts as the identity (Goyal et al. 2017).
            nn.init.zeros_(self.norm2.weight)

    def forward(self, x):
        x = self.pool(x)
        out = self.norm2(self.conv2(self.act1(self.norm1(self.conv1(x)))))
        return self.drop(self.act(self.attn(out) + self.shortcut(x)))


@register(BLOCKS, "self_attention")
class SelfAttentionBlock(nn.Module):
    """Multi-head self-attention over the pixels of a (small) feature map, pre-norm, with a residual.

    A learned positional embedding of the map's resolution tells the heads where each pixel is.
    """

    def __init__(
        self,
        cin,
        cout,
        pool=None,
        heads=4,
        resolution=None,
        dropout=0.0,
    ):  # no conv, BN, activation or attention option: model.defaults' ones do not reach it, a stage's are refused
        super().__init__()
        if cin != cout:
            raise ConfigError(
                f"self_attention keeps the width: it gets {cin} channels, so set channels to {cin} "
                f"(not {cout}), or change the width in a conv or residual stage before it"
            )
        if cout % heads:
            raise ConfigError(f"self_attention: {cout} channels do not split into {heads} heads")
        self.pool = pool_layer(pool, cout)
        self.heads = heads
        self.norm = nn.GroupNorm(1, cout)
        self.qkv = nn.Conv2d(cout, 3 * cout, 1)
        self.proj = nn.Conv2d(cout, cout, 1)
        nn.init.zeros_(self.proj.weight), nn.init.zeros_(self.proj.bias)  # start as identity
        res = resolution // (2 if pool not in (None, "none", False) else 1)
        self.pos = nn.Parameter(torch.zeros(1, cout, res, res))
        self.drop = nn.Dropout(dropout) if dropout else nn.Identity()
        self.last_weights: torch.Tensor | None = None
        self.record = False

    def forward(self, x):
        x = self.pool(x)
        b, c, h, w = x.shape
        pos = self.pos
        if pos.shape[-2:] != (h, w):  # another input size (progressive resizing, large images): rescale
            pos = F.interpolate(pos, size=(h, w), mode="bilinear", align_corners=False)
        q, k, v = self.qkv(self.norm(x + pos)).reshape(b, 3, self.heads, c // self.heads, h * w).unbind(1)
        q, k, v = (t.transpose(-1, -2) for t in (q, k, v))  # (B, heads, HW, d)
        if self.record:  # explicit weights only when asked: the fused kernel does not expose them
            att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), -1)
            self.last_weights = att.detach()
            out = att @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v)
        out = out.transpose(-1, -2).reshape(b, c, h, w)
        return x + self.drop(self.proj(out))
