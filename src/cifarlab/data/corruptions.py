"""The 19 CIFAR-10-C corruption families at 5 severities, generated on whole batches on their device.

Parameters are those of Hendrycks & Dietterich's `make_cifar_c.py` (CIFAR's, not ImageNet's). Every family takes
uint8 images (B, 3, H, W) and returns uint8 images of that shape; randomness comes from the generator given, drawn
on the CPU, so a seed gives the same images on every device. Where the original needs a heavy dependency, the
version here is the closest batched one, and docs/robustness.md says how it differs: frost (photographs of frost:
a procedural ice texture here), motion blur and snow (ImageMagick's motion blur: the same one-sided Gaussian line
kernel), glass blur (sequential pixel swaps: one random gather per iteration), spatter (OpenCV's edge, distance and
emboss filters on the water drops: the drops' smoothed mask). JPEG is a vectorized codec (YCbCr, 4:2:0 chroma,
8x8 DCT, the standard quantization tables scaled as libjpeg scales them); a test checks it against Pillow's.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..hardware import host_to_device

SEVERITIES = (1, 2, 3, 4, 5)


def _f(x):  # uint8 -> float in [0, 1]
    return x.float() / 255


def _u8(x):  # float in [0, 1] -> uint8, clipped (the original clips, then numpy's uint8 truncates)
    return (x.clamp(0, 1) * 255).to(torch.uint8)


def _rand(shape, g, dev):
    return host_to_device(torch.rand(shape, generator=g), dev)


def _randn(shape, g, dev):
    return host_to_device(torch.randn(shape, generator=g), dev)


def _gauss_kernel(sigma: float, truncate: float, dev) -> torch.Tensor:
    r = max(1, int(truncate * sigma + 0.5))
    t = torch.arange(-r, r + 1, dtype=torch.float32, device=dev)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    return k / k.sum()


def blur(y: torch.Tensor, sigma, truncate: float = 4.0, mode: str = "replicate") -> torch.Tensor:
    """Separable Gaussian blur of a float batch (skimage's `gaussian`: radius truncate x sigma, edges repeated).
    `sigma` may be a tensor (B,): one sigma per image, done as a grouped convolution."""
    b, c, h, w = y.shape
    if not torch.is_tensor(sigma):
        if sigma <= 0:
            return y
        k = _gauss_kernel(float(sigma), truncate, y.device)
        r = len(k) // 2
        y = F.pad(y, (r, r, r, r), mode=mode)
        y = F.conv2d(y, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
        return F.conv2d(y, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)
    sigma = sigma.to(y.device).float().clamp_min(1e-3)
    r = max(1, int(truncate * float(sigma.max()) + 0.5))
    t = torch.arange(-r, r + 1, dtype=torch.float32, device=y.device)
    k = torch.exp(-(t[None] ** 2) / (2 * sigma[:, None] ** 2))
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (B*C, 2r+1)
    y = F.pad(y.reshape(1, b * c, h, w), (r, r, r, r), mode=mode)
    y = F.conv2d(y, k.view(b * c, 1, 1, -1), groups=b * c)
    return F.conv2d(y, k.view(b * c, 1, -1, 1), groups=b * c).view(b, c, h, w)


# ---- noise ----


def gaussian_noise(x, s, g=None):
    c = (0.04, 0.06, 0.08, 0.09, 0.10)[s - 1]
    return _u8(_f(x) + c * _randn(x.shape, g, x.device))


def shot_noise(x, s, g=None):
    c = (500, 250, 100, 75, 50)[s - 1]
    return _u8(torch.poisson(_f(x).cpu() * c, generator=g).to(x.device) / c)


def impulse_noise(x, s, g=None):
    """Salt and pepper on a share c of all values (each channel apart, as skimage's 's&p')."""
    c = (0.01, 0.02, 0.03, 0.05, 0.07)[s - 1]
    flip, salt = _rand(x.shape, g, x.device) <= c, _rand(x.shape, g, x.device) <= 0.5
    return torch.where(flip, salt.to(torch.uint8) * 255, x)


def speckle_noise(x, s, g=None):
    c = (0.06, 0.1, 0.12, 0.16, 0.2)[s - 1]
    y = _f(x)
    return _u8(y + y * c * _randn(x.shape, g, x.device))


# ---- blur ----


def gaussian_blur(x, s, g=None):
    return _u8(blur(_f(x), (0.4, 0.6, 0.7, 0.8, 1.0)[s - 1]))


def _disk(radius: float, alias_blur: float, dev) -> torch.Tensor:
    """A disk of `radius` (normalized), antialiased by a 3x3 Gaussian of sigma alias_blur (as OpenCV's)."""
    t = torch.arange(-4, 5, dtype=torch.float32, device=dev)
    d = ((t[None] ** 2 + t[:, None] ** 2) <= radius**2).float()
    d = d / d.sum()
    k = torch.exp(-torch.tensor([1.0, 0.0, 1.0], device=dev) / (2 * alias_blur**2))
    k = k / k.sum()
    d = F.conv2d(d[None, None], (k[:, None] * k[None])[None, None], padding=1)[0, 0]
    return d / d.sum()


def defocus_blur(x, s, g=None):
    radius, alias = ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1))[s - 1]
    k = _disk(radius, alias, x.device)
    r = k.shape[0] // 2
    y = F.pad(_f(x), (r, r, r, r), mode="reflect")  # OpenCV's filter2D border: reflect-101
    return _u8(F.conv2d(y, k.expand(3, 1, -1, -1), groups=3))


