"""Command line: parses arguments and calls the commands; no logic of its own."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__
from .commands.ablation import ablate
from .commands.bench import bench, bench_from_runs, check_no_readme, dev_bench, dev_compare, results_table
from .commands.board import board
from .commands.evaluate import evaluate_run, print_evaluation
from .commands.export import export
from .commands.info import info
from .commands.predict import folder_accuracy, predict
from .commands.report import compare, report, writable_dir
from .commands.schema import schema
from .commands.train import train_command
from .commands.tune import PRUNERS, saved_study, show, tune
from .config import choices, list_presets
from .errors import ConfigError, UserError, exit_code
from .parallel import check_single_process, exit_process
from .rundir import read_ablation


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cifarlab", description=DESCRIPTION)
    p.add_argument("--version", action="version", version=f"cifarlab {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for add in (_add_train, _add_evaluate, _add_bench, _add_reports, _add_ablate, _add_tune, _add_ship, _add_tools):
        add(sub)
    return p


DESCRIPTION = "Train, watch, evaluate, compare and ship CIFAR-10 classifiers."


def _data_options(sp) -> None:
    sp.add_argument("--data", metavar="PATH", help="CIFAR-10 folder or archive (default: $CIFAR10_DIR, then the cache)")
    sp.add_argument("--device", help="auto | cpu | cuda | cuda:N | mps")


def _set_option(sp, help: str = "override a config value, e.g. --set optim.lr=0.1 (repeatable)") -> None:
    sp.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help)


def _add_train(sub) -> None:
    t = sub.add_parser("train", help="train a preset (default: advanced)")
    t.add_argument("preset", nargs="?", default=None, help="preset name or YAML path (see `cifarlab presets`)")
    _set_option(t)
    _data_options(t)
    t.add_argument("--out", default="runs", help="parent folder of run directories (default: runs)")
    t.add_argument("--epochs", type=float, help="number of epochs (may be fractional)")
    t.add_argument("--seed", type=int)
    t.add_argument("--fp32", action="store_true", help="force fp32 (no autocast)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    t.add_argument("--no-tensorboard", action="store_true")
    t.add_argument("--quiet", action="store_true", help="no progress output")
    t.add_argument("--plain", action="store_true", help="plain log lines even on a terminal")


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _csv_int(text: str) -> list[int]:
    try:
        return [int(t) for t in _csv(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _add_evaluate(sub) -> None:
    e = sub.add_parser("evaluate", help="evaluate a run or checkpoint on the test set")
    e.add_argument("run", help="run directory or checkpoint file")
    _data_options(e)
    e.add_argument("--tta", choices=choices("eval.tta"), help="test-time augmentation (default: the run's)")
    e.add_argument("--tta-fraction", type=float, metavar="F",
                   help="selective TTA: the least confident share F of images takes every view")  # fmt: skip
    e.add_argument("--json", action="store_true", help="print the results as JSON")
    e.add_argument("--robustness-n", type=int, default=2000, metavar="N",
                   help="test images used for the corruption benchmark (0 = skip; default 2000)")  # fmt: skip
    e.add_argument("--corruptions", type=_csv, metavar="A,B", help="CIFAR-10-C families to run (default: all 19)")
    e.add_argument("--severities", type=_csv_int, metavar="1,3", help="severities to run (default: 1,2,3,4,5)")
    e.add_argument("--cifar10c", metavar="DIR",
                   help="read the released CIFAR-10-C (<family>.npy, labels.npy) instead of generating it")  # fmt: skip


def _add_bench(sub) -> None:
    b = sub.add_parser("bench", help="train a preset with several seeds; mean ± std of accuracy, time, img/s")
    b.add_argument("preset")
    b.add_argument("--seeds", type=int, default=3)
    _set_option(b)
    _data_options(b)
    b.add_argument("--out", default=None, help="folder of the runs and the bench file (default runs/bench, runs/dev)")
    b.add_argument("--epochs", type=float)
    b.add_argument("--dev", action="store_true",
                   help="choose between recipes: train on 45,000 images, score on the 5,000 held out (clean and "
                        "corrupted); never opens the test set; writes <out>/<name>.dev.json")  # fmt: skip
    b.add_argument("--name", help="--dev: the recipe's name in its file (default: the preset)")
    b.add_argument("--from-runs", nargs="+", metavar="RUN_DIR|BENCH_JSON",
                   help="the bench file of these finished runs, or of the runs these bench files hold (seeds "
                        "trained apart), no training")  # fmt: skip
    b.add_argument("--first-seed", type=int, default=0, help="seeds run from this one (--dev: adds to the file)")
    b.add_argument("--robust-n", type=int, default=1000, help="--dev: validation images corrupted (0 = skip)")
    b.add_argument("--against", metavar="DEV_JSON", help="--dev: print the paired difference to this dev bench")
    b.add_argument("--rescore", metavar="DEV_JSON",
                   help="--dev: score that bench's checkpoints under these eval.* settings, not training")  # fmt: skip
    r = sub.add_parser("results", help="the README results table, from bench outputs")
    r.add_argument("bench_json", nargs="+", help="bench.json files written by `cifarlab bench`")
    r.add_argument("--current", action="store_true",
                   help="only rows of today's preset recipes (leave out runs of earlier recipes)")  # fmt: skip
    r.add_argument("--readme", metavar="FILE", help=argparse.SUPPRESS)  # moved to `make results`


def _add_reports(sub) -> None:
    c = sub.add_parser("compare", help="HTML + Markdown report comparing runs (evaluates runs not yet evaluated)")
    c.add_argument("runs", nargs="*", help="run directories")
    c.add_argument("--out", default="report", help="folder for report.html and report.md (default: report)")
    c.add_argument("--data", metavar="PATH")
    c.add_argument("--ablation", metavar="JSON", help="ablation.json from `cifarlab ablate`, shown as a section")
    _study_options(c)
    rep = sub.add_parser("report", help="compare every finished run under a folder (default: runs)")
    rep.add_argument("runs_dir", nargs="?", default="runs")
    rep.add_argument("--out", default="report")
    rep.add_argument("--data", metavar="PATH")
    _study_options(rep)


def _study_options(sp) -> None:
    sp.add_argument("--study", help="add the section of a `cifarlab tune` study (leaderboard, history, importances)")
    sp.add_argument("--storage", help="the study's storage (default: STUDY.db in the reported folder, else runs/tune)")


def _study(args, *folders: str):
    return saved_study(args.study, args.storage, [*map(Path, folders), Path("runs/tune")]) if args.study else None


def _add_ablate(sub) -> None:
    a = sub.add_parser("ablate", help="train a preset (default advanced) with one technique removed at a time")
    a.add_argument("preset", nargs="?", default="advanced")
    _set_option(a, "applied to every variant, e.g. --set data.train_subset=10000 for a quick ablation")
    a.add_argument("--epochs", type=float)
    a.add_argument("--only", action="append", help="run only these variants (repeatable)")
    a.add_argument(
        "--out", default="runs/ablation", help="where the variants and ablation.json go (rows there are kept)"
    )
    a.add_argument(
        "--full", metavar="RUN_DIR", help="a finished run of the same config as the full recipe (not retrained)"
    )
    _data_options(a)


def _add_tune(sub) -> None:
    t = sub.add_parser("tune", help="search a config (architecture included) with Optuna, pruned and resumable")
    t.add_argument("preset", nargs="?", default=None, help="preset name or YAML path (default: advanced)")
    t.add_argument("--space", metavar="SPACE.yaml", help="the search space: dotted keys -> ranges")
    t.add_argument("--trials", type=int, default=20, help="finished trials the study should hold (default 20)")
    t.add_argument("--study", help="study name (default: PRESET-tune)")
    t.add_argument("--storage", help="an Optuna storage URL or FILE.journal (default: OUT/STUDY.db, SQLite)")
    t.add_argument("--timeout", type=float, metavar="S", help="stop starting trials after S seconds")
    t.add_argument("--pruner", choices=PRUNERS, default="median", help="stop bad trials early (default median)")
    t.add_argument("--show", metavar="STUDY", help="print the leaderboard of a study and exit")
    _set_option(t, "applied to every trial, e.g. --set data.train_subset=10000")
    _data_options(t)
    t.add_argument("--out", default="runs/tune", help="folder of the study file and trial runs (default: runs/tune)")
    t.add_argument("--epochs", type=float, help="epochs per trial")
    t.add_argument("--seed", type=int)


def _add_ship(sub) -> None:
    pr = sub.add_parser("predict", help="classify your own PNG/JPEG images")
    pr.add_argument("run", help="run directory or checkpoint")
    pr.add_argument("images", nargs="+", help="image files or folders (under photos/cat/... the folder is the label)")
    pr.add_argument("--top", type=int, default=3)
    pr.add_argument("--json", action="store_true")
    pr.add_argument("--device", default="cpu")
    pr.add_argument("--tta", choices=choices("eval.tta"), help="test-time augmentation (default: the run's)")
    pr.add_argument("--tta-fraction", type=float, metavar="F",
                    help="selective TTA: only the least confident share F of images takes every view")  # fmt: skip
    pr.add_argument("--uncalibrated", action="store_true",
                    help="raw probabilities, without the temperature `cifarlab evaluate` fitted")  # fmt: skip
    ex = sub.add_parser("export", help="export the best checkpoint (ONNX, torch.export or TorchScript), checked")
    ex.add_argument("run")
    ex.add_argument("--format", choices=["onnx", "torchscript", "export"], default="onnx",
                    help="onnx (.onnx), torchscript (.pt) or export (torch.export program, .pt2)")  # fmt: skip
    ex.add_argument("--out", help="output file (default: RUN/model.onnx, .pt2 or .pt)")


def _add_tools(sub) -> None:
    bd = sub.add_parser("board", help="start TensorBoard on 127.0.0.1 for a folder of runs")
    bd.add_argument("runs_dir", nargs="?", default="runs")
    bd.add_argument("--port", type=int, default=6006)
    sub.add_parser("presets", help="list presets with a one-line description")
    i = sub.add_parser("info", help="where the data is, which device and precision would be used")
    _data_options(i)
    sc = sub.add_parser("schema", help="the config's JSON Schema, for an editor to complete and check a preset")
    sc.add_argument("--out", help="write it to this file (e.g. cifarlab.schema.json) instead of printing it")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    return exit_code(lambda: check_single_process(args.command) or COMMANDS[args.command](args))


# -------------------------------------------------------------------------------------- commands
def cmd_train(args) -> int:
    return train_command(
        args.preset,
        args.overrides,
        args.data,
        args.out,
        args.epochs,
        args.seed,
        args.device,
        args.fp32,
        args.resume,
        tensorboard=not args.no_tensorboard,
        quiet=args.quiet,
        live=False if args.plain else None,
    )


def cmd_evaluate(args) -> int:
    ev = evaluate_run(
        args.run, data_path=args.data, device=args.device, tta=args.tta, tta_fraction=args.tta_fraction,
        robustness_n=args.robustness_n, corruptions=args.corruptions, severities=args.severities,
        cifar10c=args.cifar10c,
    )  # fmt: skip
    print_evaluation(ev, as_json=args.json)
    return 0


def cmd_presets(args) -> int:
    for name, desc in list_presets().items():
        print(f"{name:<14} {desc}")
    return 0


def cmd_info(args) -> int:
    info(args.data, args.device)
    return 0


def cmd_schema(args) -> int:
    schema(args.out)
    return 0


def cmd_bench(args) -> int:
    if args.rescore and not args.dev:
        raise UserError("--rescore scores a dev bench's checkpoints: add --dev")
    if args.from_runs:
        if args.dev:
            raise UserError("--from-runs collects finished runs scored on the test set: drop --dev")
        if args.overrides:
            raise UserError("--from-runs collects runs as they were trained: drop --set (their configs are recorded)")
        bench_from_runs(args.preset, args.from_runs, out=args.out or "runs/bench")
        return 0
    if not args.dev:
        bench(args.preset, args.seeds, args.overrides, data=args.data, out=args.out or "runs/bench",
              epochs=args.epochs, device=args.device, first_seed=args.first_seed)  # fmt: skip
        return 0
    out = args.out or "runs/dev"
    result = dev_bench(args.preset, args.seeds, args.overrides, data=args.data, out=out, epochs=args.epochs,
                       device=args.device, name=args.name, robust_n=args.robust_n,
                       first_seed=args.first_seed, rescore=args.rescore)  # fmt: skip
    if args.against:
        print(dev_compare(str(Path(out) / f"{result['name']}.dev.json"), args.against))
    return 0


def cmd_results(args) -> int:
    check_no_readme(args.readme)
    print(results_table([Path(p) for p in args.bench_json], current=args.current))
    return 0


def cmd_compare(args) -> int:
    ablation = read_ablation(Path(args.ablation)) if args.ablation else None
    study = _study(args)
    html_path, md_path = compare(
        [Path(r) for r in args.runs], writable_dir(args.out), args.data, ablation=ablation, study=study
    )
    print(f"wrote {html_path} and {md_path}")
    return 0


def cmd_report(args) -> int:
    html_path, md_path, n = report(Path(args.runs_dir), Path(args.out), args.data, _study(args, args.runs_dir))
    print(f"wrote {html_path} and {md_path} ({n} runs)")
    return 0


def cmd_ablate(args) -> int:
    ablate(args.preset, args.overrides, args.epochs, args.only, args.out, args.data, args.device, args.full)
    return 0


def cmd_predict(args) -> int:
    results, errors = predict(
        args.run, args.images, args.top, args.device, args.tta, calibrate=not args.uncalibrated,
        tta_fraction=args.tta_fraction,
    )  # fmt: skip
    acc = folder_accuracy(results)
    if args.json:
        scored = {"folder_accuracy": {"accuracy": acc[0], "images": acc[1]}} if acc else {}
        print(json.dumps({"results": results, "errors": errors, **scored}, indent=2))
    else:
        if results and results[0]["temperature"]:
            print(
                f"(probabilities calibrated with T={results[0]['temperature']:.3f}, fitted on the validation "
                "split by `cifarlab evaluate`; --uncalibrated for raw ones)"
            )
        for r in results:
            print(f"{r['image']}: " + ", ".join(f"{t['class']} {100 * t['prob']:.1f}%" for t in r["top"]))
        if acc:
            n = f"{acc[1]} images" if acc[1] != 1 else "1 image"
            print(f"accuracy {100 * acc[0]:.2f}% on the {n} filed under a class-named folder")
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    return 1 if errors else 0


def cmd_export(args) -> int:
    dest, check = export(args.run, args.format, args.out)
    diff = (
        f"max |diff| vs PyTorch {check['max_abs_diff']:.2e} ({check['runtime']})"
        if "max_abs_diff" in check
        else check["note"]
    )
    print(f"wrote {dest}; {diff}")
    return 0


def cmd_tune(args) -> int:
    if args.show:
        show(args.show, args.storage, args.out)
        return 0
    if not args.space:
        raise ConfigError("tune needs --space SPACE.yaml (or --show STUDY): see `cifarlab tune --help`")
    tune(args.preset, args.space, args.trials, args.study, args.storage, args.timeout, args.overrides, args.data,
         args.out, args.epochs, args.seed, args.device, args.pruner)  # fmt: skip
    return 0


def cmd_board(args) -> int:
    return board(args.runs_dir, args.port)


COMMANDS = {
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "presets": cmd_presets,
    "info": cmd_info,
    "schema": cmd_schema,
    "bench": cmd_bench,
    "results": cmd_results,
    "compare": cmd_compare,
    "report": cmd_report,
    "ablate": cmd_ablate,
    "predict": cmd_predict,
    "tune": cmd_tune,
    "export": cmd_export,
    "board": cmd_board,
}


def run() -> None:
    """The `cifarlab` command and `python -m cifarlab`: main's exit code, out of the process."""
    exit_process(main())


if __name__ == "__main__":
    run()
