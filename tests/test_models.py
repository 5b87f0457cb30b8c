import pytest
import torch
import torch.nn.functional as F

from cifarlab import ConfigError
from cifarlab.config import list_presets, load_preset
from cifarlab.models import build_model, count_flops, count_params
from cifarlab.models.blocks import CBAM, ConvBlock, MaxBlurPool2d, ResidualBlock, SelfAttentionBlock, SqueezeExcite
from cifarlab.models.builder import WhiteningStem


def _grads_flow(module, x):
    x = x.clone().requires_grad_(True)
    module(x).square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for name, p in module.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, f"no gradient reaches {name}"


@pytest.mark.parametrize(
    "make,shape",
    [
        (lambda: ConvBlock(8, 16, pool="max", bn=True), (2, 16, 4, 4)),
        (lambda: ConvBlock(8, 16, attention="se"), (2, 16, 8, 8)),
        (lambda: ResidualBlock(8, 16, pool="avg", bn=True, attention="cbam"), (2, 16, 4, 4)),
        (lambda: ResidualBlock(8, 8, dropout=0.1), (2, 8, 8, 8)),
        (lambda: ConvBlock(8, 16, pool="maxblur", bn=True), (2, 16, 4, 4)),
    ],
)
def test_block_shapes_and_gradients(make, shape):
    torch.manual_seed(0)
    block = make()
    x = torch.randn(2, 8, 8, 8)
    assert block(x).shape == shape
    _grads_flow(block, x)


def test_maxblur_pool_sizes_borders_and_shift_stability():
    pool, plain = MaxBlurPool2d(8), torch.nn.MaxPool2d(2)
    for size in (31, 32, 15, 7, 3):  # the advanced net's odd sizes too: max-pool's floor of half
        assert pool(torch.zeros(1, 8, size, size)).shape == plain(torch.zeros(1, 8, size, size)).shape
    assert torch.allclose(pool(torch.full((1, 8, 31, 31), 3.0)), torch.tensor(3.0))  # no dark border
    # The low-pass before subsampling: a one-pixel shift of detailed inputs moves the pooled map far less.
    torch.manual_seed(0)
    x = torch.randn(64, 8, 32, 33)

    def change(m):
        a, b = m(x[..., :32]), m(x[..., 1:])
        return ((a - b).square().mean() / a.var()).item()

    assert change(pool) < 0.7 * change(plain)


def test_maxblur_blur_is_each_channels_own_low_pass():
    # In bf16 on a CPU the blur runs as a grouped conv (fast there); it must give a depthwise conv's sums bit for bit.
    torch.manual_seed(0)
    taps = torch.tensor([1.0, 2.0, 1.0])
    kernel = (taps[:, None] * taps[None, :] / 16)[None, None]
    for channels, size, dtype in (
        (64, 31, torch.float32),
        (256, 15, torch.bfloat16),
        (64, 31, torch.bfloat16),
        (12, 9, torch.bfloat16),
        (3, 8, torch.bfloat16),
    ):
        x = torch.randn(4, channels, size, size).to(dtype).contiguous(memory_format=torch.channels_last)
        m = F.max_pool2d(x, 2, stride=1)
        depthwise = F.conv2d(m, kernel.expand(channels, 1, 3, 3).to(dtype), stride=2, padding=1, groups=channels)
        inside = F.conv2d(torch.ones_like(m[:1, :1]), kernel.to(dtype), stride=2, padding=1)
        pool = MaxBlurPool2d(channels).to(memory_format=torch.channels_last)
        assert torch.equal(pool(x), depthwise / inside), (channels, dtype)


def test_squeeze_excite_weights_in_unit_interval():
    se = SqueezeExcite(16)
    x = torch.randn(4, 16, 8, 8)
    se(x)
    assert se.last_weights is None  # nothing kept unless asked: training holds no extra tensors
    se.record = True
    out = se(x)
    w = se.last_weights
    assert w.shape == (4, 16, 1, 1) and (w > 0).all() and (w < 1).all()
    assert torch.allclose(out, x * w)
    _grads_flow(se, x)


