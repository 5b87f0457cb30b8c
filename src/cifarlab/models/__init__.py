from .blocks import ATTENTION, BLOCKS
from .builder import Net, build_model, count_flops, count_params

__all__ = ["ATTENTION", "BLOCKS", "Net", "build_model", "count_flops", "count_params"]
