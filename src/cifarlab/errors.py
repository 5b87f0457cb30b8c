"""The errors a user can fix. The CLI and the tools print one as a single line and exit with its code; never a
traceback."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

INTERRUPTED = 130  # the exit code of a run stopped by Ctrl-C or a signal (the shell's 128 + SIGINT)
BROKEN_PIPE = 141  # the shell's 128 + SIGPIPE: the output's reader closed it


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


def exit_code(main: Callable[[], int | None]) -> int:
    """Run a program's body and return its exit code: a user's mistake or the machine's state (a full disk, a
    missing path) becomes one `error:` line on stderr, so that `cifarlab` and every tool fail alike."""
    try:
        return main() or 0
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as a command killed by SIGPIPE does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush cannot fail again
        return BROKEN_PIPE
    except OSError as e:  # a full disk, a permission, a path that cannot exist: the machine's state, not a bug
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: {where}{e.strerror or e}; check the path, its permissions and the free space", file=sys.stderr)
        return 1
