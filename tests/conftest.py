"""Shared fixtures: a tiny learnable CIFAR-10 written in the python layout, tiny configs, the real data."""

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from cifarlab.callbacks import CurvesPlot, TensorBoardLogger
from cifarlab.config import apply_overrides, load_preset
from cifarlab.data.cifar10 import CLASSES, FOLDER, META_FILE, TEST_FILE, TRAIN_FILES
from cifarlab.train import train

TINY = [
    "data.val_size=50",
    "data.batch_size=50",
    "data.eval_batch_size=100",
    "train.epochs=2",
    "runtime.tensorboard=false",
]


# The longest files (minutes each on 2 cores), started first: under `make test` a worker takes a whole file, and
# one of these left for last would run alone while the other cores idle.
LONG_FILES = ("test_real_data.py", "test_notebooks.py", "test_commands_report.py", "test_cli.py", "test_parallel.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONG_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONG_FILES)))  # stable: file order kept otherwise


def make_synthetic(
    root: Path, n_train_per_batch: int = 100, n_test: int = 100, seed: int = 0, learnable: bool = True
) -> Path:
    """Write a small dataset in the python layout, as the real one is laid out.

    With `learnable`, each class has its own colour tint so a model can learn it in a few steps.
    """
    rng = np.random.default_rng(seed)
    folder = Path(root) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)

    def batch(n, label):
        y = np.arange(n) % 10
        rng.shuffle(y)
        x = rng.integers(0, 256, (n, 3, 32, 32)).astype(np.float32)
        if learnable:
            tint = np.stack([np.array([(c * 37) % 256, (c * 91) % 256, (c * 53) % 256]) for c in range(10)])
            x = 0.4 * x + 0.6 * tint[y][:, :, None, None]
        data = x.clip(0, 255).astype(np.uint8).reshape(n, 3072)
        return {b"batch_label": label.encode(), b"labels": y.tolist(), b"data": data}

    for i, name in enumerate(TRAIN_FILES):
        (folder / name).write_bytes(pickle.dumps(batch(n_train_per_batch, f"training batch {i + 1} of 5"), protocol=2))
    (folder / TEST_FILE).write_bytes(pickle.dumps(batch(n_test, "testing batch 1 of 1"), protocol=2))
    (folder / META_FILE).write_bytes(pickle.dumps({b"label_names": [c.encode() for c in CLASSES]}, protocol=2))
    return folder


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """A learnable 500-image dataset in the python layout."""
    return make_synthetic(tmp_path_factory.mktemp("cifar"), n_train_per_batch=100, n_test=100)


@pytest.fixture
def tiny_cfg(tiny_data):
    def make(preset="baseline", *extra):
        return apply_overrides(load_preset(preset), TINY + [f"data.dir={tiny_data}", *extra])

    return make


@pytest.fixture(scope="session")
def real_data():
    path = os.environ.get("CIFAR10_DIR")
    if not path or not os.path.isdir(path):
        pytest.skip("real CIFAR-10 not available: set CIFAR10_DIR to a cifar-10-batches-py folder")
    return path


@pytest.fixture(scope="session")
def two_runs(tiny_data, tmp_path_factory):
    """A baseline and an intermediate run of 2 epochs on the tiny data, watched by curves.png and TensorBoard."""
    out = tmp_path_factory.mktemp("runs")
    dirs = []
    for preset in ("baseline", "intermediate"):
        cfg = apply_overrides(load_preset(preset), TINY + [f"data.dir={tiny_data}", "runtime.tensorboard=true"])
        run_dir, _ = train(cfg, out, callbacks=[CurvesPlot(), TensorBoardLogger()])
        dirs.append(run_dir)
    return dirs


def bench_summary(seed, acc, wall, reached=None) -> dict:
    """A summary.json of the advanced preset, as a bench test needs one."""
    return {
        "preset": "advanced",
        "seed": seed,
        "test_acc": acc,
        "wall_time_s": wall,
        "train_img_per_s": 500.0,
        "time_to_val_acc": {"90": reached, "93": None, "94": None},
        "epochs": 9,
        "epochs_trained": 8.5,
        "tta": "flip_translate",
        "params": 2_000_000,
        "flops_per_image": 236_000_000,
        "device": "cpu (x, 2 threads)",
        "dtype": "bf16",
        "torch": "2.13.0",
        "n_train": 45000,
        "n_val": 5000,
        "test_loss": 1.0,
        "best_val_acc": 0.9,
        "best_epoch": 9,
        "steps": 374,
        "train_time_s": wall - 50,
    }
