"""cifarlab: train, watch, evaluate, compare and ship CIFAR-10 classifiers."""

__version__ = "0.1.0"


class UserError(Exception):
    """A mistake the user can fix (bad option, missing file, bad config).

    The CLI prints it as one line and exits non-zero; it never shows a traceback.
    """

    exit_code = 1


class ConfigError(UserError):
    exit_code = 2