def test_cbam_maps_in_unit_interval():
    cbam = CBAM(16)
    cbam.record = True
    x = torch.randn(4, 16, 8, 8)
    assert cbam(x).shape == x.shape
    assert cbam.last_spatial.shape == (4, 1, 8, 8) and cbam.last_channel.shape == (4, 16, 1, 1)
    for m in (cbam.last_spatial, cbam.last_channel):
        assert (m > 0).all() and (m < 1).all()
    _grads_flow(cbam, x)


def test_self_attention_rows_sum_to_one_and_start_as_identity():
    torch.manual_seed(0)
    sa = SelfAttentionBlock(16, 16, heads=4, resolution=4)
    x = torch.randn(2, 16, 4, 4)
    assert torch.allclose(sa(x), x)  # zero-initialized output projection
    sa.record = True
    torch.nn.init.normal_(sa.proj.weight)
    out = sa(x)
    w = sa.last_weights
    assert w.shape == (2, 4, 16, 16) and torch.allclose(w.sum(-1), torch.ones(2, 4, 16))
    sa.record = False
    assert torch.allclose(sa(x), out, atol=1e-5)  # fused kernel == explicit softmax
    _grads_flow(sa, x)
    assert sa(torch.randn(2, 16, 3, 3)).shape == (2, 16, 3, 3)  # other sizes: positions are rescaled


def test_whitening_stem_whitens():
    torch.manual_seed(0)
    imgs = torch.randn(64, 3, 16, 16) @ torch.randn(16, 16)  # correlated pixels
    stem = WhiteningStem(24, 2, act="none")
    stem.init_whitening(imgs)
    out = stem.conv(imgs)[:, :12] - stem.conv.bias[:12].view(1, -1, 1, 1)
    flat = out.permute(0, 2, 3, 1).reshape(-1, 12)
    cov = torch.cov(flat.T)
    assert torch.allclose(cov, torch.diag(cov.diag()), atol=0.05 * cov.diag().max().item())  # decorrelated
    assert not stem.conv.weight.requires_grad


def _direction_gains(stem) -> torch.Tensor:
    """Each whitening filter's norm: how much the stem amplifies its patch direction."""
    return stem.conv.weight[:12].flatten(1).norm(dim=1)


def test_whitening_eps_bounds_the_gain_of_faint_directions():
    torch.manual_seed(0)
    imgs = torch.nn.functional.interpolate(torch.randn(64, 3, 8, 8), size=16, mode="bilinear")  # faint high freq
    gains = {}
    for eps in (5e-4, 0.1):
        stem = WhiteningStem(24, 2, act="none", eps=eps)
        stem.init_whitening(imgs)
        gains[eps] = _direction_gains(stem)
    assert gains[5e-4].max() > 2 * gains[0.1].max()  # the faintest direction is amplified far less
    assert gains[0.1].max() <= 0.1**-0.5 + 1e-4  # at most 1/sqrt(eps)
    rel = WhiteningStem(24, 2, act="none", eps=0.01, eps_relative=True)
    rel.init_whitening(imgs)
    patches = imgs.unfold(2, 2, 1).unfold(3, 2, 1).transpose(1, 3).reshape(-1, 12)
    top = torch.linalg.eigvalsh(torch.cov(patches.T)).max()
    assert rel.conv.weight[:12].flatten(1).norm(dim=1).max() <= (0.01 * top) ** -0.5 * 1.01


