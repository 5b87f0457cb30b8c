"""The files cifarlab writes, as typed records, each with its one reader and writer.

A run directory holds config.yaml (config.save_yaml), best.pt / last.pt (checkpoint), metrics.jsonl
(EpochRecord), summary.json (Summary) and evaluation.json (Evaluation); `cifarlab bench` writes
PRESET.bench.json (BenchResult) and `cifarlab ablate` ablation.json (AblationRow). Files written by
earlier versions are read here, and only here: a missing newer field gets its documented fallback.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .config import preset_of, recipe_fingerprint
from .data.cifar10 import find_in
from .errors import UserError
from .io import atomic_write_json, atomic_write_text, read_json

METRICS, SUMMARY, EVALUATION, ABLATION = "metrics.jsonl", "summary.json", "evaluation.json", "ablation.json"


def _from_dict(cls, d, path: Path, what: str, fallbacks: dict | None = None):
    """A record from a JSON object: unknown keys ignored (a newer writer), missing ones from `fallbacks`
    (an older writer), any other missing one a UserError naming the file."""
    if not isinstance(d, dict):
        raise UserError(f"{path} is not {what} (not a JSON object)")
    d = {**(fallbacks or {}), **d}
    names = {f.name for f in dataclasses.fields(cls)}
    required = [
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    missing = sorted(k for k in required if k not in d)
    if missing:
        raise UserError(f"{path} is not {what} (no {', '.join(missing)})")
    return cls(**{k: v for k, v in d.items() if k in names})


def _plain(record, drop_none: tuple = ()) -> dict:
    d = dataclasses.asdict(record)
    return {k: v for k, v in d.items() if not (k in drop_none and v is None)}


# ------------------------------------------------------------------------------------ metrics.jsonl
@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    train_acc: float
    val_loss: float | None
    val_acc: float | None
    lr: float
    epoch_time: float
    img_per_s: float
    step: int | None = None  # optimizer steps so far (None in files of early versions)
    samples: int | None = None  # training images seen this epoch, summed over data-parallel ranks


def write_metrics(run_dir: Path, records: list[EpochRecord]) -> None:
    path = Path(run_dir) / METRICS
    try:
        atomic_write_text(path, "".join(json.dumps(_plain(r)) + "\n" for r in records))
    except OSError as e:
        raise UserError(
            f"cannot write {path} ({e.strerror or e}); checkpoints are intact: resume with --resume"
        ) from None


def read_metrics(run_dir: Path) -> list[EpochRecord]:
    path = Path(run_dir) / METRICS
    rows = read_json(path, hint="; leave this run out", lines=True)
    return [_from_dict(EpochRecord, r, path, "a metrics.jsonl written by cifarlab") for r in rows]


# ------------------------------------------------------------------------------------- summary.json
@dataclass
class Summary:
    preset: str
    test_acc: float | None  # None for a search trial: it is chosen on validation accuracy, never the test set
    test_loss: float | None
    tta: str
    best_val_acc: float | None
    best_epoch: int | None
    epochs: int  # epoch records (a partial last epoch counts)
    epochs_trained: float  # epochs' worth of steps: 8.5, not the 9 epochs begun
    steps: int
    wall_time_s: float
    train_time_s: float
    train_img_per_s: float
    params: int
    flops_per_image: int
    device: str
    dtype: str
    seed: int
    torch: str
    test_eval_time_s: float | None = None
    time_to_val_acc: dict = field(default_factory=dict)  # "90" -> first epoch whose val accuracy reached 90%
    n_train: int | None = None
    n_val: int | None = None
    micro_batch: int | None = None
    world_size: int = 1
    python: str | None = None
    cifarlab: str | None = None
    data: str | None = None  # where the data was, so that resume/evaluate need no --data
    finished: str | None = None
    run_dir: str | None = None  # set in bench results only
    status: str = "completed"  # or "pruned": a search trial stopped early by its pruner
    recipe_id: str | None = None  # config.recipe_id: None in summaries written before it
    recipe: dict | None = None  # the resolved recipe (config.recipe) the fingerprint is of
    served_step: int | None = None  # the training step of the checkpoint test_acc is of (None: written before)


def summary_from_dict(d: dict, path: Path | str = "summary") -> Summary:
    # summaries before epochs_trained had whole epochs only
    fallbacks = {"epochs_trained": d.get("epochs")} if isinstance(d, dict) and "epochs" in d else {}
    s = _from_dict(Summary, d, Path(path), "a summary.json written by cifarlab", fallbacks)
    s.recipe_id = _fingerprint(s.recipe, s.recipe_id)
    s.preset = preset_of(s.preset, s.recipe_id)
    return s


def _fingerprint(rec, recorded: str | None) -> str | None:
    """The fingerprint of a recorded recipe, by today's rule: a record written before a key was added matches
    a run of the same recipe today. Records without their recipe keep the id they have."""
    return recipe_fingerprint(rec) if isinstance(rec, dict) else recorded


def write_summary(run_dir: Path, s: Summary) -> None:
    atomic_write_json(Path(run_dir) / SUMMARY, _plain(s, drop_none=("run_dir",)))


def read_summary(run_dir: Path) -> Summary:
    path = Path(run_dir) / SUMMARY
    if not path.exists():
        raise UserError(f"{run_dir} is not a finished run (no summary.json): train it first")
    return summary_from_dict(read_json(path, hint="; leave this run out"), path)


# ---------------------------------------------------------------------------------- evaluation.json
@dataclass
class Evaluation:
    checkpoint: str
    preset: str
    tta: str
    n: int
    test_acc: float
    test_acc_ci: list
    test_loss: float
    top2_acc: float
    per_class_acc: dict
    precision: dict
    recall: dict
    f1: dict
    confusion: list
    calibration: dict
    test_pred: list = field(default_factory=list)  # per-image predictions, for McNemar tests between runs
    without_tta: dict | None = None
    tta_fraction: float | None = None  # selective TTA: the share of images that took every view
    temperature_scaling: dict | None = None  # fitted on the run's validation split
    robustness: dict | None = None
    inference_img_per_s: dict | None = None
    figures: list | None = None
    step: int | None = None  # the training step of the checkpoint evaluated: a run trained on since outdates it

    def to_dict(self) -> dict:
        return _plain(
            self,
            drop_none=(
                "step",
                "without_tta",
                "tta_fraction",
                "temperature_scaling",
                "robustness",
                "inference_img_per_s",
                "figures",
            ),
        )


def write_evaluation(run_dir: Path, ev: Evaluation) -> None:
    atomic_write_json(Path(run_dir) / EVALUATION, ev.to_dict())


def read_evaluation(run_dir: Path) -> Evaluation | None:
    """The run's evaluation.json, or None when it has none."""
    path = Path(run_dir) / EVALUATION
    if not path.exists():
        return None
    return _from_dict(
        Evaluation,
        read_json(path, hint="; re-run `cifarlab evaluate`"),
        path,
        "an evaluation.json written by `cifarlab evaluate`",
    )


