import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from cifarlab import UserError
from cifarlab.commands.bench import aggregate, bench, bench_from_runs, results_table
from cifarlab.rundir import summary_from_dict
from conftest import TINY, bench_summary


def test_aggregate_mean_std():
    r = _agg([bench_summary(0, 0.93, 800, 8), bench_summary(1, 0.95, 820, 7), bench_summary(2, 0.94, 840, None)])
    assert r["test_acc_mean"] == pytest.approx(0.94) and r["test_acc_std"] == pytest.approx(0.01)
    assert r["wall_time_max_s"] == 840 and r["seeds"] == [0, 1, 2]
    assert r["time_to_val_acc_epochs"]["90"] == [8, 7, None]


def test_results_table_groups_stages_by_machine(tmp_path):
    paths = []
    for device, preset in [
        ("cuda (GPU)", "advanced"),
        ("cpu (x, 2 threads)", "advanced"),
        ("cuda (GPU)", "baseline"),
        ("cpu (x, 2 threads)", "baseline"),
    ]:
        r = _agg([dict(bench_summary(0, 0.9, 10), device=device, preset=preset)])
        paths.append(tmp_path / f"{len(paths)}.bench.json")
        paths[-1].write_text(json.dumps(r))
    rows = results_table(paths).splitlines()[2:]
    # one seed: no "± 0.00"; no recipe recorded: not taken for today's preset
    assert rows[0].startswith("| baseline, an earlier recipe | unrecorded | 90.00% | 1 |")
    assert [(row.split("|")[1].split(",")[0].strip(), row.split("|")[-2].split(",")[0].strip()) for row in rows] == [
        ("baseline", "cpu (x"),
        ("advanced", "cpu (x"),
        ("baseline", "cuda (GPU)"),
        ("advanced", "cuda (GPU)"),
    ]


def test_results_table_names_a_row_by_the_preset_whose_recipe_it_ran(tmp_path):
    """A bench of the earlier `advanced` (today's `advanced-clean` recipe) is listed as advanced-clean; one of a
    recipe no preset has today is marked, unless its overrides of the recipe explain it."""
    from cifarlab.config import preset_recipes

    def row(recipe_id, overrides=()):
        r = dict(_agg([bench_summary(0, 0.9, 10)]), recipe_id=recipe_id, overrides=list(overrides))
        return results_table([_write(tmp_path / "r.bench.json", r)]).splitlines()[2].split("|")[1].strip()

    assert row(preset_recipes()["advanced-clean"]) == "advanced-clean"
    assert row(preset_recipes()["advanced"], ["runtime.precision=fp32"]) == "advanced (runtime.precision=fp32)"
    assert row("0123456789") == "advanced, an earlier recipe"
    assert row("0123456789", ["runtime.precision=fp32"]) == "advanced, an earlier recipe (runtime.precision=fp32)"
    assert row("0123456789", ["train.epochs=3"]) == "advanced (train.epochs=3)"


def test_results_current_leaves_out_earlier_recipes_only(tmp_path):
    from cifarlab.config import preset_recipes

    def bench(name, recipe_id, overrides=()):
        r = dict(_agg([bench_summary(0, 0.9, 10)]), recipe_id=recipe_id, overrides=list(overrides))
        return _write(tmp_path / f"{name}.bench.json", r)

    paths = [
        bench("today", preset_recipes()["advanced"]),
        bench("old", "0123456789"),
        bench("unrecorded", None),
        bench("variant", "0123456789", ["data.val_size=0"]),  # a recipe change its overrides explain
    ]
    labels = [row.split("|")[1].strip() for row in results_table(paths, current=True).splitlines()[2:]]
    assert labels == ["advanced", "advanced (data.val_size=0)"]
    assert len(results_table(paths).splitlines()[2:]) == 4


def _write(path, r):
    path.write_text(json.dumps(r))
    return path


def test_results_table_names_overrides_and_split(tmp_path):
    """A variant made with --set says so, shows its split, and follows its preset's row."""
    full = _agg([dict(bench_summary(0, 0.94, 900), n_train=50000, n_val=0, epochs_trained=10)])
    full["overrides"] = ["data.val_size=0"]
    piped = dict(full, overrides=["model.name=a|b"], device="other")
    assert "| advanced (model.name=a\\|b) |" in results_table([_write(tmp_path / "p.json", piped)])
    preset = _agg([bench_summary(0, 0.935, 800)])
    old = dict(preset, preset="baseline")  # written before the split keys: read from its runs
    del old["train_images"], old["val_images"]
    split = dict(preset, preset="intermediate-techniques")  # the stage-3 split sits between stages 2 and 3
    named = [("a", full), ("b", preset), ("c", old), ("d", split)]
    rows = results_table([_write(tmp_path / f"{name}.bench.json", r) for name, r in named]).splitlines()[2:]
    assert [row.split("|")[1].replace(", an earlier recipe", "").strip() for row in rows] == [
        "baseline", "intermediate-techniques", "advanced", "advanced (data.val_size=0)"
    ]  # fmt: skip
    assert [row.split("|")[8].strip() for row in rows] == ["45,000 / 5,000"] * 3 + ["50,000 / 0"]


