def test_every_ablation_variant_is_a_valid_config():
    from cifarlab.commands.ablation import VARIANTS, apply_variant, uses
    from cifarlab.config import load_preset
    from cifarlab.models import build_model

    base = load_preset("advanced")
    for name, (_, change) in VARIANTS.items():
        if change:  # each must change the advanced preset, and validly
            assert uses(base, change), name
            build_model(apply_variant(base, change).model)


def test_ablation_skips_what_the_preset_lacks():
    from cifarlab.commands.ablation import VARIANTS, apply_variant, uses
    from cifarlab.config import load_preset

    inter = load_preset("intermediate")  # attention (SE, CBAM, self-attention) but no BN, schedule, TTA...
    assert [n for n, (_, c) in VARIANTS.items() if n != "full" and uses(inter, c)] == ["no_attention"]
    stages = apply_variant(inter, VARIANTS["no_attention"][1]).model["stages"]
    assert all(s.get("attention", "none") == "none" and s["block"] != "self_attention" for s in stages)
    assert len(stages) == len(inter.model["stages"]) - 1


def test_no_augmentation_turns_off_every_augmentation():
    import dataclasses

    from cifarlab.commands.ablation import VARIANTS, apply_variant
    from cifarlab.config import AugmentConfig, apply_overrides, load_preset

    on = ["data.augment.brightness=0.2", "data.augment.contrast=0.2", "data.augment.resize_from=16",
          "data.augment.resize_until=2", "data.augment.corrupt=0.25", "data.augment.cutout=8",
          "data.augment.augmix=0.5", "data.augment.robust_until=1.5"]  # fmt: skip
    off = apply_variant(apply_overrides(load_preset("advanced"), on), VARIANTS["no_augmentation"][1]).data.augment
    # what a field's "off" is; the parameters of another augmentation (pad_mode, ...) need none
    is_off = {"translate": 0, "flip": "none", "cutout": 0, "brightness": 0, "contrast": 0, "resize_from": 0,
              "corrupt": 0, "augmix": 0, "robust_until": 0}  # fmt: skip
    parameters = {"pad_mode", "resize_until", "corrupt_ops", "jpeg_quality"}
    fields = {f.name for f in dataclasses.fields(AugmentConfig)}
    assert fields == set(is_off) | parameters, "a new augmentation: say here how no_augmentation turns it off"
    assert {k: getattr(off, k) for k in is_off} == is_off


SMALL = [
    "data.val_size=50", "data.batch_size=50", "data.eval_batch_size=100", "runtime.tensorboard=false",
    "model.stages.1.channels=32", "model.stages.2.channels=32", "runtime.precision=fp32",
]  # fmt: skip


def test_ablation_reuses_a_full_run_and_keeps_earlier_rows(tiny_data, tmp_path, capsys):
    """--full takes a finished run of the same config instead of retraining it; a later call for another
    variant adds its row to ablation.json and keeps the earlier ones."""
    import pytest

    from cifarlab import UserError
    from cifarlab.callbacks import default_callbacks
    from cifarlab.commands.ablation import ablate
    from cifarlab.config import resolve
    from cifarlab.rundir import read_ablation
    from cifarlab.train import train

    small = [*SMALL, f"data.dir={tiny_data}"]
    full_dir, summary = train(resolve("advanced", small, 1), tmp_path / "bench", None, default_callbacks(False, False))
    out = tmp_path / "ablation"
    ablate("advanced", small, 1, ["no_tta"], out, full=full_dir)
    ablate("advanced", small, 1, ["no_dropout"], out)
    rows = {r.variant: r for r in read_ablation(out / "ablation.json")}
    assert list(rows) == ["full", "no_dropout", "no_tta"]
    assert rows["full"].run_dir == str(full_dir) and rows["full"].test_acc == summary.test_acc
    assert rows["no_dropout"].run_dir.startswith(str(out)) and len(list(out.glob("*-advanced-*"))) == 1
    with pytest.raises(UserError, match="config differs"):
        ablate("advanced", [*small, "loss.label_smoothing=0.1"], 1, ["no_tta"], out, full=full_dir)
