"""CIFAR-10 on disk: find or download it, read and validate it, split it.

Top-down: `locate()` finds the files (downloading the official archive only when nothing is there),
`load_cifar10()` reads them into uint8 tensors, and `split_train_val()` carves a stratified validation set.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import pickle
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

from ..errors import DataError

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"
FOLDER = "cifar-10-batches-py"
ARCHIVE = "cifar-10-python.tar.gz"
TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# Per-channel statistics of the 50k training images (pixel/255).
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cifarlab"


# ---------------------------------------------------------------------------------------------- locate
def locate(option: str | None = None, download: bool = True, url: str = URL, md5: str = MD5) -> Path:
    """Where the data is: `option`, else $CIFAR10_DIR, else the cache (downloaded there if absent).

    Returns a `cifar-10-batches-py` folder or a `cifar-10-python.tar.gz` archive.
    """
    given = option or os.environ.get("CIFAR10_DIR")
    if given:
        found = find_in(Path(given).expanduser())
        if found is None:
            source = "--data" if option else "CIFAR10_DIR"
            raise DataError(
                f"no CIFAR-10 at {given} (from {source}): expected a '{FOLDER}' folder with "
                f"data_batch_1..5 and test_batch, or '{ARCHIVE}'"
            )
        return found
    root = cache_dir()
    found = find_in(root)
    if found is not None:
        return found
    if not download:
        raise DataError(f"no CIFAR-10 in {root}: pass --data PATH or set CIFAR10_DIR")
    return download_and_extract(root, url=url, md5=md5)


def find_in(path: Path) -> Path | None:
    if path.is_file() and path.name.endswith((".tar.gz", ".tgz")):
        return path
    for cand in (path, path / FOLDER):
        if cand.is_dir() and (cand / TEST_FILE).exists() and (cand / "data_batch_1").exists():
            return cand
    if (path / ARCHIVE).is_file():
        return path / ARCHIVE
    return None


def download_and_extract(root: Path, url: str = URL, md5: str = MD5, quiet: bool = False) -> Path:
    """Download the archive to a temporary name, verify its md5, extract safely, rename into place."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=".download-") as tmp:
        archive = Path(tmp) / ARCHIVE
        _download(url, archive, quiet)
        got = _md5(archive)
        if got != md5:
            raise DataError(
                f"downloaded archive from {url} is corrupted (md5 {got}, expected {md5}); "
                "nothing was kept: try again, or pass --data PATH to an existing copy"
            )
        _safe_extract(archive, Path(tmp) / "x")
        extracted = Path(tmp) / "x" / FOLDER
        if find_in(extracted) is None:
            raise DataError(f"archive from {url} has no {FOLDER}/ with the batch files")
        final = root / FOLDER
        if find_in(final) == final:  # another process finished first: its verified copy may be in use, keep it
            return final
        if final.exists():  # a damaged or partial folder
            shutil.rmtree(final)
        os.replace(extracted, final)
    return final


def _download(url: str, dest: Path, quiet: bool) -> None:
    try:
        resp = urllib.request.urlopen(url, timeout=30)
    except (urllib.error.URLError, OSError) as e:
        raise DataError(
            f"cannot download CIFAR-10 from {url} ({getattr(e, 'reason', e)}); offline? "
            "pass --data PATH or set CIFAR10_DIR to an existing cifar-10-batches-py folder"
        ) from None
    total = int(resp.headers.get("Content-Length") or 0) or None
    got = 0
    with (
        resp,
        open(dest, "wb") as f,
        Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            disable=quiet or not sys.stderr.isatty(),
        ) as bar,
    ):
        task = bar.add_task("downloading CIFAR-10", total=total)
        try:
            while chunk := resp.read(1 << 20):
                f.write(chunk)
                got += len(chunk)
                bar.advance(task, len(chunk))
        except (http.client.HTTPException, ConnectionError, TimeoutError) as e:
            raise _cut_short(url, f"{got} bytes, then {type(e).__name__}") from None
    if total is not None and got != total:
        raise _cut_short(url, f"{got} of {total} bytes")


def _cut_short(url: str, what: str) -> DataError:
    return DataError(
        f"download of {url} was cut short ({what}); nothing was kept: try again, "
        "or pass --data PATH to an existing copy"
    )


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _safe_extract(archive: Path, dest: Path) -> None:
    """Extract refusing absolute paths, `..`, links out of `dest` and device files."""
    try:
        with tarfile.open(archive) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(dest, filter="data")
            else:  # Python < 3.10.12: check by hand what the data filter would
                root = dest.resolve()
                for m in tar.getmembers():
                    target = (dest / m.name).resolve()
                    if not (m.isfile() or m.isdir()) or root not in (target, *target.parents):
                        raise tarfile.TarError(f"unsafe member {m.name!r}")
                tar.extractall(dest)
    except tarfile.TarError as e:
        raise DataError(f"refusing to extract {archive}: {e}") from None