def glass_blur(x, s, g=None):
    """Blur, then shift every pixel by up to max_delta (a random gather per iteration), then blur again."""
    sigma, delta, iterations = ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2))[s - 1]
    y = _u8(blur(_f(x), sigma)).float() / 255
    b, _, h, w = y.shape
    dev = y.device
    for _ in range(iterations):
        # numpy's randint(-d, d) draws from [-d, d): the swaps move pixels up and left
        dy = torch.randint(-delta, delta, (b, h, w), generator=g).to(dev)
        dx = torch.randint(-delta, delta, (b, h, w), generator=g).to(dev)
        inner = torch.zeros(h, w, dtype=torch.bool, device=dev)
        inner[delta + 1 : h - delta + 1, delta + 1 : w - delta + 1] = True  # the pixels the original visits
        rows = torch.where(inner, torch.arange(h, device=dev)[:, None] + dy, torch.arange(h, device=dev)[:, None])
        cols = torch.where(inner, torch.arange(w, device=dev)[None] + dx, torch.arange(w, device=dev)[None])
        rows, cols = rows.clamp(0, h - 1), cols.clamp(0, w - 1)
        y = y[torch.arange(b, device=dev)[:, None, None], :, rows, cols].permute(0, 3, 1, 2)
    return _u8(blur(y, sigma))


def _motion_taps(radius: int, sigma: float, angle: torch.Tensor):
    """ImageMagick's motion blur kernel: 2 x radius + 1 taps along the angle, Gaussian weights from one end."""
    width = 2 * radius + 1
    i = torch.arange(width, dtype=torch.float32)
    weights = torch.exp(-(i**2) / (2 * sigma**2))
    weights = weights / weights.sum()
    a = torch.deg2rad(angle.float())[:, None]
    oy = torch.ceil(i * torch.sin(a) - 0.5).long()  # (B, width) integer offsets
    ox = torch.ceil(i * torch.cos(a) - 0.5).long()
    return weights, oy, ox


def motion_blur_batch(y: torch.Tensor, radius: int, sigma: float, angle: torch.Tensor) -> torch.Tensor:
    """One-sided motion blur of a float batch, one angle (degrees) per image; edges repeated."""
    b, _, h, w = y.shape
    dev = y.device
    weights, oy, ox = _motion_taps(radius, sigma, angle)
    out = torch.zeros_like(y)
    ar_h, ar_w, bi = torch.arange(h, device=dev), torch.arange(w, device=dev), torch.arange(b, device=dev)
    for t in range(len(weights)):
        if weights[t] < 1e-6:
            continue
        rows = (ar_h[None] + oy[:, t, None].to(dev)).clamp(0, h - 1)  # (B, H)
        cols = (ar_w[None] + ox[:, t, None].to(dev)).clamp(0, w - 1)
        out += float(weights[t]) * y[bi[:, None, None], :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    return out


def motion_blur(x, s, g=None):
    radius, sigma = ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5))[s - 1]
    angle = torch.rand(len(x), generator=g) * 90 - 45
    return _u8(motion_blur_batch(_f(x), radius, sigma, angle))


def _clipped_zoom(y: torch.Tensor, z: float) -> torch.Tensor:
    """The centre 1/z of each image scaled up by z (bilinear, corners aligned as scipy's zoom), cropped back."""
    h = y.shape[-1]
    ch = math.ceil(h / z)
    top = (h - ch) // 2
    out = F.interpolate(y[..., top : top + ch, top : top + ch], size=round(ch * z), mode="bilinear", align_corners=True)
    trim = (out.shape[-1] - h) // 2
    return out[..., trim : trim + h, trim : trim + h]


