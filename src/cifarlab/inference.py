"""Running a model: batched inference (with test-time augmentation), throughput, the corruption benchmark,
and what a net looks at (Grad-CAM, attention maps)."""

from __future__ import annotations

import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from .data import MEAN, STD
from .data.augment import reflect_index
from .data.corruptions import CORRUPTIONS, SEVERITIES
from .hardware import auto_micro_batch, autocast
from .models.blocks import CBAM, SelfAttentionBlock


def _translate(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Shift a batch by (dy, dx) pixels with reflection at the border."""
    h, w = x.shape[-2:]
    p = max(abs(dy), abs(dx))
    rows = reflect_index(h, p, x.device)[p - dy : p - dy + h]
    cols = reflect_index(w, p, x.device)[p - dx : p - dx + w]
    return x[:, :, rows][:, :, :, cols]


# One-pixel shifts (dy, dx) each TTA mode adds to the image and its mirror (all eight directions were measured
# no better for three times the inference: docs/experiments.md).
TTA_SHIFTS = {"none": None, "flip": [], "flip_translate": [(1, 1), (-1, -1)]}


def tta_views(x: torch.Tensor, tta: str) -> list[tuple[float, torch.Tensor]]:
    """(weight, view) pairs, weights summing to 1: the image and its mirror, and with flip_translate both
    also shifted one pixel down-right and up-left (airbench). The unshifted pair keeps half the weight."""
    shifts = TTA_SHIFTS[tta]
    if shifts is None:
        return [(1.0, x)]
    views = []
    for v in (x, x.flip(-1)):
        views.append((0.5 if not shifts else 0.25, v))
        views += [(0.25 / len(shifts), _translate(v, dy, dx)) for dy, dx in shifts]
    return views


@torch.no_grad()
def predict_logits(model, loader, dtype=None, tta: str = "none", fraction: float = 1.0):
    """Logits (float32, on CPU) and labels for every batch of `loader`; TTA averages log-probabilities.

    Selective TTA (`fraction` < 1) picks the least confident share of the whole set, not of each batch: a plain
    pass over every batch first, then the other views for the chosen images only."""
    if tta == "none" or fraction >= 1:
        outs, labels = [], []
        for x, y in loader:
            outs.append(infer_tta(model, x, dtype, tta, fraction).cpu()), labels.append(y.cpu())
        return torch.cat(outs), torch.cat(labels)
    plain, labels = [], []
    for x, y in loader:
        plain.append(F.log_softmax(infer(model, x, dtype), -1).cpu()), labels.append(y.cpu())
    plain = torch.cat(plain)
    chosen = torch.zeros(len(plain), dtype=torch.bool)
    chosen[least_confident(plain, fraction)] = True
    start = 0
    for x, _ in loader:  # the same batches again (an evaluation loader does not shuffle)
        rows = chosen[start : start + len(x)].nonzero().squeeze(1)
        if len(rows):
            part = plain[start + rows].to(x.device)
            plain[start + rows] = add_views(model, x[rows.to(x.device)], part, dtype, tta).cpu()
        start += len(x)
    return plain, torch.cat(labels)


def infer_tta(model, x: torch.Tensor, dtype=None, tta: str = "none", fraction: float = 1.0) -> torch.Tensor:
    """Logits of a batch; with TTA, the weighted mean of the views' log-probabilities. With `fraction` < 1
    (selective TTA) only that share of the batch, the least confident after a plain pass, takes the other
    views; the rest keep the plain pass's log-probabilities."""
    views = tta_views(x, tta)
    if len(views) == 1:
        return infer(model, x, dtype)
    if fraction >= 1:
        return sum(w * F.log_softmax(infer(model, v, dtype), -1) for w, v in views)
    plain = F.log_softmax(infer(model, x, dtype), -1)
    unsure = least_confident(plain, fraction)
    if len(unsure):
        plain[unsure] = add_views(model, x[unsure], plain[unsure], dtype, tta)
    return plain


def add_views(model, x: torch.Tensor, plain: torch.Tensor, dtype, tta: str) -> torch.Tensor:
    """Full-TTA log-probabilities of `x` from its plain pass's `plain` and the other views' passes."""
    (w0, _), *others = tta_views(x, tta)  # the first view is the image itself: reuse its pass
    return w0 * plain + sum(w * F.log_softmax(infer(model, v, dtype), -1) for w, v in others)


def least_confident(log_probs: torch.Tensor, fraction: float) -> torch.Tensor:
    """Indices of the ceil(fraction x B) rows whose top probability is lowest."""
    k = min(len(log_probs), math.ceil(fraction * len(log_probs)))
    return log_probs.max(-1).values.topk(k, largest=False).indices


@torch.no_grad()
def infer(model, x, dtype=None):
    """Float32 logits of a batch in eval mode, in passes of auto_micro_batch images where that is faster."""
    model.eval()
    n = auto_micro_batch(x.device, dtype) or len(x)
    with autocast(x.device, dtype):
        return torch.cat([model(part).float() for part in x.split(max(1, n))])


def robustness(
    model,
    x: torch.Tensor,
    y: torch.Tensor,
    normalize,
    dtype=None,
    batch_size: int = 500,
    corruptions=None,
    severities=SEVERITIES,
    seen=(),
    seed: int = 0,
    images: dict | None = None,
) -> dict:
    """Accuracy on each CIFAR-10-C family at each severity (uint8 images `x`, one view each), and the means:
    over the families the run's training never produced anything of (`held_out_acc`, the headline), over
    those it did (`seen`, `seen_acc`), and over all. `images` ({family: (S, N, 3, H, W) uint8}) gives
    ready-made corrupted images (the real CIFAR-10-C) instead of generating them."""
    names = list(images) if images is not None else list(corruptions or CORRUPTIONS)
    out = {}
    for name in names:
        accs = []
        for k, sev in enumerate(severities):
            g = torch.Generator().manual_seed(seed * 1000 + 10 * k + sev)  # one stream per family and severity
            correct = 0
            for i in range(0, len(x), batch_size):
                if images is not None:
                    xb = images[name][k][i : i + batch_size].to(x.device)
                else:
                    xb = CORRUPTIONS[name](x[i : i + batch_size], sev, g)
                correct += int(
                    (infer(model, normalize(xb), dtype).argmax(-1).cpu() == y[i : i + batch_size].cpu()).sum()
                )
            accs.append(correct / len(x))
        out[name] = accs
    return {"per_corruption": out, "severities": list(severities), "n": len(x), **robustness_means(out, seen)}


def robustness_means(per_corruption: dict, seen=()) -> dict:
    """Mean accuracy over all families, over the held-out ones (not in `seen`) and over the seen ones."""

    def mean(names):
        vals = [a for n in names for a in per_corruption[n]]
        return sum(vals) / len(vals) if vals else None

    seen = [n for n in per_corruption if n in set(seen)]
    held = [n for n in per_corruption if n not in set(seen)]
    return {
        "mean_corruption_acc": mean(list(per_corruption)),
        "held_out_acc": mean(held),
        "seen_acc": mean(seen),
        "seen": seen,
    }


def common_suite(robs: list[dict]) -> list[dict]:
    """The robustness records cut to the families and severities that all of them scored, with their means
    recomputed, so that runs evaluated on narrowed suites (`--corruptions`, `--severities`) compare like for
    like; [] when they share none."""
    families = [f for f in robs[0]["per_corruption"] if all(f in r["per_corruption"] for r in robs)]
    sevs = [s for s in robs[0].get("severities", SEVERITIES) if all(s in r.get("severities", SEVERITIES) for r in robs)]
    if not families or not sevs:
        return []
    out = []
    for r in robs:
        at = [list(r.get("severities", SEVERITIES)).index(s) for s in sevs]
        per = {f: [r["per_corruption"][f][i] for i in at] for f in families}
        out.append({**r, "per_corruption": per, "severities": sevs, **robustness_means(per, r.get("seen", ()))})
    return out


@torch.no_grad()
def throughput(model, device, dtype=None, batch_sizes=(1, 256), seconds: float = 2.0, channels_last=True) -> dict:
    """Inference images per second for requests of each batch size through `infer` (after warm-up); on an fp32
    CPU a request of 256 runs as two passes of 128, as every evaluation here does."""
    model.eval()
    out = {}
    for bs in batch_sizes:
        x = torch.randn(bs, 3, 32, 32, device=device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        infer(model, x, dtype)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            infer(model, x, dtype)
            n += bs
        if device.type == "cuda":
            torch.cuda.synchronize()
        out[str(bs)] = round(n / (time.perf_counter() - t0), 1)
    return out


def gradcam(model, x: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al. 2017) on the last feature map: (B, H, W) maps in [0, 1] at input size."""
    feats = {}
    layer = model.stages[-1]
    h = layer.register_forward_hook(lambda m, i, o: feats.__setitem__("a", o))
    model.eval()
    with torch.enable_grad():
        logits = model(x.float())
        target = logits.argmax(-1) if target is None else target
        act = feats["a"]
        (grad,) = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), act)
    h.remove()
    weights = grad.mean((2, 3), keepdim=True)
    cam = F.relu((weights * act).sum(1, keepdim=True))
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    return (cam / cam.flatten(1).amax(1).clamp(min=1e-12).view(-1, 1, 1)).detach()


def attention_maps(model, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Spatial attention of every CBAM block and, for self-attention, how much each pixel is attended to,
    upsampled to the input: name -> (B, H, W) maps in [0, 1]. Empty for models without attention maps."""
    recorders = [m for m in model.modules() if isinstance(m, (CBAM, SelfAttentionBlock))]
    for m in recorders:
        m.record = True
    try:
        with torch.no_grad():
            model.eval()(x)  # one pass: the blocks keep only their last pass's maps
    finally:
        for m in recorders:
            m.record = False
    maps = {}
    for name, m in model.named_modules():
        if isinstance(m, CBAM) and m.last_spatial is not None:
            maps[f"{name} (CBAM spatial)"] = m.last_spatial[:, 0].float()
        elif isinstance(m, SelfAttentionBlock) and m.last_weights is not None:
            w = m.last_weights.float().mean((1, 2))  # attention received per key pixel, averaged over heads/queries
            side = int(round(w.shape[-1] ** 0.5))
            maps[f"{name} (self-attention)"] = w.view(-1, side, side)
    out = {}
    for k, v in maps.items():
        v = F.interpolate(v[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
        lo, hi = v.flatten(1).amin(1).view(-1, 1, 1), v.flatten(1).amax(1).view(-1, 1, 1)
        out[k] = (v - lo) / (hi - lo).clamp(min=1e-12)
    return out


class Normalized(nn.Module):
    """The model with input normalization inside: takes float RGB in [0, 1], (N, 3, 32, 32); returns logits.
    What leaves the lab (predict, export) takes plain pixels."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1))

    def forward(self, x):
        return self.model((x - self.mean) / self.std)
