"""Networks as data: registered blocks and attention (blocks), the spec -> nn.Module builder (builder),
the whitening stem (whitening)."""

from .blocks import ATTENTION, BLOCKS
from .builder import Net, build_model, check_spec, count_flops, count_params
from .whitening import WhiteningStem

__all__ = ["ATTENTION", "BLOCKS", "Net", "WhiteningStem", "build_model", "check_spec", "count_flops", "count_params"]
