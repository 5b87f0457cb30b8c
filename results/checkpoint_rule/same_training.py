"""Does `train.checkpoint: last` change the training, or only which weights best.pt serves?

python results/checkpoint_rule/same_training.py OLD_RUN NEW_RUN > results/checkpoint_rule/seed1_last.md

OLD_RUN (a run directory, or a committed record without checkpoints) trained with the default `best`, NEW_RUN
the same preset and seed with `--set train.checkpoint=last`. Compares their last.pt weights tensor by tensor and their per-epoch records, then prints both served rows.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch


def weights(run: Path) -> dict:
    return torch.load(run / "last.pt", map_location="cpu", weights_only=True)["model"]


def epochs(run: Path) -> list[dict]:
    keep = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "step")
    return [{k: r[k] for k in keep} for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())]


def main(old: Path, new: Path) -> None:
    if (old / "last.pt").exists():
        a, b = weights(old), weights(new)
        differ = [k for k in a if not torch.equal(a[k], b[k])]
        print(f"last.pt: {len(a)} tensors, {len(differ)} differ ({', '.join(differ[:5]) or 'bit for bit the same'})")
    else:  # a committed record: its checkpoints were not kept
        print(f"last.pt: {old} has no checkpoints (a record); the records alone are compared")
    same = epochs(old) == epochs(new)
    print(f"metrics.jsonl (losses, accuracies, lr, steps of every epoch): {'identical' if same else 'DIFFER'}\n")
    print("| run | train.checkpoint | best_epoch served | val acc served | test acc (TTA) | wall |")
    print("|---|---|---:|---:|---:|---:|")
    for run in (old, new):
        s = json.loads((run / "summary.json").read_text())
        rule = s.get("recipe", {}).get("train", {}).get("checkpoint", "best")
        print(
            f"| {run.name} | {rule} | {s['best_epoch']} of {s['epochs']:g} | {100 * s['best_val_acc']:.1f}% | "
            f"{100 * s['test_acc']:.2f}% | {s['wall_time_s']:,.0f} s |"
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
