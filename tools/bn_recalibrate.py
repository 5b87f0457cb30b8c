"""Does a robust recipe lose clean accuracy through its BN statistics? For each run of a `cifarlab bench --dev`
file: score the validation split (clean and corrupted), re-estimate every BN layer's running statistics on clean
training images (a cumulative average over passes of 128, the training pass size on a CPU), score again. The
corrupted share of each training batch enters the running statistics; if that were the clean cost, the second
score would win it back. The test set is never opened.

    python tools/bn_recalibrate.py runs/clean_tail/mix10_augmix50.dev.json --images 5120 --robust-n 500 \
        --out results/robust/bn_recal/mix10_augmix50.json
"""

from __future__ import annotations

import argparse
import json

import torch
import torch.nn as nn

from cifarlab.checkpoint import model_from_checkpoint
from cifarlab.commands.bench import DEV_VAL_SIZE, read_dev, score_on_validation
from cifarlab.config import resolve
from cifarlab.data import load_cifar10, locate
from cifarlab.errors import UserError, exit_code
from cifarlab.hardware import select_device, select_precision
from cifarlab.io import atomic_write_text
from cifarlab.metrics import paired_difference
from cifarlab.train import make_loaders

KEYS = ("val_acc", "val_acc_one_view", "held_out_acc", "seen_acc")


@torch.no_grad()
def recalibrate_bn(model: nn.Module, images: torch.Tensor, pass_size: int = 128) -> None:
    """Every BN layer's running mean and variance re-estimated on `images` (normalized), averaged over passes."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # None: a cumulative average, each pass weighted alike
    model.train()
    for i in range(0, len(images), pass_size):
        model(images[i : i + pass_size])
    model.eval()


def probe(bench_file: str, n_images: int, robust_n: int, data=None) -> list[dict]:
    bench, rows = read_dev(bench_file), []
    extra = [f"data.val_size={DEV_VAL_SIZE}"]
    base = resolve(bench["preset"], [*bench["overrides"], *extra], bench["epochs"], None, None)
    dev = select_device(base.runtime.device)
    dtype = select_precision(dev, base.runtime.precision)
    train, val, _, _ = make_loaders(base, load_cifar10(locate(data)), dev)  # the split has no seed
    pick = torch.randperm(len(train.y), generator=torch.Generator().manual_seed(0))[:n_images]
    clean = train.normalize(train.x[pick.to(train.x.device)])
    for old in bench["runs"]:
        cfg = resolve(bench["preset"], [*bench["overrides"], *extra], bench["epochs"], old["seed"], None)
        model, _, _ = model_from_checkpoint(f"{old['run_dir']}/best.pt", dev)
        model = model.to(memory_format=torch.channels_last) if cfg.runtime.channels_last else model
        before = score_on_validation(model, val, dtype, cfg, old["run_dir"], None, None, robust_n)
        recalibrate_bn(model, clean)
        after = score_on_validation(model, val, dtype, cfg, old["run_dir"], None, None, robust_n)
        rows.append({"seed": old["seed"], "before": before, "after": after})
        print(json.dumps({"seed": old["seed"], **{k: (before.get(k), after.get(k)) for k in KEYS}}), flush=True)
    return rows


def summary(rows: list[dict]) -> dict:
    """After minus before over the paired runs, per score."""
    out = {}
    for k in KEYS:
        a = [r["after"][k] for r in rows if r["after"].get(k) is not None]
        b = [r["before"][k] for r in rows if r["before"].get(k) is not None]
        if len(a) == len(b) >= 2:
            d = paired_difference(a, b)
            out[k] = {"mean": 100 * d["mean"], "ci95": [100 * v for v in d["ci95"]], "p": d["p"], "n": d["n"]}
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bench", help="a dev bench file (cifarlab bench --dev) whose runs' best.pt exist here")
    p.add_argument("--images", type=int, default=5120, help="clean training images for the new statistics")
    p.add_argument("--robust-n", type=int, default=500, help="validation images per corruption (0: none)")
    p.add_argument("--data", default=None)
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    if a.images < 1:
        raise UserError(f"--images must be at least 1, got {a.images}")
    rows = probe(a.bench, a.images, a.robust_n, a.data)
    result = {"bench": a.bench, "images": a.images, "robust_n": a.robust_n, "runs": rows, "after_minus_before":
              summary(rows)}  # fmt: skip
    atomic_write_text(a.out, json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["after_minus_before"], indent=1))


if __name__ == "__main__":
    raise SystemExit(exit_code(main))