# ------------------------------------------------------------------------------------------------ load
@dataclass
class Cifar10:
    train_x: torch.Tensor  # (50000, 3, 32, 32) uint8
    train_y: torch.Tensor  # (50000,) int64
    test_x: torch.Tensor  # (10000, 3, 32, 32) uint8
    test_y: torch.Tensor
    classes: tuple[str, ...] = CLASSES
    source: str = ""


def load_cifar10(path: Path) -> Cifar10:
    """Read the python-format batches from a folder or directly from the archive, and validate them."""
    path = Path(path)
    if path.is_file():
        read = _reader_from_archive(path)
    else:

        def read(name):
            file = path / name
            if not file.exists():
                raise DataError(f"missing {file}: the CIFAR-10 folder needs data_batch_1..5 and test_batch")
            return file.read_bytes()

    xs, ys = [], []
    for name in TRAIN_FILES:
        x, y = _parse_batch(read(name), name, path)
        xs.append(x), ys.append(y)
    test_x, test_y = _parse_batch(read(TEST_FILE), TEST_FILE, path)
    train_x, train_y = torch.cat(xs), torch.cat(ys)
    counts = torch.bincount(train_y, minlength=10)
    if int(counts.min()) == 0:
        raise DataError(f"{path}: some classes have no training images (counts {counts.tolist()})")
    return Cifar10(train_x, train_y, test_x, test_y, source=str(path))


def _reader_from_archive(archive: Path):
    try:
        tar = tarfile.open(archive)
        members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"cannot read archive {archive}: {e}") from None

    def read(name):
        if name not in members:
            raise DataError(f"{archive} has no {name}: is it the python version of CIFAR-10?")
        return tar.extractfile(members[name]).read()

    return read


class _SafeUnpickler(pickle.Unpickler):
    """The batches are pickles: allow only what numpy arrays need, so a crafted file cannot run code."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"forbidden global {module}.{name}")
        return super().find_class(module, name)


def _parse_batch(raw: bytes, name: str, where: Path) -> tuple[torch.Tensor, torch.Tensor]:
    label = f"{where}/{name}" if Path(where).is_dir() else f"{name} in {where}"
    try:
        d = _SafeUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as e:  # truncated, corrupted or crafted: all mean "this file is unusable"
        raise DataError(f"{label} is not a readable CIFAR-10 batch ({type(e).__name__}: {e})") from None
    if not isinstance(d, dict):
        raise DataError(f"{label}: expected a dict, found {type(d).__name__}")
    d = {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}
    if "data" not in d or "labels" not in d:
        raise DataError(f"{label}: missing 'data' or 'labels' (keys: {sorted(d)})")
    data, labels = d["data"], np.asarray(d["labels"])
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        desc = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{label}: 'data' must be uint8 of shape (N, 3072), found {desc}")
    if labels.ndim != 1 or len(labels) != len(data):
        raise DataError(f"{label}: {len(labels)} labels for {len(data)} images")
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{label}: labels must be in 0..9, found {labels.min()}..{labels.max()}")
    x = torch.from_numpy(np.ascontiguousarray(data)).view(-1, 3, 32, 32)
    return x, torch.from_numpy(labels.astype(np.int64))


# ----------------------------------------------------------------------------------------------- split
def split_train_val(y: torch.Tensor, val_size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Stratified, deterministic split: each class gives the same share of its images to validation.

    Returns (train_idx, val_idx), disjoint and sorted. The seed is fixed per call, not per run, so the
    validation set does not change when the training seed does.
    """
    n = len(y)
    if val_size == 0:
        return torch.arange(n), torch.zeros(0, dtype=torch.long)
    if not 0 < val_size < n:
        raise DataError(f"validation size {val_size} must be between 0 and {n - 1}")
    g = torch.Generator().manual_seed(seed)
    classes = torch.unique(y)
    counts = torch.stack([(y == c).sum() for c in classes]).double()
    # Largest-remainder rounding so the per-class quotas add up to val_size exactly.
    quota = counts * val_size / n
    take = quota.floor().long()
    rest = val_size - int(take.sum())
    take[torch.argsort(quota - take, descending=True)[:rest]] += 1
    val = [
        torch.nonzero(y == c).flatten()[torch.randperm(int(counts[i]), generator=g)[: take[i]]]
        for i, c in enumerate(classes)
    ]
    val_idx = torch.sort(torch.cat(val)).values
    mask = torch.ones(n, dtype=torch.bool)
    mask[val_idx] = False
    return torch.nonzero(mask).flatten(), val_idx


def train_val_indices(y: torch.Tensor, val_size: int, train_subset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The run's (train_idx, val_idx): the stratified split, then, with `train_subset`, a stratified slice of
    the training part (the same share from each class, by reusing the splitter with another seed)."""
    train_idx, val_idx = split_train_val(y, val_size)
    if train_subset:
        keep = split_train_val(y[train_idx], min(train_subset, len(train_idx) - 1), seed=1)[1]
        train_idx = train_idx[keep]
    return train_idx, val_idx
