import colorsys
import io

import numpy as np
import pytest
import torch
from PIL import Image

from cifarlab.config import apply_overrides, load_preset
from cifarlab.data import corruptions
from cifarlab.data.augment import corrupt_share
from cifarlab.data.cifar10c import load_cifar10c
from cifarlab.errors import DataError
from cifarlab.inference import robustness, robustness_means

# Families whose damage grows with severity in the original parameters (elastic, glass, frost and spatter
# change kind across severities, so only "5 differs from the image" is asked of them).
MONOTONE = ["gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "defocus_blur", "gaussian_blur",
            "zoom_blur", "fog", "brightness", "contrast", "jpeg_compression"]  # fmt: skip


@pytest.fixture(scope="module")
def images():
    torch.manual_seed(0)
    small = torch.rand(16, 3, 8, 8)  # smooth, natural-looking images: upsampled noise
    return (torch.nn.functional.interpolate(small, size=32, mode="bilinear") * 255).to(torch.uint8)


def _effect(a, b):
    return (a.float() - b.float()).abs().mean().item()


def test_the_19_families_of_cifar10c():
    assert len(corruptions.FAMILIES) == 19
    assert list(corruptions.FAMILIES)[:15][-1] == "jpeg_compression"  # the 15, then the 4 extra
    assert set(list(corruptions.FAMILIES)[15:]) == {"speckle_noise", "gaussian_blur", "spatter", "saturate"}


@pytest.mark.parametrize("name", list(corruptions.CORRUPTIONS))
def test_family_shape_dtype_and_effect(images, name):
    outs = [corruptions.corrupt(images, name, s) for s in corruptions.SEVERITIES]
    for out in outs:
        assert out.shape == images.shape and out.dtype == torch.uint8
    effects = [_effect(o, images) for o in outs]
    assert effects[-1] > 0.5, effects
    if name in MONOTONE:
        assert all(b >= a * 0.98 for a, b in zip(effects, effects[1:])), effects
        assert effects[-1] > effects[0]


@pytest.mark.parametrize("name", ["gaussian_noise", "shot_noise", "glass_blur", "motion_blur", "fog", "snow",
                                  "frost", "spatter", "elastic_transform"])  # fmt: skip
def test_random_families_follow_the_seed(images, name):
    a, b = corruptions.corrupt(images, name, 3, seed=1), corruptions.corrupt(images, name, 3, seed=1)
    assert torch.equal(a, b)
    assert not torch.equal(a, corruptions.corrupt(images, name, 3, seed=2))


def _pillow(images, op):
    out = []
    for img in images.permute(0, 2, 3, 1).numpy():
        out.append(np.array(op(Image.fromarray(np.ascontiguousarray(img))).convert("RGB")))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2)


def _jpeg(q):
    def op(im):
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=q)  # Pillow's defaults: 4:2:0 chroma, as CIFAR-10-C was made
        return Image.open(buf)

    return op


@pytest.mark.parametrize("quality", [80, 40, 90])
def test_vectorized_jpeg_agrees_with_pillow(quality):
    torch.manual_seed(1)
    x = (torch.nn.functional.interpolate(torch.rand(24, 3, 12, 12), size=32, mode="bicubic").clamp(0, 1) * 255).to(
        torch.uint8
    )
    ours, ref = corruptions.jpeg_roundtrip(x, quality), _pillow(x, _jpeg(quality))
    # well within the codec's own damage: what remains is libjpeg's integer DCT and rounding
    assert _effect(ours, ref) < 0.2 * _effect(ref, x), (_effect(ours, ref), _effect(ref, x))
    per_image_q = corruptions.jpeg_roundtrip(x, torch.full((24,), float(quality)))
    assert torch.equal(per_image_q, ours)


def test_pixelate_is_pillows_box_resize_both_ways(images):
    for s, c in enumerate((0.95, 0.9, 0.85, 0.75, 0.65), 1):
        side = int(32 * c)
        ref = _pillow(images, lambda im, n=side: im.resize((n, n), Image.BOX).resize((32, 32), Image.BOX))
        assert (corruptions.pixelate(images, s).float() - ref.float()).abs().max() <= 1


