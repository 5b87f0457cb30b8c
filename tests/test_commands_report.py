import shutil
import subprocess

import pytest

from cifarlab.commands.report import compare
from cifarlab.rundir import AblationRow

SECTIONS = ["runs", "learning-curves", "per-class-accuracy", "mcnemar-tests", "robustness", "calibration", "ablation"]


@pytest.fixture(scope="module")
def report(two_runs, tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    ablation = [AblationRow("full", "nothing", 0.5), AblationRow("no_tta", "test-time augmentation", 0.45)]
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
    flags = [
        exe,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
    ]
    try:
        dom = subprocess.run(flags + ["--dump-dom", html_path.as_uri()], capture_output=True, text=True, timeout=120)
        shot = tmp_path / "shot.png"
        snap = subprocess.run(
            flags + [f"--screenshot={shot}", "--window-size=1200,2400", html_path.as_uri()],
            capture_output=True,
            text=True,
            timeout=120,
        )
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
