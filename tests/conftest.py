import os

import pytest

from cifarlab.config import apply_overrides, load_preset
from cifarlab.data import make_synthetic

TINY = ["data.val_size=50", "data.batch_size=50", "data.eval_batch_size=100", "train.epochs=2",
        "train.tensorboard=false"]


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
