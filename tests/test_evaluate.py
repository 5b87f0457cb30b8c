import io
import math

import pytest
import torch
from PIL import Image

from cifarlab import corruptions
from cifarlab.evaluate import (calibration, confusion_matrix, fit_temperature, infer, mcnemar, per_class_accuracy,
                               precision_recall_f1, temperature_scaling, tta_views, wilson_interval)
from cifarlab.report import p_value_cell


def test_confusion_precision_recall_f1_by_hand():
    pred, y = torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 2, 2])
    cm = confusion_matrix(pred, y, 3)
    assert cm.tolist() == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    m = precision_recall_f1(cm)
    assert m["precision"] == pytest.approx([1.0, 0.5, 1.0])
    assert m["recall"] == pytest.approx([1.0, 1.0, 0.5])
    assert m["f1"] == pytest.approx([1.0, 2 / 3, 2 / 3])
    logits = torch.nn.functional.one_hot(pred, 3).float()
    assert per_class_accuracy(logits, y, 3) == pytest.approx([1.0, 1.0, 0.5])


def test_inference_in_passes_matches_one_pass():
    """On an fp32 CPU, infer splits a batch into passes of 128 (faster); the logits must not change."""
    from cifarlab.config import load_preset
    from cifarlab.models import build_model

    torch.manual_seed(0)
    model = build_model(load_preset("advanced").model).eval()
    for m in model.modules():  # non-trivial running statistics, so eval-mode BN is not the identity
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5), m.running_var.uniform_(0.5, 2.0)
    x = torch.randn(300, 3, 32, 32)  # passes of 128, 128 and 44
    with torch.no_grad():
        whole = model(x)
    sizes = []
    hook = model.register_forward_hook(lambda m, i, o: sizes.append(len(i[0])))
    assert torch.allclose(infer(model, x), whole, atol=1e-4, rtol=1e-4)
    hook.remove()
    assert sizes == [128, 128, 44]
    assert infer(model, x[:0]).shape == (0, 10)


def test_ece_by_hand():
    probs = torch.tensor([[0.9, 0.1], [0.3, 0.7]])
    y = torch.tensor([0, 0])  # first right at 0.9, second wrong at 0.7
    cal = calibration(probs, y, bins=10)
    assert cal["ece"] == pytest.approx(0.5 * 0.1 + 0.5 * 0.7)
    assert sum(b["count"] for b in cal["bins"]) == 2
    perfect = calibration(torch.tensor([[1.0, 0.0]] * 4), torch.tensor([0] * 4))
    assert perfect["ece"] == pytest.approx(0.0)
    # bins are (lo, hi]: a confidence of exactly 0.5 belongs to (0.4, 0.5], not (0.5, 0.6]
    edge = calibration(torch.tensor([[0.5, 0.5, 0.0]]), torch.tensor([0]), bins=10)["bins"]
    assert edge[4]["count"] == 1 and edge[5]["count"] == 0


def test_temperature_scaling_recovers_the_true_temperature():
    g = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(20000, 10, generator=g)
    # Labels drawn from softmax(logits / 2): the logits are overconfident by exactly T = 2.
    y = torch.multinomial((logits / 2).softmax(-1), 1, generator=g).squeeze(1)
    assert fit_temperature(logits[:10000], y[:10000]) == pytest.approx(2.0, rel=0.05)
    res = temperature_scaling(logits[:10000], y[:10000], logits[10000:], y[10000:])
    assert res["ece"] < 0.5 * calibration(logits[10000:].softmax(-1), y[10000:])["ece"]
    assert res["test_loss"] < torch.nn.functional.cross_entropy(logits[10000:], y[10000:]).item()


def test_mcnemar_by_hand():
    a = torch.tensor([True] * 5 + [True] * 10)
    b = torch.tensor([False] * 5 + [True] * 10)
    t = mcnemar(a, b)
    assert (t["a_only"], t["b_only"]) == (5, 0) and t["p_value"] == pytest.approx(2 * 0.5 ** 5)
    same = mcnemar(a, a)
    assert same["p_value"] == 1.0
    big = mcnemar(torch.tensor([True] * 600 + [False] * 400), torch.tensor([False] * 600 + [True] * 400))
    assert 0 < big["p_value"] < 1e-8  # 600 vs 400 disagreements: clearly different, and no overflow
    # 2,200 vs 140 (the baseline against the advanced net) underflows a double: the report bounds it
    huge = mcnemar(torch.tensor([True] * 2200 + [False] * 140), torch.tensor([False] * 2200 + [True] * 140))
    assert huge["p_value"] == 0.0 and p_value_cell(huge["p_value"]) == "< 1e-300"
    assert p_value_cell(big["p_value"]) == f"{big['p_value']:.3g}" and p_value_cell(0.189) == "0.189"


