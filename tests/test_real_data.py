"""Smoke runs on real CIFAR-10 (CI sets CIFAR10_DIR from ../shared); skipped with a reason without it."""

import pytest

from cifarlab.config import apply_overrides, load_preset
from cifarlab.data import load_cifar10, locate
from cifarlab.train import train


def test_real_dataset_is_complete(real_data):
    d = load_cifar10(locate(real_data))
    assert d.train_x.shape == (50000, 3, 32, 32) and d.test_x.shape == (10000, 3, 32, 32)
    assert d.train_y[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert d.test_y[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]


# (preset, overrides, minimum test accuracy): a few thousand images for a couple of epochs; chance is 10%.
SMOKE = [
    ("baseline", ["data.train_subset=8000", "train.epochs=3"], 0.30),
    ("intermediate", ["data.train_subset=4000", "train.epochs=2"], 0.25),
    ("advanced", ["data.train_subset=2000", "train.epochs=2", "data.batch_size=250", "eval.tta=none"], 0.35),
]


@pytest.mark.parametrize("preset,overrides,floor", SMOKE, ids=[s[0] for s in SMOKE])
def test_preset_learns_on_real_data(real_data, tmp_path, preset, overrides, floor):
    cfg = apply_overrides(
        load_preset(preset), [f"data.dir={real_data}", "data.val_size=1000", "runtime.tensorboard=false", *overrides]
    )
    _, summary = train(cfg, tmp_path)
    assert summary.test_acc > floor, summary
    assert summary.n_train == int(overrides[0].split("=")[1])