def zoom_blur(x, s, g=None):
    top = (1.06, 1.11, 1.16, 1.21, 1.26)[s - 1]
    zooms = torch.arange(1, top - 1e-9, 0.01, dtype=torch.float64).tolist()
    y = _f(x)
    out = sum(_clipped_zoom(y, z) for z in zooms)
    return _u8((y + out) / (len(zooms) + 1))


# ---- weather ----


def plasma_fractal(b: int, size: int, decay: float, g) -> torch.Tensor:
    """(b, size, size) diamond-square height maps in [0, 1], one per image (the fog layer of CIFAR-10-C)."""
    m = torch.zeros(b, size, size, dtype=torch.float64)
    step, wibble = size, 100.0

    def wibbled(a):
        return a / 4 + wibble * (torch.rand(a.shape, generator=g, dtype=torch.float64) * 2 * wibble - wibble)

    while step >= 2:
        half = step // 2
        corners = m[:, ::step, ::step]
        sq = corners + corners.roll(-1, 1)
        sq = sq + sq.roll(-1, 2)
        m[:, half::step, half::step] = wibbled(sq)
        dr, ul = m[:, half::step, half::step], m[:, ::step, ::step]
        m[:, ::step, half::step] = wibbled(dr + dr.roll(1, 1) + ul + ul.roll(-1, 2))
        m[:, half::step, ::step] = wibbled(dr + dr.roll(1, 2) + ul + ul.roll(-1, 1))
        step //= 2
        wibble /= decay
    m = m - m.amin((1, 2), keepdim=True)
    return (m / m.amax((1, 2), keepdim=True)).float()


def fog(x, s, g=None):
    c, decay = ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75))[s - 1]
    y = _f(x)
    peak = y.amax((1, 2, 3), keepdim=True)
    size = 1 << max(x.shape[-1] - 1, 1).bit_length()
    layer = plasma_fractal(len(x), size, decay, g)[:, None, : x.shape[-2], : x.shape[-1]].to(x.device)
    return _u8((y + c * layer) * peak / (peak + c))


def frost(x, s, g=None):
    """Stand-in for the frost photographs: a bright, bluish, fine-grained ice texture (plasma fractal with little
    decay, sharpened), blended as the original blends its photograph."""
    a, b = ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45))[s - 1]
    size = 1 << max(x.shape[-1] - 1, 1).bit_length()
    tex = plasma_fractal(len(x), size, 1.3, g)[:, None, : x.shape[-2], : x.shape[-1]]
    tex = tex.pow(0.6)  # mostly bright, like ice crystals over a window
    tint = torch.tensor([0.82, 0.9, 1.0]).view(1, 3, 1, 1)  # frost photographs are bluish white
    return _u8(a * _f(x) + b * (tex * tint).to(x.device))


