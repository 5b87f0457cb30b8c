import json
import signal
import subprocess
import sys
import time

import pytest

from cifarlab import checkpoint
from conftest import TINY

KEYS = ("train_loss", "train_acc", "val_loss", "val_acc", "lr")


ARGS = [a for s in TINY + ["train.epochs=6"] for a in ("--set", s)]


def _cli(*args):
    return [sys.executable, "-m", "cifarlab", *args]


def _metrics(run_dir):
    return [[r[k] for k in KEYS] for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())]


@pytest.fixture(scope="module")
def reference(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref")
    subprocess.run(
        _cli("train", "baseline", "--data", str(tiny_data), "--out", str(out), "--plain", *ARGS),
        check=True,
        capture_output=True,
    )
    (run_dir,) = out.iterdir()
    return run_dir


def _start(tiny_data, out):
    return subprocess.Popen(
        _cli("train", "baseline", "--data", str(tiny_data), "--out", str(out), "--plain", *ARGS),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(path, proc, timeout=60):
    t0 = time.time()
    while not path.exists():
        if proc.poll() is not None or time.time() - t0 > timeout:
            return False
        time.sleep(0.01)
    return True


@pytest.mark.parametrize("after_epochs", [1, 3])
def test_sigkill_then_resume_gives_identical_metrics(tiny_data, tmp_path, reference, after_epochs):
    proc = _start(tiny_data, tmp_path)
    while proc.poll() is None:
        runs = list(tmp_path.iterdir())
        if (
            runs
            and (runs[0] / "metrics.jsonl").exists()
            and len((runs[0] / "metrics.jsonl").read_text().splitlines()) >= after_epochs
        ):
            break
        time.sleep(0.005)
    proc.kill()
    proc.wait()
    (run_dir,) = tmp_path.iterdir()
    ckpt = checkpoint.load(run_dir / "last.pt")  # intact after kill -9
    assert ckpt["state"]["epoch"] >= min(after_epochs, 6)
    r = subprocess.run(
        _cli("train", "--resume", str(run_dir), "--data", str(tiny_data), "--plain"), capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    assert _metrics(run_dir) == _metrics(reference)
    a = json.loads((run_dir / "summary.json").read_text())
    b = json.loads((reference / "summary.json").read_text())
    assert a["test_acc"] == b["test_acc"] and a["test_loss"] == b["test_loss"]


def test_sigint_saves_and_says_how_to_resume(tiny_data, tmp_path, reference):
    proc = _start(tiny_data, tmp_path)
    assert _wait_for(tmp_path, proc)
    while proc.poll() is None and not any(p.name == "last.pt" for d in tmp_path.iterdir() for p in d.iterdir()):
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    (run_dir,) = tmp_path.iterdir()
    if proc.returncode == 0:  # the run had already finished: nothing to test at this point
        pytest.skip("run finished before the signal arrived")
    assert proc.returncode == 130, err
    assert f"cifarlab train --resume {run_dir}" in out and "Traceback" not in err
    r = subprocess.run(
        _cli("train", "--resume", str(run_dir), "--data", str(tiny_data), "--plain"), capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    assert _metrics(run_dir) == _metrics(reference)


def test_unwritable_output_dir(tiny_data, tmp_path, capsys):
    from cifarlab.cli import main

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code = main(
        [
            "train",
            "baseline",
            "--data",
            str(tiny_data),
            "--out",
            str(blocker / "runs"),
            "--plain",
            *[a for s in TINY for a in ("--set", s)],
        ]
    )
    err = capsys.readouterr().err
    assert code == 1 and "cannot write the run directory" in err and "Traceback" not in err
