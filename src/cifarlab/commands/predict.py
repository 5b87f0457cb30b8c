"""`cifarlab predict`: top-k classes for the user's own PNG/JPEG images, made the way the run's test
accuracy was (its TTA), with the temperature `cifarlab evaluate` fitted when there is one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ..checkpoint import checkpoint_step, model_from_checkpoint
from ..data import CLASSES
from ..errors import ConfigError, ImageError
from ..hardware import select_device, select_precision
from ..inference import Normalized, infer_tta
from ..rundir import read_evaluation_quietly
from .evaluate import check_tta_fraction


def to_rgb(im: Image.Image) -> Image.Image:
    """8-bit RGB. Pillow's own conversion clips 16-bit greyscale (PNG's `I;16`, or `I`) at 255, a white image,
    so such pixels are scaled to 8 bits first."""
    if im.mode.startswith("I;16") or im.mode == "I":
        a = np.asarray(im).astype(np.int64)
        if im.mode != "I" or a.max() > 255:  # an `I` image within 0-255 is 8-bit data already
            a = a.clip(0, 65535) // 257
        im = Image.fromarray(a.clip(0, 255).astype(np.uint8), "L")
    return im.convert("RGB")


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def image_files(paths: list[str]) -> tuple[list[str], list[str]]:
    """The files to classify, and an error for each folder without images: a file stands for itself (whatever
    its name, so a bad one gets its own error), a folder for the image files under it, sorted."""
    files, errors = [], []
    for p in paths:
        if not Path(p).is_dir():
            files.append(p)
            continue
        found = sorted(str(f) for f in Path(p).rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        files += found
        if not found:
            errors.append(f"{p}: a folder without images ({', '.join(IMAGE_SUFFIXES)})")
    return files, errors


def label_of(path: str) -> str | None:
    """The class an image is filed under: its folder's name when that is a CIFAR-10 class (photos/cat/1.jpg)."""
    name = Path(path).parent.name.lower()
    return name if name in CLASSES else None


def folder_accuracy(results: list[dict]) -> tuple[float, int] | None:
    """Top-1 accuracy over the images filed under a class-named folder, and their count (None: no such image)."""
    labelled = [r for r in results if r.get("label")]
    if not labelled:
        return None
    return sum(r["top"][0]["class"] == r["label"] for r in labelled) / len(labelled), len(labelled)


def load_image(path: Path) -> torch.Tensor:
    """Any PNG/JPEG (any size or mode, upright by its EXIF orientation) -> (3, 32, 32) uint8 RGB, resized with
    antialiasing."""
    path = Path(path)
    if path.is_dir():
        raise ImageError(f"{path}: is a folder; give image files (e.g. {path}/*.jpg)")
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)  # a phone's photo, stored sideways with an orientation tag
            im = to_rgb(im).resize((32, 32), Image.Resampling.BICUBIC, reducing_gap=3.0)
            data = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as e:
        raise ImageError(f"{path}: not a readable image ({type(e).__name__}: {str(e)[:120]})") from None
    return data.view(32, 32, 3).permute(2, 0, 1).contiguous()


def predict(
    run: str,
    images: list[str],
    top_k: int = 3,
    device: str = "cpu",
    tta: str | None = None,
    chunk: int = 1000,
    calibrate: bool = True,
    tta_fraction: float | None = None,
) -> tuple[list[dict], list[str]]:
    """Top-k classes for each image, with the run's test-time augmentation unless `tta` says otherwise (so a
    prediction is made the way the run's test accuracy was). With `calibrate`, probabilities are divided by
    the temperature `cifarlab evaluate` fitted, when it did. Inference runs in the run's precision
    (bf16 where the device has it natively), channels-last, `chunk` images a pass. Returns (results,
    errors); a bad file does not stop the others."""
    if top_k < 1:
        raise ConfigError(f"--top must be at least 1, got {top_k}")
    dev = select_device(device)
    model, cfg, ckpt = model_from_checkpoint(Path(run), dev)
    dtype = select_precision(dev, cfg.runtime.precision)
    tta = tta or cfg.eval.tta
    frac = check_tta_fraction(cfg.eval.tta_fraction if tta_fraction is None else tta_fraction)
    t = fitted_temperature(ckpt, tta) if calibrate else None
    net = Normalized(model).to(dev).eval()
    cl = cfg.runtime.channels_last
    if cl:
        net = net.to(memory_format=torch.channels_last)
    results, good, tensors = [], [], []
    images, errors = image_files(images)
    for p in images:
        try:
            tensors.append(load_image(Path(p)))
            good.append(p)
        except ImageError as e:
            errors.append(str(e))
    probs = []
    for part in torch.stack(tensors).split(chunk) if tensors else []:  # memory stays flat for many images
        x = part.to(dev).float().div(255)
        x = x.contiguous(memory_format=torch.channels_last) if cl else x
        probs.append((infer_tta(net, x, dtype, tta, frac) / (t or 1.0)).softmax(-1).cpu())
    k = min(top_k, len(CLASSES))
    for p, row in zip(good, torch.cat(probs) if probs else []):
        top, label = row.topk(k), label_of(p)
        results.append(
            {
                "image": p,
                "top": [
                    {"class": CLASSES[i], "prob": round(v, 4)}
                    for v, i in zip(top.values.tolist(), top.indices.tolist())
                ],
                "tta": tta,
                "temperature": t,
                **({"label": label} if label else {}),
            }
        )
    return results, errors


def fitted_temperature(ckpt: dict, tta: str) -> float | None:
    """The temperature `cifarlab evaluate` fitted on the run's validation split for this checkpoint and TTA,
    or None when there is no such evaluation.json, or it is of weights the run has since trained past."""
    checkpoint = Path(ckpt["path"])
    ev = read_evaluation_quietly(checkpoint.parent)
    ts = ev.temperature_scaling if ev else None
    if not (isinstance(ts, dict) and ev.tta == tta and Path(str(ev.checkpoint)).name == checkpoint.name):
        return None
    if ev.step is not None:
        current = ev.step == checkpoint_step(ckpt)
    else:  # an evaluation.json written before it recorded its step: by the files' times
        ev_file = checkpoint.parent / "evaluation.json"
        current = ev_file.stat().st_mtime >= checkpoint.stat().st_mtime
    if not current:
        return None
    t = ts.get("temperature")
    return float(t) if isinstance(t, (int, float)) and t > 0 else None
