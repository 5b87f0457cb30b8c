import json
import re
import shutil
import subprocess

import pytest

from cifarlab import UserError
from cifarlab.callbacks import CurvesPlot
from cifarlab.commands.evaluate import evaluate_run
from cifarlab.commands.report import compare
from cifarlab.config import apply_overrides, load_preset
from cifarlab.rundir import AblationRow, read_run
from cifarlab.train import train

SECTIONS = ["headline", "stage-gain", "runs", "learning-curves", "per-class-accuracy", "mcnemar-tests",
            "robustness", "calibration", "ablation"]  # fmt: skip
SMALL = {
    "baseline": [],
    "intermediate": [],
    "intermediate-techniques": ["runtime.precision=fp32"],
    "advanced": ["model.stages.1.channels=32", "model.stages.2.channels=32", "runtime.precision=fp32"],
}
ABLATION = [
    AblationRow("full", "nothing", 0.50),
    AblationRow("no_dropout", "dropout", 0.48),
    AblationRow("no_dropout", "dropout", 0.46),
    AblationRow("no_tta", "test-time augmentation", 0.45),
]


@pytest.fixture(scope="module")
def stage_runs(tiny_data, tmp_path_factory):
    """Two tiny runs (seeds 0 and 1) of each preset, evaluated without figures or the speed measurement."""
    out = tmp_path_factory.mktemp("stages")
    tiny = ["data.val_size=50", "data.batch_size=50", "data.eval_batch_size=100", "runtime.tensorboard=false"]
    dirs = []
    for preset, extra in SMALL.items():
        for seed in (0, 1):
            cfg = apply_overrides(
                load_preset(preset), [*tiny, "train.epochs=1", f"train.seed={seed}", f"data.dir={tiny_data}", *extra]
            )
            run_dir, _ = train(cfg, out, callbacks=[CurvesPlot()])
            evaluate_run(str(run_dir), robustness_n=30, figures=False, speed=False)
            dirs.append(run_dir)
    return dirs


@pytest.fixture(scope="module")
def report(stage_runs, tiny_data, tmp_path_factory):
    return compare(stage_runs, tmp_path_factory.mktemp("report"), str(tiny_data), ablation=ABLATION)


def _runs_row(md: str, preset: str) -> list[str]:
    line = next(ln for ln in md.splitlines() if ln.startswith(f"| {preset} |"))
    return [c.strip() for c in line.strip("|").split("|")]


def test_report_sections_and_figures(report):
    html_path, md_path = report
    page = html_path.read_text()
    for sid in SECTIONS:
        assert f'<section id="{sid}">' in page, sid
        assert f"href='#{sid}'" in page, sid  # the table of contents links every section
    # stage gain, curves, per-class, heat map + panels, calibration panels, ablation chart: embedded
    assert page.count("data:image/png;base64,") == 7
    assert "<details><summary>all 28 pairs</summary>" in page  # 8 runs: the full pair table, folded
    md = md_path.read_text()
    assert "## Headline" in md and "## McNemar tests" in md and "Accuracy drop at severity 3" in md


