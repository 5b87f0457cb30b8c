import math

import pytest
import torch

from cifarlab import UserError
from cifarlab.config import ScheduleConfig, apply_overrides, load_preset
from cifarlab.models import build_model
from cifarlab.optim import Muon, lr_factor, make_optimizer, orthogonalize
from cifarlab.train import build_run


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("shape", [(64, 576), (576, 64), (128, 384)])
def test_orthogonalize_flattens_the_spectrum(shape, dtype):
    torch.manual_seed(0)
    g = torch.randn(*shape) @ torch.diag(torch.logspace(-1, 0.5, shape[1]))  # unequal column scales
    s0 = torch.linalg.svdvals(g)
    out = orthogonalize(g, steps=5, dtype=dtype)
    assert out.shape == g.shape and out.dtype == dtype
    s = torch.linalg.svdvals(out.float())
    # Newton-Schulz is approximate by design: singular values land in a band around 1, not exactly on it
    assert s.max() < 1.3 and s.min() > 0.5, (s.min(), s.max())
    assert s.max() / s.min() < (s0.max() / s0.min()) / 1.5


def test_muon_groups_filters_and_keeps_their_norm():
    cfg = apply_overrides(load_preset("advanced"), ["optim.name=muon"])
    model = build_model(cfg.model)
    opt = make_optimizer(model, cfg.optim)
    assert isinstance(opt, Muon)
    ortho = [g for g in opt.param_groups if g["orthogonal"]]
    assert len(ortho) == 1 and all(p.ndim == 4 and p.requires_grad for p in ortho[0]["params"])
    assert ortho[0]["lr"] == cfg.optim.muon_lr and ortho[0]["momentum"] == cfg.optim.muon_momentum
    n_trainable = sum(p.requires_grad for p in model.parameters())
    assert sum(len(g["params"]) for g in opt.param_groups) == n_trainable  # every parameter exactly once
    x = torch.randn(8, 3, 32, 32)
    model(x).square().mean().backward()
    before = [p.detach().clone() for p in ortho[0]["params"]]
    opt.step()
    for p, p0 in zip(ortho[0]["params"], before):
        assert not torch.equal(p, p0)
        assert math.isclose(p.norm().item(), math.sqrt(p.size(0)), rel_tol=0.3)


@pytest.mark.parametrize("precision,ns_dtype", [("fp32", torch.float32), ("bf16", torch.bfloat16)])
def test_muon_orthogonalizes_in_the_run_precision(tiny_cfg, tmp_path, precision, ns_dtype):
    # bf16 is emulated (~10x slower than fp32) on CPUs without AVX512-BF16/AMX: fp32 runs must not pay for it
    run = build_run(tiny_cfg("advanced", "optim.name=muon", f"runtime.precision={precision}"), tmp_path)
    assert run.optimizer.ns_dtype == ns_dtype


def test_muon_run_learns(tiny_cfg, tmp_path):
    run = build_run(tiny_cfg("advanced", "optim.name=muon", "runtime.precision=fp32"), tmp_path)
    run.model.train()
    x, y = next(run.train_loader.epoch(0))
    losses = [run.step(x, y)[0].item() for _ in range(6)]
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("override", ["optim.name=lion", "optim.muon_lr=0", "optim.muon_momentum=1.5"])
def test_bad_optimizer_settings(override):
    with pytest.raises(UserError, match="optim"):
        apply_overrides(load_preset("advanced"), [override])


@pytest.mark.parametrize(
    "name,checks",
    [
        ("constant", [(0, 1.0), (99, 1.0)]),
        ("cosine", [(0, 1.0), (50, 0.5), (100, 0.0)]),
        ("linear", [(0, 1.0), (50, 0.5)]),
        ("step", [(0, 1.0), (10, 0.1), (25, 0.01)]),
        ("onecycle", [(0, 0.0), (25, 1.0), (100, 0.0)]),
    ],
)
def test_lr_schedules(name, checks):
    s = ScheduleConfig(name=name, step_epochs=1.0)
    for step, want in checks:
        assert math.isclose(lr_factor(step, 100, 10, s), want, abs_tol=1e-9), (name, step)
    warm = ScheduleConfig(name="cosine", warmup_epochs=1.0, start_factor=0.1)
    assert math.isclose(lr_factor(0, 100, 10, warm), 0.1) and math.isclose(lr_factor(10, 100, 10, warm), 1.0)


def test_lookahead_pulls_to_the_slow_weights_and_ends_on_them():
    from cifarlab.optim import Lookahead

    model = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    la = Lookahead(model, every=2, total_steps=4)
    la.step(1)  # not a multiple of k: nothing
    assert la.state_dict() is None
    la.step(2)  # first pull: slow starts as the weights themselves
    with torch.no_grad():
        model.weight.fill_(3.0)
    la.step(4)  # the last step: decay 1, the weights end on the slow average
    assert torch.allclose(model.weight, torch.ones_like(model.weight))
    restored = Lookahead(model, every=2, total_steps=4)
    restored.load_state_dict(la.state_dict(), "cpu")
    assert torch.equal(restored.slow[0], la.slow[0])


def test_a_net_may_put_its_whitening_bias_in_the_fast_group():
    """model.stem.fast_bias: the whitening bias trains at the BN shifts' lr (airbench94_muon), not the base lr."""
    from cifarlab.config import load_preset
    from cifarlab.models import build_model
    from cifarlab.optim import param_groups

    spec = load_preset("advanced").model
    for fast in (False, True):
        net = build_model({**spec, "stem": {**spec["stem"], "fast_bias": fast}})
        _, norm = param_groups(net)
        assert any(p is net.stem.conv.bias for p in norm) == fast
