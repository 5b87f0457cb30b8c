"""Config: presets, --set, choices declared on the fields, keys of earlier versions, unknown keys."""

import pytest
import yaml

from cifarlab import ConfigError


def test_resolve_applies_the_cli_shorthands():
    from cifarlab.config import resolve

    cfg = resolve("baseline", ["optim.lr=0.5"], epochs=2.5, seed=7, device="cpu", fp32=True)
    assert (cfg.name, cfg.optim.lr, cfg.train.epochs, cfg.train.seed) == ("baseline", 0.5, 2.5, 7)
    assert (cfg.runtime.device, cfg.runtime.precision) == ("cpu", "fp32")
    assert resolve().name == "advanced" and resolve().runtime.precision == "auto"


def test_keys_of_earlier_versions_move_with_a_note(capsys):
    from cifarlab.config import apply_overrides, load_preset

    cfg = apply_overrides(
        load_preset("advanced"),
        ["train.precision=fp32", "optim.label_smoothing=0.1", "train.whiten_bias_epochs=2", "train.micro_batch=64"],
    )
    assert (cfg.runtime.precision, cfg.loss.label_smoothing, cfg.runtime.micro_batch) == ("fp32", 0.1, 64)
    assert cfg.model["stem"]["bias_epochs"] == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 4 and any("note: config key 'train.precision' is now 'runtime.precision'" in e for e in err)
    # on a net without a whitening stem the old key did nothing: 0 is accepted, anything else is an error
    base = apply_overrides(load_preset("baseline"), ["train.whiten_bias_epochs=0"])
    assert "bias_epochs" not in base.model.get("stem", {})
    with pytest.raises(ConfigError, match="bias_epochs is for a whiten stem"):
        apply_overrides(load_preset("baseline"), ["model.stem.bias_epochs=1"])


@pytest.mark.parametrize(
    "key,near",
    [
        ("optim.lrr", "optim.lr"),
        ("optm.lr", "optim.lr"),
        ("train.epoch", "train.epochs"),
        ("runtime.devise", "runtime.device"),
    ],
)
def test_an_unknown_key_names_the_nearest(key, near):
    from cifarlab.config import apply_overrides, load_preset

    with pytest.raises(ConfigError, match=f"unknown config key '{key}': did you mean .*{near}"):
        apply_overrides(load_preset("baseline"), [f"{key}=1"])


def test_choices_are_declared_on_the_fields():
    from cifarlab.config import apply_overrides, choices, load_preset

    assert choices("eval.tta") == ("none", "flip", "flip_translate")
    assert choices("data.augment.flip") == ("none", "random", "alternate")
    assert "muon" in choices("optim.name") and "fp16" in choices("runtime.precision")
    with pytest.raises(ConfigError, match="'schedule.name': 'cosin'; choose one of constant, step, cosine"):
        apply_overrides(load_preset("baseline"), ["schedule.name=cosin"])


@pytest.mark.parametrize("value", ["[80,20]", "[0,50]", "[50,101]", "[75]"])
def test_jpeg_quality_must_be_an_ordered_range_of_libjpeg_qualities(value):
    from cifarlab.config import apply_overrides, load_preset

    with pytest.raises(ConfigError, match=r"'data.augment.jpeg_quality'.*1 <= low <= high <= 100"):
        apply_overrides(load_preset("advanced"), [f"data.augment.jpeg_quality={value}"])
    at75 = apply_overrides(load_preset("advanced"), ["data.augment.jpeg_quality=[75,75]"])
    assert at75.data.augment.jpeg_quality == [75, 75]


def _every_key():
    from cifarlab.config import Config, flatten

    return [k for k in flatten(Config().to_dict()) if not k.startswith(("model", "name", "description"))]


