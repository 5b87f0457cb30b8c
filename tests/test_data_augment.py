import torch

from cifarlab.data import augment


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


def test_patch_gaussian_noises_one_square_and_leaves_the_rest():
    g = torch.Generator().manual_seed(0)
    x = torch.full((300, 3, 32, 32), 128.0)
    out = augment.patch_gaussian(x, g)
    changed = (out != x).any(1)  # (B, H, W): where the patch is, in every channel at once
    rows, cols = changed.any(2).sum(1), changed.any(1).sum(1)
    assert rows.max() <= 25 and cols.max() <= 25 and (changed.sum((1, 2)) <= rows * cols).all()
    assert changed.sum((1, 2)).float().mean() > 0.4 * 32 * 32  # a 25 px square, clipped at the border
    assert torch.equal(out.clamp(0, 255), out)
    inside = changed[:, None].expand_as(out)
    spread = torch.stack([(o - 128)[m].std() for o, m in zip(out, inside)])  # one sigma per image, up to 255
    assert spread.max() > 100 and spread.min() < 25  # near-saturated patches and faint ones
    again = augment.patch_gaussian(x, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


def test_color_jitter_stays_in_range_and_moves_each_image_once():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(60, 200, (64, 3, 8, 8), dtype=torch.uint8)
    out = augment.color_jitter(x, 0.14, 0.0, g)
    assert out.min() >= 0 and out.max() <= 255
    shift = out - x.float()
    per_image = shift.flatten(1)
    assert torch.allclose(per_image, per_image[:, :1].expand_as(per_image), atol=1e-4)  # one brightness draw per image
    assert per_image.abs().max() <= 0.14 * 255 + 1e-3 and per_image.abs().max() > 0.05 * 255
    out = augment.color_jitter(x, 0.0, 0.13, g)
    m = x.float().mean((1, 2, 3), keepdim=True)
    ratio = (out - m).flatten(1).norm(dim=1) / (x.float() - m).flatten(1).norm(dim=1)
    assert ((ratio >= 0.87 - 1e-4) & (ratio <= 1.13 + 1e-4)).all() and ratio.std() > 0.01


def _ops(names):
    return torch.tensor([augment.AUGMIX_OPS.index(o) if o else -1 for o in names])


def test_augmix_ops_posterize_solarize_and_warps():
    x = torch.randint(0, 256, (4, 3, 32, 32), generator=torch.Generator().manual_seed(0)).float()
    op = _ops(["posterize", "solarize", "translate_x", None])
    out = augment.augmix_op(x, op, torch.tensor([0.3, 0.3, 0.3, 0.3]), torch.tensor([1.0, 1.0, 1.0, 1.0]))
    assert torch.equal(out[0], (x[0] / 32).floor() * 32)  # level 0.3: 3 bits kept
    thr = 256 - int(256 * 0.3)
    assert torch.equal(out[1], torch.where(x[1] >= thr, 255 - x[1], x[1]))
    shift = int(32 / 3 * 0.3)  # 3 px, filled with black where the image moved away
    assert torch.allclose(out[2][..., shift:], x[2][..., :-shift], atol=1e-3) or torch.allclose(
        out[2][..., :-shift], x[2][..., shift:], atol=1e-3
    )
    assert (out[2][..., :shift] == 0).all() or (out[2][..., -shift:] == 0).all()
    assert torch.equal(out[3], x[3])  # -1: untouched


def test_augmix_rotation_keeps_the_centre_and_turns_the_image():
    x = torch.zeros(1, 3, 32, 32)
    x[..., 15:17, 4:28] = 255  # a horizontal bar through the centre
    out = augment.augmix_op(x, _ops(["rotate"]), torch.tensor([0.3]), torch.tensor([1.0]))  # 9 degrees
    assert out[..., 15:17, 15:17].min() > 200  # the centre stays
    assert out[..., 15:17, 4:28].mean() < 0.9 * x[..., 15:17, 4:28].mean()  # the bar's ends left their rows
    assert abs(float(out.sum() - x.sum())) < 0.1 * float(x.sum())  # a turn, not an erase


def test_augmix_share_mixes_only_its_share_and_stays_near_the_image():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (400, 3, 32, 32), dtype=torch.uint8)
    out = augment.augmix_share(x, 0.25, g)
    changed = (out != x.float()).flatten(1).any(1)
    assert 60 < int(changed.sum()) < 140  # about a quarter
    assert out.min() >= 0 and out.max() <= 255
    assert torch.equal(augment.augmix_share(x, 0.0, g), x.float())
    mixed = augment.augmix(x.float()[:64], torch.Generator().manual_seed(1))
    # a convex mix with the image: closer to it than a random other image is
    assert (mixed - x[:64].float()).abs().mean() < 0.5 * (x[:64].float() - x[64:128].float()).abs().mean()


def test_augmentation_never_reads_a_device_value():
    """Every op and share on at once, on the meta device, which holds no values: an op that picks images with a
    device mask or asks a device tensor a question (.any(), .item()) raises there, as on a GPU it would stall the
    queue once per call (it made AugMix 3x slower than training on an H200)."""
    from cifarlab.config import resolve

    sets = ["corrupt=0.5", "augmix=0.5", "cutout=8", "brightness=0.2", "contrast=0.2", "flip=random"]
    cfg = resolve("advanced", [f"data.augment.{s}" for s in sets], None, 0, "cpu").data.augment
    x = torch.zeros(64, 3, 32, 32, dtype=torch.uint8, device="meta")
    out = augment.batch_augment(
        x, cfg, torch.Generator().manual_seed(0), torch.zeros(64, dtype=torch.bool, device="meta"), lambda t: t / 255
    )
    assert out.device.type == "meta" and out.shape == (64, 3, 32, 32)
