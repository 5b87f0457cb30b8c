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

from cifarlab import augment, data
from cifarlab.config import AugmentConfig
from cifarlab.data import DataError, Loader, load_cifar10, split_train_val


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


def test_loader_batches_and_normalization(tiny_data):
    d = load_cifar10(tiny_data)
    ld = Loader(d.train_x, d.train_y, 64, "cpu", shuffle=True, drop_last=True, seed=3)
    batches = list(ld.epoch(0))
    assert len(batches) == len(ld) == 500 // 64
    x, y = batches[0]
    assert x.shape == (64, 3, 32, 32) and x.dtype == torch.float32
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert abs(x.mean().item()) < 1.0
    # shuffling differs per epoch, repeats for the same (seed, epoch)
    assert not torch.equal(ld.order(0), ld.order(1))
    assert torch.equal(ld.order(1), Loader(d.train_x, d.train_y, 64, "cpu", shuffle=True, seed=3).order(1))
    # every image is served once per epoch without drop_last
    ld2 = Loader(d.train_x, d.train_y, 64, "cpu", shuffle=True)
    assert sorted(torch.cat([b[1] for b in ld2.epoch(0)]).tolist()) == sorted(d.train_y.tolist())


def test_flip_mirrors():
    x = torch.arange(2 * 3 * 4 * 5).view(2, 3, 4, 5)
    out = augment.flip(x, torch.tensor([True, False]))
    assert torch.equal(out[0], x[0].flip(-1)) and torch.equal(out[1], x[1])


def test_translate_stays_in_bounds_and_is_a_shift():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 255, (64, 3, 32, 32), dtype=torch.uint8)
    out = augment.random_translate(x, 4, g, "zeros")
    assert out.shape == x.shape and out.dtype == x.dtype
    for i in range(64):  # each output is the input shifted by some (dy, dx) with |d| <= 4, zero outside
        found = False
        for dy in range(-4, 5):
            for dx in range(-4, 5):
                ref = torch.zeros_like(x[i])
                ys, xs = slice(max(0, dy), 32 + min(0, dy)), slice(max(0, dx), 32 + min(0, dx))
                ys_src, xs_src = slice(max(0, -dy), 32 + min(0, -dy)), slice(max(0, -dx), 32 + min(0, -dx))
                ref[:, ys_src, xs_src] = x[i][:, ys, xs]
                found |= torch.equal(out[i], ref)
        assert found, f"image {i} is not a bounded translate"
    out_r = augment.random_translate(x, 2, g, "reflect")
    assert out_r.shape == x.shape
    assert set(out_r.unique().tolist()) <= set(x.unique().tolist())


def test_reflect_index():
    assert augment.reflect_index(4, 2).tolist() == [2, 1, 0, 1, 2, 3, 2, 1]


def test_cutout_area():
    g = torch.Generator().manual_seed(0)
    x = torch.ones(200, 3, 32, 32)
    out = augment.cutout(x, 8, g)
    zeros = (out[:, 0] == 0).sum((1, 2))
    assert zeros.max() == 64 and zeros.min() >= 16  # a full square inside, clipped at a corner at worst
    assert torch.equal((out == 0).all(1), (out[:, :1] == 0).squeeze(1))  # same square in every channel


def test_batch_augment_pipeline(tiny_data):
    d = load_cifar10(tiny_data)
    cfg = AugmentConfig(translate=2, flip="alternate", cutout=8)
    ld = Loader(d.train_x, d.train_y, 100, "cpu", shuffle=True, augment=cfg, seed=1)
    a = [x for x, _ in ld.epoch(0)]
    b = [x for x, _ in ld.epoch(0)]
    assert all(torch.equal(p, q) for p, q in zip(a, b))  # a pure function of (seed, epoch, step)
    assert a[0].shape == (100, 3, 32, 32) and torch.isfinite(a[0]).all()