def check_headline(md: str) -> list[tuple[str, str]]:
    """Each step sentence (preset to the next in the runs table) states what the step changes, the difference of
    the runs table's means, an interval around it, the ratio of its wall times and the McNemar matrix's largest
    p; the last line names the best preset with its mean. Returns the steps checked."""
    from cifarlab.commands.report import STEPS

    head = md.split("## Headline")[1].split("##")[0]
    runs = md.split("## Runs")[1].split("##")[0]
    presets = [ln.split("|")[1].strip() for ln in runs.splitlines()[4:] if ln.startswith("|")]
    rows = {p: _runs_row(runs, p) for p in presets}
    acc = {p: float(rows[p][2].split("%")[0]) for p in presets}
    wall = {p: float(rows[p][4].split()[0]) for p in presets}
    mc = md.split("## McNemar tests")[1].split("##")[0]
    matrix_line = {ln.split("|")[1].strip(): ln for ln in mc.splitlines() if "differ |" in ln}
    steps = list(zip(presets, presets[1:]))
    for prev, cur in steps:
        step = re.escape(STEPS[(prev, cur)])  # a step's name may hold parentheses
        m = re.search(rf"{step}: {cur} (beats|trails) {prev} by ([\d.]+) points \(95% CI of the "
                      rf"difference ([-+][\d.]+) to ([-+][\d.]+); McNemar p.*?([\d.e+-]+) .*?\), (at ([\d.]+)× the "
                      rf"wall time|wall times not compared \(measured on different machines\))", head)  # fmt: skip
        assert m, (prev, cur, head)
        diff = float(m[2]) * (1 if m[1] == "beats" else -1)
        lo, hi = float(m[3]), float(m[4])
        assert abs(diff - (acc[cur] - acc[prev])) < 0.02 + 1e-9  # table means are rounded to 0.01
        assert lo <= diff <= hi
        if m[7] is None:  # a time ratio only between runs of one kind of machine (the runs table's device column)
            assert rows[prev][-1] != rows[cur][-1] or "; " in rows[prev][-1], (prev, cur)
        else:
            assert rows[prev][-1] == rows[cur][-1] and "; " not in rows[prev][-1], (prev, cur)
            ratio = float(m[7])
            assert abs(ratio - wall[cur] / wall[prev]) < 0.05 * ratio + 0.01  # table times are rounded
        cells = [c.strip() for c in matrix_line[prev].strip().strip("|").split("|")]
        column = presets.index(cur) + 1
        assert f" {m[5]};" in cells[column] or f"largest p {cells[column].split(';')[0][4:]}" in head
    best = max(presets, key=acc.get)
    n = int(rows[best][1])
    seeds = f"mean of {n} seeds" if n > 1 else "one run"
    assert f"Best model: {best}, {acc[best]:.2f}% test accuracy ({seeds}; 95% CI" in head
    return steps


def test_headline_matches_the_tables(report):
    """The four presets of the stage story give three steps, each named by what it changes."""
    steps = check_headline(report[1].read_text())
    assert steps == [("baseline", "intermediate"), ("intermediate", "intermediate-techniques"),
                     ("intermediate-techniques", "advanced")]  # fmt: skip


def test_committed_report_headline_matches_its_tables():
    """results/report/report.md, rebuilt from the stage runs, says in its headline what its tables hold."""
    from pathlib import Path

    md = (Path(__file__).parents[1] / "results" / "report" / "report.md").read_text()
    assert check_headline(md) == [
        ("baseline", "intermediate"),
        ("intermediate", "intermediate-techniques"),
        ("intermediate-techniques", "advanced-clean"),
        ("advanced-clean", "advanced"),
    ]


def test_committed_report_is_what_its_records_give(real_data, tmp_path):
    """`make report RUNS=results/stages ABLATION=results/levers/ablation.json` writes the committed report.md
    again from the stage runs' records: no stale headline, no number typed in."""
    from pathlib import Path

    from cifarlab.rundir import read_ablation

    results = Path(__file__).parents[1] / "results"
    runs = sorted(d for d in (results / "stages").iterdir() if (d / "summary.json").exists())
    _, md = compare(runs, tmp_path, real_data, evaluate_missing=False,
                    ablation=read_ablation(results / "levers" / "ablation.json"))  # fmt: skip
    assert md.read_text() == (results / "report" / "report.md").read_text()


