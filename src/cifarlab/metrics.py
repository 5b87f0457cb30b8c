"""Metrics computed from logits and labels (pure tensor functions), and the statistics of several runs."""

from __future__ import annotations

import math
import statistics

import torch
import torch.nn.functional as F


def accuracy(logits: torch.Tensor, y: torch.Tensor, k: int = 1) -> float:
    topk = logits.topk(k, -1).indices
    return (topk == y[:, None]).any(-1).float().mean().item()


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
    return torch.bincount(y * num_classes + pred, minlength=num_classes**2).view(num_classes, num_classes)


def precision_recall_f1(cm: torch.Tensor) -> dict[str, list[float]]:
    cm = cm.double()
    tp = cm.diag()
    precision = torch.where(cm.sum(0) > 0, tp / cm.sum(0).clamp(min=1), torch.zeros_like(tp))
    recall = torch.where(cm.sum(1) > 0, tp / cm.sum(1).clamp(min=1), torch.zeros_like(tp))
    f1 = torch.where(
        precision + recall > 0, 2 * precision * recall / (precision + recall).clamp(min=1e-12), torch.zeros_like(tp)
    )
    return {"precision": precision.tolist(), "recall": recall.tolist(), "f1": f1.tolist()}


def calibration(probs: torch.Tensor, y: torch.Tensor, bins: int = 15) -> dict:
    """Expected calibration error (equal-width confidence bins) and the reliability diagram's data."""
    conf, pred = probs.max(-1)
    correct = (pred == y).double()
    edges = torch.linspace(0, 1, bins + 1, dtype=torch.float64)
    which = torch.bucketize(conf.double(), edges[1:-1])  # bin i holds (edges[i], edges[i+1]] (Guo et al.)
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


def fit_temperature(logits: torch.Tensor, y: torch.Tensor) -> float:
    """The temperature T that minimizes the NLL of softmax(logits / T) (Guo et al. 2017). Fitted on held-out
    data, this one scalar fixes over- or under-confidence (label smoothing leaves nets underconfident)
    without changing any prediction. Optimized in log T, so T stays positive."""
    logits, y = logits.float().detach(), y.detach()
    log_t = torch.zeros((), requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        nll = F.cross_entropy(logits / log_t.exp(), y)
        nll.backward()
        return nll

    opt.step(closure)
    return float(log_t.detach().exp())


def temperature_scaling(val_logits, val_y, test_logits, test_y) -> dict:
    """Fit T on the validation logits; report it with the test set's ECE and loss at T."""
    t = fit_temperature(val_logits, val_y)
    return {
        "temperature": t,
        "fitted_on_n": len(val_y),
        **{k: v for k, v in calibration((test_logits / t).softmax(-1), test_y).items() if k in ("ece", "bins")},
        "test_loss": F.cross_entropy(test_logits / t, test_y).item(),
    }


def mcnemar(correct_a: torch.Tensor, correct_b: torch.Tensor) -> dict:
    """McNemar's exact test on paired predictions: do two models err on different images more than chance?"""
    b = int((correct_a & ~correct_b).sum())  # A right, B wrong
    c = int((~correct_a & correct_b).sum())
    n, k = b + c, min(b, c)
    # two-sided exact binomial p-value with p = 1/2, summed in log space to stay finite for large n
    if n == 0:
        p = 1.0
    else:
        logs = [
            math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2) for i in range(k + 1)
        ]
        p = min(1.0, 2 * sum(math.exp(v) for v in logs))
    return {"a_only": b, "b_only": c, "p_value": p}


def bootstrap_accuracy(
    correct_a: torch.Tensor, correct_b: torch.Tensor | None = None, n_boot: int = 1000, seed: int = 0
) -> tuple[float, float, float]:
    """(mean accuracy of A's runs, minus B's when given, and its 95% interval). correct_*: (runs, N) bool on
    the same N test images. The interval resamples the test images (the same draw for A and B: paired)
    and, independently, each side's seeds, so it covers both the test set's and the seeds' variation."""
    g = torch.Generator().manual_seed(seed)
    n = correct_a.shape[1]

    def side(correct, idx):
        per_run = correct.float()[:, idx].mean(-1)  # (runs, draws)
        seeds = torch.randint(len(correct), (len(correct), idx.shape[0]), generator=g)
        return per_run.gather(0, seeds).mean(0)

    draws = []
    for start in range(0, n_boot, 100):  # 100 draws at a time: (runs, 100, N) stays small
        idx = torch.randint(n, (min(100, n_boot - start), n), generator=g)
        draws.append(side(correct_a, idx) - (side(correct_b, idx) if correct_b is not None else 0))
    lo, hi = torch.quantile(torch.cat(draws), torch.tensor([0.025, 0.975])).tolist()
    point = correct_a.float().mean().item() - (correct_b.float().mean().item() if correct_b is not None else 0)
    return point, lo, hi