def test_progressive_resize_schedule_and_batches(tiny_data):
    cfg = AugmentConfig(resize_from=20, resize_until=6)
    assert [augment.train_size(cfg, e) for e in range(8)] == [20, 20, 24, 24, 28, 28, 32, 32]
    assert augment.train_size(AugmentConfig(), 0) == 32  # off by default
    d = load_cifar10(tiny_data)
    ld = Loader(d.train_x, d.train_y, 100, "cpu", shuffle=True, augment=cfg, seed=1)
    x0, _ = next(ld.epoch(0))
    x6, _ = next(ld.epoch(6))
    assert x0.shape == (100, 3, 20, 20) and x6.shape == (100, 3, 32, 32)
    assert x0.is_contiguous(memory_format=torch.channels_last)
    # Downscaling keeps each image's content: its mean colour is unchanged.
    plain = Loader(d.train_x, d.train_y, 100, "cpu", shuffle=True, augment=AugmentConfig(), seed=1)
    full, _ = next(plain.epoch(0))
    assert torch.allclose(x0.mean((2, 3)), full.mean((2, 3)), atol=0.02)


def test_alternate_flip_flips_every_other_epoch(tiny_data):
    d = load_cifar10(tiny_data)
    ld = Loader(d.train_x, d.train_y, 500, "cpu", augment=AugmentConfig(flip="alternate"))
    e0, _ = next(ld.epoch(0))
    e1, _ = next(ld.epoch(1))
    plain = ld.normalize(d.train_x)
    flipped0 = ~torch.isclose(e0, plain).all((1, 2, 3))
    flipped1 = ~torch.isclose(e1, plain).all((1, 2, 3))
    assert torch.equal(flipped0, ~flipped1)
    assert 150 < int(flipped0.sum()) < 350


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
        data.locate(str(tmp_path))
    monkeypatch.setenv("CIFAR10_DIR", str(tmp_path / "nope"))
    with pytest.raises(DataError, match="CIFAR10_DIR"):
        data.locate()


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
    got = data.download_and_extract(cache, url=f"{base}/c.tar.gz", md5=hashlib.md5(blob).hexdigest(), quiet=True)
    assert got == cache / "cifar-10-batches-py"
    assert torch.equal(load_cifar10(got).train_x, load_cifar10(tiny_data).train_x)
    assert sorted(p.name for p in cache.iterdir()) == ["cifar-10-batches-py"]  # no temp files left
    # locate() uses the cache and downloads only when absent
    monkeypatch.delenv("CIFAR10_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    found = data.locate(url=f"{base}/c.tar.gz", md5=hashlib.md5(blob).hexdigest())
    assert found == tmp_path / "xdg" / "cifarlab" / "cifar-10-batches-py"


def test_download_checksum_mismatch_leaves_nothing(tiny_data, http_server, tmp_path):
    root, base = http_server
    blob = bytearray(_archive_bytes(tiny_data))
    good_md5 = hashlib.md5(blob).hexdigest()
    blob[100] ^= 0xFF
    (root / "c.tar.gz").write_bytes(bytes(blob))
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="corrupted"):
        data.download_and_extract(cache, url=f"{base}/c.tar.gz", md5=good_md5, quiet=True)
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
            data.download_and_extract(cache, url=f"http://127.0.0.1:{srv.server_address[1]}/c.tar.gz",
                                      md5=hashlib.md5(blob).hexdigest(), quiet=True)
    finally:
        srv.shutdown()
    assert list(cache.iterdir()) == []


def test_download_offline(tmp_path):
    with pytest.raises(DataError, match="offline.*--data"):
        data.download_and_extract(tmp_path, url="http://127.0.0.1:9/none.tar.gz", quiet=True)


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
        data.download_and_extract(cache, url=f"{base}/evil.tar.gz", md5=hashlib.md5(blob).hexdigest(), quiet=True)
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "deep" / "escaped.txt").exists()