@pytest.mark.parametrize("key", _every_key())
def test_null_wrong_type_and_section_are_one_config_error_for_every_key(key):
    from cifarlab.config import Config, apply_overrides, flatten, load_preset

    cfg = load_preset("baseline")
    default = flatten(Config().to_dict())[key]
    bad = [{"a": 1}, [[1, 2]]] if isinstance(default, list) else [[1, 2], {"a": 1}]
    if default is not None:
        bad.append(None)
    for value in bad:
        with pytest.raises(ConfigError) as e:
            apply_overrides(cfg, [f"{key}={yaml.safe_dump(value, default_flow_style=True).strip()}"])
        assert key in str(e.value) and "\n" not in str(e.value)
    section = key.split(".")[0]
    with pytest.raises(ConfigError, match=f"'{section}' must be a mapping"):
        apply_overrides(cfg, [f"{section}=3"])


def test_json_schema_accepts_every_preset_and_refuses_what_the_config_refuses(tmp_path):
    import json
    from pathlib import Path

    from jsonschema import Draft202012Validator

    from cifarlab.cli import main
    from cifarlab.config import PRESET_DIR, Config, flatten

    assert main(["schema", "--out", str(tmp_path / "s.json")]) == 0
    schema = json.loads((tmp_path / "s.json").read_text())
    Draft202012Validator.check_schema(schema)
    check = Draft202012Validator(schema)
    presets = [*PRESET_DIR.glob("*.yaml"), *Path(PRESET_DIR, "reference").glob("*.yaml")]
    assert len(presets) >= 5
    for path in presets:  # every shipped config, old key names of earlier versions included, is valid
        assert not list(check.iter_errors(yaml.safe_load(path.read_text()))), path
    assert check.is_valid({"train": {"precision": "fp32"}})  # a renamed key still works, as in from_dict
    # every setting of the dataclasses is in the schema, typed
    for key in flatten(Config().to_dict()):
        node = schema
        for part in key.split("."):
            node = node["properties"][part]
        assert node.get("type") or node.get("enum") or key == "model", key
    for bad in (
        {"optim": {"lrr": 0.1}},
        {"eval": {"tta": "flips"}},
        {"train": {"seed": None}},
        {"train": {"epochs": "ten"}},
        {"data": "augment"},
        {"model": {"stages": [{"block": "conv", "attenton": "se"}]}},
        {"model": {"stages": [{"block": "transformer"}]}},
        {"model": {"stem": {"type": "whiten", "act": "tanh"}}},
    ):
        assert not check.is_valid(bad), bad
    # the meaning and the range rule come from the one place they are written
    ema = schema["properties"]["train"]["properties"]["ema"]
    assert "moving average" in ema["description"] and "must be in [0, 1)" in ema["description"]
    stem = schema["properties"]["model"]["properties"]["stem"]["properties"]
    assert "positive integer" in stem["channels"]["description"]


def test_robust_until_needs_a_robust_share():
    from cifarlab.config import resolve

    with pytest.raises(ConfigError, match="robust_until.*both are 0"):
        resolve("advanced-clean", ["data.augment.robust_until=9"], None, 0, "cpu")
    with pytest.raises(ConfigError, match="robust_until"):
        resolve("advanced-clean", ["data.augment.corrupt=0.1", "data.augment.robust_until=-1"], None, 0, "cpu")
    assert resolve("advanced-clean", ["data.augment.corrupt=0.1", "data.augment.robust_until=9"], None, 0, "cpu")


def test_a_preset_starts_from_its_base_and_overrides_it(tmp_path):
    from cifarlab.config import load_preset

    (tmp_path / "parent.yaml").write_text("base: advanced\ntrain: {epochs: 3}\ndata: {augment: {corrupt: 0.1}}\n")
    (tmp_path / "sub").mkdir()
    child = tmp_path / "sub" / "child.yaml"
    child.write_text(
        "base: ../parent.yaml\ndata: {augment: {augmix: 0.5}}\n"
        "model: {stages: [{block: conv, channels: 32, pool: max}]}\n"
    )
    cfg, advanced = load_preset(str(child)), load_preset("advanced")
    assert cfg.name == "child" and cfg.train.epochs == 3  # the parent's key, over the grandparent's 11
    a = cfg.data.augment
    assert (a.corrupt, a.augmix, a.translate, a.flip) == (0.1, 0.5, 2, "alternate")  # mappings merge key by key
    assert len(cfg.model["stages"]) == 1 and cfg.model["stem"] == advanced.model["stem"]  # a list replaces
    assert cfg.optim == advanced.optim and cfg.eval == advanced.eval


