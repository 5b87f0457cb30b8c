"""Real files through `cifarlab predict`: images written by Pillow as PNG and as JPEG at quality 90 and 75, the
way a phone or the web hands them over, classified by the same function the CLI calls; accuracy per format.

    python tools/real_files.py RUN_DIR [RUN_DIR ...] --out results/robust/real_files.json            # test set
    python tools/real_files.py RUN_DIR --split val --out runs/dev/real_files_val.json               # screening

`--split val` writes the run's own validation images (held out of its training), so recipes can be compared
without opening the test set; `--split test` is for final rows. A benchmark, not a test.
`--formats` adds what takes a JPEG apart: `jpeg75_444` (quality 75 without chroma subsampling), `jpeg95`, and
`chroma420_png` (chroma averaged over 2x2 and upsampled, no quantization, saved lossless). Each format's per-image
correctness is kept (`<format>_correct`, a string of 0/1 in image order) so two runs or formats can be paired.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from cifarlab.checkpoint import config_of
from cifarlab.checkpoint import load as load_checkpoint
from cifarlab.commands.predict import predict
from cifarlab.data import CLASSES, load_cifar10, locate, split_train_val
from cifarlab.errors import UserError, exit_code
from cifarlab.io import atomic_write_text
from cifarlab.rundir import recorded_source


def chroma420(img: Image.Image) -> Image.Image:
    """JPEG's colour subsampling alone: Cb and Cr box-averaged over 2x2, upsampled bilinearly, Y untouched."""
    y, cb, cr = img.convert("YCbCr").split()
    w, h = img.size
    cb, cr = (c.resize((w // 2, h // 2), Image.BOX).resize((w, h), Image.BILINEAR) for c in (cb, cr))
    return Image.merge("YCbCr", (y, cb, cr)).convert("RGB")


# name -> (file suffix, how Pillow writes an image); Pillow's JPEG default is 4:2:0 chroma below quality 100
FORMATS = {
    "png": ("png", lambda im, p: im.save(p, format="PNG")),
    "jpeg90": ("jpg", lambda im, p: im.save(p, format="JPEG", quality=90)),
    "jpeg75": ("jpg", lambda im, p: im.save(p, format="JPEG", quality=75)),
    "jpeg95": ("jpg", lambda im, p: im.save(p, format="JPEG", quality=95)),
    "jpeg75_444": ("jpg", lambda im, p: im.save(p, format="JPEG", quality=75, subsampling=0)),
    "chroma420_png": ("png", lambda im, p: chroma420(im).save(p, format="PNG")),
}
DEFAULT_FORMATS = ("png", "jpeg90", "jpeg75")


def images_of(run: Path, split: str, n: int, data_path: str | None):
    ckpt = load_checkpoint(run)
    cfg = config_of(ckpt)
    data = load_cifar10(locate(data_path or cfg.data.dir or recorded_source(run, ckpt)))
    if split == "test":
        x, y = data.test_x, data.test_y
    else:
        idx = split_train_val(data.train_y, cfg.data.val_size)[1]
        x, y = data.train_x[idx], data.train_y[idx]
    return x[:n], y[:n]


def measure(run: Path, split: str, n: int, data_path: str | None, formats=DEFAULT_FORMATS) -> dict:
    x, y = images_of(run, split, n, data_path)
    row = {"run": str(run), "split": split, "n": len(y)}
    images = [Image.fromarray(np.ascontiguousarray(img)) for img in x.permute(0, 2, 3, 1).numpy()]  # once
    with tempfile.TemporaryDirectory() as tmp:
        for name in formats:
            suffix, write = FORMATS[name]
            folder = Path(tmp) / name
            folder.mkdir()
            paths = []
            for i, img in enumerate(images):
                paths.append(folder / f"{i:05d}.{suffix}")
                write(img, paths[-1])
            t = time.perf_counter()
            results, errors = predict(str(run), [str(p) for p in paths], top_k=1, calibrate=False)
            if errors:
                raise UserError(f"predict refused a file it was given: {errors[0]}")
            pred = [CLASSES.index(r["top"][0]["class"]) for r in results]
            correct = np.array(pred) == y.numpy()
            row[name] = float(correct.mean())
            row[f"{name}_correct"] = "".join("1" if c else "0" for c in correct)  # per image, for paired tests
            row[f"{name}_seconds"] = round(time.perf_counter() - t, 1)
    if "png" in row and "jpeg75" in row:
        row["jpeg75_gap_points"] = round(100 * (row["png"] - row["jpeg75"]), 2)
    return row


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--split", choices=["test", "val"], default="test")
    ap.add_argument("--n", type=int, default=10000, help="images (the first n of the split)")
    ap.add_argument("--data", help="CIFAR-10 folder (default: the run's)")
    ap.add_argument("--out", type=Path, help="JSON file to write")
    ap.add_argument("--formats", nargs="+", choices=list(FORMATS), default=DEFAULT_FORMATS)
    args = ap.parse_args(argv)
    if args.n < 1:
        raise UserError(f"--n must be at least 1, got {args.n}")
    rows = []
    for run in args.runs:
        rows.append(measure(run, args.split, args.n, args.data, args.formats))
        print(json.dumps({k: v for k, v in rows[-1].items() if not k.endswith("_correct")}))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    raise SystemExit(exit_code(main))
