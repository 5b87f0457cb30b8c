"""Batched augmentation: every op acts on a whole (B, C, H, W) batch on its device, no per-image Python.

Randomness is drawn on the host generator (a seed gives the same batch on every device) and which images take
an op is decided there too, so the device never waits on the host: no boolean masks of device tensors.

Random translate is a crop of a padded image; it is done with one gather (advanced indexing) whose
result comes out channels-last, the layout the model wants anyway.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..hardware import host_to_device
from .corruptions import TRAIN_OP_KIND, box_resize, jpeg_roundtrip

TRAIN_CORRUPTIONS = tuple(TRAIN_OP_KIND)  # what `corrupt_ops` may name (each makes its families seen)
JPEG_QUALITY = (20, 95)  # the jpeg op's default quality range: heavy blocking to barely visible


def reflect_index(size: int, pad: int, device=None) -> torch.Tensor:
    """Indices that reflect-pad an axis of `size` by `pad` (like numpy's 'reflect', edge not repeated)."""
    i = torch.arange(-pad, size + pad, device=device).abs()
    return torch.where(i >= size, 2 * (size - 1) - i, i)


def random_translate(x: torch.Tensor, pad: int, generator: torch.Generator, mode: str = "reflect") -> torch.Tensor:
    """Shift each image by up to `pad` pixels in x and y, filling the border by reflection or zeros."""
    b, c, h, w = x.shape
    dev = x.device
    dy = host_to_device(torch.randint(0, 2 * pad + 1, (b,), generator=generator), dev)
    dx = host_to_device(torch.randint(0, 2 * pad + 1, (b,), generator=generator), dev)
    if mode == "reflect":
        rows = reflect_index(h, pad, dev)[dy[:, None] + torch.arange(h, device=dev)]  # (B, H)
        cols = reflect_index(w, pad, dev)[dx[:, None] + torch.arange(w, device=dev)]  # (B, W)
        out = x[torch.arange(b, device=dev)[:, None, None], :, rows[:, :, None], cols[:, None, :]]  # (B,H,W,C)
        return out.permute(0, 3, 1, 2)
    rows = dy[:, None] - pad + torch.arange(h, device=dev)
    cols = dx[:, None] - pad + torch.arange(w, device=dev)
    inside = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
    out = x[
        torch.arange(b, device=dev)[:, None, None],
        :,
        rows.clamp(0, h - 1)[:, :, None],
        cols.clamp(0, w - 1)[:, None, :],
    ]
    return (out * inside[..., None].to(out.dtype)).permute(0, 3, 1, 2)


def flip(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mirror left-right the images where `mask` (B,) is True."""
    return torch.where(mask.view(-1, 1, 1, 1), x.flip(-1), x)


def square_mask(x: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """(B, 1, H, W) bool: a size x size square at a random centre in each image (clipped at the border)."""
    b, _, h, w = x.shape
    dev = x.device
    cy = host_to_device(torch.randint(0, h, (b,), generator=generator), dev)
    cx = host_to_device(torch.randint(0, w, (b,), generator=generator), dev)
    y0, x0 = cy - size // 2, cx - size // 2
    ar_h, ar_w = torch.arange(h, device=dev), torch.arange(w, device=dev)
    in_y = (ar_h[None] >= y0[:, None]) & (ar_h[None] < (y0 + size)[:, None])
    in_x = (ar_w[None] >= x0[:, None]) & (ar_w[None] < (x0 + size)[:, None])
    return (in_y[:, :, None] & in_x[:, None, :])[:, None]


def cutout(x: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Zero a size x size square at a random centre in each image (clipped at the border)."""
    return x * (~square_mask(x, size, generator)).to(x.dtype)


def color_jitter(x: torch.Tensor, brightness: float, contrast: float, generator: torch.Generator) -> torch.Tensor:
    """Per image, pixels (0-255) shifted by up to +/- brightness x 255 and scaled by 1 +/- contrast around the
    image's mean, clipped to the pixel range; one draw of each per image."""
    b = len(x)
    x = x.float()
    if contrast:
        c = 1 + contrast * (2 * torch.rand(b, generator=generator) - 1)
        mean = x.mean((1, 2, 3), keepdim=True)
        x = mean + (x - mean) * host_to_device(c, x.device).view(-1, 1, 1, 1)
    if brightness:
        shift = brightness * 255 * (2 * torch.rand(b, generator=generator) - 1)
        x = x + host_to_device(shift, x.device).view(-1, 1, 1, 1)
    return x.clamp_(0, 255)


def add_noise(x: torch.Tensor, generator: torch.Generator, max_sigma: float = 0.1) -> torch.Tensor:
    """Half the images: Gaussian noise of a random sigma up to max_sigma (of the pixel range); the other half:
    salt and pepper on a random share, up to 8%, of the values. A float batch 0-255 in and out."""
    b, dev = len(x), x.device
    sigma = torch.rand(b, generator=generator) * max_sigma * 255
    amount = torch.rand(b, generator=generator) * 0.08
    gauss = torch.rand(b, generator=generator) < 0.5
    noise, u = torch.randn(x.shape, generator=generator), torch.rand(x.shape, generator=generator)
    sigma, amount, gauss, noise, u = (host_to_device(t, dev) for t in (sigma, amount, gauss, noise, u))
    noisy = x + sigma.view(-1, 1, 1, 1) * noise
    flip = u < amount.view(-1, 1, 1, 1)
    salted = torch.where(flip, (u < amount.view(-1, 1, 1, 1) / 2).to(x.dtype) * 255, x)
    return torch.where(gauss.view(-1, 1, 1, 1), noisy, salted).clamp(0, 255)


def patch_gaussian(x: torch.Tensor, generator: torch.Generator, size: int = 25, max_sigma: float = 1.0) -> torch.Tensor:
    """Patch Gaussian (Lopes et al. 2019; their CIFAR-10 setting): Gaussian noise of a random sigma up to
    max_sigma (of the pixel range) inside a size x size square at a random centre; the rest of the image stays
    clean, so the net learns to ignore noise without losing the clean view. A float batch 0-255 in and out."""
    sigma = host_to_device(torch.rand(len(x), generator=generator) * max_sigma * 255, x.device)
    noise = host_to_device(torch.randn(x.shape, generator=generator), x.device)
    inside = square_mask(x, size, generator).to(x.dtype)
    return (x + inside * sigma.view(-1, 1, 1, 1) * noise).clamp(0, 255)


def random_pixelate(x: torch.Tensor, generator: torch.Generator, min_factor: float = 0.5) -> torch.Tensor:
    """Each image shrunk to a random side in [min_factor, 1) of its own (Pillow's BOX) and blown back up."""
    b, h = len(x), x.shape[-1]
    sides = (h * (min_factor + (1 - min_factor) * torch.rand(b, generator=generator))).long().clamp(1, h - 1)
    out = x.clone()
    for side in sides.unique().tolist():  # a handful of sizes: each done for all its images at once
        idx = host_to_device((sides == side).nonzero().squeeze(1), x.device)
        out[idx] = box_resize(box_resize(x[idx], side), h)
    return out


def corrupt_share(
    x: torch.Tensor, fraction: float, ops, generator: torch.Generator, jpeg_quality=JPEG_QUALITY
) -> torch.Tensor:
    """A random `fraction` of the batch takes one of `ops` each (TRAIN_CORRUPTIONS), at a random strength
    (jpeg: a quality drawn from the inclusive range `jpeg_quality`); the rest is left as it is. Float 0-255 in
    and out. Why: the net learns to ignore the fine detail that noise, JPEG and pixelation corrupt, at a small
    clean cost because most of each batch stays clean."""
    b, dev = len(x), x.device
    chosen = torch.rand(b, generator=generator) < fraction
    which = torch.randint(0, len(ops), (b,), generator=generator)
    x = x.float().clone()  # the caller's batch stays as it was
    lo, hi = jpeg_quality
    for k, op in enumerate(ops):
        idx = host_to_device((chosen & (which == k)).nonzero().squeeze(1), dev)
        if not len(idx):
            continue
        part = x[idx]
        if op == "noise":
            part = add_noise(part, generator)
        elif op == "patch_gaussian":
            part = patch_gaussian(part, generator)
        elif op == "jpeg":
            part = jpeg_roundtrip(part, torch.randint(lo, hi + 1, (len(idx),), generator=generator)).float()
        else:
            part = random_pixelate(part, generator)
        x[idx] = part.to(x.dtype)
    return x


# AugMix's operations without the two that change contrast (autocontrast, equalize), so the contrast family
# stays held out; rotate and shear are affine warps, so they make elastic_transform (an affine warp, then a
# smooth displacement) seen.
AUGMIX_OPS = ("posterize", "solarize", "rotate", "shear_x", "shear_y", "translate_x", "translate_y")


def augmix_op(x: torch.Tensor, op: torch.Tensor, level: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    """Image i takes AUGMIX_OPS[op[i]] (-1: none) at strength level[i] in [0, 1] (AugMix's level / 10),
    mirrored when sign[i] is -1. Float 0-255 in and out; the warps fill with black as Pillow's do.
    op, level and sign are host tensors: each op's images are picked on the host, without a device sync."""
    x, dev = x.clone(), x.device

    def rows(mask):
        return host_to_device(mask.nonzero().squeeze(1), dev)

    post = op == 0
    if post.any():  # keep 4 bits, or 3 from level 0.25 on
        i, q = rows(post), host_to_device(2.0 ** (4 + (4 * level[post]).floor().clamp(max=4)), dev).view(-1, 1, 1, 1)
        x[i] = (x[i] / q).floor() * q
    sol = op == 1
    if sol.any():  # invert the pixels at or above 256 - 256 * level
        i, thr = rows(sol), host_to_device(256 - (256 * level[sol]).floor(), dev).view(-1, 1, 1, 1)
        x[i] = torch.where(x[i] >= thr, 255 - x[i], x[i])
    warp = op >= 2
    if warp.any():
        o, lv, sg, n = op[warp], level[warp], sign[warp], int(warp.sum())
        theta = torch.eye(2, 3).repeat(n, 1, 1)
        angle = torch.deg2rad((30 * lv).floor() * sg)
        rot = o == 2
        theta[rot, 0, 0], theta[rot, 0, 1] = angle[rot].cos(), -angle[rot].sin()
        theta[rot, 1, 0], theta[rot, 1, 1] = angle[rot].sin(), angle[rot].cos()
        theta[o == 3, 0, 1] = (0.3 * lv * sg)[o == 3]
        theta[o == 4, 1, 0] = (0.3 * lv * sg)[o == 4]
        shift = 2 * (x.shape[-1] / 3 * lv).floor() * sg / x.shape[-1]  # pixels -> the grid's [-1, 1] units
        theta[o == 5, 0, 2] = shift[o == 5]
        theta[o == 6, 1, 2] = shift[o == 6]
        i = rows(warp)
        grid = F.affine_grid(host_to_device(theta, dev), [n, *x.shape[1:]], align_corners=False)
        x[i] = F.grid_sample(x[i], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return x


def augmix(x: torch.Tensor, generator: torch.Generator, width: int = 3, max_depth: int = 3, severity: float = 0.3):
    """AugMix (Hendrycks et al. 2020) batched: each image is mixed with a convex combination (Dirichlet weights)
    of `width` chains of 1-`max_depth` random ops at random strengths up to `severity`, by a uniform weight.
    Mixing keeps the result near the image, so the net learns from diverse views without a new distribution."""
    b, dev = len(x), x.device
    w = -torch.log(torch.rand(b, width, generator=generator))  # Dirichlet(1, ..., 1), normalized below
    w = host_to_device(w / w.sum(1, keepdim=True), dev)
    m = host_to_device(torch.rand(b, generator=generator), dev).view(-1, 1, 1, 1)
    mixed = torch.zeros_like(x, dtype=torch.float32)
    for k in range(width):
        depth = torch.randint(1, max_depth + 1, (b,), generator=generator)
        y = x.float()
        for d in range(max_depth):
            op = torch.randint(0, len(AUGMIX_OPS), (b,), generator=generator)
            op = torch.where(depth > d, op, -1)
            level = 0.01 + (severity - 0.01) * torch.rand(b, generator=generator)  # AugMix's 0.1-3 of 10
            sign = torch.where(torch.rand(b, generator=generator) < 0.5, -1.0, 1.0)
            y = augmix_op(y, op, level, sign)
        mixed += w[:, k].view(-1, 1, 1, 1) * y
    return ((1 - m) * x.float() + m * mixed).clamp(0, 255)


def augmix_share(x: torch.Tensor, fraction: float, generator: torch.Generator) -> torch.Tensor:
    """A random `fraction` of the batch replaced by its AugMix mix; the rest left as it is. Float 0-255 out.
    Why: diverse changes unlike any test corruption teach invariance that carries to the held-out families."""
    idx = host_to_device((torch.rand(len(x), generator=generator) < fraction).nonzero().squeeze(1), x.device)
    x = x.float().clone()  # the caller's batch stays as it was
    if len(idx):
        x[idx] = augmix(x[idx], generator)
    return x


def train_size(cfg, epoch: int, full: int = 32) -> int:
    """Image side for `epoch` under progressive resizing: resize_from at epoch 0, growing linearly to `full`
    at epoch resize_until, rounded down to a multiple of 4 so only a few distinct sizes occur."""
    if not cfg.resize_from or epoch >= cfg.resize_until:
        return full
    size = cfg.resize_from + (full - cfg.resize_from) * epoch / cfg.resize_until
    return max(cfg.resize_from, int(size) // 4 * 4)


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Downscale a float batch to size x size (antialiased, so no aliasing from skipped pixels)."""
    if x.shape[-1] == size:
        return x
    out = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return (
        out.contiguous(memory_format=torch.channels_last) if x.is_contiguous(memory_format=torch.channels_last) else out
    )


def robust_shares_on(cfg, progress: float) -> bool:
    """Whether the corruption and AugMix shares apply at `progress` (epochs done, fractional): before
    robust_until, or always when it is 0 (the clean tail lets the low-lr end of the schedule fit clean images)."""
    return not cfg.robust_until or progress < cfg.robust_until


def batch_augment(
    x: torch.Tensor,
    cfg,
    generator: torch.Generator,
    alternate_mask: torch.Tensor,
    normalize,
    size: int = 32,
    progress: float = 0.0,
):
    """uint8 batch -> augmented, normalized float batch (size x size), following an AugmentConfig; `progress`
    is the epochs done when the batch starts (fractional)."""
    if cfg.translate > 0:
        x = random_translate(x, cfg.translate, generator, cfg.pad_mode)
    if cfg.flip == "random":
        x = flip(x, host_to_device(torch.rand(len(x), generator=generator) < 0.5, x.device))
    elif cfg.flip == "alternate":
        x = flip(x, alternate_mask)
    if cfg.brightness or cfg.contrast:
        x = color_jitter(x, cfg.brightness, cfg.contrast, generator)
    robust = robust_shares_on(cfg, progress)
    if cfg.augmix and robust:
        x = augmix_share(x, cfg.augmix, generator)
    if cfg.corrupt and robust:
        x = corrupt_share(x, cfg.corrupt, cfg.corrupt_ops, generator, cfg.jpeg_quality)
    x = normalize(x)
    if cfg.cutout > 0:  # after normalizing, so the square is set to the dataset mean
        x = cutout(x, cfg.cutout, generator)
    return resize(x, size)
