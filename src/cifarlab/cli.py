"""Command line: parses arguments and calls the modules; no logic of its own."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import ConfigError, UserError, __version__
from .config import CHOICES


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
    e.add_argument("--tta", choices=CHOICES["eval.tta"], help="test-time augmentation (default: the run's)")
    e.add_argument("--json", action="store_true", help="print the results as JSON")
    e.add_argument("--robustness-n", type=int, default=2000, metavar="N",
                   help="test images used for the corruption benchmark (0 = skip; default 2000)")

    b = sub.add_parser("bench", help="train a preset with several seeds; mean ± std of accuracy, time, img/s")
    b.add_argument("preset")
    b.add_argument("--seeds", type=int, default=3)
    b.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    common_data(b)
    b.add_argument("--out", default="runs/bench")
    b.add_argument("--epochs", type=float)

    r = sub.add_parser("results", help="the README results table, from bench outputs")
    r.add_argument("bench_json", nargs="+", help="bench.json files written by `cifarlab bench`")
    r.add_argument("--readme", metavar="FILE", help="also rewrite the table between the results markers of FILE")

    c = sub.add_parser("compare", help="HTML + Markdown report comparing runs (evaluates runs not yet evaluated)")
    c.add_argument("runs", nargs="+", help="run directories")
    c.add_argument("--out", default="report", help="folder for report.html and report.md (default: report)")
    c.add_argument("--data", metavar="PATH")
    c.add_argument("--ablation", metavar="JSON", help="ablation.json from `cifarlab ablate`, shown as a section")

    rep = sub.add_parser("report", help="compare every finished run under a folder (default: runs)")
    rep.add_argument("runs_dir", nargs="?", default="runs")
    rep.add_argument("--out", default="report")
    rep.add_argument("--data", metavar="PATH")

    a = sub.add_parser("ablate", help="train a preset (default advanced) with one technique removed at a time")
    a.add_argument("preset", nargs="?", default="advanced")
    a.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="applied to every variant, e.g. --set data.train_subset=10000 for a quick ablation")
    a.add_argument("--epochs", type=float)
    a.add_argument("--only", action="append", help="run only these variants (repeatable)")
    a.add_argument("--out", default="runs/ablation")
    common_data(a)

    pr = sub.add_parser("predict", help="classify your own PNG/JPEG images")
    pr.add_argument("run", help="run directory or checkpoint")
    pr.add_argument("images", nargs="+")
    pr.add_argument("--top", type=int, default=3)
    pr.add_argument("--json", action="store_true")
    pr.add_argument("--device", default="cpu")
    pr.add_argument("--tta", choices=CHOICES["eval.tta"], help="test-time augmentation (default: the run's)")
    pr.add_argument("--uncalibrated", action="store_true",
                    help="raw probabilities, without the temperature `cifarlab evaluate` fitted")

    ex = sub.add_parser("export", help="export the best checkpoint (ONNX, torch.export or TorchScript), checked against PyTorch")
    ex.add_argument("run")
    ex.add_argument("--format", choices=["onnx", "torchscript", "export"], default="onnx",
                    help="onnx (.onnx), torchscript (.pt) or export (torch.export program, .pt2)")
    ex.add_argument("--out", help="output file (default: RUN/model.onnx, .pt2 or .pt)")

    bd = sub.add_parser("board", help="start TensorBoard on 127.0.0.1 for a folder of runs")
    bd.add_argument("runs_dir", nargs="?", default="runs")
    bd.add_argument("--port", type=int, default=6006)

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
    except OSError as e:  # a full disk, a permission, a path that cannot exist: the machine's state, not a bug
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: {where}{e.strerror or e}; check the path, its permissions and the free space", file=sys.stderr)
        return 1


# -------------------------------------------------------------------------------------- commands
def cmd_train(args) -> int:
    from .config import resolve
    from .live import default_callbacks
    from .parallel import from_env
    from .train import Run, train

    live = False if args.plain else None
    if args.resume:
        if args.preset or args.overrides or args.seed is not None or args.fp32 or args.device:
            raise ConfigError("--resume continues a run with its own config: drop the preset and the --set, --seed, "
                              "--fp32 and --device options")
        dist = from_env()
        cbs = default_callbacks(tensorboard=not args.no_tensorboard, quiet=args.quiet, live=live)
        try:
            run = Run.resume(Path(args.resume), args.data, cbs if dist is None or dist.rank == 0 else [],
                             epochs=args.epochs, dist=dist)
            if run.done and (run.dir / "summary.json").exists():
                # re-evaluating would only rewrite summary.json with a longer wall time
                if dist is None or dist.rank == 0:
                    print(f"{run.dir} has already trained {run.state.step / run.steps_per_epoch:.3g} epochs "
                          "(see its summary.json); pass --epochs with a larger number to train it further")
                return 0
            run.fit()
            if run.stop_requested:
                return 130
            run.finish()
        finally:
            if dist is not None:
                dist.close()
        return 0
    cfg = resolve(args.preset, args.overrides, args.epochs, args.seed, args.device, args.fp32)
    if args.no_tensorboard:
        cfg.train.tensorboard = False
    cbs = default_callbacks(tensorboard=cfg.train.tensorboard, quiet=args.quiet, live=live)
    dist = from_env(cfg.train.device)
    try:
        if dist is not None and dist.rank != 0:
            cbs = []
        run_dir, summary = train(cfg, args.out, args.data, cbs, dist=dist)
    finally:
        if dist is not None:
            dist.close()
    return 130 if summary is None else 0


def cmd_evaluate(args) -> int:
    from .evaluate import evaluate_run

    if args.robustness_n < 0:
        raise ConfigError(f"--robustness-n must be >= 0, got {args.robustness_n}")
    res = evaluate_run(args.run, data_path=args.data, device=args.device, tta=args.tta, robustness_n=args.robustness_n)
    if args.json:
        print(json.dumps({k: v for k, v in res.items() if k != "test_pred"}, indent=2))
        return 0
    lo, hi = res["test_acc_ci"]
    print(f"test accuracy {100 * res['test_acc']:.2f}% (95% CI {100 * lo:.2f}-{100 * hi:.2f}), top-2 "
          f"{100 * res['top2_acc']:.2f}%, loss {res['test_loss']:.4f}, ECE {100 * res['calibration']['ece']:.2f}%, "
          f"TTA {res['tta']}")
    if "without_tta" in res:
        w = res["without_tta"]
        print(f"without TTA: accuracy {100 * w['test_acc']:.2f}%, loss {w['test_loss']:.4f}, ECE {100 * w['ece']:.2f}%")
    if "temperature_scaling" in res:
        t = res["temperature_scaling"]
        print(f"temperature scaling (T={t['temperature']:.3f}, fitted on {t['fitted_on_n']} validation images): "
              f"loss {t['test_loss']:.4f}, ECE {100 * t['ece']:.2f}%")
    print(f"{'class':<11} {'acc':>7} {'prec':>7} {'recall':>7} {'F1':>7}")
    for name, acc in res["per_class_acc"].items():
        print(f"{name:<11} {100 * acc:6.2f}% {100 * res['precision'][name]:6.2f}% {100 * res['recall'][name]:6.2f}% "
              f"{100 * res['f1'][name]:6.2f}%")
    if "robustness" in res:
        r = res["robustness"]
        per = ", ".join(f"{k} {100 * sum(v) / len(v):.1f}%" for k, v in r["per_corruption"].items())
        print(f"robustness ({r['n']} images, 5 severities): mean corruption accuracy "
              f"{100 * r['mean_corruption_acc']:.2f}% ({per})")
    if "inference_img_per_s" in res:
        print("inference: " + ", ".join(f"batch {b}: {v:.0f} img/s" for b, v in res["inference_img_per_s"].items()))
    if res.get("figures"):
        print(f"figures: {', '.join(res['figures'])} (in the run directory, with evaluation.json)")
    return 0


def cmd_presets(args) -> int:
    from .config import list_presets

    for name, desc in list_presets().items():
        print(f"{name:<14} {desc}")
    return 0


def cmd_info(args) -> int:
    import torch

    from .data import locate
    from .hardware import auto_micro_batch, device_description, dtype_name, select_device, select_precision

    dev = select_device(args.device or "auto")
    try:
        where = str(locate(args.data, download=False))
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
        print(f"passes:    training batches over {mb} images run as micro-batches of {mb}, and inference in "
              f"passes of {mb} (fp32 on a CPU: activations stay in cache); train.micro_batch changes training's")
    print(f"torch:     {torch.__version__}")
    return 0


def cmd_bench(args) -> int:
    from .bench import bench

    bench(args.preset, args.seeds, args.overrides, data=args.data, out=args.out, epochs=args.epochs, device=args.device)
    return 0


def cmd_results(args) -> int:
    from .bench import results_table, update_readme

    table = results_table([Path(p) for p in args.bench_json])
    print(table)
    if args.readme:
        update_readme(Path(args.readme), table)
    return 0


def _writable_dir(path: str) -> Path:
    """Create the output folder up front, so a bad --out fails before minutes of evaluation, not after."""
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create the output folder {out} ({e.strerror or e}): choose another --out") from None
    return out


def _read_ablation(path: Path) -> list[dict]:
    from .io import read_json

    results = read_json(path, "ablation results")
    fields = {"variant", "removed", "test_acc"}
    if not isinstance(results, list) or not all(isinstance(r, dict) and fields <= set(r) for r in results):
        raise UserError(f"{path} is not an ablation.json written by `cifarlab ablate`")
    return results


def cmd_compare(args) -> int:
    from .report import compare

    ablation = _read_ablation(args.ablation) if args.ablation else None
    html_path, md_path = compare([Path(r) for r in args.runs], _writable_dir(args.out), args.data, ablation=ablation)
    print(f"wrote {html_path} and {md_path}")
    return 0


def cmd_report(args) -> int:
    root = Path(args.runs_dir)
    runs = sorted(p.parent for p in root.glob("**/summary.json"))
    if not runs:
        raise UserError(f"no finished runs (summary.json) under {root}")
    from .report import compare

    ablation_file = root / "ablation" / "ablation.json"
    ablation = _read_ablation(ablation_file) if ablation_file.exists() else None
    html_path, md_path = compare(runs, _writable_dir(args.out), args.data, ablation=ablation)
    print(f"wrote {html_path} and {md_path} ({len(runs)} runs)")
    return 0


def cmd_ablate(args) -> int:
    from .ablation import ablate

    ablate(args.preset, args.overrides, args.epochs, args.only, args.out, args.data, args.device)
    return 0


def cmd_predict(args) -> int:
    from .ship import predict

    results, errors = predict(args.run, args.images, args.top, args.device, args.tta,
                              calibrate=not args.uncalibrated)
    if args.json:
        print(json.dumps({"results": results, "errors": errors}, indent=2))
    else:
        if results and results[0]["temperature"]:
            print(f"(probabilities calibrated with T={results[0]['temperature']:.3f}, fitted on the validation "
                  "split by `cifarlab evaluate`; --uncalibrated for raw ones)")
        for r in results:
            print(f"{r['image']}: " + ", ".join(f"{t['class']} {100 * t['prob']:.1f}%" for t in r["top"]))
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    return 1 if errors else 0


def cmd_export(args) -> int:
    from .ship import export

    dest, check = export(args.run, args.format, args.out)
    diff = f"max |diff| vs PyTorch {check['max_abs_diff']:.2e} ({check['runtime']})" if "max_abs_diff" in check else check["note"]
    print(f"wrote {dest}; {diff}")
    return 0


def cmd_board(args) -> int:
    import importlib.util
    import signal
    import subprocess

    # run TensorBoard with this interpreter: its script may not be on PATH (venv not activated)
    if importlib.util.find_spec("tensorboard") is None:
        raise UserError("tensorboard is not installed in this environment: pip install tensorboard")
    if not 1 <= args.port <= 65535:
        raise ConfigError(f"--port must be 1..65535, got {args.port}")
    if not Path(args.runs_dir).is_dir():
        raise UserError(f"no folder {args.runs_dir}: train a run first or give the runs folder")
    proc = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", args.runs_dir,
                             "--host", "127.0.0.1", "--port", str(args.port)])
    # a SIGTERM to `cifarlab board` must not orphan the server (it would keep the port): stop it with us
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        return proc.wait()
    except KeyboardInterrupt:
        return 130
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


COMMANDS = {"compare": cmd_compare, "report": cmd_report, "ablate": cmd_ablate, "predict": cmd_predict,
            "export": cmd_export, "board": cmd_board, "train": cmd_train, "evaluate": cmd_evaluate, "presets": cmd_presets, "info": cmd_info,
            "bench": cmd_bench, "results": cmd_results}


if __name__ == "__main__":
    sys.exit(main())