def most_confident_wrong(probs: torch.Tensor, y: torch.Tensor, k: int = 16) -> torch.Tensor:
    conf, pred = probs.max(-1)
    wrong = torch.nonzero(pred != y).flatten()
    return wrong[conf[wrong].argsort(descending=True)[:k]]


def classification_metrics(logits: torch.Tensor, y: torch.Tensor, classes) -> dict:
    probs = logits.softmax(-1)
    pred = logits.argmax(-1)
    cm = confusion_matrix(pred, y, len(classes))
    correct = int((pred == y).sum())
    return {
        "n": len(y),
        "test_acc": correct / len(y),
        "test_acc_ci": wilson_interval(correct, len(y)),
        "test_loss": F.cross_entropy(logits, y).item(),
        "top2_acc": accuracy(logits, y, 2),
        "per_class_acc": dict(zip(classes, per_class_accuracy(logits, y, len(classes)))),
        **{k: dict(zip(classes, v)) for k, v in precision_recall_f1(cm).items()},
        "confusion": cm.tolist(),
        "calibration": calibration(probs, y),
    }


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def accuracy_cell(mean: float, std: float, n: int) -> str:
    """Mean test accuracy of n seeds in percent, with their std; one seed has no spread ("± 0.00" would claim one)."""
    return f"{100 * mean:.2f}%" + (f" ± {100 * std:.2f}" if n > 1 else "")


def p_value_cell(p: float) -> str:
    """A p-value too small for a double underflows to 0.0, which would read as impossible: bound it instead."""
    return "< 1e-300" if p < 1e-300 else f"{p:.3g}"


def paired_difference(a: list[float], b: list[float]) -> dict:
    """A minus B over paired seeds: mean, the sd of one pair's difference, the mean's 95% t-interval and the
    two-sided p of a paired t-test."""
    if len(a) != len(b) or len(a) < 2:
        raise ValueError("a paired difference needs two lists of the same length, at least 2")
    d = [x - y for x, y in zip(a, b)]
    n, mean = len(d), statistics.fmean(d)
    sd = statistics.stdev(d)
    se = sd / math.sqrt(n)
    t975 = _t_quantile(n - 1)
    if se == 0:
        p = 1.0 if mean == 0 else 0.0
    else:
        p = _t_two_sided_p(abs(mean) / se, n - 1)
    return {"mean": mean, "sd": sd, "ci95": [mean - t975 * se, mean + t975 * se], "p": p, "n": n}


def _t_quantile(df: int) -> float:
    """The 97.5% quantile of Student's t with df degrees of freedom (bisection on the CDF)."""
    lo, hi = 0.0, 100.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _t_two_sided_p(mid, df) > 0.05 else (lo, mid)
    return (lo + hi) / 2


def _t_two_sided_p(t: float, df: int) -> float:
    """P(|T| > t) for Student's t: the regularized incomplete beta I_{df/(df+t²)}(df/2, 1/2), by Simpson's rule
    on its integral after the substitution u = s^(2/df) that removes the endpoint singularity."""
    x = df / (df + t * t)
    a, b = df / 2, 0.5
    # I_x(a, b) = (1/B(a,b)) ∫_0^x s^(a-1) (1-s)^(b-1) ds, with s = u^(1/a): ds = (1/a) u^(1/a - 1) du
    top = x**a
    n = 2000
    h = top / n

    def f(u):
        s = u ** (1 / a)
        return (1 - s) ** (b - 1) / a if s < 1 else 0.0

    total = f(0) + f(top) + sum((4 if i % 2 else 2) * f(i * h) for i in range(1, n))
    beta = math.exp(math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b))
    return min(1.0, total * h / 3 / beta)