def _hsv_reference(images, change):
    out = images.float().permute(0, 2, 3, 1).reshape(-1, 3).numpy() / 255
    res = []
    for r, g, b in out:
        h, s, v = colorsys.rgb_to_hsv(r, g, b)
        res.append(colorsys.hsv_to_rgb(*change(h, s, v)))
    res = torch.tensor(np.array(res)).view(images.shape[0], 32, 32, 3).permute(0, 3, 1, 2)
    return (res.clamp(0, 1) * 255).to(torch.uint8)


def test_brightness_and_saturate_change_hsv_value_and_saturation(images):
    imgs = images[:4].clone()
    imgs[0, :, :4, :4] = 0  # black and grey pixels, where hue is undefined
    imgs[1, :, :4, :4] = 128
    for s, c in enumerate((0.05, 0.1, 0.15, 0.2, 0.3), 1):
        ref = _hsv_reference(imgs, lambda h, sat, v, c=c: (h, sat, min(v + c, 1)))
        assert (corruptions.brightness(imgs, s).int() - ref.int()).abs().max() <= 1
    for s, (a, b) in enumerate(((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)), 1):
        ref = _hsv_reference(imgs, lambda h, sat, v, a=a, b=b: (h, min(max(sat * a + b, 0), 1), v))
        assert (corruptions.saturate(imgs, s).int() - ref.int()).abs().max() <= 1


def test_contrast_keeps_each_channels_mean(images):
    out = corruptions.contrast(images, 5).float()
    assert torch.allclose(out.mean((2, 3)), images.float().mean((2, 3)), atol=1.0)
    assert out.std((2, 3)).mean() < 0.2 * images.float().std((2, 3)).mean()


def _augment(cfg_overrides):
    """The clean recipe's augmentation (nothing of a corruption's kind) with `cfg_overrides` on top."""
    return apply_overrides(load_preset("advanced-clean"), cfg_overrides).data.augment


def test_seen_families_follow_the_training_augmentation():
    assert corruptions.seen_families(_augment([])) == []
    noise = corruptions.seen_families(_augment(["data.augment.corrupt=0.5", "data.augment.corrupt_ops=[noise]"]))
    assert noise == ["gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise"]
    patch = _augment(["data.augment.corrupt=0.5", "data.augment.corrupt_ops=[patch_gaussian]"])
    assert corruptions.seen_families(patch) == noise  # noise in a patch is still additive noise
    both = corruptions.seen_families(_augment(["data.augment.corrupt=0.5", "data.augment.corrupt_ops=[jpeg,pixelate]"]))
    assert both == ["pixelate", "jpeg_compression"]
    off = corruptions.seen_families(_augment(["data.augment.corrupt=0", "data.augment.corrupt_ops=[noise]"]))
    assert off == []  # ops named but never applied: nothing seen
    jitter = corruptions.seen_families(_augment(["data.augment.brightness=0.1", "data.augment.contrast=0.1"]))
    assert jitter == ["brightness", "contrast"]
    assert corruptions.seen_families(_augment(["data.augment.resize_from=16", "data.augment.resize_until=2"])) == [
        "pixelate"
    ]
    assert corruptions.seen_families(_augment(["data.augment.augmix=0.5"])) == ["elastic_transform"]


@pytest.mark.parametrize("preset", ["baseline", "intermediate", "advanced-clean", "advanced"])
def test_every_preset_keeps_at_least_12_families_held_out(preset):
    seen = corruptions.seen_families(load_preset(preset).data.augment)
    assert len(corruptions.FAMILIES) - len(seen) >= 12


def test_corrupt_share_changes_only_its_share(images):
    x = images.repeat(8, 1, 1, 1).float()  # 128 images
    g = torch.Generator().manual_seed(0)
    assert torch.equal(corrupt_share(x, 0.0, ["noise"], g), x)
    out = corrupt_share(x, 0.5, ["noise", "jpeg", "pixelate"], g)
    changed = (out != x).flatten(1).any(1).float().mean().item()
    assert 0.3 < changed < 0.7 and out.min() >= 0 and out.max() <= 255
    assert (corrupt_share(x, 1.0, ["jpeg"], g) != x).flatten(1).any(1).all()


