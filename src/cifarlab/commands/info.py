"""`cifarlab info`: where the data is, and which device, precision and passes a run would use here."""

from __future__ import annotations

import torch

from ..data import locate
from ..errors import UserError
from ..hardware import auto_micro_batch, device_description, dtype_name, select_device, select_precision


def info(data: str | None = None, device: str | None = None) -> None:
    dev = select_device(device or "auto")
    try:
        where = str(locate(data, download=False))
    except UserError as e:
        where = f"not found ({e}); `cifarlab train` downloads it to the cache"
    print(f"data:      {where}")
    print(f"device:    {device_description(dev)}")
    dtype = select_precision(dev)
    if dtype is not None:
        why = f"{dtype_name(dtype)} autocast"
    elif dev.type == "cpu":
        why = "fp32: this CPU has no native bf16, and emulated bf16 is far slower"
    else:
        why = "fp32"
    print(f"precision: {why}")
    mb = auto_micro_batch(dev, dtype)
    if mb:
        print(
            f"passes:    training batches over {mb} images run as micro-batches of {mb}, and inference in "
            f"passes of {mb} (fp32 on a CPU: activations stay in cache); runtime.micro_batch changes training's"
        )
    print(f"torch:     {torch.__version__}")
