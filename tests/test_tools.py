"""tools/readme_table.py: the README's results table between its markers."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from cifarlab import UserError
from cifarlab.commands.bench import aggregate, results_table
from cifarlab.rundir import summary_from_dict
from conftest import bench_summary

TOOLS = Path(__file__).resolve().parents[1] / "tools"
sys.path.insert(0, str(TOOLS))
from readme_table import END, START, update_readme  # noqa: E402


def _summary(seed, acc, wall, reached=None):
    return summary_from_dict(bench_summary(seed, acc, wall, reached))


def test_results_table_and_readme(tmp_path):
    r = aggregate([_summary(0, 0.93, 800, 8), _summary(1, 0.95, 820, 7)])
    (tmp_path / "advanced.bench.json").write_text(json.dumps(dataclasses.asdict(r)))
    table = results_table([tmp_path / "advanced.bench.json"])
    row = (
        "| advanced, an earlier recipe | unrecorded | 94.00% ± 1.41 | 2 | 810 s (max 820) | 500 | 8.5 | "
        "45,000 / 5,000 | 8,7 / - / - |"
    )
    assert row in table
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{START}\nold\n{END}\nafter\n")
    update_readme(readme, table)
    text = readme.read_text()
    assert "old" not in text and "| advanced, an earlier recipe |" in text and text.endswith(f"{END}\nafter\n")
    readme.write_text("no markers")
    with pytest.raises(UserError, match="markers"):
        update_readme(readme, table)


def test_readme_table_script_writes_the_table(tmp_path):
    """The README gets today's recipes only; `--all FILE` every row, an earlier recipe's included."""
    from cifarlab.config import preset_recipes

    old = aggregate([_summary(0, 0.93, 800, 8)])
    bench_file = tmp_path / "advanced.bench.json"
    bench_file.write_text(json.dumps(dataclasses.asdict(old)))
    today = dataclasses.replace(aggregate([_summary(0, 0.94, 800, 8)]), recipe_id=preset_recipes()["advanced"])
    today_file = tmp_path / "today.bench.json"
    today_file.write_text(json.dumps(dataclasses.asdict(today)))
    readme, history = tmp_path / "README.md", tmp_path / "experiments.md"
    for f in (readme, history):
        f.write_text(f"intro\n{START}\n{END}\n")
    run = subprocess.run(
        [sys.executable, str(TOOLS / "readme_table.py"), str(readme), str(bench_file), str(today_file)]
        + ["--all", str(history)],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    old_row = "| advanced, an earlier recipe | unrecorded | 93.00% | 1 |"
    today_row = f"| advanced | {today.recipe_id} |"
    assert old_row not in readme.read_text() and today_row in readme.read_text()
    assert old_row in history.read_text() and today_row in history.read_text()
    bad = subprocess.run(
        [sys.executable, str(TOOLS / "readme_table.py"), str(readme), str(tmp_path / "no.json")],
        capture_output=True,
        text=True,
    )
    assert (
        bad.returncode == 1
        and bad.stderr.startswith("error: cannot read bench result")
        and "Traceback" not in bad.stderr
    )


def test_selective_tta_tool(two_runs, tiny_data, tmp_path):
    from selective_tta import main

    out = tmp_path / "tta.json"
    assert main([str(two_runs[1]), "--fractions", "1", "0.25", "--data", str(tiny_data), "--out", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert [(r["tta"], r["fraction"]) for r in rows] == [
        ("none", 1.0),
        ("flip_translate", 1.0),
        ("flip_translate", 0.25),
    ]
    assert all(r["seconds"] >= 0 for r in rows)
    from cifarlab.commands.evaluate import evaluate_run

    for r in rows:  # each row scores what `cifarlab evaluate` scores with that TTA and fraction
        ev = evaluate_run(str(two_runs[1]), str(tiny_data), tta=r["tta"], tta_fraction=r["fraction"], write=False,
                          robustness_n=0, figures=False, speed=False)  # fmt: skip
        assert r["test_acc"] == pytest.approx(ev.test_acc), r


def test_real_files_png_is_lossless_and_jpeg_goes_through_the_codec(two_runs, tiny_data):
    import torch

    import real_files
    from cifarlab.checkpoint import model_from_checkpoint
    from cifarlab.data import load_cifar10
    from cifarlab.inference import Normalized

    row = real_files.measure(two_runs[0], "test", 40, str(tiny_data))
    model, _, _ = model_from_checkpoint(two_runs[0])
    data = load_cifar10(tiny_data)
    with torch.no_grad():
        pred = Normalized(model).eval()(data.test_x[:40].float() / 255).argmax(-1)
    assert row["png"] == pytest.approx(float((pred == data.test_y[:40]).float().mean()))  # PNG: the same pixels
    assert row["png_correct"] == "".join("1" if c else "0" for c in (pred == data.test_y[:40]).tolist())
    assert row["n"] == 40 and {"jpeg90", "jpeg75"} <= set(row)
    assert row["jpeg75_gap_points"] == pytest.approx(round(100 * (row["png"] - row["jpeg75"]), 2))
    only = real_files.measure(two_runs[0], "test", 40, str(tiny_data), ["jpeg75_444", "jpeg95"])
    assert {"jpeg75_444", "jpeg95"} <= set(only) and "png" not in only and "jpeg75_gap_points" not in only


def test_real_files_chroma420_blurs_colour_detail_and_keeps_luma():
    import numpy as np
    from PIL import Image

    import real_files

    rng = np.random.default_rng(0)
    img = rng.integers(64, 192, (32, 32, 3), dtype=np.uint8)  # colour detail at every pixel, inside the gamut
    out = real_files.chroma420(Image.fromarray(img))
    y0, cb0, _ = (np.asarray(c, dtype=float) for c in Image.fromarray(img).convert("YCbCr").split())
    y1, cb1, _ = (np.asarray(c, dtype=float) for c in out.convert("YCbCr").split())
    assert np.abs(y1 - y0).max() <= 2  # luma kept (RGB rounding only)
    assert np.abs(np.diff(cb1, axis=1)).mean() < 0.5 * np.abs(np.diff(cb0, axis=1)).mean()  # chroma smoothed


def test_dev_table_families_averages_severities_and_seeds_and_marks_seen(tmp_path):
    import dev_table

    def run(gauss, jpeg):
        return {
            "robustness": {
                "per_corruption": {"gaussian_noise": gauss, "jpeg_compression": jpeg},
                "seen": ["gaussian_noise"],
            }
        }

    path = tmp_path / "a.dev.json"
    runs = [run([0.2, 0.4], [0.9, 0.7]), run([0.6, 0.8], [0.5, 0.5])]
    path.write_text(json.dumps({"name": "a", "overrides": [], "epochs": 2, "runs": runs}))
    lines = dev_table.family_table([path]).splitlines()
    assert lines[0] == "| family | a |"
    assert lines[2] == "| gaussian_noise | 50.0* |"  # mean of 0.3 and 0.7, seen in training
    assert lines[3] == "| jpeg_compression | 65.0 |"  # mean of 0.8 and 0.5, held out


def test_bn_recalibrate_sets_running_statistics_to_the_clean_images_average():
    import torch

    import bn_recalibrate

    net = torch.nn.Sequential(torch.nn.BatchNorm2d(3))
    net[0].running_mean.fill_(5.0)  # stale statistics, as a corrupted share would leave them
    net[0].momentum = 0.4
    x = torch.randn(256, 3, 4, 4) * torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1) + 1.0
    bn_recalibrate.recalibrate_bn(net, x, pass_size=128)
    halves = x.split(128)
    assert not net.training
    assert torch.allclose(net[0].running_mean, x.mean((0, 2, 3)), atol=1e-5)  # equal passes: the overall mean
    want_var = sum(h.var((0, 2, 3), unbiased=True) for h in halves) / 2  # the passes' unbiased variances, averaged
    assert torch.allclose(net[0].running_var, want_var, atol=1e-4)


def test_frontier_scores_every_recipe_on_the_families_none_trained_on(tmp_path):
    import frontier

    def run(val, gauss, fog, blur, seen):
        per = {"gaussian_noise": gauss, "fog": fog, "gaussian_blur": blur}
        return {"val_acc": val, "robustness": {"per_corruption": per, "seen": seen}}

    plain = {
        "name": "plain",
        "overrides": [],
        "runs": [run(0.9, [0.2], [0.6], [0.5], []), run(0.8, [0.2], [0.8], [0.7], [])],
    }
    noisy = {"name": "noisy", "overrides": ["x=1"], "runs": [run(0.7, [0.9], [0.4], [0.4], ["gaussian_noise"])] * 2}
    families, rows = frontier.points([plain, noisy])
    assert families == ["fog", "gaussian_blur"]  # the noise family is seen by one recipe: scored for none
    assert rows[0]["clean"] == pytest.approx(85.0) and rows[0]["robust"] == pytest.approx(65.0)
    assert rows[1]["robust"] == pytest.approx(40.0) and rows[1]["robust_sd"] == 0.0
    del noisy["runs"][0]["robustness"]["per_corruption"]["fog"]  # a narrowed suite: fog not scored for it
    assert frontier.points([plain, noisy])[0] == ["gaussian_blur"]
    (tmp_path / "bad.dev.json").write_text(
        json.dumps({"name": "x", "overrides": [], "epochs": 2, "runs": [{"val_acc": 0.5}]})
    )
    with pytest.raises(UserError, match="no corruption scores"):
        frontier.load([str(tmp_path / "bad.dev.json")])


@pytest.mark.parametrize(
    "argv, code, says",
    [
        (["real_files.py", "{tmp}/no_run"], 1, "no checkpoint"),
        (["real_files.py", "{tmp}/no_run", "--n", "0"], 1, "--n must be at least 1"),
        (["selective_tta.py", "{tmp}/no_run"], 1, "no checkpoint"),
        (["selective_tta.py", "{tmp}/no_run", "--fractions", "0"], 1, "--fractions must lie in (0, 1]"),
        (["dev_table.py", "{tmp}/no.dev.json"], 1, "not a dev bench file"),
        (["dev_table.py", "{tmp}/broken.dev.json"], 1, "not a dev bench file"),
        (["frontier.py", "{tmp}/broken.dev.json", "--out", "{tmp}/f.png"], 1, "not a dev bench file"),
        (["bn_recalibrate.py", "{tmp}/no.dev.json", "--out", "{tmp}/b.json"], 1, "not a dev bench file"),
        (["profile_step.py", "no_such_preset"], 2, "unknown preset 'no_such_preset'"),
        (["profile_step.py", "advanced", "--steps", "0"], 1, "--steps must be at least 1"),
    ],
)
def test_every_tool_answers_a_bad_input_with_one_error_line(tmp_path, argv, code, says):
    (tmp_path / "broken.dev.json").write_text('{"runs": [')  # cut off mid-write
    out = tmp_path / "b.json"
    out.write_text("kept")  # a result written before must survive the failed call
    args = [a.format(tmp=tmp_path) for a in argv]
    run = subprocess.run([sys.executable, str(TOOLS / args[0]), *args[1:]], capture_output=True, text=True)
    assert run.returncode == code, run.stderr
    assert run.stderr.startswith("error: ") and says in run.stderr, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr, run.stderr
    assert out.read_text() == "kept"
