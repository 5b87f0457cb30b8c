"""Watching (terminal, TensorBoard, curves.png, notebook) and the comparison report (HTML in Chromium)."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from cifarlab.config import apply_overrides, load_preset
from cifarlab.evaluate import evaluate_run
from cifarlab.live import CurvesPlot, TensorBoardLogger, TerminalView, sparkline
from cifarlab.report import compare
from cifarlab.train import train
from conftest import TINY


@pytest.fixture(scope="module")
def two_runs(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    dirs = []
    for preset in ("baseline", "intermediate"):
        cfg = apply_overrides(load_preset(preset), TINY + [f"data.dir={tiny_data}", "train.tensorboard=true"])
        run_dir, _ = train(cfg, out, callbacks=[CurvesPlot(), TensorBoardLogger()])
        dirs.append(run_dir)
    return dirs


def test_tensorboard_tags(two_runs):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (event_dir,) = {p.parent for p in (two_runs[0] / "tensorboard").rglob("events.out.tfevents.*")} - {
        p.parent for p in (two_runs[0] / "tensorboard").glob("*/events.out.tfevents.*")}
    acc = EventAccumulator(str(event_dir), size_guidance={"images": 0}).Reload()
    scalars = set(acc.Tags()["scalars"])
    assert {"epoch/train_loss", "epoch/val_acc", "epoch/lr", "epoch/img_per_s", "step/train_loss"} <= scalars
    assert {"test/sample_predictions", "test/confusion_matrix"} <= set(acc.Tags()["images"])
    assert len(acc.Scalars("epoch/val_acc")) == 2
    hp_files = list((two_runs[0] / "tensorboard").rglob("events.out.tfevents.*"))
    assert any(b"hparams" in f.read_bytes() or b"_hparams_" in f.read_bytes() for f in hp_files)


def test_curves_png_written(two_runs):
    png = (two_runs[0] / "curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_curves_redraw_is_throttled_but_ends_current(tmp_path, monkeypatch):
    from types import SimpleNamespace

    import cifarlab.live as live

    monkeypatch.setattr(live, "curves_png", lambda history, title="": f"{len(history)} epochs".encode())
    run = SimpleNamespace(dir=tmp_path, cfg=SimpleNamespace(name="x"), state=SimpleNamespace(history=[]))
    drawn = lambda: (tmp_path / "curves.png").read_text()  # noqa: E731
    plot = CurvesPlot(min_interval=60)
    for epoch in (1, 2, 3):  # fast epochs: the first is drawn, the next two wait
        run.state.history.append({"epoch": epoch})
        plot.on_epoch_end(run, run.state.history[-1])
    assert drawn() == "1 epochs"
    plot.on_train_end(run, {})
    assert drawn() == "3 epochs"
    every = CurvesPlot(min_interval=0)  # slow epochs (a CPU's): every one is drawn
    run.state.history.append({"epoch": 4})
    every.on_epoch_end(run, run.state.history[-1])
    assert drawn() == "4 epochs"
    run.state.history.append({"epoch": 5})
    plot.on_epoch_end(run, run.state.history[-1])
    plot.on_interrupt(run, "SIGINT")
    assert drawn() == "5 epochs"


def test_terminal_view_plain_lines(tiny_data, tmp_path):
    from rich.console import Console

    console = Console(file=open(tmp_path / "log.txt", "w"), force_terminal=False, width=200)
    cfg = apply_overrides(load_preset("baseline"), TINY + [f"data.dir={tiny_data}"])
    train(cfg, tmp_path / "runs", callbacks=[TerminalView(console=console)])
    console.file.close()
    lines = (tmp_path / "log.txt").read_text().splitlines()
    assert any(line.startswith("epoch   1/2") for line in lines) and any("test accuracy" in line for line in lines)
    assert not any("\x1b[" in line for line in lines)  # no escape codes in a log file


def test_terminal_view_live_renders(tiny_data, tmp_path):
    from rich.console import Console

    console = Console(file=open(tmp_path / "tty.txt", "w"), force_terminal=True, width=120)
    cfg = apply_overrides(load_preset("baseline"), TINY + [f"data.dir={tiny_data}", "train.epochs=3"])
    train(cfg, tmp_path / "runs", callbacks=[TerminalView(console=console, live=True)])
    console.file.close()
    text = (tmp_path / "tty.txt").read_text()
    assert "val acc" in text and "img/s" in text and "test accuracy" in text


def test_sparkline():
    assert sparkline([1, 2, 3]) == "▁▅█" and sparkline([]) == ""


def test_evaluation_json_and_figures(two_runs, tiny_data):
    res = evaluate_run(str(two_runs[1]), data_path=str(tiny_data), robustness_n=50)
    ev = json.loads((two_runs[1] / "evaluation.json").read_text())
    for key in ("test_acc", "test_acc_ci", "per_class_acc", "precision", "recall", "f1", "confusion", "calibration",
                "top2_acc", "robustness", "inference_img_per_s", "test_pred", "temperature_scaling"):
        assert key in ev, key
    assert ev["temperature_scaling"]["temperature"] > 0 and 0 <= ev["temperature_scaling"]["ece"] <= 1
    assert set(ev["robustness"]["per_corruption"]) >= {"gaussian_noise", "gaussian_blur", "contrast", "brightness",
                                                        "jpeg", "pixelate"}
    assert set(ev["inference_img_per_s"]) == {"1", "256"}
    figs = set(res["figures"])
    assert {"confusion.png", "reliability.png", "confident_wrong.png", "gradcam.png", "robustness.png"} <= figs
    assert any(f.startswith("attention_") for f in figs)  # the intermediate preset has CBAM and self-attention
    for f in figs:
        assert (two_runs[1] / f).read_bytes()[:4] == b"\x89PNG"


SECTIONS = ["runs", "learning-curves", "per-class-accuracy", "mcnemar-tests", "robustness", "calibration", "ablation"]


@pytest.fixture(scope="module")
def report(two_runs, tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    ablation = [{"variant": "full", "removed": "nothing", "test_acc": 0.5},
                {"variant": "no_tta", "removed": "test-time augmentation", "test_acc": 0.45}]
    return compare(two_runs, out, str(tiny_data), ablation=ablation)


def test_report_sections(report):
    html_path, md_path = report
    html = html_path.read_text()
    for sid in SECTIONS:
        assert f'<section id="{sid}">' in html, sid
    assert html.count("data:image/png;base64,") == 4  # curves, per-class, robustness, calibration: embedded
    md = md_path.read_text()
    assert "| baseline |" in md and "| intermediate |" in md and "## McNemar tests" in md and "-5.00" in md
    assert "% ± 0.00" not in md  # one run of each preset: no spread claimed


def test_report_in_headless_chromium(report, tmp_path):
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("Chromium is not installed (apt-get install chromium); .ci/run installs it")
    html_path, _ = report
    flags = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0"]
    try:
        dom = subprocess.run(flags + ["--dump-dom", html_path.as_uri()], capture_output=True, text=True, timeout=120)
        shot = tmp_path / "shot.png"
        snap = subprocess.run(flags + [f"--screenshot={shot}", "--window-size=1200,2400", html_path.as_uri()],
                              capture_output=True, text=True, timeout=120)
    except (subprocess.TimeoutExpired, OSError) as e:
        pytest.skip(f"Chromium could not run here: {e}")
    assert dom.returncode == 0, dom.stderr[-2000:]
    for sid in SECTIONS:
        assert f'id="{sid}"' in dom.stdout, sid
    assert "Uncaught" not in dom.stderr and "CONSOLE" not in dom.stderr
    assert snap.returncode == 0 and shot.exists(), snap.stderr[-2000:]
    from PIL import Image, ImageStat

    img = Image.open(shot).convert("L")
    assert max(ImageStat.Stat(img).stddev) > 10  # not a blank page


def test_notebook_executes_on_tiny_data(tiny_data, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat", reason="nbformat not installed (pip install -e '.[test]')")
    nbclient = pytest.importorskip("nbclient", reason="nbclient not installed (pip install -e '.[test]')")
    monkeypatch.setenv("CIFAR10_DIR", str(tiny_data))
    monkeypatch.setenv("NOTEBOOK_SUBSET", "400")
    monkeypatch.setenv("NOTEBOOK_VAL", "50")
    monkeypatch.setenv("NOTEBOOK_EPOCHS", "1")
    monkeypatch.setenv("NOTEBOOK_OUT", str(tmp_path / "runs"))
    nb = nbformat.read(Path(__file__).parents[1] / "notebooks" / "stages.ipynb", as_version=4)
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "baseline: test accuracy" in outputs and "advanced: test accuracy" in outputs
    # NotebookPlot displayed the curves as images
    assert any("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))
    assert (tmp_path / "runs" / "report" / "report.html").exists()


def test_board_serves_tensorboard_on_loopback(two_runs):
    import socket
    import sys
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "cifarlab", "board", str(two_runs[0].parent), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, runs = time.time() + 90, ""
        while time.time() < deadline and "baseline" not in runs and proc.poll() is None:
            try:  # TensorBoard lists the runs it found once its first scan of the folder is done
                runs = urllib.request.urlopen(f"http://127.0.0.1:{port}/data/runs", timeout=2).read().decode()
            except OSError:
                pass
            time.sleep(0.5)
        assert "baseline" in runs, f"TensorBoard on 127.0.0.1:{port} did not list the runs (got {runs!r})"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    with pytest.raises(OSError):  # the TensorBoard server went down with `cifarlab board`, port released
        urllib.request.urlopen(f"http://127.0.0.1:{port}/data/runs", timeout=2)


def test_robustness_clean_reference_is_one_view_like_the_corrupted_images(two_runs, tiny_data, monkeypatch):
    import cifarlab.evaluate as ev

    real = ev.predict_logits

    def tta_always_wrong(model, loader, dtype=None, tta="none"):
        logits, y = real(model, loader, dtype, "none")
        if tta != "none":  # make the TTA views disagree with the single view, so a mix-up shows
            logits = torch.nn.functional.one_hot((y + 1) % 10, 10).float()
        return logits, y

    monkeypatch.setattr(ev, "predict_logits", tta_always_wrong)
    res = evaluate_run(str(two_runs[1]), data_path=str(tiny_data), tta="flip_translate", robustness_n=100,
                       write=False, figures=False, speed=False)
    assert res["test_acc"] == 0 and res["without_tta"]["test_acc"] > 0.3
    assert res["robustness"]["n"] == 100  # the whole tiny test set: both accuracies cover the same images
    assert res["robustness"]["clean_acc_same_images"] == pytest.approx(res["without_tta"]["test_acc"])
