import hashlib
import http.server
import io
import pickle
import tarfile
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

from cifarlab.data import cifar10, load_cifar10, split_train_val
from cifarlab.errors import DataError


def test_load_synthetic(tiny_data):
    d = load_cifar10(tiny_data)
    assert d.train_x.shape == (500, 3, 32, 32) and d.train_x.dtype == torch.uint8
    assert d.test_x.shape == (100, 3, 32, 32) and d.test_y.dtype == torch.int64
    # label integrity: what was pickled comes back in order
    raw = pickle.loads((Path(tiny_data) / "data_batch_2").read_bytes(), encoding="bytes")
    assert d.train_y[100:200].tolist() == raw[b"labels"]
    assert torch.equal(d.train_x[100].flatten(), torch.from_numpy(raw[b"data"][0]))


def test_load_from_archive(tiny_data, tmp_path):
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tiny_data, arcname="cifar-10-batches-py")
    a, b = load_cifar10(archive), load_cifar10(tiny_data)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)


def test_split_stratified_disjoint_deterministic():
    y = torch.arange(50000) % 10
    tr, va = split_train_val(y, 5000)
    assert len(tr) == 45000 and len(va) == 5000
    assert len(set(tr.tolist()) & set(va.tolist())) == 0
    assert torch.bincount(y[va]).tolist() == [500] * 10
    tr2, va2 = split_train_val(y, 5000)
    assert torch.equal(va, va2)
    tr0, va0 = split_train_val(y, 0)
    assert len(tr0) == 50000 and len(va0) == 0


def test_split_uneven_classes_exact_size():
    y = torch.tensor([0] * 70 + [1] * 20 + [2] * 10)
    _, va = split_train_val(y, 10)
    assert len(va) == 10 and torch.bincount(y[va]).tolist() == [7, 2, 1]


# --------------------------------------------------------------------------------- bad inputs
def _write_batch(folder, name, obj):
    (folder / name).write_bytes(pickle.dumps(obj, protocol=2))


@pytest.fixture
def broken(tiny_data, tmp_path):
    import shutil

    dst = tmp_path / "cifar-10-batches-py"
    shutil.copytree(tiny_data, dst)
    return dst


def test_missing_file(broken):
    (broken / "data_batch_3").unlink()
    with pytest.raises(DataError, match="data_batch_3"):
        load_cifar10(broken)


def test_truncated_file(broken):
    raw = (broken / "test_batch").read_bytes()
    (broken / "test_batch").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="test_batch is not a readable"):
        load_cifar10(broken)


def test_bad_shape_and_dtype(broken):
    _write_batch(broken, "data_batch_1", {b"data": np.zeros((10, 100), np.uint8), b"labels": [0] * 10})
    with pytest.raises(DataError, match="data_batch_1.*uint8 of shape"):
        load_cifar10(broken)
    _write_batch(broken, "data_batch_1", {b"data": np.zeros((10, 3072), np.float32), b"labels": [0] * 10})
    with pytest.raises(DataError, match="data_batch_1"):
        load_cifar10(broken)


def test_bad_labels(broken):
    _write_batch(broken, "data_batch_2", {b"data": np.zeros((10, 3072), np.uint8), b"labels": [12] * 10})
    with pytest.raises(DataError, match="data_batch_2.*0..9"):
        load_cifar10(broken)
    _write_batch(broken, "data_batch_2", {b"data": np.zeros((10, 3072), np.uint8), b"labels": [1] * 9})
    with pytest.raises(DataError, match="9 labels for 10 images"):
        load_cifar10(broken)


class _Evil:
    def __reduce__(self):
        return (exec, ("open('/tmp/cifarlab-pwned', 'w').write('x')",))


def test_crafted_pickle_cannot_run_code(broken):
    (broken / "data_batch_4").write_bytes(pickle.dumps({b"data": _Evil(), b"labels": []}))
    with pytest.raises(DataError, match="forbidden"):
        load_cifar10(broken)
    assert not Path("/tmp/cifarlab-pwned").exists()


def test_locate_errors(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="no CIFAR-10 at"):
        cifar10.locate(str(tmp_path))
    monkeypatch.setenv("CIFAR10_DIR", str(tmp_path / "nope"))
    with pytest.raises(DataError, match="CIFAR10_DIR"):
        cifar10.locate()


# ----------------------------------------------------------------------------------- download
def _archive_bytes(folder) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    return buf.getvalue()


