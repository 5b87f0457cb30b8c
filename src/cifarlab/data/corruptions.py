"""Common image corruptions at 5 severities, generated locally on whole batches (after CIFAR-10-C).

Each takes uint8 images (B, 3, H, W) and returns uint8 images of the same shape; severity 1..5 and the
effect grows with it. JPEG is a vectorized re-implementation (8x8 DCT, standard quantization tables),
so no per-image Python or image library is needed.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SEVERITIES = (1, 2, 3, 4, 5)


def _f(x):  # uint8 -> float in [0, 1]
    return x.float() / 255


def _u8(x):
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def gaussian_noise(x, s, generator=None):
    sigma = (0.04, 0.06, 0.08, 0.09, 0.10)[s - 1]
    noise = torch.randn(x.shape, generator=generator).to(x.device)
    return _u8(_f(x) + sigma * noise)


def gaussian_blur(x, s, generator=None):
    sigma = (0.4, 0.6, 0.7, 0.8, 1.0)[s - 1]
    r = max(1, math.ceil(3 * sigma))
    t = torch.arange(-r, r + 1, dtype=torch.float32, device=x.device)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    c = x.shape[1]
    y = F.pad(_f(x), (r, r, r, r), mode="reflect")
    y = F.conv2d(y, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    y = F.conv2d(y, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)
    return _u8(y)


def contrast(x, s, generator=None):
    c = (0.75, 0.5, 0.4, 0.3, 0.15)[s - 1]
    y = _f(x)
    mean = y.mean((1, 2, 3), keepdim=True)
    return _u8((y - mean) * c + mean)


def brightness(x, s, generator=None):
    c = (0.05, 0.1, 0.15, 0.2, 0.3)[s - 1]
    return _u8(_f(x) + c)


def pixelate(x, s, generator=None):
    c = (0.95, 0.9, 0.85, 0.75, 0.65)[s - 1]
    h, w = x.shape[-2:]
    small = F.interpolate(_f(x), size=(max(1, int(h * c)), max(1, int(w * c))), mode="area")
    return _u8(F.interpolate(small, size=(h, w), mode="nearest"))


# Standard JPEG quantization tables (ITU T.81, Annex K).
_QY = torch.tensor(
    [
        16,
        11,
        10,
        16,
        24,
        40,
        51,
        61,
        12,
        12,
        14,
        19,
        26,
        58,
        60,
        55,
        14,
        13,
        16,
        24,
        40,
        57,
        69,
        56,
        14,
        17,
        22,
        29,
        51,
        87,
        80,
        62,
        18,
        22,
        37,
        56,
        68,
        109,
        103,
        77,
        24,
        35,
        55,
        64,
        81,
        104,
        113,
        92,
        49,
        64,
        78,
        87,
        103,
        121,
        120,
        101,
        72,
        92,
        95,
        98,
        112,
        100,
        103,
        99,
    ],
    dtype=torch.float32,
).view(8, 8)
_QC = torch.tensor(
    [
        17,
        18,
        24,
        47,
        99,
        99,
        99,
        99,
        18,
        21,
        26,
        66,
        99,
        99,
        99,
        99,
        24,
        26,
        56,
        99,
        99,
        99,
        99,
        99,
        47,
        66,
        99,
        99,
        99,
        99,
        99,
        99,
    ]
    + [99] * 32,
    dtype=torch.float32,
).view(8, 8)


def _dct_matrix(n=8, device=None):
    k = torch.arange(n, dtype=torch.float32, device=device)
    m = torch.cos(math.pi * (2 * k[None] + 1) * k[:, None] / (2 * n)) * math.sqrt(2 / n)
    m[0] /= math.sqrt(2)
    return m


def jpeg_compress(x, s, generator=None):
    """JPEG round trip at quality (80, 65, 58, 50, 40): YCbCr, 8x8 DCT, quantize, invert."""
    quality = (80, 65, 58, 50, 40)[s - 1]
    scale = 5000 / quality if quality < 50 else 200 - 2 * quality
    dev = x.device
    q = torch.stack([_QY, _QC, _QC]).to(dev)
    q = ((q * scale + 50) / 100).floor().clamp(1, 255).view(1, 3, 1, 1, 8, 8)
    y = x.float()
    r, g, b = y.unbind(1)
    ycc = (
        torch.stack(
            [
                0.299 * r + 0.587 * g + 0.114 * b,
                128 - 0.168736 * r - 0.331264 * g + 0.5 * b,
                128 + 0.5 * r - 0.418688 * g - 0.081312 * b,
            ],
            1,
        )
        - 128
    )
    bsz, c, h, w = ycc.shape
    ph, pw = -h % 8, -w % 8
    ycc = F.pad(ycc, (0, pw, 0, ph), mode="replicate")
    H, W = ycc.shape[-2:]
    blocks = ycc.view(bsz, c, H // 8, 8, W // 8, 8).transpose(3, 4)  # (B, C, by, bx, 8, 8)
    d = _dct_matrix(8, dev)
    coef = d @ blocks @ d.T
    coef = (coef / q).round() * q
    ycc = (d.T @ coef @ d).transpose(3, 4).reshape(bsz, c, H, W)[..., :h, :w] + 128
    yy, cb, cr = ycc[:, 0], ycc[:, 1] - 128, ycc[:, 2] - 128
    rgb = torch.stack([yy + 1.402 * cr, yy - 0.344136 * cb - 0.714136 * cr, yy + 1.772 * cb], 1)
    return rgb.round().clamp(0, 255).to(torch.uint8)


CORRUPTIONS = {
    "gaussian_noise": gaussian_noise,
    "gaussian_blur": gaussian_blur,
    "contrast": contrast,
    "brightness": brightness,
    "jpeg": jpeg_compress,
    "pixelate": pixelate,
}


def corrupt(x: torch.Tensor, name: str, severity: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed * 100 + severity)
    return CORRUPTIONS[name](x, severity, g)
