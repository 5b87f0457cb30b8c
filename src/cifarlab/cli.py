"""Command line: parses arguments and calls the modules; no logic of its own."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import UserError, __version__


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cifarlab", description="Train, watch, evaluate, compare and ship CIFAR-10 classifiers.")
    p.add_argument("--version", action="version", version=f"cifarlab {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def common_data(sp):
        sp.add_argument("--data", metavar="PATH", help="CIFAR-10 folder or archive (default: $CIFAR10_DIR, then the cache)")
        sp.add_argument("--device", help="auto | cpu | cuda | cuda:N | mps")

    t = sub.add_parser("train", help="train a preset (default: advanced)")
    t.add_argument("preset", nargs="?", default=None, help="preset name or YAML path (see `cifarlab presets`)")
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set optim.lr=0.1 (repeatable)")
    common_data(t)
    t.add_argument("--out", default="runs", help="parent folder of run directories (default: runs)")
    t.add_argument("--epochs", type=float, help="number of epochs (may be fractional)")
    t.add_argument("--seed", type=int)
    t.add_argument("--fp32", action="store_true", help="force fp32 (no autocast)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    t.add_argument("--no-tensorboard", action="store_true")
    t.add_argument("--quiet", action="store_true", help="no progress output")
    t.add_argument("--plain", action="store_true", help="plain log lines even on a terminal")

    e = sub.add_parser("evaluate", help="evaluate a run or checkpoint on the test set")
    e.add_argument("run", help="run directory or checkpoint file")
    common_data(e)
    e.add_argument("--tta", choices=["none", "flip", "flip_translate"], help="test-time augmentation (default: the run's)")
    e.add_argument("--json", action="store_true", help="print the results as JSON")

    b = sub.add_parser("bench", help="train a preset with several seeds; mean ± std of accuracy, time, img/s")
    b.add_argument("preset")
    b.add_argument("--seeds", type=int, default=3)
    b.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    common_data(b)
    b.add_argument("--out", default="runs/bench")
    b.add_argument("--epochs", type=float)

    r = sub.add_parser("results", help="the README results table, from bench outputs")
    r.add_argument("bench_json", nargs="+", help="bench.json files written by `cifarlab bench`")

    sub.add_parser("presets", help="list presets with a one-line description")
    i = sub.add_parser("info", help="where the data is, which device and precision would be used")
    common_data(i)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    try:
        return COMMANDS[args.command](args) or 0
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


# -------------------------------------------------------------------------------------- commands
DEFAULT_PRESET = "advanced"


def _config(preset: str | None, overrides: list[str], epochs=None, seed=None, device=None, fp32=False, data=None):
    from .config import apply_overrides, load_preset

    cfg = load_preset(preset or DEFAULT_PRESET)
    extra = list(overrides)
    if epochs is not None:
        extra.append(f"train.epochs={epochs}")
    if seed is not None:
        extra.append(f"train.seed={seed}")
    if device:
        extra.append(f"train.device={device}")
    if fp32:
        extra.append("train.precision=fp32")
    if data:
        extra.append(f"data.dir={data}")
    return apply_overrides(cfg, extra) if extra else cfg


def cmd_train(args) -> int:
    from .live import default_callbacks
    from .train import train

    cbs = default_callbacks(tensorboard=not args.no_tensorboard, quiet=args.quiet, live=False if args.plain else None)
    if args.resume:
        if args.preset or args.overrides:
            raise UserError("--resume continues a run with its own config: drop the preset and --set options")
        from .train import Run

        run = Run.resume(Path(args.resume), args.data, cbs, epochs=args.epochs)
        run.fit()
        if run.stop_requested:
            return 130
        run.finish()
        return 0
    cfg = _config(args.preset, args.overrides, args.epochs, args.seed, args.device, args.fp32)
    if args.no_tensorboard:
        cfg.train.tensorboard = False
    cbs = default_callbacks(tensorboard=cfg.train.tensorboard, quiet=args.quiet, live=False if args.plain else None)
    run_dir, summary = train(cfg, args.out, args.data, cbs)
    return 130 if summary is None else 0


def cmd_evaluate(args) -> int:
    from .evaluate import evaluate_run

    res = evaluate_run(args.run, data_path=args.data, device=args.device, tta=args.tta)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(f"test accuracy {100 * res['test_acc']:.2f}% (95% CI {100 * res['test_acc_ci'][0]:.2f}-"
          f"{100 * res['test_acc_ci'][1]:.2f}), loss {res['test_loss']:.4f}, TTA {res['tta']}")
    for name, acc in res["per_class_acc"].items():
        print(f"  {name:<11} {100 * acc:6.2f}%")
    return 0


def cmd_presets(args) -> int:
    from .config import list_presets

    for name, desc in list_presets().items():
        print(f"{name:<14} {desc}")
    return 0


def cmd_info(args) -> int:
    import torch

    from .data import locate
    from .train import device_description, dtype_name, select_device, select_precision

    dev = select_device(args.device or "auto")
    try:
        where = str(locate(args.data, download=False))
    except UserError as e:
        where = f"not found ({e}); `cifarlab train` downloads it to the cache"
    print(f"data:      {where}")
    print(f"device:    {device_description(dev)}")
    print(f"precision: {dtype_name(select_precision(dev))} (autocast)")
    print(f"torch:     {torch.__version__}")
    return 0


def cmd_bench(args) -> int:
    from .bench import bench

    bench(args.preset, args.seeds, args.overrides, data=args.data, out=args.out, epochs=args.epochs, device=args.device)
    return 0


def cmd_results(args) -> int:
    from .bench import results_table

    print(results_table([Path(p) for p in args.bench_json]))
    return 0


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "presets": cmd_presets, "info": cmd_info,
            "bench": cmd_bench, "results": cmd_results}


if __name__ == "__main__":
    sys.exit(main())