def test_mcnemar_matrix_equals_the_pair_table(report):
    """Every matrix cell is the largest p over the pair table's rows for those presets, and its count of
    pairs at p < 0.05."""
    page = report[0].read_text()
    details = page.split("<details><summary>all 28 pairs</summary>")[1].split("</details>")[0]
    pairs = re.findall(r"<tr><td>([\w-]+) s\d</td><td>([\w-]+) s\d</td>(?:<td class='num'>[^<]*</td>){2}"
                       r"<td class='num'>([^<]+)</td><td>(yes|no)</td></tr>", details)  # fmt: skip
    assert len(pairs) == 28
    md = report[1].read_text().split("## McNemar tests")[1].split("##")[0]
    header = [c.strip() for c in md.splitlines()[2].strip("|").split("|")]
    for line in md.splitlines()[4:8]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        for b, cell in zip(header[1:], cells[1:]):
            mine = [(p, d) for pa, pb, p, d in pairs if {pa, pb} == {cells[0], b}]
            biggest = max(mine, key=lambda t: 0.0 if t[0].startswith("<") else float(t[0]))[0]
            bound = f"p {biggest}" if biggest.startswith("<") else f"p ≤ {biggest}"
            assert cell == f"{bound}; {sum(d == 'yes' for _, d in mine)}/{len(mine)} differ", (cells[0], b)


def test_ablation_chart_and_pooled_seeds(report):
    md = report[1].read_text()
    assert "| no_dropout | dropout | 2 | 47.00% | -3.00 ± 1.41 |" in md  # two seeds pooled, with their spread
    assert "| no_tta | test-time augmentation | 1 | 45.00% | -5.00 |" in md