def read_evaluation_quietly(run_dir: Path) -> Evaluation | None:
    """As read_evaluation, but None for a damaged file too (for optional uses such as a fitted temperature)."""
    try:
        return read_evaluation(run_dir)
    except UserError:
        return None


# ---------------------------------------------------------------------------------------- a whole run
@dataclass
class RunFiles:
    dir: Path
    summary: Summary
    metrics: list[EpochRecord]
    evaluation: Evaluation | None  # None when the run has none, or only one of an earlier checkpoint
    outdated_evaluation: bool = False  # evaluation.json is of an earlier checkpoint: the run trained on since


def evaluation_is_current(summary: Summary, ev: Evaluation) -> bool:
    """Whether evaluation.json is of the checkpoint that summary.json tested (records without steps: assumed)."""
    return ev.step is None or summary.served_step is None or ev.step == summary.served_step


def read_run(run_dir: Path) -> RunFiles:
    run_dir = Path(run_dir)
    summary, ev = read_summary(run_dir), read_evaluation(run_dir)
    outdated = ev is not None and not evaluation_is_current(summary, ev)
    return RunFiles(run_dir, summary, read_metrics(run_dir), None if outdated else ev, outdated)


def recorded_source(run: str | Path, ckpt: dict | None = None) -> str | None:
    """The data a run was trained on, so that resuming or evaluating it needs no --data again.

    Read from its checkpoint (`ckpt`), else its summary.json. None when $CIFAR10_DIR is set (it names the
    data for every command), when the run recorded nothing, or when that data is no longer there.
    """
    if os.environ.get("CIFAR10_DIR"):
        return None
    where = (ckpt or {}).get("data")
    if not where:
        run = Path(run)
        try:
            where = read_summary(run if run.is_dir() else run.parent).data
        except UserError:
            return None
    return where if isinstance(where, str) and where and find_in(Path(where)) is not None else None


