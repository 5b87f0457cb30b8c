"""Optimizers, learning-rate schedules and lookahead.

`make_optimizer` turns an OptimConfig into one torch optimizer whose param groups carry a `base_lr`; the
training loop sets every group's lr to base_lr * `lr_factor(step)`, so one schedule drives all groups.

`muon` orthogonalizes the momentum of every conv filter bank (Jordan et al. 2024, "Muon"): each update is
the nearest semi-orthogonal matrix to the momentum, so all directions of a layer move at the same rate.
Everything that is not a conv filter (biases, BN shifts, the linear head) keeps Nesterov SGD.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn


def lr_factor(step: int, total: int, steps_per_epoch: int, s) -> float:
    """Multiplier of the base lr at `step` (0-based) of `total`, for a ScheduleConfig `s`."""
    warm = int(round(s.warmup_epochs * steps_per_epoch))
    if s.name == "onecycle":  # linear up to the peak, linear down to final_factor
        peak = max(1, int(round(s.peak_at * total)))
        if step < peak:
            return s.start_factor + (1 - s.start_factor) * step / peak
        return 1 + (s.final_factor - 1) * (step - peak) / max(1, total - peak)
    if step < warm:
        return s.start_factor + (1 - s.start_factor) * step / warm
    if s.name == "constant":
        return 1.0
    if s.name == "step":
        return s.gamma ** int((step - warm) / (s.step_epochs * steps_per_epoch))
    t = (step - warm) / max(1, total - warm)
    if s.name == "cosine":
        return s.final_factor + (1 - s.final_factor) * 0.5 * (1 + math.cos(math.pi * t))
    if s.name == "linear":
        return 1 + (s.final_factor - 1) * t
    raise ValueError(s.name)


def orthogonalize(
    g: torch.Tensor, steps: int = 3, eps: float = 1e-7, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Approximately U V^T of g = U S V^T by a quintic Newton-Schulz iteration tuned to push all singular
    values into ~[0.7, 1.2] in few steps (exactness is not needed, speed is). g is 2-D; the result has `dtype`.
    The iteration tolerates bf16 rounding, which is faster only where the device computes bf16 natively, so
    bf16 is the caller's choice, fp32 the default."""
    a, b, c = 3.4445, -4.7750, 2.0315
    x = g.to(dtype)
    x = x / (x.norm() + eps)
    tall = x.size(0) > x.size(1)
    if tall:  # iterate on the small Gram matrix
        x = x.T
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tall else x


