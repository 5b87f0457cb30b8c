"""Batched augmentation: every op acts on a whole (B, C, H, W) batch on its device, no per-image Python.

Random translate is a crop of a padded image; it is done with one gather (advanced indexing) whose
result comes out channels-last, the layout the model wants anyway.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .corruptions import box_resize, jpeg_roundtrip

TRAIN_CORRUPTIONS = ("noise", "jpeg", "pixelate")  # what `corrupt_ops` may name (each makes its families seen)


def reflect_index(size: int, pad: int, device=None) -> torch.Tensor:
    """Indices that reflect-pad an axis of `size` by `pad` (like numpy's 'reflect', edge not repeated)."""
    i = torch.arange(-pad, size + pad, device=device).abs()
    return torch.where(i >= size, 2 * (size - 1) - i, i)


def random_translate(x: torch.Tensor, pad: int, generator: torch.Generator, mode: str = "reflect") -> torch.Tensor:
    """Shift each image by up to `pad` pixels in x and y, filling the border by reflection or zeros."""
    b, c, h, w = x.shape
    dev = x.device
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(dev)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(dev)
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


def cutout(x: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Zero a size x size square at a random centre in each image (clipped at the border)."""
    b, _, h, w = x.shape
    dev = x.device
    cy = torch.randint(0, h, (b,), generator=generator).to(dev)
    cx = torch.randint(0, w, (b,), generator=generator).to(dev)
    y0, x0 = cy - size // 2, cx - size // 2
    ar_h, ar_w = torch.arange(h, device=dev), torch.arange(w, device=dev)
    in_y = (ar_h[None] >= y0[:, None]) & (ar_h[None] < (y0 + size)[:, None])
    in_x = (ar_w[None] >= x0[:, None]) & (ar_w[None] < (x0 + size)[:, None])
    keep = ~(in_y[:, :, None] & in_x[:, None, :])
    return x * keep[:, None].to(x.dtype)


def color_jitter(x: torch.Tensor, brightness: float, contrast: float, generator: torch.Generator) -> torch.Tensor:
    """Per image, pixels (0-255) shifted by up to +/- brightness x 255 and scaled by 1 +/- contrast around the
    image's mean, clipped to the pixel range; one draw of each per image."""
    b = len(x)
    x = x.float()
    if contrast:
        c = 1 + contrast * (2 * torch.rand(b, generator=generator) - 1)
        mean = x.mean((1, 2, 3), keepdim=True)
        x = mean + (x - mean) * c.to(x.device).view(-1, 1, 1, 1)
    if brightness:
        shift = brightness * 255 * (2 * torch.rand(b, generator=generator) - 1)
        x = x + shift.to(x.device).view(-1, 1, 1, 1)
    return x.clamp_(0, 255)


def add_noise(x: torch.Tensor, generator: torch.Generator, max_sigma: float = 0.1) -> torch.Tensor:
    """Half the images: Gaussian noise of a random sigma up to max_sigma (of the pixel range); the other half:
    salt and pepper on a random share, up to 8%, of the values. A float batch 0-255 in and out."""
    b, dev = len(x), x.device
    sigma = torch.rand(b, generator=generator) * max_sigma * 255
    amount = torch.rand(b, generator=generator) * 0.08
    gauss = (torch.rand(b, generator=generator) < 0.5).to(dev).view(-1, 1, 1, 1)
    noisy = x + sigma.to(dev).view(-1, 1, 1, 1) * torch.randn(x.shape, generator=generator).to(dev)
    u = torch.rand(x.shape, generator=generator).to(dev)
    flip = u < amount.to(dev).view(-1, 1, 1, 1)
    salted = torch.where(flip, (u < amount.to(dev).view(-1, 1, 1, 1) / 2).to(x.dtype) * 255, x)
    return torch.where(gauss, noisy, salted).clamp(0, 255)


def random_pixelate(x: torch.Tensor, generator: torch.Generator, min_factor: float = 0.5) -> torch.Tensor:
    """Each image shrunk to a random side in [min_factor, 1) of its own (Pillow's BOX) and blown back up."""
    b, h = len(x), x.shape[-1]
    sides = (h * (min_factor + (1 - min_factor) * torch.rand(b, generator=generator))).long().clamp(1, h - 1)
    out = x.clone()
    for side in sides.unique().tolist():  # a handful of sizes: each done for all its images at once
        idx = (sides == side).nonzero().squeeze(1).to(x.device)
        out[idx] = box_resize(box_resize(x[idx], side), h)
    return out


def corrupt_share(x: torch.Tensor, fraction: float, ops, generator: torch.Generator) -> torch.Tensor:
    """A random `fraction` of the batch takes one of `ops` each (noise, jpeg, pixelate), at a random strength;
    the rest is left as it is. Float 0-255 in and out."""
    b, dev = len(x), x.device
    chosen = torch.rand(b, generator=generator) < fraction
    which = torch.randint(0, len(ops), (b,), generator=generator)
    x = x.float().clone()  # the caller's batch stays as it was
    for k, op in enumerate(ops):
        idx = (chosen & (which == k)).nonzero().squeeze(1).to(dev)
        if not len(idx):
            continue
        part = x[idx]
        if op == "noise":
            part = add_noise(part, generator)
        elif op == "jpeg":
            part = jpeg_roundtrip(part, torch.randint(20, 96, (len(idx),), generator=generator)).float()
        else:
            part = random_pixelate(part, generator)
        x[idx] = part.to(x.dtype)
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


def batch_augment(
    x: torch.Tensor, cfg, generator: torch.Generator, alternate_mask: torch.Tensor, normalize, size: int = 32
):
    """uint8 batch -> augmented, normalized float batch (size x size), following an AugmentConfig."""
    if cfg.translate > 0:
        x = random_translate(x, cfg.translate, generator, cfg.pad_mode)
    if cfg.flip == "random":
        x = flip(x, torch.rand(len(x), generator=generator).to(x.device) < 0.5)
    elif cfg.flip == "alternate":
        x = flip(x, alternate_mask)
    if cfg.brightness or cfg.contrast:
        x = color_jitter(x, cfg.brightness, cfg.contrast, generator)
    if cfg.corrupt:
        x = corrupt_share(x, cfg.corrupt, cfg.corrupt_ops, generator)
    x = normalize(x)
    if cfg.cutout > 0:  # after normalizing, so the square is set to the dataset mean
        x = cutout(x, cfg.cutout, generator)
    return resize(x, size)