# -------------------------------------------------------------------------------------- bench results
@dataclass
class BenchResult:
    preset: str
    seeds: list
    test_acc_mean: float
    test_acc_std: float
    wall_time_mean_s: float
    wall_time_max_s: float
    train_img_per_s_mean: float
    epochs: float
    time_to_val_acc_epochs: dict
    params: int
    flops_per_image: int
    tta: str
    device: str
    dtype: str
    test_acc: list = field(default_factory=list)  # one per seed
    wall_time_std_s: float = 0.0
    train_images: int | None = None
    val_images: int | None = None
    torch: str | None = None
    runs: list = field(default_factory=list)  # the summaries, with run_dir
    overrides: list = field(default_factory=list)  # a row made with --set must not pass for the preset itself
    recipe_id: str | None = None  # the one recipe all its runs share (None in bench files before it)
    recipe: dict | None = None


def write_bench(path: Path, r: BenchResult) -> None:
    atomic_write_json(path, _plain(r))


def read_bench(path: Path) -> BenchResult:
    what = "a bench result written by `cifarlab bench`"
    d = read_json(path, "bench result")
    first = (d.get("runs") or [{}])[0] if isinstance(d, dict) else {}
    # results written before train_images/val_images: from their first run
    fallbacks = {"train_images": first.get("n_train"), "val_images": first.get("n_val")}
    r = _from_dict(BenchResult, d, Path(path), what, fallbacks)
    numbers = (
        "test_acc_mean",
        "test_acc_std",
        "wall_time_mean_s",
        "wall_time_max_s",
        "train_img_per_s_mean",
        "epochs",
        "params",
        "flops_per_image",
    )
    bad = [k for k in numbers if not _is_number(getattr(r, k))]
    bad += [
        k
        for k, t in (("seeds", list), ("time_to_val_acc_epochs", dict), ("device", str))
        if not isinstance(getattr(r, k), t)
    ]
    if bad:  # a hand-edited file: a value of the wrong type
        raise UserError(f"{path} is not {what} (bad value of {bad[0]}: {getattr(r, bad[0])!r})")
    r.recipe_id = _fingerprint(r.recipe, r.recipe_id)
    r.preset = preset_of(r.preset, r.recipe_id)
    for run in r.runs:
        if isinstance(run, dict):
            run["recipe_id"] = _fingerprint(run.get("recipe"), run.get("recipe_id"))
    return r


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# ----------------------------------------------------------------------------------- ablation.json
@dataclass
class AblationRow:
    variant: str
    removed: str
    test_acc: float
    run_dir: str | None = None
    wall_time_s: float | None = None  # none for no_tta, a re-evaluation of the full run


def write_ablation(path: Path, rows: list[AblationRow]) -> None:
    atomic_write_json(path, [_plain(r, drop_none=("wall_time_s",)) for r in rows])


def read_ablation(path: Path) -> list[AblationRow]:
    rows = read_json(path, "ablation results")
    if not isinstance(rows, list):
        raise UserError(f"{path} is not an ablation.json written by `cifarlab ablate`")
    out = [_from_dict(AblationRow, r, Path(path), "an ablation.json written by `cifarlab ablate`") for r in rows]
    bad = next((r for r in out if not _is_fraction(r.test_acc)), None)
    if bad is not None:
        raise UserError(f"{path}: variant {bad.variant!r} has test_acc {bad.test_acc!r}, not an accuracy in [0, 1]")
    return out


def _is_fraction(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1
