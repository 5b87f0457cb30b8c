import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cifarlab.cli import main
from conftest import TINY

SETS = [a for s in TINY for a in ("--set", s)]


def test_train_evaluate_end_to_end(tiny_data, tmp_path, capsys):
    assert main(["train", "baseline", "--data", str(tiny_data), "--out", str(tmp_path), "--plain", *SETS]) == 0
    (run_dir,) = tmp_path.iterdir()
    assert (run_dir / "summary.json").exists()
    assert (run_dir / "tensorboard").exists() is False  # runtime.tensorboard=false in TINY
    out = capsys.readouterr().out
    assert "epoch   2/2" in out and "test accuracy" in out
    assert main(["evaluate", str(run_dir), "--data", str(tiny_data), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert set(res["per_class_acc"]) >= {"airplane", "truck"} and 0 <= res["test_acc"] <= 1
    assert (run_dir / "evaluation.json").exists()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert abs(res["test_acc"] - summary["test_acc"]) < 1e-6  # same checkpoint, same number


@pytest.fixture
def data_only_from_runs(tmp_path, monkeypatch):
    """No $CIFAR10_DIR, an empty cache, and no downloads: data must come from --data or from what a run recorded."""
    import cifarlab.data.cifar10

    def refuse(*args, **kwargs):
        raise AssertionError("tried to download CIFAR-10")

    monkeypatch.delenv("CIFAR10_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(cifarlab.data.cifar10, "download_and_extract", refuse)


def test_resume_finished_run_then_extend(tiny_data, tmp_path, capsys, data_only_from_runs):
    assert (
        main(
            [
                "train",
                "baseline",
                "--out",
                str(tmp_path / "runs"),
                "--data",
                str(tiny_data),
                "--plain",
                *SETS,
                "--epochs",
                "1.5",
            ]
        )
        == 0
    )
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert "epoch   2/2" in capsys.readouterr().out  # 1.5 epochs: a full one, then a half
    summary = (run_dir / "summary.json").read_bytes()
    assert json.loads(summary)["data"] == str(Path(tiny_data).resolve())
    base = ["--plain"]  # no --data: the run finds the data it was trained on
    assert main(["train", "--resume", str(run_dir), *base]) == 0  # finished: nothing to do, nothing rewritten
    assert "already trained 1.56 epochs" in capsys.readouterr().out  # 14 steps of 9 per epoch
    assert (run_dir / "summary.json").read_bytes() == summary
    assert main(["train", "--resume", str(run_dir), *base, "--epochs", "3"]) == 0
    out = capsys.readouterr().out
    assert "epoch   3/4" in out and "epoch   4/4" in out and "epoch   5/" not in out
    assert [r["step"] for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())] == [9, 14, 23, 27]
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == 27
    assert main(["evaluate", str(run_dir / "last.pt"), "--robustness-n", "0"]) == 0


def test_presets_and_info(capsys, tiny_data):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("baseline", "intermediate", "advanced"))
    assert main(["info", "--data", str(tiny_data)]) == 0
    out = capsys.readouterr().out
    assert "device:" in out and str(tiny_data) in out and "precision:" in out


@pytest.mark.parametrize(
    "args,code,msg",
    [
        (
            ["train", "nosuch"],
            2,
            "unknown preset 'nosuch': choose one of baseline, intermediate, intermediate-techniques, advanced-clean, "
            "advanced,",
        ),
        (["train", "baseline", "--set", "optim.nope=1"], 2, "unknown config key 'optim.nope'"),
        (["train", "baseline", "--set", "optim.name=adam"], 2, "choose one of sgd, adamw"),
        (["train", "baseline", "--set", "optim.lr=fast"], 2, "bad value for 'optim.lr'"),
        (["train", "baseline", "--set", "optim.lr"], 2, "expected key=value"),
        (["train", "baseline", "--set", "model.stages.9.channels=3"], 2, "not an index"),
        (["train", "baseline", "--epochs", "0"], 2, "must be > 0"),
        # nan passes every range check (comparisons are false) and inf trains straight to nan
        (["train", "baseline", "--set", "optim.weight_decay=nan"], 2, "'optim.weight_decay': nan; must be a finite"),
        (["train", "baseline", "--set", "optim.lr=inf"], 2, "'optim.lr': inf; must be a finite number"),
        (["train", "baseline", "--data", "/nonexistent"], 1, "no CIFAR-10 at /nonexistent"),
        # the network is checked before any data is looked for (or downloaded)
        (
            ["train", "baseline", "--set", "model.stages.0.kernel=abc", "--data", "/nonexistent"],
            2,
            "bad value for 'model.stages.0.kernel': 'abc'; must be a positive integer",
        ),
        (["train", "--resume", "/nonexistent"], 1, "cannot resume"),
        (["train", "--resume", "/nonexistent", "--seed", "3"], 2, "--resume continues a run with its own config"),
        (["evaluate", "/nonexistent.pt"], 1, "no checkpoint at"),
        (["train", "baseline", "--device", "cuda"], 1, "no CUDA GPU"),
        (["train", "baseline", "--device", "tpu"], 2, "unknown device 'tpu': use auto, cpu"),
        (["bench", "baseline", "--seeds", "0"], 2, "--seeds must be at least 1, got 0"),
        (["evaluate", "/nonexistent.pt", "--robustness-n", "-1"], 2, "--robustness-n must be >= 0"),
        (["board", "/nonexistent", "--port", "70000"], 2, "--port must be 1..65535, got 70000"),
    ],
)
def test_bad_input_one_line_error(args, code, msg, capsys):
    if "cuda" in args:
        import torch

        if torch.cuda.is_available():
            pytest.skip("a GPU is present")
    assert main(args) == code
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1 and "Traceback" not in err


def test_config_file_errors(tmp_path, capsys):
    text = tmp_path / "notes.txt"
    text.write_text("model: {}\n")
    folder = tmp_path / "dir.yaml"
    folder.mkdir()
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00model")
    for path, msg in [
        (text, "is not a YAML config (.yaml or .yml)"),
        (tmp_path / "missing.yaml", "no config file at"),
        (folder, "cannot read the config"),
        (binary, "cannot read the config"),
    ]:
        assert main(["train", str(path)]) == 2
        err = capsys.readouterr().err
        assert msg in err and str(path) in err and err.count("\n") == 1 and "Traceback" not in err


def test_console_script_subprocess(tiny_data, tmp_path):
    env = {**os.environ, "CIFAR10_DIR": str(tiny_data)}
    r = subprocess.run(
        [sys.executable, "-m", "cifarlab.cli", "train", "nosuch"], capture_output=True, text=True, env=env
    )
    assert r.returncode == 2 and r.stderr.startswith("error: unknown preset") and "Traceback" not in r.stderr


def test_ablate_compare_report_cli(tiny_data, tmp_path, capsys, data_only_from_runs):
    small = [
        "--set",
        "model.stages.1.channels=32",
        "--set",
        "model.stages.2.channels=32",
        "--set",
        "data.batch_size=100",
        *[a for s in TINY for a in ("--set", s) if "batch_size=" not in s],
    ]
    out = tmp_path / "ablation"
    assert (
        main(
            [
                "ablate",
                "--data",
                str(tiny_data),
                "--out",
                str(out),
                "--epochs",
                "1",
                "--only",
                "no_dropout",
                "--only",
                "no_tta",
                *small,
            ]
        )
        == 0
    )
    results = json.loads((out / "ablation.json").read_text())
    assert [r["variant"] for r in results] == ["full", "no_dropout", "no_tta"]
    assert results[2]["run_dir"] == results[0]["run_dir"]  # TTA is ablated by re-evaluating the full run
    capsys.readouterr()
    runs = sorted(p for p in out.iterdir() if p.is_dir())
    assert (
        main(
            [
                "compare",
                *map(str, runs),
                "--out",
                str(tmp_path / "rep"),
                "--data",
                str(tiny_data),
                "--ablation",
                str(out / "ablation.json"),
            ]
        )
        == 0
    )
    html = (tmp_path / "rep" / "report.html").read_text()
    assert 'id="ablation"' in html and "no_dropout" in html
    assert main(["report", str(out), "--out", str(tmp_path / "rep2")]) == 0  # runs say where their data is
    assert "(2 runs)" in capsys.readouterr().out
    # under a folder, DIR/ablation holds the ablation, not runs to compare
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "rep3")]) == 1
    assert "no finished runs" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args,msg",
    [
        (["compare", "/nonexistent"], "not a finished run"),
        (["report", "/nonexistent"], "no finished runs"),
        (["ablate", "--only", "no_magic"], "unknown ablation variant 'no_magic'"),
        (["results", "/nonexistent.json"], "cannot read bench result"),
        (["export", "/nonexistent"], "no checkpoint at"),
        (["compare", "/nonexistent", "--out", "/proc/report"], "cannot create the output folder /proc/report"),
        (["train", "--set", "data.augment.resize_from=40"], "must be 0 (off) or 8..32 px"),
        (["train", "--set", "data.augment.resize_from=24"], "needs 'data.augment.resize_until' > 0"),
        (
            ["train", "intermediate", "--set", "model.stem.kernel=3"],
            "has 2 x 3 x 3² = 54 channels, not 24: set channels",
        ),
        (
            ["train", "intermediate", "--set", "model.stages.6.channels=64"],
            "model.stages.6: self_attention keeps the width: it gets 192 channels, so set channels to 192 (not 64)",
        ),
    ],
)
def test_more_bad_inputs(args, msg, capsys):
    assert main(args) != 0
    err = capsys.readouterr().err
    assert msg in err and "Traceback" not in err


