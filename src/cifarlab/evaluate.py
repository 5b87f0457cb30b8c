"""Inference (with test-time augmentation) and the metrics computed from it."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .augment import reflect_index


def _translate(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Shift a batch by (dy, dx) pixels with reflection at the border."""
    h, w = x.shape[-2:]
    p = max(abs(dy), abs(dx))
    rows = reflect_index(h, p, x.device)[p - dy: p - dy + h]
    cols = reflect_index(w, p, x.device)[p - dx: p - dx + w]
    return x[:, :, rows][:, :, :, cols]


def tta_views(x: torch.Tensor, tta: str) -> list[tuple[float, torch.Tensor]]:
    """(weight, view) pairs. flip: image and mirror; flip_translate adds both shifted by one pixel."""
    if tta == "none":
        return [(1.0, x)]
    views = [(0.5, x), (0.5, x.flip(-1))]
    if tta == "flip_translate":
        views = [(0.25, v) for _, v in views]
        for _, v in list(views):
            views += [(0.125, _translate(v, 1, 1)), (0.125, _translate(v, -1, -1))]
    return views


@torch.no_grad()
def predict_logits(model, loader, dtype=None, tta: str = "none") -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (float32, on CPU) and labels for every batch of `loader`; TTA averages log-probabilities."""
    model.eval()
    device_type = loader.device.type
    outs, labels = [], []
    for x, y in loader:
        with torch.autocast(device_type, dtype=dtype or torch.float32, enabled=dtype is not None):
            views = tta_views(x, tta)
            if len(views) == 1:
                out = model(x).float()
            else:
                out = sum(w * F.log_softmax(model(v).float(), -1) for w, v in views)
        outs.append(out.cpu()), labels.append(y.cpu())
    return torch.cat(outs), torch.cat(labels)


def accuracy(logits: torch.Tensor, y: torch.Tensor, k: int = 1) -> float:
    topk = logits.topk(k, -1).indices
    return (topk == y[:, None]).any(-1).float().mean().item()


def loss(logits: torch.Tensor, y: torch.Tensor) -> float:
    return F.cross_entropy(logits, y).item()


def per_class_accuracy(logits: torch.Tensor, y: torch.Tensor, num_classes: int = 10) -> list[float]:
    pred = logits.argmax(-1)
    return [(pred[y == c] == c).float().mean().item() if (y == c).any() else float("nan") for c in range(num_classes)]


def wilson_interval(correct: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% confidence interval of an accuracy (Wilson score: stays inside [0, 1] near the ends)."""
    if n == 0:
        return (0.0, 1.0)
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (centre - half, centre + half)