def snow(x, s, g=None):
    loc, scale, zoom, thresh, radius, sigma, keep = (
        (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
        (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
        (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
        (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
    )[s - 1]
    b, _, h, w = x.shape
    y = _f(x)
    flakes = _clipped_zoom((loc + scale * _randn((b, 1, h, w), g, x.device)), zoom)
    flakes = torch.where(flakes < thresh, torch.zeros_like(flakes), flakes)
    flakes = _u8(flakes).float() / 255  # the original passes the layer through an 8-bit PNG
    angle = torch.rand(b, generator=g) * 90 - 135
    flakes = _u8(motion_blur_batch(flakes, radius, sigma, angle)).float() / 255
    gray = (0.299 * y[:, :1] + 0.587 * y[:, 1:2] + 0.114 * y[:, 2:]) * 1.5 + 0.5
    y = keep * y + (1 - keep) * torch.maximum(y, gray)
    return _u8(y + flakes + flakes.flip(-1, -2))


def spatter(x, s, g=None):
    """Water drops (severities 1-3) or mud (4-5) from thresholded smoothed noise; the water's rim shading
    (OpenCV's edge, distance and emboss filters) is left out: its drops are the smoothed mask itself."""
    loc, scale, sigma, thresh, strength, mud = (
        (0.62, 0.1, 0.7, 0.7, 0.5, 0),
        (0.65, 0.1, 0.8, 0.7, 0.5, 0),
        (0.65, 0.3, 1, 0.69, 0.5, 0),
        (0.65, 0.1, 0.7, 0.69, 0.6, 1),
        (0.65, 0.1, 0.5, 0.68, 0.6, 1),
    )[s - 1]
    b, _, h, w = x.shape
    y = _f(x)
    liquid = blur(loc + scale * _randn((b, 1, h, w), g, x.device), sigma)
    liquid = torch.where(liquid < thresh, torch.zeros_like(liquid), liquid)
    if not mud:
        m = liquid / liquid.amax((2, 3), keepdim=True).clamp_min(1e-6) * strength
        water = torch.tensor([175, 238, 238], device=x.device).view(1, 3, 1, 1) / 255
        return _u8(y + m * water)
    m = blur((liquid > thresh).float(), strength)
    m = torch.where(m < 0.8, torch.zeros_like(m), m)
    brown = torch.tensor([63, 42, 20], device=x.device).view(1, 3, 1, 1) / 255
    return _u8(y * (1 - m) + brown * m)


# ---- digital ----


def _hsv_value_saturation(y):
    v = y.amax(1, keepdim=True)
    s = torch.where(v > 0, (v - y.amin(1, keepdim=True)) / v.clamp_min(1e-12), torch.zeros_like(v))
    return v, s


def brightness(x, s, g=None):
    """HSV value + c (hue and saturation kept): each pixel's RGB scaled by its new value over its old one."""
    c = (0.05, 0.1, 0.15, 0.2, 0.3)[s - 1]
    y = _f(x)
    v, _ = _hsv_value_saturation(y)
    new_v = (v + c).clamp(max=1)
    return _u8(torch.where(v > 0, y * new_v / v.clamp_min(1e-12), new_v.expand_as(y)))


def saturate(x, s, g=None):
    """HSV saturation x c0 + c1 (hue and value kept). A grey pixel has hue 0, so it takes on red, as in skimage."""
    a, b = ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2))[s - 1]
    y = _f(x)
    v, sat = _hsv_value_saturation(y)
    new_s = (sat * a + b).clamp(0, 1)
    colored = v - (v - y) * new_s / sat.clamp_min(1e-12)
    grey = torch.cat([v, v * (1 - new_s), v * (1 - new_s)], 1)
    return _u8(torch.where(sat > 0, colored, grey))


def contrast(x, s, g=None):
    c = (0.75, 0.5, 0.4, 0.3, 0.15)[s - 1]
    y = _f(x)
    mean = y.mean((2, 3), keepdim=True)  # per channel, as the original's mean over the image's axes (0, 1)
    return _u8((y - mean) * c + mean)


def elastic_transform(x, s, g=None):
    """A random affine warp (three points moved by up to c2 px), then a smooth random displacement field."""
    n = x.shape[-1]
    alpha, sigma, move = ((0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03))[
        s - 1
    ]
    alpha, sigma, move = alpha * n, sigma * n, move * n
    b, dev = len(x), x.device
    centre, side = n // 2, n // 3
    src = torch.tensor(
        [[centre + side, centre + side], [centre + side, centre - side], [centre - side, centre - side]],
        dtype=torch.float64,
    )
    dst = src + (torch.rand((b, 3, 2), generator=g, dtype=torch.float64) * 2 - 1) * move
    # the affine map src -> dst; the output at p samples the input at its inverse (OpenCV's warpAffine)
    ones = torch.ones(b, 3, 1, dtype=torch.float64)
    m = torch.linalg.solve(torch.cat([src.expand(b, 3, 2), ones], 2), dst).transpose(1, 2)  # (B, 2, 3)
    full = torch.cat([m, torch.tensor([0, 0, 1.0], dtype=torch.float64).expand(b, 1, 3)], 1)
    inv = torch.linalg.inv(full)[:, :2]
    ii = torch.arange(n, dtype=torch.float64)
    px, py = ii[None, :].expand(n, n), ii[:, None].expand(n, n)  # x = column, y = row
    pts = torch.stack([px, py, torch.ones_like(px)], -1).view(1, -1, 3)
    src_xy = (pts @ inv.transpose(1, 2)).view(b, n, n, 2).float()
    y = _sample(_f(x), src_xy[..., 0], src_xy[..., 1])
    dx = blur(torch.rand((b, 1, n, n), generator=g).to(dev) * 2 - 1, sigma, truncate=3, mode="reflect") * alpha
    dy = blur(torch.rand((b, 1, n, n), generator=g).to(dev) * 2 - 1, sigma, truncate=3, mode="reflect") * alpha
    gx = ii.float().to(dev)[None, None, :] + dx[:, 0]
    gy = ii.float().to(dev)[None, :, None] + dy[:, 0]
    return _u8(_sample(y, gx.expand(b, n, n), gy.expand(b, n, n)))


def _sample(y, sx, sy):
    """Bilinear sampling of a float batch at pixel coordinates (sx, sy) (B, H, W), the border mirrored."""
    h, w = y.shape[-2:]
    grid = torch.stack([sx.to(y.device) / (w - 1) * 2 - 1, sy.to(y.device) / (h - 1) * 2 - 1], -1)
    return F.grid_sample(y, grid, mode="bilinear", padding_mode="reflection", align_corners=True)


def _box_matrix(n_in: int, n_out: int, dev) -> torch.Tensor:
    """Pillow's BOX resampling as an (n_out, n_in) matrix: each output pixel averages the input pixels whose
    centres fall within its footprint (a nearest-neighbour copy when enlarging)."""
    scale = n_in / n_out
    support = max(scale, 1.0) * 0.5
    centre = (torch.arange(n_out, dtype=torch.float64) + 0.5) * scale
    j = torch.arange(n_in, dtype=torch.float64)
    lo = torch.clamp((centre - support + 0.5).floor(), min=0)
    hi = torch.clamp((centre + support + 0.5).floor(), max=n_in)
    inside = (j[None] >= lo[:, None]) & (j[None] < hi[:, None])
    u = (j[None] - centre[:, None] + 0.5) / max(scale, 1.0)
    w = (inside & (u >= -0.5) & (u < 0.5)).double()
    return host_to_device((w / w.sum(1, keepdim=True)).float(), dev)


def box_resize(y: torch.Tensor, size: int) -> torch.Tensor:
    """Pillow's BOX resize of a float batch (0-255) to size x size, each pass rounded to 8 bits as Pillow's."""
    h, w = y.shape[-2:]
    y = (y @ _box_matrix(w, size, y.device).T).round()  # horizontal pass first, as Pillow
    return (_box_matrix(h, size, y.device) @ y).round()


def pixelate(x, s, g=None):
    c = (0.95, 0.9, 0.85, 0.75, 0.65)[s - 1]
    h = x.shape[-1]
    return box_resize(box_resize(x.float(), int(h * c)), h).clamp(0, 255).to(torch.uint8)


# Standard JPEG quantization tables (ITU T.81, Annex K), row by row.
_QY = torch.tensor([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
], dtype=torch.float32).view(8, 8)  # fmt: skip
_QC = torch.tensor([
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99, *([99] * 32),
], dtype=torch.float32).view(8, 8)  # fmt: skip


def _dct_matrix(n=8, device=None):
    k = torch.arange(n, dtype=torch.float32, device=device)
    m = torch.cos(math.pi * (2 * k[None] + 1) * k[:, None] / (2 * n)) * math.sqrt(2 / n)
    m[0] /= math.sqrt(2)
    return m


def _quant_tables(quality: torch.Tensor, dev) -> torch.Tensor:
    """(B, 2, 8, 8) luma and chroma tables for each image's quality (1-100), scaled as libjpeg scales them."""
    q = quality.float().clamp(1, 100).view(-1, 1, 1, 1)
    scale = torch.where(q < 50, 5000 / q, 200 - 2 * q)
    base = torch.stack([_QY, _QC])[None]
    return host_to_device(((base * scale + 50) / 100).floor().clamp(1, 255), dev)


def _dct_quantize(plane: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """8x8 DCT of a (B, H, W) plane (level-shifted), quantized by a (B, 8, 8) table, and back."""
    b, h, w = plane.shape
    ph, pw = -h % 8, -w % 8
    p = F.pad(plane[:, None], (0, pw, 0, ph), mode="replicate")[:, 0]
    hh, ww = p.shape[-2:]
    blocks = p.view(b, hh // 8, 8, ww // 8, 8).transpose(2, 3)  # (B, by, bx, 8, 8)
    d = _dct_matrix(8, plane.device)
    t = table[:, None, None]
    coef = ((d @ blocks @ d.T) / t).round() * t
    return (d.T @ coef @ d).transpose(2, 3).reshape(b, hh, ww)[:, :h, :w]


def jpeg_roundtrip(x: torch.Tensor, quality) -> torch.Tensor:
    """Encode and decode a batch (uint8 or float 0-255) as baseline JPEG at `quality` (a number, or one per image):
    YCbCr, chroma averaged over 2x2 and upsampled with libjpeg's triangle filter, 8x8 DCT, quantization."""
    dev = x.device
    b, _, h, w = x.shape
    quality = torch.as_tensor(quality, dtype=torch.float32).expand(b)
    tables = _quant_tables(quality, dev)
    r, g_, bl = x.float().round().unbind(1)
    # the codec holds Y, Cb and Cr as 8-bit samples on both sides of the DCT
    yy = (0.299 * r + 0.587 * g_ + 0.114 * bl).round()
    cb = (-0.168736 * r - 0.331264 * g_ + 0.5 * bl).round().clamp(-128, 127)
    cr = (0.5 * r - 0.418688 * g_ - 0.081312 * bl).round().clamp(-128, 127)
    yy = (_dct_quantize(yy - 128, tables[:, 0]) + 128).round().clamp(0, 255)
    chroma = torch.stack([cb, cr], 1)
    small = F.avg_pool2d(F.pad(chroma, (0, w % 2, 0, h % 2), mode="replicate"), 2)
    small = torch.stack([_dct_quantize(small[:, i], tables[:, 1]) for i in range(2)], 1).round().clamp(-128, 127)
    cb, cr = F.interpolate(small, scale_factor=2, mode="bilinear", align_corners=False)[..., :h, :w].unbind(1)
    rgb = torch.stack([yy + 1.402 * cr, yy - 0.344136 * cb - 0.714136 * cr, yy + 1.772 * cb], 1)
    return rgb.round().clamp(0, 255).to(torch.uint8)


def jpeg_compression(x, s, g=None):
    return jpeg_roundtrip(x, (80, 65, 58, 50, 40)[s - 1])


# name -> (function, kind). The 15 families of CIFAR-10-C, then its 4 extra ones.
FAMILIES = {
    "gaussian_noise": (gaussian_noise, "noise"),
    "shot_noise": (shot_noise, "noise"),
    "impulse_noise": (impulse_noise, "noise"),
    "defocus_blur": (defocus_blur, "blur"),
    "glass_blur": (glass_blur, "blur"),
    "motion_blur": (motion_blur, "blur"),
    "zoom_blur": (zoom_blur, "blur"),
    "snow": (snow, "snow"),
    "frost": (frost, "frost"),
    "fog": (fog, "fog"),
    "brightness": (brightness, "brightness"),
    "contrast": (contrast, "contrast"),
    "elastic_transform": (elastic_transform, "elastic"),
    "pixelate": (pixelate, "pixelate"),
    "jpeg_compression": (jpeg_compression, "jpeg"),
    "speckle_noise": (speckle_noise, "noise"),
    "gaussian_blur": (gaussian_blur, "blur"),
    "spatter": (spatter, "spatter"),
    "saturate": (saturate, "saturate"),
}
CORRUPTIONS = {name: fn for name, (fn, _) in FAMILIES.items()}


# The corruption share's ops (`data.augment.corrupt_ops`) and the kind of corruption each one produces.
TRAIN_OP_KIND = {"noise": "noise", "patch_gaussian": "noise", "jpeg": "jpeg", "pixelate": "pixelate"}


def seen_kinds(augment) -> set[str]:
    """The corruption kinds a training augmentation (an AugmentConfig) produces anything of: the one place that
    decides which families a run has seen. Additive or multiplicative noise -> noise; any blur -> blur; JPEG ->
    jpeg; down-and-up or progressive resizing -> pixelate; AugMix's warps -> elastic; colour jitter -> brightness,
    contrast, saturate."""
    kinds = set()
    kinds |= {TRAIN_OP_KIND[op] for op in augment.corrupt_ops} if augment.corrupt else set()
    if augment.resize_from:
        kinds.add("pixelate")
    if getattr(augment, "augmix", 0):  # its rotations and shears are affine warps, elastic_transform's first part
        kinds.add("elastic")
    kinds |= {k for k in ("brightness", "contrast", "saturation") if getattr(augment, k, 0)}
    return {"saturate" if k == "saturation" else k for k in kinds}


def seen_families(augment) -> list[str]:
    kinds = seen_kinds(augment)
    return [name for name, (_, kind) in FAMILIES.items() if kind in kinds]


def corrupt(x: torch.Tensor, name: str, severity: int, seed: int = 0) -> torch.Tensor:
    """Family `name` at `severity` on uint8 images x; the same seed gives the same images."""
    g = torch.Generator().manual_seed(seed * 100 + severity)
    return CORRUPTIONS[name](x, severity, g)