def test_damaged_result_files_are_one_line_errors(tmp_path, capsys):
    """Files a user may have edited or truncated: bench results, ablation results, a run's summary."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text('{"preset": "baseline", "test_acc":')  # truncated
    (tmp_path / "partial.bench.json").write_text('{"preset": "baseline", "test_acc_mean": 0.7}')
    (tmp_path / "list.bench.json").write_text("[1, 2]")
    typed = {
        k: 1
        for k in (
            "seeds",
            "wall_time_mean_s",
            "wall_time_max_s",
            "train_img_per_s_mean",
            "epochs",
            "params",
            "flops_per_image",
            "test_acc_std",
        )
    }
    typed.update(
        preset="baseline", test_acc_mean="high", time_to_val_acc_epochs={}, tta="none", device="cpu", dtype="fp32"
    )
    (tmp_path / "typed.bench.json").write_text(json.dumps(typed))
    (tmp_path / "ablation.json").write_text('[{"variant": "full"}]')
    cases = [
        (["compare", str(run), "--out", str(tmp_path / "rep")], f"cannot read {run / 'summary.json'} (JSONDecodeError"),
        (
            ["results", str(tmp_path / "partial.bench.json")],
            "is not a bench result written by `cifarlab bench` (no dev",
        ),
        (["results", str(tmp_path / "list.bench.json")], "(not a JSON object)"),
        (
            ["results", str(tmp_path / "typed.bench.json")],
            "is not a bench result written by `cifarlab bench` (bad value",
        ),
        (
            ["compare", str(run), "--ablation", str(tmp_path / "ablation.json"), "--out", str(tmp_path / "rep")],
            "is not an ablation.json written by `cifarlab ablate`",
        ),
    ]
    for args, msg in cases:
        assert main(args) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: ") and msg in err and err.count("\n") == 1, (args, err)


def test_an_os_error_is_one_line(monkeypatch, capsys):
    """A full disk mid-command reaches the user as one line naming the file, not a traceback."""
    from cifarlab import cli

    def full_disk(args):
        raise OSError(28, "No space left on device", "/runs/x/evaluation.json")

    monkeypatch.setitem(cli.COMMANDS, "info", full_disk)
    assert main(["info"]) == 1
    err = capsys.readouterr().err
    want = "error: /runs/x/evaluation.json: No space left on device; check the path, its permissions and the free space"
    assert err == want + "\n"


def test_a_reader_that_goes_away_ends_the_command_quietly():
    """`cifarlab presets | head -1`: output into a closed pipe stops with SIGPIPE's exit code and no message (it
    said "error: Broken pipe; check the path, its permissions and the free space")."""
    proc = subprocess.Popen([sys.executable, "-m", "cifarlab", "presets"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    proc.stdout.close()  # closed before the command prints its first line (importing torch takes longer)
    err = proc.stderr.read()
    assert proc.wait() == 141 and err == "", err


def test_ablate_refuses_a_preset_with_nothing_to_remove(capsys):
    assert main(["ablate", "baseline"]) == 2
    err = capsys.readouterr().err
    assert "nothing to ablate" in err and "batchnorm" in err and "Traceback" not in err


def test_wheel_ships_the_presets(tmp_path):
    """A non-editable install has no configs/ beside it: the wheel must carry the presets itself."""
    import zipfile

    pytest.importorskip("setuptools")
    root = Path(__file__).resolve().parents[1]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            str(root),
            "-w",
            str(tmp_path),
        ],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("cifarlab-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    presets = {p.name for p in (root / "configs").glob("*.yaml")}
    assert {"baseline.yaml", "intermediate.yaml", "advanced.yaml"} <= presets
    assert {f"cifarlab/presets/{p}" for p in presets} <= names
