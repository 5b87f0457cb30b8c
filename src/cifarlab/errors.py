"""The errors a user can fix. The CLI prints one as a single line and exits with its code; never a traceback."""


class UserError(Exception):
    """A mistake the user can fix (bad option, missing file, damaged file)."""

    exit_code = 1


class ConfigError(UserError):
    """A bad config, preset, `--set` or option value."""

    exit_code = 2


class DataError(UserError):
    """CIFAR-10 cannot be found, downloaded or read."""


class CheckpointError(UserError):
    """A checkpoint that is missing, damaged, unsafe or for another network."""


class TrainingError(UserError):
    """Training cannot go on (e.g. the loss became nan); the last good checkpoint is kept."""


class ImageError(UserError):
    """A user's image that cannot be read."""