def test_contrast_norm_undoes_a_contrast_change():
    torch.manual_seed(0)
    imgs = torch.nn.functional.interpolate(torch.randn(32, 3, 8, 8), size=16, mode="bilinear")
    stem = WhiteningStem(24, 2, act="none", contrast_norm=True)
    stem.init_whitening(imgs)
    mean = imgs.mean((2, 3), keepdim=True)
    low = (imgs - mean) * 0.3 + mean  # CIFAR-10-C's contrast corruption, before clipping
    assert torch.allclose(stem(low), stem(imgs), atol=1e-4)
    plain = WhiteningStem(24, 2, act="none")
    plain.init_whitening(imgs)
    assert not torch.allclose(plain(low), plain(imgs), atol=1e-2)
    assert "contrast_target" in stem.state_dict() and "contrast_target" not in plain.state_dict()  # old runs load


def test_drop_weakest_leaves_out_chroma_detail():
    """Images with strong luma structure, smooth colour and faint colour detail (as photos have): the faintest
    directions are colour detail, and a stem without them is moved far less by JPEG's chroma subsampling."""
    F = torch.nn.functional
    torch.manual_seed(0)
    smooth = lambda c: F.interpolate(torch.randn(64, c, 8, 8), size=16, mode="bilinear")  # noqa: E731
    chroma = 0.3 * smooth(3) + 0.03 * torch.randn(64, 3, 16, 16)
    chroma -= chroma.mean(1, keepdim=True)  # colour differences only: no luma
    luma = smooth(1).expand(-1, 3, -1, -1)
    imgs = luma + chroma
    subsampled = luma + F.interpolate(F.avg_pool2d(chroma, 2), scale_factor=2, mode="bilinear")
    full = WhiteningStem(24, 2, act="none", eps=1e-3)
    dropped = WhiteningStem(12, 2, act="none", eps=1e-3, drop_weakest=6)
    for stem in (full, dropped):
        stem.init_whitening(imgs)

    def change(stem):
        return ((stem(subsampled) - stem(imgs)).norm() / stem(imgs).norm()).item()

    assert change(dropped) < 0.5 * change(full)  # 0.18 against 0.40
    patches = imgs.unfold(2, 2, 1).unfold(3, 2, 1).transpose(1, 3).reshape(-1, 12)
    weakest = torch.linalg.eigh(torch.cov(patches.T))[1][:, :6]
    assert dropped.conv.weight.flatten(1).matmul(weakest).abs().max() < 1e-3  # blind to the dropped directions
    with pytest.raises(ConfigError, match="2 x 6 = 12 channels, not 24"):
        WhiteningStem(24, 2, drop_weakest=6)
    with pytest.raises(ConfigError, match="drop 0 to 11"):
        build_model({"stem": {"type": "whiten", "drop_weakest": 12}, "stages": [{"block": "conv", "channels": 8}]})
    net = build_model({"stem": {"type": "whiten", "drop_weakest": 6}, "stages": [{"block": "conv", "channels": 8}]})
    assert net.stem.conv.out_channels == 12  # channels default to two per kept direction


def test_stem_options_are_checked():
    with pytest.raises(ConfigError, match="model.stem.eps"):
        build_model({"stem": {"type": "whiten", "eps": -1}, "stages": [{"block": "conv", "channels": 8}]})
    with pytest.raises(ConfigError, match="contrast_norm is for a whiten stem"):
        build_model({"stem": {"type": "conv", "contrast_norm": True}, "stages": [{"block": "conv", "channels": 8}]})


@pytest.mark.parametrize("name", list(list_presets()))
def test_presets_build_and_forward(name):
    cfg = load_preset(name)
    model = build_model(cfg.model)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert count_params(model) > 10_000 and count_flops(model) > 1_000_000


def test_builder_from_plain_dict():
    spec = {
        "stem": {"type": "conv", "channels": 16},
        "defaults": {"bn": True},
        "stages": [
            {"block": "residual", "channels": 32, "depth": 2, "pool": "max", "attention": "se"},
            {"block": "self_attention", "heads": 4},
        ],
        "head": {"pool": "avg", "dropout": 0.1},
    }
    model = build_model(spec)
    assert len(model.stages) == 3 and isinstance(model.stages[2], SelfAttentionBlock)
    assert model(torch.randn(3, 3, 32, 32)).shape == (3, 10)
    assert count_flops(model) > count_flops(build_model({**spec, "stages": spec["stages"][:1]}))


