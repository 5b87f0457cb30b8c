



def test_resolve_applies_the_cli_shorthands():
    from cifarlab.config import resolve

    cfg = resolve("baseline", ["optim.lr=0.5"], epochs=2.5, seed=7, device="cpu", fp32=True)
    assert (cfg.name, cfg.optim.lr, cfg.train.epochs, cfg.train.seed) == ("baseline", 0.5, 2.5, 7)
    assert (cfg.runtime.device, cfg.runtime.precision) == ("cpu", "fp32")
    assert resolve().name == "advanced" and resolve().runtime.precision == "auto"