def test_bench_end_to_end(tiny_data, tmp_path):
    """Two seeds of a preset with --set overrides: one JSON and one Markdown row that name them."""
    overrides = TINY + [f"data.dir={tiny_data}", "data.val_size=0"]
    r = bench("baseline", 2, overrides, out=str(tmp_path), epochs=1, quiet=True)
    saved = json.loads((tmp_path / "baseline.bench.json").read_text())
    assert saved["seeds"] == [0, 1] and saved["overrides"] == overrides and len(saved["runs"]) == 2
    assert (saved["train_images"], saved["val_images"]) == (500, 0) and saved["epochs"] == 1
    assert saved["test_acc"] == r.test_acc and all(0 <= a <= 1 for a in saved["test_acc"])
    row = (tmp_path / "baseline.bench.md").read_text().splitlines()[-1]
    assert row.startswith("| baseline (data.val_size=50, ") and "| 500 / 0 |" in row
    # both seeds are one recipe, recorded with its fingerprint in every summary and in the row
    ids = {run["recipe_id"] for run in saved["runs"]}
    assert ids == {saved["recipe_id"]} and len(saved["recipe_id"]) == 10 and f"| {saved['recipe_id']} |" in row
    assert "runtime" not in saved["recipe"] and "seed" not in saved["recipe"]["train"]
    # --first-seed: a later seed alone, trained with that seed (what completes a bench without its earlier runs)
    later = bench("baseline", 1, overrides, out=str(tmp_path / "later"), epochs=1, quiet=True, first_seed=3)
    assert later.seeds == [3] and later.runs[0]["seed"] == 3
    # --from-runs: the same bench file from the finished runs, in seed order, without training
    runs = [run["run_dir"] for run in saved["runs"]]
    again = bench_from_runs("baseline", [runs[1], runs[0]], out=str(tmp_path / "again"))
    assert again.seeds == [0, 1] and again.test_acc == saved["test_acc"] and again.recipe_id == saved["recipe_id"]
    # its row says what the runs changed of the preset (it said "an earlier recipe": the overrides were lost)
    again_row = (tmp_path / "again" / "baseline.bench.md").read_text().splitlines()[-1]
    assert "an earlier recipe" not in again_row and {"data.val_size=0", "train.epochs=1.0"} <= set(again.overrides)
    with pytest.raises(UserError, match="one seed"):
        bench_from_runs("baseline", [runs[0], runs[0]], out=str(tmp_path / "again"))
    with pytest.raises(UserError, match="not 'advanced'"):
        bench_from_runs("advanced", runs, out=str(tmp_path / "again"))
    # the later seed is the same recipe: collected with the others, it joins them
    joined = bench_from_runs("baseline", [*runs, later.runs[0]["run_dir"]], out=str(tmp_path / "again"))
    assert joined.seeds == [0, 1, 3]
    # a bench file's recorded runs join as well, after their run directories are gone
    for run in runs:
        shutil.rmtree(run)
    bench_file = str(tmp_path / "baseline.bench.json")
    merged = bench_from_runs("baseline", [later.runs[0]["run_dir"], bench_file], out=str(tmp_path / "merged"))
    assert merged.seeds == [0, 1, 3] and merged.test_acc == joined.test_acc and merged.recipe_id == saved["recipe_id"]
    assert [run["run_dir"] for run in merged.runs[:2]] == runs
    # seeds trained on another machine, or at another precision, are not averaged with these
    for key, value in (("device", "cuda (GPU)"), ("dtype", "fp16")):
        other = json.loads(Path(bench_file).read_text())
        assert {run[key] for run in other["runs"]} != {value}
        for run, seed in zip(other["runs"], (5, 6)):
            run.update({key: value, "seed": seed})
        (tmp_path / "other.bench.json").write_text(json.dumps(other))
        with pytest.raises(UserError, match="2 machines or precisions"):
            bench_from_runs("baseline", [bench_file, str(tmp_path / "other.bench.json")], out=str(tmp_path / "m"))


def _agg(summaries: list[dict]) -> dict:
    """aggregate() of summaries given as summary.json dicts, as the bench.json dict it writes."""
    return dataclasses.asdict(aggregate([summary_from_dict(s) for s in summaries]))


