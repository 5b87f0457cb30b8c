"""The whitening first layer of airbench: filters from the training images' patch covariance."""

from __future__ import annotations

import torch
import torch.nn as nn

from ..errors import ConfigError
from .blocks import activation


def contrast_normalize(x: torch.Tensor, target: float, max_gain: float = 10.0) -> torch.Tensor:
    """Scale each image's deviation from its per-channel mean to the standard deviation `target`, mean kept.

    A contrast change (x - m) * c + m is undone exactly, so lower-contrast images (fog, haze, a dim screen)
    reach the net as it saw in training; the gain is capped so a near-flat image's noise is not blown up."""
    mean = x.mean((2, 3), keepdim=True)
    dev = x - mean
    std = dev.float().pow(2).mean((1, 2, 3), keepdim=True).sqrt()
    gain = target / std.clamp_min(target / max_gain)
    return mean + dev * gain.to(x.dtype)


class WhiteningStem(nn.Module):
    """A 2x2 (or kxk) conv whose filters are the eigenvectors of the patch covariance, +/- (airbench).

    Whitened inputs make the next layers' job well-conditioned. Weights are set from training images by
    `init_whitening` and then frozen; the bias learns for `bias_epochs` (0 = always), then freezes.
    `eps` (relative to the top eigenvalue when `eps_relative`) regularizes the division by each direction's
    standard deviation: the faint high-frequency directions, which noise and JPEG blocks fill, are amplified
    by at most 1/sqrt(eps). `contrast_norm` scales every image to the training images' mean contrast first.
    `drop_weakest` leaves out that many of the faintest directions (on CIFAR-10 the 6 weakest of a 2x2 patch are
    chroma detail, which JPEG's colour subsampling and camera demosaicing erase), so the net cannot come to rely
    on them.
    """

    def __init__(
        self,
        channels: int = 24,
        kernel: int = 2,
        act: str = "gelu",
        bias_epochs: float = 0.0,
        fit_images: int = 5000,
        fast_bias: bool = False,
        eps: float = 5e-4,
        eps_relative: bool = False,
        contrast_norm: bool = False,
        drop_weakest: int = 0,
    ):
        super().__init__()
        directions = 3 * kernel * kernel
        if not 0 <= drop_weakest < directions:
            raise ConfigError(
                f"model.stem.drop_weakest: a {kernel}x{kernel} patch has {directions} directions, so drop 0 to "
                f"{directions - 1} of them, not {drop_weakest}"
            )
        kept = directions - drop_weakest
        if channels != 2 * kept:
            # one filter per kept eigenvector of the 3*k*k patch covariance, and its negative
            has = f"has 2 x 3 x {kernel}² = {2 * kept}" if not drop_weakest else (
                f"keeping {kept} of its {directions} patch directions has 2 x {kept} = {2 * kept}"
            )  # fmt: skip
            raise ConfigError(
                f"model.stem: a whiten stem with kernel {kernel} {has} channels, not {channels}: set channels to that"
            )
        self.conv = nn.Conv2d(3, channels, kernel, padding=0, bias=True)
        self.conv.weight.requires_grad_(False)
        self.act = activation(act)
        self.bias_epochs = bias_epochs
        self.fit_images = fit_images  # training images whose patch covariance gives the filters
        self.fast_bias = fast_bias  # the bias trains at the BN shifts' lr (airbench94_muon), not the base lr
        self.eps, self.eps_relative = eps, eps_relative
        self.contrast_norm = contrast_norm
        self.drop_weakest = drop_weakest
        if contrast_norm:  # the training images' mean contrast, set by init_whitening; a buffer so it is saved
            self.register_buffer("contrast_target", torch.ones(()))

    def on_step(self, step: int, steps_per_epoch: int) -> None:
        if self.bias_epochs and step >= int(round(self.bias_epochs * steps_per_epoch)):
            self.conv.bias.requires_grad_(False)

    @torch.no_grad()
    def init_whitening(self, images: torch.Tensor) -> None:
        if self.contrast_norm:
            dev = images.float() - images.float().mean((2, 3), keepdim=True)
            self.contrast_target.fill_(float(dev.pow(2).mean((1, 2, 3)).sqrt().mean()))
            images = contrast_normalize(images.float(), float(self.contrast_target))
        k = self.conv.kernel_size[0]
        patches = images.float().unfold(2, k, 1).unfold(3, k, 1)  # (N, C, H', W', k, k)
        patches = patches.transpose(1, 3).reshape(-1, 3 * k * k)
        patches = patches - patches.mean(0)
        cov = patches.T @ patches / len(patches)
        eigval, eigvec = torch.linalg.eigh(cov.double())  # ascending: the faintest directions first
        eigval, eigvec = eigval[self.drop_weakest :], eigvec[:, self.drop_weakest :]
        eps = self.eps * float(eigval[-1]) if self.eps_relative else self.eps
        # Patch vectors are ordered (c, kh, kw), the conv weight's own layout.
        filters = (eigvec.T / torch.sqrt(eigval.clamp_min(0)[:, None] + eps)).float().view(-1, 3, k, k)
        self.conv.weight.copy_(torch.cat([filters, -filters]))

    def forward(self, x):
        if self.contrast_norm:
            x = contrast_normalize(x, self.contrast_target)
        return self.act(self.conv(x))