def test_compare_ablation_alone_and_malformed_ablation(tmp_path, capsys):
    """`cifarlab compare --ablation FILE` draws the chart without runs; a malformed file is a one-line error."""
    from cifarlab.cli import main

    good = tmp_path / "ablation.json"
    good.write_text(json.dumps([{"variant": "full", "removed": "nothing", "test_acc": 0.94},
                                {"variant": "no_se", "removed": "attention", "test_acc": 0.937}]))  # fmt: skip
    assert main(["compare", "--ablation", str(good), "--out", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "report.html").read_text().count("data:image/png;base64,") == 1
    for text, msg in [
        ("[{'variant': 'full'", "cannot read ablation results"),
        (json.dumps([{"variant": "full", "removed": "nothing"}]), "no test_acc"),
        (json.dumps([{"variant": "full", "removed": "nothing", "test_acc": "94%"}]), "not an accuracy"),
        (json.dumps([{"variant": "no_se", "removed": "attention", "test_acc": 0.9}]), "no 'full' row"),
    ]:
        bad = tmp_path / "bad.json"
        bad.write_text(text)
        assert main(["compare", "--ablation", str(bad), "--out", str(tmp_path / "r2")]) != 0
        err = capsys.readouterr().err
        assert msg in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_report_leaves_the_ablation_variants_out(stage_runs, tiny_data, tmp_path):
    """`cifarlab report DIR` compares the runs under DIR and shows DIR/ablation/ablation.json as the ablation;
    the variant runs under DIR/ablation are not presets of the comparison."""
    from cifarlab.commands.report import report

    root = tmp_path / "runs"
    for d in stage_runs[:2]:
        shutil.copytree(d, root / d.name)
    shutil.copytree(stage_runs[2], root / "ablation" / stage_runs[2].name)
    (root / "ablation" / "ablation.json").write_text(json.dumps([{"variant": "full", "removed": "nothing",
                                                                  "test_acc": 0.5}]))  # fmt: skip
    _, md_path, n = report(root, tmp_path / "out", str(tiny_data))
    assert n == 2 and "| intermediate |" not in md_path.read_text() and "## Ablation" in md_path.read_text()
    with pytest.raises(UserError, match="no finished runs"):
        report(tmp_path / "empty", tmp_path / "out")


def test_runs_evaluated_on_different_suites_are_compared_on_the_suite_they_share(stage_runs, tiny_data, tmp_path):
    """A run evaluated with `--corruptions` / `--severities` narrows the report's robustness section to what every
    run scored (it stopped with an IndexError before); `evaluate` draws its figure at the severities it ran."""
    root = tmp_path / "runs"
    for d in stage_runs[:2]:  # the baseline's two seeds, scored on all 19 families x 5 severities
        shutil.copytree(d, root / d.name)
    narrowed = root / stage_runs[1].name
    ev = evaluate_run(str(narrowed), str(tiny_data), robustness_n=30, speed=False,
                      corruptions=["fog", "gaussian_noise"], severities=[4, 2])  # fmt: skip
    assert (narrowed / "robustness.png").is_file()
    html_path, md_path = compare(sorted(root.iterdir()), tmp_path / "out", str(tiny_data))
    md = md_path.read_text()
    assert "severities 2,4): baseline" in md and "Accuracy drop at severity 4 (points" in md
    table = md[md.index("Accuracy drop at severity 4") :]
    assert "| preset | gaussian_noise | fog |" in table  # the families every run scored, in the suite's order
    full = json.loads((root / stage_runs[0].name / "evaluation.json").read_text())["robustness"]
    fog_mean = (full["per_corruption"]["fog"][1] + full["per_corruption"]["fog"][3]
                + sum(ev.robustness["per_corruption"]["fog"])) / 4  # fmt: skip
    noise = [full["per_corruption"]["gaussian_noise"][i] for i in (1, 3)] + ev.robustness["per_corruption"][
        "gaussian_noise"
    ]
    want = 100 * (2 * fog_mean + sum(noise) / 2) / 4  # both families held out by the baseline: their mean
    got = float(re.search(r"severities 2,4\): baseline ([\d.]+)%", md).group(1))
    assert got == pytest.approx(want, abs=0.006)


def test_common_suite_cuts_records_to_shared_families_and_severities():
    from cifarlab.inference import common_suite

    a = {"per_corruption": {"fog": [0.9, 0.8, 0.7, 0.6, 0.5], "snow": [0.5] * 5}, "severities": [1, 2, 3, 4, 5],
         "seen": ["snow"]}  # fmt: skip
    b = {"per_corruption": {"fog": [0.2, 0.4]}, "severities": [4, 2], "seen": []}
    cut_a, cut_b = common_suite([a, b])
    assert cut_a["per_corruption"] == {"fog": [0.8, 0.6]} and cut_a["severities"] == [2, 4]
    assert cut_b["per_corruption"] == {"fog": [0.4, 0.2]}  # reordered to the shared order of severities
    assert cut_a["held_out_acc"] == pytest.approx(0.7) and cut_a["seen_acc"] is None and cut_a["seen"] == []
    assert common_suite([a, {"per_corruption": {"frost": [0.1]}, "severities": [3]}]) == []


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


def test_runs_of_two_recipes_under_one_preset_are_two_rows(stage_runs, tiny_data, tmp_path):
    """A row averages its runs: a run of another recipe under the same preset name (a preset changed since, or a
    `--set`) gets a row of its own, labelled with its recipe, not averaged into the other's row and intervals."""
    root = tmp_path / "runs"
    for d in stage_runs[:2]:  # the baseline's two seeds
        shutil.copytree(d, root / d.name)
    other = root / stage_runs[1].name / "summary.json"
    summary = json.loads(other.read_text())
    assert summary["preset"] == "baseline"
    _, md = compare(sorted(root.iterdir()), tmp_path / "out", str(tiny_data))  # one recipe: one row
    assert "| baseline | 2 |" in md.read_text()
    summary["recipe"]["train"]["epochs"] += 1  # the fingerprint is recomputed from the recorded recipe
    other.write_text(json.dumps(summary))
    runs = [read_run(d) for d in sorted(root.iterdir())]
    ids = [r.summary.recipe_id for r in runs]
    assert ids[0] != ids[1]
    _, md = compare(sorted(root.iterdir()), tmp_path / "out2", str(tiny_data))
    text = md.read_text()
    assert f"| baseline [{ids[0]}] | 1 |" in text and f"| baseline [{ids[1]}] | 1 |" in text
    assert "| baseline | 2 |" not in text
