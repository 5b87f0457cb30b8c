"""cifarlab: train, watch, evaluate, compare and ship CIFAR-10 classifiers."""

from .errors import ConfigError, UserError

__version__ = "0.1.0"
__all__ = ["ConfigError", "UserError", "__version__"]