@pytest.mark.parametrize(
    "spec,msg",
    [
        ({"stages": [{"block": "nope"}]}, "unknown block 'nope'.*choose one of conv"),
        ({"stages": [{"block": "conv", "colour": 1}]}, "unknown key 'colour' in model.stages.0"),
        ({"stages": [{"block": "conv", "attention": "magic"}]}, "unknown attention 'magic'"),
        ({"stages": [{"block": "conv", "channels": -3}]}, "positive integers"),
        ({"stages": []}, "non-empty list"),
        ({"stem": {"type": "x"}, "stages": [{}]}, "unknown model.stem.type"),
        ({"stages": [{"block": "conv"}], "head": {"pool": "median"}}, "head.pool"),
        (
            {"stages": [{"block": "conv", "kernel": "abc"}]},
            r"'model.stages.0.kernel': 'abc'; must be a positive integer",
        ),
        (
            {"stages": [{"block": "conv", "dropout": 1.5}]},
            r"'model.stages.0.dropout': 1.5; must be a number in \[0, 1\)",
        ),
        ({"stages": [{"block": "conv", "bn": 5}]}, "'model.stages.0.bn': 5; must be true, false or a mapping"),
        ({"stages": [{"block": "conv", "bn": {"momentum": 2}}]}, "'model.stages.0.bn'.*momentum \\(0-1\\)"),
        (
            {"stages": [{"block": "conv"}], "head": {"bias": "maybe"}},
            "'model.head.bias': 'maybe'; must be true or false",
        ),
        ({"stem": {"type": "conv", "channels": 0}, "stages": [{}]}, "'model.stem.channels': 0"),
        (
            {"stages": [{"block": "conv", "channels": 8}, {"block": "self_attention", "heads": 3}]},
            "model.stages.1.*do not split into 3 heads",
        ),
        (
            {
                "stages": [
                    {"block": "conv", "channels": 8, "depth": 6, "pool": "max"},
                    {"block": "conv", "pool": "max"},
                ]
                + [{"block": "conv", "pool": "max"}] * 5
            },
            "model.stages.5: the feature map is already 1x1",
        ),
    ],
)
def test_builder_errors(spec, msg):
    with pytest.raises(ConfigError, match=msg):
        build_model(spec)


def test_the_net_owns_its_recipe_hooks():
    """The whitening stem fits itself to the data and freezes its bias after bias_epochs; BN momentum follows
    the passes per step. The trainer calls these hooks without knowing the net."""
    torch.manual_seed(0)
    spec = load_preset("advanced").model
    net = build_model(spec)
    assert net.data_sample == 5000 and net.stem.bias_epochs == 3
    images = torch.randn(64, 3, 32, 32)
    net.fit_to_data(images)
    assert not torch.allclose(net.stem.conv.weight, torch.zeros_like(net.stem.conv.weight))
    net.on_step(29, steps_per_epoch=10, total_steps=100)  # 2.9 epochs: the bias still trains
    assert net.stem.conv.bias.requires_grad
    net.on_step(30, steps_per_epoch=10, total_steps=100)
    assert not net.stem.conv.bias.requires_grad
    x = torch.randn(4, 3, 32, 32)
    net(x).sum().backward()
    assert net.stem.conv.bias.grad is None and net.stem.conv.weight.grad is None  # frozen: no gradient at all
    net.passes_per_step(4)
    bn = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bn and all(abs((1 - m.momentum) ** 4 - 0.6) < 1e-9 for m in bn)
    plain = build_model(load_preset("baseline").model)
    assert plain.data_sample == 0
    plain.on_step(100, 10, 100)  # no whitening, no freeze: every parameter still trains
    assert all(p.requires_grad for p in plain.parameters())


