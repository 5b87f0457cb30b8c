"""CIFAR-10: the files (cifar10), batches on the device (loader), augmentation and corruptions."""

from .cifar10 import CLASSES, MEAN, STD, Cifar10, load_cifar10, locate, split_train_val, train_val_indices
from .loader import Loader

__all__ = [
    "CLASSES",
    "MEAN",
    "STD",
    "Cifar10",
    "Loader",
    "load_cifar10",
    "locate",
    "split_train_val",
    "train_val_indices",
]