def test_dev_bench_scores_on_validation_and_never_on_test(tiny_data, tmp_path):
    from cifarlab.commands.bench import dev_bench, dev_compare

    sets = [s for s in TINY if not s.startswith("data.val_size")] + [f"data.dir={tiny_data}", "train.epochs=1"]
    # the tiny data has 500 training images: --dev's 5,000-image split is capped by the test below
    import cifarlab.commands.bench as b

    b_val = b.DEV_VAL_SIZE
    b.DEV_VAL_SIZE = 100
    try:
        a = dev_bench("baseline", 2, sets, out=str(tmp_path), name="a", robust_n=20)
        dev_bench("baseline", 2, sets + ["data.augment.corrupt=0.5", "data.augment.corrupt_ops=[noise]"],
                  out=str(tmp_path), name="b", robust_n=20)  # fmt: skip
        dev_bench("baseline", 1, sets, out=str(tmp_path), name="a", robust_n=20, first_seed=2)  # adds a seed
        # an evaluation choice is scored on the same trained nets: one view agrees exactly, no run is trained
        flip = dev_bench("baseline", 1, sets + ["eval.tta=flip"], out=str(tmp_path), name="flip", robust_n=0,
                         rescore=str(tmp_path / "a.dev.json"))  # fmt: skip
        with pytest.raises(UserError, match="another recipe"):
            dev_bench("baseline", 1, sets + ["optim.lr=0.5"], out=str(tmp_path), name="c", robust_n=0,
                      rescore=str(tmp_path / "a.dev.json"))  # fmt: skip
    finally:
        b.DEV_VAL_SIZE = b_val
    saved = json.loads((tmp_path / "a.dev.json").read_text())
    assert [r["seed"] for r in saved["runs"]] == [0, 1, 2] and len(a["runs"]) == 2
    assert [(r["run_dir"], r["val_acc_one_view"]) for r in flip["runs"]] == [
        (r["run_dir"], r["val_acc_one_view"]) for r in saved["runs"]
    ]
    # a's 3 runs and b's 2: rescoring trained none (runs started in the same second take a -1 suffix)
    assert len([p for p in tmp_path.glob("*-baseline*") if p.is_dir()]) == 5
    run = saved["runs"][0]
    assert 0 <= run["val_acc"] <= 1 and run["robustness"]["n"] == 20 and run["seen_acc"] is None
    summary = json.loads((tmp_path / run["run_dir"].split("/")[-1] / "summary.json").read_text())
    assert summary["test_acc"] is None and summary["n_val"] == 100  # trained without the split, test never read
    seen = json.loads((tmp_path / "b.dev.json").read_text())["runs"][0]
    assert seen["robustness"]["seen"] == ["gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise"]
    text = dev_compare(str(tmp_path / "a.dev.json"), str(tmp_path / "b.dev.json"))
    assert "a - b over 2 paired seeds" in text and "95% CI" in text
    assert "held out by both (15)" in text and "all families (19)" in text  # b saw the 4 noise families


def test_paired_difference_matches_students_t():
    from cifarlab.metrics import paired_difference

    d = paired_difference([0.95, 0.94, 0.96, 0.95], [0.94, 0.94, 0.94, 0.93])
    assert d["mean"] == pytest.approx(0.0125)
    # sd of (0.01, 0, 0.02, 0.02) is 0.009574; t(3) 97.5% quantile 3.1824; t = 2.611, two-sided p 0.0796
    assert d["sd"] == pytest.approx(0.009574, abs=1e-6)
    assert d["ci95"][0] == pytest.approx(0.0125 - 3.1824 * 0.009574 / 2, abs=1e-5)
    assert d["p"] == pytest.approx(0.0796, abs=1e-3)
    with pytest.raises(ValueError):
        paired_difference([0.9], [0.8])


def test_recipe_id_ignores_where_and_seed_but_not_what_is_learned():
    from cifarlab.config import apply_overrides, load_preset, recipe_id

    base = load_preset("advanced")
    same = apply_overrides(load_preset("advanced"), ["train.seed=7", "runtime.precision=fp32", "data.dir=/x"])
    other = apply_overrides(load_preset("advanced"), ["data.augment.corrupt=0.25"])
    assert recipe_id(same) == recipe_id(base) != recipe_id(other)


def test_runs_of_two_recipes_are_never_averaged_into_one_row(tmp_path):
    a, b = bench_summary(0, 0.94, 600), bench_summary(1, 0.93, 600)
    a["recipe_id"], b["recipe_id"] = "aaaaaaaaaa", "bbbbbbbbbb"
    with pytest.raises(UserError, match="2 recipes"):
        _agg([a, b])
    b["recipe_id"] = "aaaaaaaaaa"
    good = _agg([a, b])
    assert good["recipe_id"] == "aaaaaaaaaa"
    good["runs"][1]["recipe_id"] = "bbbbbbbbbb"  # a bench file merged by hand
    path = tmp_path / "advanced.bench.json"
    path.write_text(json.dumps(good))
    with pytest.raises(UserError, match="2 recipes"):
        results_table([path])


def test_a_recorded_recipe_keeps_its_fingerprint_when_a_key_is_added():
    """Each recipe recorded in results/, read back into today's config (keys added since at their defaults), has
    the fingerprint it was recorded with (a row benched before AugMix existed is the same recipe today)."""
    from cifarlab.config import from_dict, recipe_fingerprint, recipe_id

    root = Path(__file__).resolve().parents[1] / "results"
    records = [json.loads(p.read_text()) for p in root.rglob("*.bench.json")]
    records = [d for d in records if d.get("recipe")]
    assert len(records) >= 3
    for d in records:
        assert recipe_id(from_dict(d["recipe"], note_renamed=False)) == recipe_fingerprint(d["recipe"])
    before = json.loads((root / "xeon" / "advanced.bench.json").read_text())  # recorded before data.augment.augmix
    assert recipe_id(from_dict(before["recipe"], note_renamed=False)) == before["recipe_id"]
