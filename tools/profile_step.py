"""Where a training step's time goes: phases timed with the clock, then operators grouped by what they are.

    python tools/profile_step.py advanced --steps 12 --out results/levers/step_profile.json
    python tools/profile_step.py advanced --warmup 8 --set model.freeze.at=0.01 --set model.freeze.layers=2

Builds the preset's Trainer as `cifarlab train` does (data, whitening, optimizer), warms up a few steps, then
times the phases of each step (batch and augmentation, forward and backward, optimizer with Newton-Schulz,
lookahead) and profiles the same number of steps with torch.profiler, summing each operator's self CPU time
into a category. A benchmark, not a test: run it alone on the machine.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from torch.profiler import ProfilerActivity, profile

from cifarlab.config import apply_overrides, load_preset
from cifarlab.errors import UserError, exit_code
from cifarlab.io import atomic_write_text
from cifarlab.optim import lr_factor, set_lr
from cifarlab.train import build_run

# operator-name fragments -> category, first match wins (aten names as torch.profiler reports them on CPU)
CATEGORIES = [
    ("convolution", ("conv", "mkldnn_convolution")),
    ("batch norm", ("batch_norm",)),
    ("activation", ("gelu", "relu", "silu", "threshold_backward")),
    ("pooling", ("pool",)),
    ("matmul (Newton-Schulz, head, SE)", ("mm", "matmul", "linear", "baddbmm")),
    ("loss", ("cross_entropy", "log_softmax", "nll_loss")),
    ("indexing and copies (data, augment, layout)", ("index", "gather", "copy_", "cat", "flip", "where", "pad")),
    ("optimizer elementwise (foreach, lerp)", ("_foreach", "lerp", "addcmul", "addcdiv")),
]


def category(name: str) -> str:
    for label, parts in CATEGORIES:
        if any(p in name for p in parts):
            return label
    return "other elementwise and reductions"


def timed_steps(t, batches, n: int) -> dict[str, float]:
    """Seconds per phase summed over n steps, taken with the clock (no profiler overhead)."""
    phases = defaultdict(float)
    for _ in range(n):
        c0 = time.perf_counter()
        x, y = next(batches)
        c1 = time.perf_counter()
        step_without_optimizer(t, x, y)
        c2 = time.perf_counter()
        t._optimizer_step()
        c3 = time.perf_counter()
        t.state.step += 1
        t.lookahead.step(t.state.step)
        c4 = time.perf_counter()
        for k, dt in zip(["data and augmentation", "forward and backward", "optimizer step", "lookahead"],
                         [c1 - c0, c2 - c1, c3 - c2, c4 - c3]):  # fmt: skip
            phases[k] += dt
    return dict(phases)


def step_without_optimizer(t, x, y):
    """Trainer.step with the optimizer step split off, so the two are timed apart."""
    set_lr(t.optimizer, lr_factor(t.state.step, t.total_steps, t.steps_per_epoch, t.cfg.schedule))
    if hasattr(t.model, "on_step"):
        t.model.on_step(t.state.step, t.steps_per_epoch, t.total_steps)
    t._optimizer_step = lambda: None  # an instance attribute shadowing the method for this call
    try:
        return t.step(x, y)
    finally:
        del t._optimizer_step


def batches_forever(t):
    epoch = 0
    while True:
        yield from t.train_loader.epoch(epoch)
        epoch += 1


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("preset", nargs="?", default="advanced")
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--warmup", type=int, default=4)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--data")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        raise UserError(f"--steps must be at least 1 and --warmup at least 0, got {args.steps} and {args.warmup}")
    cfg = apply_overrides(load_preset(args.preset), args.set)
    with tempfile.TemporaryDirectory() as tmp:
        t = build_run(cfg, out=tmp, data_path=args.data)
        t.model.train()
        batches = batches_forever(t)
        timed_steps(t, batches, args.warmup)
        phases = timed_steps(t, batches, args.steps)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            timed_steps(t, batches, args.steps)
    ops = defaultdict(float)
    for e in prof.key_averages():
        ops[category(e.key)] += e.self_cpu_time_total / 1e6
    total_phase, total_ops = sum(phases.values()), sum(ops.values())
    batch = cfg.data.batch_size
    result = {
        "preset": args.preset,
        "overrides": args.set,
        "device": str(t.device),
        "dtype": str(t.dtype),
        "batch_size": batch,
        "steps": args.steps,
        "img_per_s": round(args.steps * batch / total_phase, 1),
        "phases_s_per_step": {k: round(v / args.steps, 4) for k, v in phases.items()},
        "phases_share": {k: round(v / total_phase, 4) for k, v in phases.items()},
        "operators_share": {k: round(v / total_ops, 4) for k, v in sorted(ops.items(), key=lambda kv: -kv[1])},
        "top_operators": [
            {"op": e.key, "self_cpu_s_per_step": round(e.self_cpu_time_total / 1e6 / args.steps, 4)}
            for e in sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:15]
        ],
    }
    print(f"{args.preset}: {result['img_per_s']} img/s over {args.steps} steps of {batch} ({t.dtype})")
    for k, v in result["phases_share"].items():
        print(f"  phase  {k:<45} {100 * v:5.1f}%  {result['phases_s_per_step'][k]:.3f} s/step")
    for k, v in result["operators_share"].items():
        print(f"  ops    {k:<45} {100 * v:5.1f}%")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(exit_code(main))