def test_late_freezing_stops_the_stem_and_first_blocks():
    """model.freeze: from a fraction `at` of the steps on, the stem and the first `layers` blocks get no
    gradient at all (their backward is skipped), while the rest still trains."""
    spec = {**load_preset("advanced").model, "freeze": {"at": 0.75, "layers": 2}}
    net = build_model(spec)
    net.fit_to_data(torch.randn(64, 3, 32, 32))
    x = torch.randn(4, 3, 32, 32)
    net.on_step(74, steps_per_epoch=10, total_steps=100)
    net(x).sum().backward()
    assert all(p.grad is not None for p in net.stages[:2].parameters() if p.requires_grad)
    net.zero_grad(set_to_none=True)
    net.on_step(75, steps_per_epoch=10, total_steps=100)
    net(x).sum().backward()
    assert all(p.grad is None for p in net.frozen_late().parameters())
    assert all(p.grad is not None for p in net.stages[2:].parameters() if p.requires_grad)
    assert len(net.frozen_late()) == 3  # the stem and two blocks


@pytest.mark.parametrize(
    "freeze, msg",
    [
        ({"at": 1.2, "layers": 2}, "model.freeze.at"),
        ({"at": 0.8, "layers": 6}, r"model.freeze.layers.*0..5"),
        ({"at": 0.8, "upto": 2}, "unknown key 'upto' in model.freeze"),
    ],
)
def test_late_freezing_errors(freeze, msg):
    with pytest.raises(ConfigError, match=msg):
        build_model({**load_preset("advanced").model, "freeze": freeze})


def test_whitening_fit_images_is_the_sample_it_asks_for():
    spec = load_preset("advanced").model
    net = build_model({**spec, "stem": {**spec["stem"], "fit_images": 1000}})
    assert net.data_sample == 1000
    with pytest.raises(ConfigError, match="fit_images is for a whiten stem"):
        build_model({**spec, "stem": {"type": "conv", "fit_images": 1000}})


def test_bn_stats_frozen_keeps_running_statistics():
    from cifarlab.models import bn_stats_frozen

    net = build_model(load_preset("advanced").model).train()
    net.fit_to_data(torch.randn(64, 3, 32, 32))
    bn = next(m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    before, momentum = bn.running_mean.clone(), bn.momentum
    with torch.no_grad(), bn_stats_frozen(net):
        net(torch.randn(8, 3, 32, 32) + 3)
    assert torch.equal(bn.running_mean, before) and bn.momentum == momentum
    with torch.no_grad():
        net(torch.randn(8, 3, 32, 32) + 3)
    assert not torch.equal(bn.running_mean, before)


def test_blocks_refuse_options_they_would_ignore_and_honour_the_rest():
    attn = {"block": "self_attention", "channels": 16, "heads": 4}
    with pytest.raises(ConfigError, match="unknown key 'kernel' in model.stages.1"):
        build_model({"stages": [{"channels": 16}, {**attn, "kernel": 5}]})
    with pytest.raises(ConfigError, match="unknown key 'actt' in model.defaults"):
        build_model({"defaults": {"actt": "gelu"}, "stages": [{"channels": 16}]})
    # a default reaches the blocks that take it (conv's gelu), not the self-attention layer
    net = build_model({"defaults": {"act": "gelu", "bn": True}, "stages": [{"channels": 16}, attn]})
    assert isinstance(net.stages[0].act, torch.nn.GELU)
    # residual blocks honour identity_init: their convs start as the identity on the shared channels
    res = build_model(
        {"stem": {"type": "none"}, "stages": [{"block": "residual", "channels": 8, "identity_init": True}]}
    )
    res = res.stages[0]
    assert torch.equal(res.conv1.weight.detach()[:3, :3, 1, 1], torch.eye(3))  # 3 inputs: the first 3 filters
    assert torch.equal(res.conv2.weight.detach()[:, :, 1, 1], torch.eye(8))
