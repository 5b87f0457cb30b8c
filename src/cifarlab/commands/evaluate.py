"""`cifarlab evaluate`: a run's best checkpoint on the test set: accuracy with its CI, per-class metrics,
confusion, calibration (and a temperature fitted on the run's validation split), robustness to corruptions,
inference speed, and figures; written to evaluation.json in the run directory."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..checkpoint import checkpoint_step, model_from_checkpoint
from ..data import Cifar10, Loader, load_cifar10, locate, split_train_val
from ..data.cifar10c import load_cifar10c
from ..data.corruptions import CORRUPTIONS, SEVERITIES, seen_families
from ..errors import ConfigError
from ..hardware import keep_freed_memory, select_device, select_precision
from ..inference import attention_maps, gradcam, predict_logits, robustness, throughput
from ..io import atomic_write_bytes
from ..metrics import calibration, classification_metrics, most_confident_wrong, temperature_scaling
from ..plots import confusion_figure, fig_png, image_grid_figure, reliability_figure, robustness_figure
from ..rundir import Evaluation, recorded_source, write_evaluation


def check_tta_fraction(f: float) -> float:
    if not 0 < f <= 1:
        raise ConfigError(f"--tta-fraction must be in (0, 1], got {f}: the share of images that take every TTA view")
    return f


def check_suite(corruptions, severities) -> tuple[list[str] | None, tuple[int, ...]]:
    """--corruptions / --severities checked: known family names, severities among 1-5."""
    if corruptions:
        unknown = [c for c in corruptions if c not in CORRUPTIONS]
        if unknown:
            raise ConfigError(f"unknown corruption {', '.join(unknown)}: choose from {', '.join(CORRUPTIONS)}")
    sev = tuple(severities or SEVERITIES)
    if not sev or any(s not in SEVERITIES for s in sev) or len(set(sev)) != len(sev):
        raise ConfigError(f"--severities must be distinct values among 1-5, got {list(severities)}")
    return (list(dict.fromkeys(corruptions)) if corruptions else None), tuple(sorted(sev))


def evaluate_run(
    run: str,
    data_path: str | None = None,
    device: str | None = None,
    tta: str | None = None,
    tta_fraction: float | None = None,
    write: bool = True,
    robustness_n: int = 2000,
    figures: bool = True,
    speed: bool = True,
    corruptions=None,
    severities=None,
    cifar10c: str | None = None,
) -> Evaluation:
    """Evaluate a run directory's best checkpoint (or a checkpoint file) on the test set.

    Writes evaluation.json and figures into the run directory (when given a directory).
    """
    if robustness_n < 0:
        raise ConfigError(f"--robustness-n must be >= 0, got {robustness_n}")
    corruptions, severities = check_suite(corruptions, severities)
    dev = select_device(device or "auto")
    keep_freed_memory(dev)
    model, cfg, ckpt = model_from_checkpoint(Path(run), dev)
    cl = cfg.runtime.channels_last
    if cl:
        model = model.to(memory_format=torch.channels_last)
    data = load_cifar10(locate(data_path or cfg.data.dir or recorded_source(run, ckpt)))
    loader = Loader(data.test_x, data.test_y, cfg.data.eval_batch_size, dev, channels_last=cl)
    dtype = select_precision(dev, cfg.runtime.precision)
    tta = tta or cfg.eval.tta
    frac = check_tta_fraction(cfg.eval.tta_fraction if tta_fraction is None else tta_fraction)
    logits, y = predict_logits(model, loader, dtype, tta, frac)
    ev = Evaluation(
        checkpoint=ckpt["path"], preset=cfg.name, tta=tta, **classification_metrics(logits, y, data.classes)
    )
    ev.tta_fraction, ev.step = (frac if tta != "none" else None), checkpoint_step(ckpt)
    plain = logits  # one view per image: the corruption benchmark's clean reference
    if tta != "none":
        plain, _ = predict_logits(model, loader, dtype, "none")
        without = classification_metrics(plain, y, data.classes)
        ev.without_tta = {k: without[k] for k in ("test_acc", "test_loss", "top2_acc", "test_acc_ci")}
        ev.without_tta["ece"] = calibration(plain.softmax(-1), y)["ece"]
    val_idx = split_train_val(data.train_y, cfg.data.val_size)[1] if cfg.data.val_size < len(data.train_y) else []
    if len(val_idx):  # the run's own validation split: held out from training, never the test set
        val_loader = Loader(
            data.train_x[val_idx], data.train_y[val_idx], cfg.data.eval_batch_size, dev, channels_last=cl
        )
        val_logits, val_y = predict_logits(model, val_loader, dtype, tta, frac)
        ev.temperature_scaling = temperature_scaling(val_logits, val_y, logits, y)
    if robustness_n:
        n = min(robustness_n, len(y))
        idx = torch.arange(len(y))[:: max(1, len(y) // n)][:n]  # an even, class-balanced-in-expectation slice
        images = load_cifar10c(cifar10c, idx, y, corruptions, severities) if cifar10c else None
        ev.robustness = robustness(model, data.test_x[idx].to(dev), y[idx], loader.normalize, dtype,
                                   corruptions=corruptions, severities=severities,
                                   seen=seen_families(cfg.data.augment), images=images)  # fmt: skip
        ev.robustness["source"] = f"CIFAR-10-C release ({cifar10c})" if cifar10c else "generated (cifarlab)"
        ev.robustness["clean_acc_same_images"] = float((plain[idx].argmax(-1) == y[idx]).float().mean())
    if speed:
        ev.inference_img_per_s = throughput(model, dev, dtype, channels_last=cl)
    ev.test_pred = logits.argmax(-1).tolist()
    run_dir = Path(run) if Path(run).is_dir() else None
    if write and run_dir is not None:
        if figures:
            ev.figures = evaluation_figures(run_dir, model, data, loader, logits, ev)
        write_evaluation(run_dir, ev)
    return ev


def evaluation_figures(run_dir: Path, model, data: Cifar10, loader: Loader, logits, ev: Evaluation) -> list[str]:
    """Write the evaluation's figures into the run directory; returns their file names."""
    classes = data.classes
    written = {
        "confusion.png": confusion_figure(ev.confusion, classes, normalize=True),
        "confusion_counts.png": confusion_figure(ev.confusion, classes, normalize=False),
        "reliability.png": reliability_figure([(ev.preset, ev.calibration)]),
    }
    if ev.robustness:
        written["robustness.png"] = robustness_figure([(ev.preset, ev.robustness)])
    probs = logits.softmax(-1)
    idx = most_confident_wrong(probs, data.test_y, 16)
    x = loader.normalize(data.test_x[idx].to(loader.device))
    conf, pred = probs[idx].max(-1)
    titles = [
        f"{classes[p]} {100 * c:.0f}%\n(true {classes[t]})"
        for p, c, t in zip(pred.tolist(), conf.tolist(), data.test_y[idx].tolist())
    ]
    written["confident_wrong.png"] = image_grid_figure(x, titles, colors=["red"] * len(idx))
    sample = loader.normalize(data.test_x[:16].to(loader.device))
    names = [classes[t] for t in data.test_y[:16].tolist()]
    written["gradcam.png"] = image_grid_figure(sample, [f"Grad-CAM: {n}" for n in names], maps=gradcam(model, sample))
    for k, (name, maps) in enumerate(attention_maps(model, sample).items()):
        written[f"attention_{k}.png"] = image_grid_figure(sample, list(names), maps=maps)
        written[f"attention_{k}.png"].suptitle(name, fontsize=9)
    for name, fig in written.items():
        atomic_write_bytes(run_dir / name, fig_png(fig))
    return sorted(written)


