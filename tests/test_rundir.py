"""Typed records of a run directory: round trips, damaged files, and a run written by cifarlab 0.1 before the
re-layering (tests/fixtures/run-v0.1: the intermediate preset, narrowed, 1 epoch on the tiny data, evaluated)."""

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from cifarlab import UserError
from cifarlab.checkpoint import model_from_checkpoint
from cifarlab.cli import main
from cifarlab.commands.evaluate import evaluate_run
from cifarlab.commands.predict import predict
from cifarlab.commands.report import compare
from cifarlab.rundir import (
    AblationRow,
    EpochRecord,
    read_ablation,
    read_evaluation,
    read_metrics,
    read_run,
    read_summary,
    summary_from_dict,
    write_ablation,
    write_metrics,
)
from cifarlab.train import train

FIXTURE = Path(__file__).parent / "fixtures" / "run-v0.1"


@pytest.fixture
def old_run(tmp_path):
    run = tmp_path / "run-v0.1"
    shutil.copytree(FIXTURE, run)  # copy2 keeps the mtimes: evaluation.json stays newer than best.pt
    return run


def test_an_old_run_directory_reads(old_run):
    files = read_run(old_run)
    assert files.summary.preset == "intermediate" and files.summary.n_train == 450 and files.summary.steps == 9
    assert [r.epoch for r in files.metrics] == [1] and files.metrics[0].step == 9
    assert files.evaluation is not None and files.evaluation.tta == "none" and len(files.evaluation.test_pred) == 100


def test_an_old_checkpoint_moves_renamed_keys_silently(old_run, capsys):
    model, cfg, _ = model_from_checkpoint(old_run / "best.pt")
    assert cfg.model["stem"]["bias_epochs"] == 0.5 and cfg.loss.label_smoothing == 0.1
    assert cfg.runtime.precision == "fp32"
    assert capsys.readouterr().err == ""  # a stored config is not the user's to fix


def test_evaluate_compare_predict_resume_an_old_run(old_run, tiny_data, tmp_path, capsys):
    before = read_evaluation(old_run)
    html, md = compare([old_run], tmp_path / "report", str(tiny_data))  # its own, old evaluation.json
    assert "intermediate" in md.read_text()
    Image.new("RGB", (40, 30), (10, 200, 90)).save(tmp_path / "a.png")
    results, errors = predict(str(old_run), [str(tmp_path / "a.png")])
    assert not errors and results[0]["temperature"] == pytest.approx(before.temperature_scaling["temperature"])
    ev = evaluate_run(str(old_run), data_path=str(tiny_data), robustness_n=20, speed=False)
    assert ev.test_acc == pytest.approx(before.test_acc) and ev.test_pred == before.test_pred
    assert main(["train", "--resume", str(old_run), "--epochs", "2", "--data", str(tiny_data), "--plain"]) == 0
    assert [r.epoch for r in read_metrics(old_run)] == [1, 2] and read_summary(old_run).steps == 18


def test_an_evaluation_outdated_by_more_training_is_not_served(tiny_cfg, tiny_data, tmp_path, capsys):
    """Resumed for more epochs, a run serves new weights: its evaluation.json is of the old ones, so compare
    evaluates it again (not a new test accuracy beside the old interval) and predict drops its temperature."""
    run, _ = train(tiny_cfg("baseline", "train.epochs=1", "train.checkpoint=last"), tmp_path / "runs")
    evaluate_run(str(run), robustness_n=0, figures=False, speed=False)
    Image.new("RGB", (40, 30), (10, 200, 90)).save(tmp_path / "a.png")
    img = [str(tmp_path / "a.png")]
    assert predict(str(run), img)[0][0]["temperature"] is not None
    first = read_run(run)
    assert first.evaluation.step == first.summary.served_step == first.summary.steps
    assert main(["train", "--resume", str(run), "--epochs", "2", "--data", str(tiny_data), "--plain"]) == 0
    resumed = read_run(run)
    assert resumed.summary.served_step == 2 * first.summary.steps
    assert resumed.evaluation is None and resumed.outdated_evaluation
    assert predict(str(run), img)[0][0]["temperature"] is None
    capsys.readouterr()
    compare([run], tmp_path / "report", str(tiny_data))
    assert "of an earlier checkpoint" in capsys.readouterr().out
    again = read_run(run)
    assert again.evaluation.step == again.summary.served_step and not again.outdated_evaluation
    assert again.evaluation.test_acc == pytest.approx(again.summary.test_acc)


def test_summary_of_an_earlier_version_gets_its_fallbacks(old_run):
    d = json.loads((old_run / "summary.json").read_text())
    for key in ("epochs_trained", "n_train", "n_val", "micro_batch", "world_size", "data", "finished"):
        del d[key]
    s = summary_from_dict(d)
    assert s.epochs_trained == d["epochs"] and s.n_train is None and s.world_size == 1


def test_records_round_trip(tmp_path):
    recs = [
        EpochRecord(1, 2.0, 0.1, 1.9, 0.2, 0.05, 3.0, 500.0, 9, 450),
        EpochRecord(2, 1.8, 0.3, None, None, 0.05, 3.1, 510.0, 18, 450),
    ]
    write_metrics(tmp_path, recs)
    assert read_metrics(tmp_path) == recs
    rows = [AblationRow("full", "nothing", 0.9, "runs/a", 100.0), AblationRow("no_tta", "tta", 0.89, "runs/a")]
    write_ablation(tmp_path / "ablation.json", rows)
    assert read_ablation(tmp_path / "ablation.json") == rows
    assert "wall_time_s" not in json.loads((tmp_path / "ablation.json").read_text())[1]


def test_damaged_records_are_one_line_errors(old_run):
    (old_run / "metrics.jsonl").write_text('{"epoch": 1}\n')
    with pytest.raises(UserError, match="is not a metrics.jsonl written by cifarlab .no epoch_time, img_per_s"):
        read_metrics(old_run)
    (old_run / "evaluation.json").write_text("[1]")
    with pytest.raises(UserError, match="is not an evaluation.json .* .not a JSON object."):
        read_evaluation(old_run)
    with pytest.raises(UserError, match="not a finished run"):
        read_summary(old_run / "nothing")
    assert dataclasses.is_dataclass(read_summary(old_run))
