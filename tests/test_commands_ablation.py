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