@pytest.mark.parametrize(
    "text, error",
    [
        ("base: [advanced]\n", "'base' must be a preset name or a YAML path"),
        ("base: nosuchpreset\n", "unknown preset 'nosuchpreset'"),
        ("base: loop.yaml\n", "chain comes back to itself"),
        ("base: missing.yaml\n", "no config file at"),
    ],
)
def test_a_bad_base_is_one_config_error(tmp_path, text, error):
    from cifarlab.config import load_preset

    (tmp_path / "loop.yaml").write_text(text)
    with pytest.raises(ConfigError, match=error):
        load_preset(str(tmp_path / "loop.yaml"))


def test_the_advanced_preset_is_the_measured_robust_recipe_with_12_families_held_out():
    import json
    from pathlib import Path

    from cifarlab.config import load_preset, recipe_id
    from cifarlab.data.corruptions import FAMILIES, seen_families

    cfg, clean = load_preset("advanced"), load_preset("advanced-clean")
    # the recipes of the bench files that the README's and the presets' test figures come from
    results = Path(__file__).parents[1] / "results"
    bench = results / "checkpoint_rule/advanced.bench.json"
    assert recipe_id(cfg) == json.loads(bench.read_text())["recipe_id"]
    assert recipe_id(clean) == json.loads((results / "xeon/advanced.bench.json").read_text())["recipe_id"]
    assert len(FAMILIES) - len(seen_families(cfg.data.augment)) == 12
    # the stages are the clean recipe's, pooled with maxblur: a change to one is a change to both
    unpooled = [{k: v for k, v in s.items() if k != "pool"} for s in cfg.model["stages"]]
    assert unpooled == [{k: v for k, v in s.items() if k != "pool"} for s in clean.model["stages"]]
    assert [s["pool"] for s in cfg.model["stages"]] == ["maxblur"] * 3
    assert not seen_families(clean.data.augment)


def test_a_record_goes_by_the_preset_whose_recipe_it_ran():
    """A renamed preset keeps its recipe: records of the earlier `advanced` (the clean recipe) read as
    `advanced-clean`; a run of a recipe no preset has keeps its recorded name."""
    from cifarlab.config import is_earlier_recipe, preset_of, preset_recipes

    clean, robust = preset_recipes()["advanced-clean"], preset_recipes()["advanced"]
    assert preset_of("advanced", clean) == "advanced-clean"
    assert preset_of("advanced-robust", robust) == "advanced"
    assert preset_of("advanced", "0123456789") == "advanced" and preset_of("mine", None) == "mine"
    # a renamed preset's record of a recipe no preset has now is an earlier recipe of the preset it became
    assert preset_of("advanced-robust", "0123456789") == "advanced"
    assert is_earlier_recipe("advanced", "0123456789") and is_earlier_recipe("advanced", None)
    assert not is_earlier_recipe("advanced", robust) and not is_earlier_recipe("mine", None)


def test_recipe_changes_are_the_sets_that_make_a_recorded_recipe():
    from cifarlab.config import apply_overrides, load_preset, recipe, recipe_changes

    sets = ["model.stages.1.channels=128", "data.augment.corrupt_ops=[jpeg]", "eval.tta=none"]
    rec = recipe(apply_overrides(load_preset("advanced"), sets))
    assert recipe_changes("advanced", rec) == sorted(sets)
    assert (
        apply_overrides(load_preset("advanced"), recipe_changes("advanced", rec)).to_dict()
        == apply_overrides(load_preset("advanced"), sets).to_dict()
    )  # the changes, given back to --set, rebuild the recipe
    del rec["data"]["augment"]["robust_until"]  # a key added since, missing from older records at its neutral value
    assert recipe_changes("advanced", rec) == sorted(sets)
    del rec["train"]["checkpoint"]  # missing: the record served the split's pick, where the preset now serves the last
    assert recipe_changes("advanced", rec) == sorted([*sets, "train.checkpoint=best"])
    assert recipe_changes("advanced", recipe(load_preset("advanced"))) == []
