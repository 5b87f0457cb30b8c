"""The JPEG-75 gap's floor at this budget (results/robust/jpeg_bound/table.md): the preset beside a net trained on
nothing but JPEG-75 images, both scored on the same 5,000 validation images written as PNG and as JPEG files.

python results/robust/jpeg_bound/summarize.py
"""

import json
from pathlib import Path

import torch

from cifarlab.metrics import bootstrap_accuracy, mcnemar

HERE = Path(__file__).parent
NAMES = {"preset": "the preset (`advanced`)", "jpeg75_all": "JPEG-75 specialist (every image at quality 75)"}


def load(name: str) -> tuple[dict, dict]:
    bench = json.loads((HERE / f"{name}.dev.json").read_text())
    real = json.loads((HERE / f"{name}.real_files_val5000.json").read_text())[0]
    return bench, real


def correct(real: dict, fmt: str) -> torch.Tensor:
    return torch.tensor([c == "1" for c in real[f"{fmt}_correct"]])


def paired(a: torch.Tensor, b: torch.Tensor) -> str:
    """A minus B in points, its 95% interval (images resampled) and McNemar's p."""
    point, lo, hi = bootstrap_accuracy(a[None], b[None])
    return f"{100 * point:+.2f} (95% CI {100 * lo:+.2f} to {100 * hi:+.2f}; McNemar p {mcnemar(a, b)['p_value']:.2g})"


def main() -> None:
    runs = {name: load(name) for name in NAMES}
    lines = [
        "| recipe (11 epochs, 45,000 train, seed 0) | val (TTA) | PNG files | JPEG-90 files | JPEG-75 files "
        "| JPEG-75 gap | wall |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, (bench, real) in runs.items():
        run = bench["runs"][0]
        lines.append(
            f"| {NAMES[name]} | {100 * run['val_acc']:.2f} | {100 * real['png']:.2f} | {100 * real['jpeg90']:.2f} "
            f"| {100 * real['jpeg75']:.2f} | {real['jpeg75_gap_points']:.2f} | {run['wall_time_s']:,.0f} s |"
        )
    (_, pre), (_, spec) = runs["preset"], runs["jpeg75_all"]
    n = pre["n"]
    lines += [
        "",
        f"Paired on the same {n:,} validation images:",
        "",
        f"- the floor, the preset's PNG minus the specialist's JPEG-75: "
        f"{paired(correct(pre, 'png'), correct(spec, 'jpeg75'))}",
        f"- JPEG-75 files, specialist minus preset: {paired(correct(spec, 'jpeg75'), correct(pre, 'jpeg75'))}",
        f"- PNG files, specialist minus preset: {paired(correct(spec, 'png'), correct(pre, 'png'))}",
    ]
    (HERE / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
