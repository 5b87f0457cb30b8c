"""The anti-aliased pool's low-pass, forward and backward, as a depthwise conv and as a grouped conv with zero
off-diagonal taps (groups of 8 to 64 channels), at the advanced net's three pool inputs, batch 1024 in bf16 and
128 in fp32 (the passes training uses), channels_last. Writes blur_ops.json beside this file; run it alone.

    python results/amx_bf16/blur_ops.py
"""

import json
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F


def ms_per_pass(fn, x, n=3):
    y = fn(x)
    y.backward(torch.ones_like(y))  # warm-up
    t = time.perf_counter()
    for _ in range(n):
        y = fn(x)
        y.backward(torch.ones_like(y))
    return (time.perf_counter() - t) / n * 1000


def main():
    taps = torch.tensor([1.0, 2.0, 1.0])
    kernel = taps[:, None] * taps[None, :] / 16
    rows = []
    for dtype, batch in ((torch.bfloat16, 1024), (torch.float32, 128)):
        for c, h in ((64, 30), (256, 14), (256, 6)):  # the dense max's outputs at the three pools
            x = torch.randn(batch, c, h, h, dtype=dtype).contiguous(memory_format=torch.channels_last)
            x.requires_grad_()
            ref = None
            for width in (1, 8, 16, 32, 64):
                w = torch.zeros(c, width, 3, 3)
                w[torch.arange(c), torch.arange(c) % width] = kernel
                w = w.to(dtype).contiguous(memory_format=torch.channels_last)

                def blur(t, w=w, groups=c // width):
                    return F.conv2d(t, w, stride=2, padding=1, groups=groups)

                with torch.no_grad():
                    out = blur(x)
                    ref = out if ref is None else ref
                rows.append(
                    {
                        "dtype": str(dtype),
                        "batch": batch,
                        "channels": c,
                        "size": h,
                        "group_width": width,
                        "ms_forward_backward": round(ms_per_pass(blur, x), 1),
                        "same_as_depthwise": bool(torch.equal(out, ref)),
                    }
                )
                print(rows[-1], flush=True)
    out = {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(), "rows": rows}
    Path(__file__).with_name("blur_ops.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