class Muon(torch.optim.Optimizer):
    """Nesterov SGD where groups with `orthogonal=True` (conv filters) take orthogonalized updates and keep a
    fixed weight norm (sqrt(out_channels), the scale of an orthonormal init) instead of weight decay."""

    def __init__(
        self,
        params,
        lr: float,
        momentum: float = 0.9,
        nesterov: bool = True,
        weight_decay: float = 0.0,
        ns_steps: int = 3,
        ns_dtype: torch.dtype = torch.float32,
    ):
        super().__init__(
            params,
            dict(
                lr=lr,
                momentum=momentum,
                nesterov=nesterov,
                weight_decay=weight_decay,
                orthogonal=False,
                ns_steps=ns_steps,
            ),
        )
        self.ns_dtype = ns_dtype

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            mom, lr = group["momentum"], group["lr"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if group["weight_decay"] and not group["orthogonal"]:
                    g = g.add(p, alpha=group["weight_decay"])
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(g)
                buf = state["momentum_buffer"].mul_(mom).add_(g)
                g = g.add(buf, alpha=mom) if group["nesterov"] else buf
                if group["orthogonal"]:
                    p.mul_(math.sqrt(p.size(0)) / (p.norm() + 1e-12))
                    g = orthogonalize(g.reshape(len(g), -1), group["ns_steps"], dtype=self.ns_dtype)
                    g = g.view_as(p).to(p.dtype)
                p.add_(g, alpha=-lr)


def param_groups(model: nn.Module) -> tuple[list, list]:
    """(all other trainable parameters, normalization-layer parameters): the optimizer gives the second
    group its own lr (airbench trains BN shifts 64x faster), as do the parameters a net lists in `fast_params`."""
    norm_types = (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)
    norm_ids = {id(p) for m in model.modules() if isinstance(m, norm_types) for p in m.parameters(recurse=False)}
    norm_ids |= {id(p) for p in (model.fast_params() if hasattr(model, "fast_params") else [])}
    params = [p for p in model.parameters() if p.requires_grad]
    return [p for p in params if id(p) not in norm_ids], [p for p in params if id(p) in norm_ids]


def filter_params(params: list) -> tuple[list, list]:
    """(conv filter banks, the rest): only 4-D weights are matrices worth orthogonalizing."""
    return [p for p in params if p.ndim == 4], [p for p in params if p.ndim != 4]


def make_optimizer(model: nn.Module, o, ns_dtype: torch.dtype = torch.float32) -> torch.optim.Optimizer:
    """Normalization-layer parameters (BN shifts) get lr * norm_lr_scale and wd / norm_lr_scale: the
    same decay per step (lr * wd) while they move faster. Everything else gets lr and wd; with `muon`,
    conv filters get muon_lr and muon_momentum instead, orthogonalized in `ns_dtype` (bf16 only where the
    device computes it natively)."""
    other, norm_params = param_groups(model)

    def group(params, lr, wd, **kw):
        return {"params": params, "lr": lr, "weight_decay": wd, "base_lr": lr, **kw}

    norm_group = group(norm_params, o.lr * o.norm_lr_scale, o.weight_decay / o.norm_lr_scale)
    if o.name == "muon":
        filters, rest = filter_params(other)
        groups = [
            group(filters, o.muon_lr, 0.0, momentum=o.muon_momentum, orthogonal=True),
            group(rest, o.lr, o.weight_decay),
            norm_group,
        ]
        return Muon(
            [g for g in groups if g["params"]], lr=o.lr, momentum=o.momentum, nesterov=o.nesterov, ns_dtype=ns_dtype
        )
    groups = [group(other, o.lr, o.weight_decay), norm_group]
    if o.name == "sgd":
        return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov and o.momentum > 0)
    return torch.optim.AdamW(groups, lr=o.lr, betas=tuple(o.betas))


def set_lr(optimizer: torch.optim.Optimizer, factor: float) -> None:
    """Every group's lr to its base_lr times the schedule's factor."""
    for g in optimizer.param_groups:
        g["lr"] = g["base_lr"] * factor


class Lookahead:
    """Lookahead (Zhang et al. 2019) as in airbench: every k steps, slow <- lerp(slow, fast, 1 - decay) and
    fast <- slow, with decay rising as (t/T)^3 so early training is unhampered; at the end fast <- slow.
    Acts on every floating-point tensor of the model's state (BN statistics included)."""

    def __init__(self, model: nn.Module, every: int, total_steps: int):
        self.model, self.every, self.total_steps = model, every, total_steps
        self.slow: list[torch.Tensor] | None = None  # made at the first pull

    @torch.no_grad()
    def step(self, step: int) -> None:
        """After optimizer step number `step` (1-based)."""
        final = step == self.total_steps
        if not self.every or (not final and step % self.every):
            return
        decay = 1.0 if final else 0.95**5 * (step / self.total_steps) ** 3
        fast = [p for p in self.model.state_dict().values() if p.is_floating_point()]
        if self.slow is None:
            self.slow = [p.detach().clone() for p in fast]
        for slow_p, fast_p in zip(self.slow, fast):
            slow_p.lerp_(fast_p, 1 - decay)
            fast_p.copy_(slow_p)

    def state_dict(self) -> list[torch.Tensor] | None:
        return None if self.slow is None else list(self.slow)

    def load_state_dict(self, slow: list[torch.Tensor] | None, device) -> None:
        self.slow = None if slow is None else [t.to(device) for t in slow]
