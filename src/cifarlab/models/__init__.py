"""Networks as data: registered blocks and attention (blocks), the spec -> nn.Module builder (builder),
the whitening stem (whitening)."""

from .blocks import ATTENTION, BLOCKS
from .builder import Net, bn_stats_frozen, build_model, check_spec, count_flops, count_params, spec_schema
from .whitening import WhiteningStem

__all__ = [
    "ATTENTION", "BLOCKS", "Net", "WhiteningStem", "bn_stats_frozen", "build_model", "check_spec", "count_flops",
    "count_params", "spec_schema",
]  # fmt: skip