@pytest.fixture
def http_server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_download_verify_extract(tiny_data, http_server, tmp_path, monkeypatch):
    root, base = http_server
    blob = _archive_bytes(tiny_data)
    (root / "c.tar.gz").write_bytes(blob)
    cache = tmp_path / "cache"
    got = cifar10.download_and_extract(cache, url=f"{base}/c.tar.gz", md5=hashlib.md5(blob).hexdigest(), quiet=True)
    assert got == cache / "cifar-10-batches-py"
    assert torch.equal(load_cifar10(got).train_x, load_cifar10(tiny_data).train_x)
    assert sorted(p.name for p in cache.iterdir()) == ["cifar-10-batches-py"]  # no temp files left
    # locate() uses the cache and downloads only when absent
    monkeypatch.delenv("CIFAR10_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    found = cifar10.locate(url=f"{base}/c.tar.gz", md5=hashlib.md5(blob).hexdigest())
    assert found == tmp_path / "xdg" / "cifarlab" / "cifar-10-batches-py"


def test_download_keeps_a_copy_another_process_finished_and_replaces_a_damaged_one(tiny_data, http_server, tmp_path):
    """Processes of one machine that download at once: the first to finish puts its copy in place, and the later
    ones leave it (it may be being read) instead of deleting it under a reader. A damaged folder is replaced."""
    root, base = http_server
    blob = _archive_bytes(tiny_data)
    (root / "c.tar.gz").write_bytes(blob)
    cache, md5 = tmp_path / "cache", hashlib.md5(blob).hexdigest()
    first = cifar10.download_and_extract(cache, url=f"{base}/c.tar.gz", md5=md5, quiet=True)
    inode = first.stat().st_ino
    assert cifar10.download_and_extract(cache, url=f"{base}/c.tar.gz", md5=md5, quiet=True) == first
    assert first.stat().st_ino == inode  # the same folder: not removed and replaced
    (first / "data_batch_1").unlink()  # damaged
    again = cifar10.download_and_extract(cache, url=f"{base}/c.tar.gz", md5=md5, quiet=True)
    assert torch.equal(load_cifar10(again).train_x, load_cifar10(tiny_data).train_x)
    assert sorted(p.name for p in cache.iterdir()) == ["cifar-10-batches-py"]


def test_the_first_process_of_each_machine_finds_the_data_first(tiny_data, monkeypatch):
    """Under torchrun, local rank 0 locates (and where needed downloads) the data before its machine's other
    processes look, so they find its copy rather than each fetching the archive at once."""
    import cifarlab.train as train_mod

    calls = []
    monkeypatch.setattr(train_mod, "locate", lambda option: calls.append("locate") or Path(option))

    class FakeDist:
        def __init__(self, local_rank):
            self.local_rank = local_rank

        def barrier(self):
            calls.append("barrier")

    for local_rank, want in ((0, ["locate", "barrier"]), (1, ["barrier", "locate"])):
        calls.clear()
        assert train_mod.locate_on_each_machine(str(tiny_data), FakeDist(local_rank)) == Path(tiny_data)
        assert calls == want, local_rank


def test_download_checksum_mismatch_leaves_nothing(tiny_data, http_server, tmp_path):
    root, base = http_server
    blob = bytearray(_archive_bytes(tiny_data))
    good_md5 = hashlib.md5(blob).hexdigest()
    blob[100] ^= 0xFF
    (root / "c.tar.gz").write_bytes(bytes(blob))
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="corrupted"):
        cifar10.download_and_extract(cache, url=f"{base}/c.tar.gz", md5=good_md5, quiet=True)
    assert list(cache.iterdir()) == []


def test_download_cut_short_leaves_nothing(tiny_data, tmp_path):
    blob = _archive_bytes(tiny_data)

    class HalfThenHangUp(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(blob)))
            self.end_headers()
            self.wfile.write(blob[: len(blob) // 2])
            self.close_connection = True

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HalfThenHangUp)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    cache = tmp_path / "cache"
    try:
        with pytest.raises(DataError, match="cut short.*nothing was kept"):
            cifar10.download_and_extract(
                cache,
                url=f"http://127.0.0.1:{srv.server_address[1]}/c.tar.gz",
                md5=hashlib.md5(blob).hexdigest(),
                quiet=True,
            )
    finally:
        srv.shutdown()
    assert list(cache.iterdir()) == []


def test_download_offline(tmp_path):
    with pytest.raises(DataError, match="offline.*--data"):
        cifar10.download_and_extract(tmp_path, url="http://127.0.0.1:9/none.tar.gz", quiet=True)


def test_archive_with_path_escape_refused(http_server, tmp_path):
    root, base = http_server
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("../../escaped.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    blob = buf.getvalue()
    (root / "evil.tar.gz").write_bytes(blob)
    cache = tmp_path / "deep" / "cache"
    with pytest.raises(DataError, match="refusing to extract"):
        cifar10.download_and_extract(cache, url=f"{base}/evil.tar.gz", md5=hashlib.md5(blob).hexdigest(), quiet=True)
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "deep" / "escaped.txt").exists()
