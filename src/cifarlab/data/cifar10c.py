"""The released CIFAR-10-C (Hendrycks & Dietterich): DIR/<family>.npy, each 5 severities x 10,000 test images
(N, 32, 32, 3) uint8 in the test set's order, and DIR/labels.npy. Read memory-mapped, checked, one family at a
time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .corruptions import CORRUPTIONS, SEVERITIES


def _load(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataError(f"{path} is not a readable .npy array ({e}): re-download or remove it") from None


def load_cifar10c(
    root, idx: torch.Tensor, test_y: torch.Tensor, families=None, severities=SEVERITIES
) -> dict[str, torch.Tensor]:
    """{family: (len(severities), len(idx), 3, 32, 32) uint8} for the test images `idx`, read from the release
    in `root`. Its labels must be the test set's, repeated per severity."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"--cifar10c {root}: no such folder; give the folder holding <corruption>.npy and labels.npy")
    labels = _load(root / "labels.npy") if (root / "labels.npy").exists() else None
    if labels is None:
        raise DataError(f"{root}: no labels.npy; the CIFAR-10-C folder holds labels.npy beside <corruption>.npy")
    n_test = len(test_y)
    present = [f for f in CORRUPTIONS if (root / f"{f}.npy").exists()]
    names = list(families) if families else present
    missing = [f for f in names if f not in present]
    if missing or not names:
        raise DataError(f"{root}: no {', '.join(f + '.npy' for f in missing) or '<corruption>.npy file'}; "
                        f"found {', '.join(present) or 'none'}: narrow --corruptions to those")  # fmt: skip
    if labels.ndim != 1 or len(labels) % n_test or len(labels) // n_test < max(severities):
        raise DataError(f"{root}/labels.npy: {labels.shape} labels; expected 5 x {n_test} (one per test image "
                        "and severity)")  # fmt: skip
    lab = torch.from_numpy(np.asarray(labels[: max(severities) * n_test]).astype(np.int64)).view(-1, n_test)
    if not bool((lab[[s - 1 for s in severities]] == test_y.cpu()).all()):
        raise DataError(f"{root}/labels.npy does not match the CIFAR-10 test labels: is it CIFAR-10-C's?")
    out = {}
    for f in names:
        a = _load(root / f"{f}.npy")
        if a.dtype != np.uint8 or a.ndim != 4 or a.shape[1:] != (32, 32, 3) or len(a) != len(labels):
            raise DataError(f"{root}/{f}.npy: {a.dtype} {a.shape}; expected uint8 ({len(labels)}, 32, 32, 3)")
        rows = torch.tensor([(s - 1) * n_test for s in severities])[:, None] + idx.cpu()[None]  # (S, N)
        imgs = torch.from_numpy(np.ascontiguousarray(a[rows.flatten().numpy()]))
        out[f] = imgs.view(len(severities), len(idx), 32, 32, 3).permute(0, 1, 4, 2, 3).contiguous()
    return out
