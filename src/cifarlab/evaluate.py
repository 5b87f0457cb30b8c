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


def confusion_matrix(pred: torch.Tensor, y: torch.Tensor, num_classes: int = 10) -> torch.Tensor:
    """counts[i, j] = images of true class i predicted as j."""
    return torch.bincount(y * num_classes + pred, minlength=num_classes ** 2).view(num_classes, num_classes)


def precision_recall_f1(cm: torch.Tensor) -> dict[str, list[float]]:
    cm = cm.double()
    tp = cm.diag()
    precision = torch.where(cm.sum(0) > 0, tp / cm.sum(0).clamp(min=1), torch.zeros_like(tp))
    recall = torch.where(cm.sum(1) > 0, tp / cm.sum(1).clamp(min=1), torch.zeros_like(tp))
    f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall).clamp(min=1e-12),
                     torch.zeros_like(tp))
    return {"precision": precision.tolist(), "recall": recall.tolist(), "f1": f1.tolist()}


def calibration(probs: torch.Tensor, y: torch.Tensor, bins: int = 15) -> dict:
    """Expected calibration error (equal-width confidence bins) and the reliability diagram's data."""
    conf, pred = probs.max(-1)
    correct = (pred == y).double()
    edges = torch.linspace(0, 1, bins + 1, dtype=torch.float64)
    which = torch.bucketize(conf.double(), edges[1:-1], right=True)  # bin i holds (edges[i], edges[i+1]]
    ece, table = 0.0, []
    for b in range(bins):
        m = which == b
        n = int(m.sum())
        if n:
            acc, c = correct[m].mean().item(), conf[m].double().mean().item()
            ece += n / len(y) * abs(acc - c)
        else:
            acc = c = None
        table.append({"lo": edges[b].item(), "hi": edges[b + 1].item(), "count": n, "accuracy": acc, "confidence": c})
    return {"ece": ece, "bins": table}


def mcnemar(correct_a: torch.Tensor, correct_b: torch.Tensor) -> dict:
    """McNemar's exact test on paired predictions: do two models err on different images more than chance?"""
    b = int((correct_a & ~correct_b).sum())  # A right, B wrong
    c = int((~correct_a & correct_b).sum())
    n, k = b + c, min(b, c)
    # two-sided exact binomial p-value with p = 1/2, summed in log space to stay finite for large n
    if n == 0:
        p = 1.0
    else:
        logs = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2) for i in range(k + 1)]
        p = min(1.0, 2 * sum(math.exp(v) for v in logs))
    return {"a_only": b, "b_only": c, "p_value": p}


def evaluate_run(run: str, data_path: str | None = None, device: str | None = None, tta: str | None = None,
                 write: bool = True) -> dict:
    """Test-set metrics of a run directory's best checkpoint (or a checkpoint file)."""
    from pathlib import Path

    from .checkpoint import model_from_checkpoint
    from .data import Loader, load_cifar10, locate
    from .io import atomic_write_json
    from .train import select_device, select_precision

    dev = select_device(device or "auto")
    model, cfg, ckpt = model_from_checkpoint(Path(run), dev)
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    data = load_cifar10(locate(data_path or cfg.data.dir or None))
    loader = Loader(data.test_x, data.test_y, cfg.data.eval_batch_size, dev, channels_last=cfg.train.channels_last)
    dtype = select_precision(dev, cfg.train.precision)
    tta = tta or cfg.eval.tta
    logits, y = predict_logits(model, loader, dtype, tta)
    probs = logits.softmax(-1)
    pred = logits.argmax(-1)
    cm = confusion_matrix(pred, y, len(data.classes))
    correct = int((pred == y).sum())
    res = {
        "checkpoint": ckpt["path"], "preset": cfg.name, "tta": tta, "n": len(y),
        "test_acc": correct / len(y), "test_acc_ci": wilson_interval(correct, len(y)),
        "test_loss": F.cross_entropy(logits, y).item(), "top2_acc": accuracy(logits, y, 2),
        "per_class_acc": dict(zip(data.classes, per_class_accuracy(logits, y, len(data.classes)))),
        **{k: dict(zip(data.classes, v)) for k, v in precision_recall_f1(cm).items()},
        "confusion": cm.tolist(), "calibration": calibration(probs, y),
    }
    run_dir = Path(run) if Path(run).is_dir() else None
    if write and run_dir is not None:
        atomic_write_json(run_dir / "evaluation.json", res)
    return res
