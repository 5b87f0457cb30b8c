import math

import torch

from cifarlab.inference import infer, tta_views


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


def test_attention_maps_of_cbam_and_self_attention():
    from cifarlab.inference import attention_maps
    from cifarlab.models import build_model
    from cifarlab.models.blocks import CBAM, SelfAttentionBlock

    torch.manual_seed(0)
    model = build_model(
        {
            "stages": [
                {"block": "conv", "channels": 8, "pool": "max"},
                {"block": "residual", "channels": 8, "attention": "cbam"},
                {"block": "self_attention", "channels": 8, "heads": 2},
            ]
        }
    )
    for m in model.modules():  # the zero-initialized projection would make self-attention the identity
        if isinstance(m, SelfAttentionBlock):
            torch.nn.init.normal_(m.proj.weight)
    maps = attention_maps(model, torch.randn(3, 3, 32, 32))
    assert sorted(k.split(" ", 1)[1] for k in maps) == ["(CBAM spatial)", "(self-attention)"]
    for v in maps.values():
        assert v.shape == (3, 32, 32) and v.min() >= 0 and v.max() <= 1 and torch.isfinite(v).all()
    assert not any(m.record for m in model.modules() if isinstance(m, (CBAM, SelfAttentionBlock)))
    assert attention_maps(build_model({"stages": [{"block": "conv", "channels": 8}]}), torch.randn(1, 3, 32, 32)) == {}


def test_selective_tta_views_only_the_least_confident():
    """eval.tta_fraction: a plain pass for every image, the full TTA only for the least confident share; at 1
    it is plain TTA, and the selected images get exactly their full-TTA scores."""
    import torch.nn as nn
    import torch.nn.functional as F

    from cifarlab.inference import infer_tta, least_confident

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(8, 10))
    x = torch.randn(40, 3, 32, 32)
    full = infer_tta(model, x, None, "flip_translate")
    assert torch.allclose(infer_tta(model, x, None, "flip_translate", 1.0), full)
    plain = F.log_softmax(infer(model, x), -1)
    unsure = least_confident(plain, 0.25)
    assert len(unsure) == 10
    assert plain.max(-1).values[unsure].max() <= plain.max(-1).values.sort().values[9] + 1e-7
    out = infer_tta(model, x, None, "flip_translate", 0.25)
    rest = torch.ones(40, dtype=torch.bool)
    rest[unsure] = False
    assert torch.allclose(out[unsure], full[unsure], atol=1e-5)
    assert torch.allclose(out[rest], plain[rest], atol=1e-6)


def test_selective_tta_picks_the_least_confident_of_the_whole_set_not_of_each_batch():
    """predict_logits with a fraction: the share is taken over every image the loader yields, so a batch of
    confident images takes no extra views while a batch of unsure ones takes them all."""
    import torch.nn as nn
    import torch.nn.functional as F

    from cifarlab.inference import least_confident, predict_logits

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(8, 10))
    x = torch.randn(40, 3, 32, 32)
    plain = F.log_softmax(infer(model, x), -1)
    order = plain.max(-1).values.argsort()  # least confident first
    x = x[order.flip(0)]  # batch 1: the 20 most confident, batch 2: the 20 least
    plain, full = plain[order.flip(0)], predict_logits(model, [(x, torch.zeros(40))], None, "flip_translate")[0]
    loader = [(x[:20], torch.zeros(20)), (x[20:], torch.ones(20))]
    out, y = predict_logits(model, loader, None, "flip_translate", 0.5)
    assert torch.equal(y, torch.cat([torch.zeros(20), torch.ones(20)]))
    assert set(least_confident(plain, 0.5).tolist()) == set(range(20, 40))
    assert torch.allclose(out[:20], plain[:20], atol=1e-6)  # the confident batch: its plain pass alone
    assert torch.allclose(out[20:], full[20:], atol=1e-5)  # the unsure batch: every view
