import torch

from cifarlab.config import AugmentConfig
from cifarlab.data import Loader, augment, load_cifar10


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


def test_batch_augment_pipeline(tiny_data):
    d = load_cifar10(tiny_data)
    cfg = AugmentConfig(translate=2, flip="alternate", cutout=8)
    ld = Loader(d.train_x, d.train_y, 100, "cpu", shuffle=True, augment=cfg, seed=1)
    a = [x for x, _ in ld.epoch(0)]
    b = [x for x, _ in ld.epoch(0)]
    assert all(torch.equal(p, q) for p, q in zip(a, b))  # a pure function of (seed, epoch, step)
    assert a[0].shape == (100, 3, 32, 32) and torch.isfinite(a[0]).all()
    plain = next(Loader(d.train_x, d.train_y, 100, "cpu", shuffle=True, seed=1).epoch(0))[0]
    moved = (a[0] - plain).abs().flatten(1).amax(1) > 1e-6
    assert moved.float().mean() > 0.9  # the augmentation changed (nearly) every image, not an identity
    zeros = (a[0] == 0).all(1).flatten(1).sum(1)  # cutout sets a square to the mean: 0 once normalized
    assert (zeros >= 16).all() and (zeros <= 64).all()


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


def test_robust_shares_stop_at_robust_until(tiny_data):
    """The corruption share corrupts batches before robust_until (fractional epochs) and none after it."""
    d = load_cifar10(tiny_data)
    cfg = AugmentConfig(corrupt=0.5, robust_until=1.5)  # 5 batches an epoch: epoch 1's last two are clean
    ld = Loader(d.train_x, d.train_y, 100, "cpu", shuffle=True, augment=cfg, seed=1)
    plain = Loader(d.train_x, d.train_y, 100, "cpu", shuffle=True, augment=AugmentConfig(), seed=1)
    changed = [
        int((x - p).abs().flatten(1).amax(1).gt(1e-6).sum())
        for e in (0, 1)
        for (x, _), (p, _) in zip(ld.epoch(e), plain.epoch(e))
    ]
    assert all(n > 20 for n in changed[:8]) and changed[8:] == [0, 0], changed
    assert augment.robust_shares_on(AugmentConfig(), 1e9)  # 0: every epoch