def print_evaluation(ev: Evaluation, as_json: bool = False) -> None:
    if as_json:
        print(json.dumps({k: v for k, v in ev.to_dict().items() if k != "test_pred"}, indent=2))
        return
    lo, hi = ev.test_acc_ci
    print(
        f"test accuracy {100 * ev.test_acc:.2f}% (95% CI {100 * lo:.2f}-{100 * hi:.2f}), top-2 "
        f"{100 * ev.top2_acc:.2f}%, loss {ev.test_loss:.4f}, ECE {100 * ev.calibration['ece']:.2f}%, TTA {ev.tta}"
        + (f" on the {100 * ev.tta_fraction:.0f}% least confident" if (ev.tta_fraction or 1) < 1 else "")
    )
    if ev.without_tta:
        w = ev.without_tta
        print(f"without TTA: accuracy {100 * w['test_acc']:.2f}%, loss {w['test_loss']:.4f}, ECE {100 * w['ece']:.2f}%")
    if ev.temperature_scaling:
        t = ev.temperature_scaling
        print(
            f"temperature scaling (T={t['temperature']:.3f}, fitted on {t['fitted_on_n']} validation images): "
            f"loss {t['test_loss']:.4f}, ECE {100 * t['ece']:.2f}%"
        )
    print(f"{'class':<11} {'acc':>7} {'prec':>7} {'recall':>7} {'F1':>7}")
    for name, acc in ev.per_class_acc.items():
        print(
            f"{name:<11} {100 * acc:6.2f}% {100 * ev.precision[name]:6.2f}% {100 * ev.recall[name]:6.2f}% "
            f"{100 * ev.f1[name]:6.2f}%"
        )
    if ev.robustness:
        print(robustness_summary(ev.robustness))
    if ev.inference_img_per_s:
        print("inference: " + ", ".join(f"batch {b}: {v:.0f} img/s" for b, v in ev.inference_img_per_s.items()))
    if ev.figures:
        print(f"figures: {', '.join(ev.figures)} (in the run directory, with evaluation.json)")


def robustness_summary(r: dict) -> str:
    """The corruption benchmark in a few lines: the held-out mean first (the headline), seen families apart."""
    sev = r.get("severities", list(SEVERITIES))
    seen = set(r.get("seen", []))

    def fmt(names):
        return ", ".join(f"{k} {100 * sum(r['per_corruption'][k]) / len(sev):.1f}%" for k in names)

    held = [k for k in r["per_corruption"] if k not in seen]
    lines = [f"robustness ({r['n']} test images, severities {','.join(map(str, sev))}, "
             f"{r.get('source', 'generated')}): held-out corruptions {_pct(r.get('held_out_acc'))} over "
             f"{len(held)} families, seen {_pct(r.get('seen_acc'))} over {len(seen)}, all "
             f"{_pct(r['mean_corruption_acc'])}"]  # fmt: skip
    lines.append(f"  held out: {fmt(held)}")
    if seen:
        lines.append(f"  seen in training: {fmt([k for k in r['per_corruption'] if k in seen])}")
    return "\n".join(lines)


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"