def test_wilson_interval_by_hand():
    lo, hi = wilson_interval(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-4) and hi == pytest.approx(0.5962, abs=1e-4)
    lo, hi = wilson_interval(100, 100)
    assert hi == pytest.approx(1.0) and 0.95 < lo < 0.97


def test_tta_views_weights():
    x = torch.randn(2, 3, 8, 8)
    assert len(tta_views(x, "none")) == 1
    v = tta_views(x, "flip")
    assert torch.equal(v[1][1], x.flip(-1)) and sum(w for w, _ in v) == 1
    v = tta_views(x, "flip_translate")
    assert len(v) == 6 and math.isclose(sum(w for w, _ in v), 1.0)
    assert [w for w, _ in v] == [0.25, 0.125, 0.125] * 2  # the unshifted pair keeps half the weight
    shifted = v[1][1]
    assert torch.equal(shifted[..., 1:, 1:], x[..., :-1, :-1])  # moved down-right by one pixel
    assert torch.equal(v[5][1][..., :-1, :-1], x.flip(-1)[..., 1:, 1:])  # the mirror, moved up-left


@pytest.fixture(scope="module")
def images():
    torch.manual_seed(0)
    # smooth, natural-looking images: upsampled noise
    small = torch.rand(16, 3, 8, 8)
    return (torch.nn.functional.interpolate(small, size=32, mode="bilinear") * 255).to(torch.uint8)


@pytest.mark.parametrize("name", list(corruptions.CORRUPTIONS))
def test_corruption_shape_range_and_monotone_severity(images, name):
    effects = []
    for s in corruptions.SEVERITIES:
        out = corruptions.corrupt(images, name, s)
        assert out.shape == images.shape and out.dtype == torch.uint8
        if name == "pixelate":  # pixel error is dominated by grid misalignment; count the surviving rows instead
            effects.append(32 - len(torch.unique(out[0, 0], dim=0)))
        else:
            effects.append((out.float() - images.float()).abs().mean().item())
    assert effects[0] > 0
    assert all(b >= a * 0.98 for a, b in zip(effects, effects[1:])), effects  # severity grows the damage
    assert effects[-1] > effects[0]


def test_jpeg_matches_pillow(images):
    ours = corruptions.jpeg_compress(images, 1).float()  # quality 80
    ref = []
    for img in images:
        buf = io.BytesIO()
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(buf, "JPEG", quality=80, subsampling=0)
        ref.append(torch.from_numpy(__import__("numpy").array(Image.open(buf))).permute(2, 0, 1))
    ref = torch.stack(ref).float()
    assert (ours - ref).abs().mean() < 1.5


def test_attention_maps_of_cbam_and_self_attention():
    from cifarlab.evaluate import attention_maps
    from cifarlab.models import build_model
    from cifarlab.models.blocks import CBAM, SelfAttentionBlock

    torch.manual_seed(0)
    model = build_model({"stages": [{"block": "conv", "channels": 8, "pool": "max"},
                                    {"block": "residual", "channels": 8, "attention": "cbam"},
                                    {"block": "self_attention", "channels": 8, "heads": 2}]})
    for m in model.modules():  # the zero-initialized projection would make self-attention the identity
        if isinstance(m, SelfAttentionBlock):
            torch.nn.init.normal_(m.proj.weight)
    maps = attention_maps(model, torch.randn(3, 3, 32, 32))
    assert sorted(k.split(" ", 1)[1] for k in maps) == ["(CBAM spatial)", "(self-attention)"]
    for v in maps.values():
        assert v.shape == (3, 32, 32) and v.min() >= 0 and v.max() <= 1 and torch.isfinite(v).all()
    assert not any(m.record for m in model.modules() if isinstance(m, (CBAM, SelfAttentionBlock)))
    assert attention_maps(build_model({"stages": [{"block": "conv", "channels": 8}]}), torch.randn(1, 3, 32, 32)) == {}
