"""Writing files so that a crash, a kill or a full disk never leaves a half-written one behind; reading the
JSON cifarlab wrote so that a damaged file is a one-line error naming it."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch

from .errors import UserError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates 0600 files; a run's files should get the usual permissions, as open() would give them
_FILE_MODE = 0o666 & ~_umask()


def _atomic(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), _FILE_MODE)
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic on POSIX: readers see the old file or the new one, never half
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    _atomic(path, lambda f: f.write(data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def atomic_torch_save(obj, path: Path) -> None:
    _atomic(path, lambda f: torch.save(obj, f))


def read_json(path: Path, what: str = "", hint: str = "", lines: bool = False):
    """A JSON file (or JSON Lines with `lines`), or a UserError naming the file, what it is and what to do."""
    path = Path(path)
    try:
        text = path.read_text()
        return [json.loads(ln) for ln in text.splitlines() if ln] if lines else json.loads(text)
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read {what + ' ' if what else ''}{path} ({type(e).__name__}: {e}){hint}") from None
