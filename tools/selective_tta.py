"""Selective TTA on finished runs: test accuracy and seconds of the test pass per TTA fraction.

    python tools/selective_tta.py results/runs/*-advanced --out results/levers/selective_tta.json

The plain pass (tta none) is timed first, then 6-view TTA on every image (fraction 1) and on the least
confident share only. A benchmark, not a test: run it alone on the machine.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from cifarlab.checkpoint import model_from_checkpoint
from cifarlab.data import Loader, load_cifar10, locate
from cifarlab.errors import UserError, exit_code
from cifarlab.hardware import select_precision
from cifarlab.inference import predict_logits
from cifarlab.io import atomic_write_text
from cifarlab.metrics import accuracy
from cifarlab.rundir import recorded_source


def measure(run: Path, fractions=(1.0, 0.5, 0.25, 0.1), data_path: str | None = None) -> list[dict]:
    dev = torch.device("cpu")
    model, cfg, ckpt = model_from_checkpoint(run, dev)
    model = model.to(memory_format=torch.channels_last)
    data = load_cifar10(locate(data_path or cfg.data.dir or recorded_source(run, ckpt)))
    loader = Loader(data.test_x, data.test_y, cfg.data.eval_batch_size, dev)
    dtype = select_precision(dev, cfg.runtime.precision)
    rows = []
    for tta, frac in [("none", 1.0)] + [("flip_translate", f) for f in fractions]:
        t = time.perf_counter()
        logits, y = predict_logits(model, loader, dtype, tta, frac)
        rows.append({"run": str(run), "seed": cfg.train.seed, "tta": tta, "fraction": frac,
                     "test_acc": accuracy(logits, y), "seconds": round(time.perf_counter() - t, 2)})  # fmt: skip
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--fractions", type=float, nargs="+", default=[1.0, 0.5, 0.25, 0.1])
    p.add_argument("--data")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    if not all(0 < f <= 1 for f in args.fractions):
        raise UserError(f"--fractions must lie in (0, 1], got {args.fractions}")
    rows = []
    for run in args.runs:
        for row in measure(run, args.fractions, args.data):
            print(json.dumps(row), flush=True)
            rows.append(row)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, json.dumps(rows, indent=1) + "\n")  # a stopped run leaves the old file whole
    return 0


if __name__ == "__main__":
    raise SystemExit(exit_code(main))