def test_jpeg_quality_sets_the_jpeg_ops_quality(images):
    x = images.float()
    g = torch.Generator().manual_seed(0)
    at75 = corrupt_share(x, 1.0, ["jpeg"], g, jpeg_quality=(75, 75))
    assert torch.equal(at75, corruptions.jpeg_roundtrip(x, torch.full((len(x),), 75)).float())
    drawn = corrupt_share(x, 1.0, ["jpeg"], g)  # the default range, 20-95: not all at one quality
    assert not torch.equal(drawn, at75)
    default = load_preset("advanced").data.augment.jpeg_quality
    assert default == [20, 95]


def test_robustness_means_split_held_out_from_seen():
    per = {"gaussian_noise": [0.2, 0.4], "fog": [0.8, 0.6], "contrast": [1.0, 1.0]}
    m = robustness_means(per, seen=["gaussian_noise"])
    assert m["seen_acc"] == pytest.approx(0.3) and m["held_out_acc"] == pytest.approx(0.85)
    assert m["mean_corruption_acc"] == pytest.approx(4.0 / 6) and m["seen"] == ["gaussian_noise"]
    assert robustness_means(per)["seen_acc"] is None


# ---- the released CIFAR-10-C, in its layout ----


def _write_c(root, x, y, families=("fog", "contrast"), n_sev=5):
    root.mkdir(exist_ok=True)
    np.save(root / "labels.npy", np.tile(y.numpy().astype(np.uint8), n_sev))
    for k, f in enumerate(families):
        imgs = np.concatenate([np.full((len(x), 32, 32, 3), 10 * k + s, np.uint8) for s in range(n_sev)])
        np.save(root / f"{f}.npy", imgs)
    return root


def test_cifar10c_release_is_read_per_severity(tmp_path):
    y = torch.arange(20) % 10
    root = _write_c(tmp_path / "c", torch.zeros(20), y)
    idx = torch.tensor([1, 5, 7])
    got = load_cifar10c(root, idx, y, severities=(2, 5))
    assert set(got) == {"fog", "contrast"}
    assert got["contrast"].shape == (2, 3, 3, 32, 32) and got["contrast"].dtype == torch.uint8
    assert int(got["contrast"][0, 0, 0, 0, 0]) == 10 + 1 and int(got["contrast"][1, 2, 1, 5, 5]) == 10 + 4


def test_robustness_scores_given_images_instead_of_generating():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10))
    x = (torch.rand(12, 3, 32, 32) * 255).to(torch.uint8)
    pred = model(x.float()).argmax(-1)
    y = pred.clone()
    y[:3] = (pred[:3] + 1) % 10  # 9 of 12 right on the clean images
    images = {"fog": torch.stack([x, x])}  # "corrupted" images that are the clean ones: clean accuracy
    r = robustness(model, x, y, lambda t: t.float(), severities=(1, 2), images=images)
    assert r["per_corruption"] == {"fog": [0.75, 0.75]}


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda r: (r / "labels.npy").unlink(), "no labels.npy"),
        (lambda r: (r / "fog.npy").write_bytes(b"not an array"), "not a readable .npy"),
        (lambda r: np.save(r / "fog.npy", np.zeros((100, 32, 32), np.uint8)), "expected uint8"),
        (lambda r: np.save(r / "labels.npy", np.zeros(100, np.uint8)), "does not match"),
        (lambda r: np.save(r / "labels.npy", np.zeros(7, np.uint8)), "labels; expected 5 x 20"),
    ],
)
def test_a_malformed_cifar10c_folder_is_one_line(tmp_path, damage, message):
    y = torch.arange(20) % 10
    root = _write_c(tmp_path / "c", torch.zeros(20), y)
    damage(root)
    with pytest.raises(DataError, match=message) as e:
        load_cifar10c(root, torch.arange(3), y)
    assert "\n" not in str(e.value)


def test_cifar10c_family_not_in_the_folder(tmp_path):
    y = torch.arange(20) % 10
    root = _write_c(tmp_path / "c", torch.zeros(20), y)
    with pytest.raises(DataError, match="no snow.npy; found fog, contrast"):
        load_cifar10c(root, torch.arange(3), y, families=["snow"])
