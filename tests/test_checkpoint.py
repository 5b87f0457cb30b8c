import pytest
import torch

from cifarlab import checkpoint
from cifarlab.train import build_run, train


def test_checkpoint_round_trip(tiny_cfg, tmp_path):
    run_dir, summary = train(tiny_cfg("baseline"), tmp_path)
    model, cfg, ckpt = checkpoint.model_from_checkpoint(run_dir / "last.pt")
    run = build_run(cfg, tmp_path / "other")
    for k, v in run.model.state_dict().items():
        assert v.shape == model.state_dict()[k].shape
    assert ckpt["state"]["epoch"] == 2
    # the weights that come back score what the run reported for them (best.pt: the summary's test accuracy)
    from cifarlab.data import load_cifar10
    from cifarlab.inference import Normalized

    best, _, _ = checkpoint.model_from_checkpoint(run_dir / "best.pt")
    data = load_cifar10(cfg.data.dir)
    with torch.no_grad():
        pred = Normalized(best).eval()(data.test_x.float() / 255).argmax(-1)
    assert abs((pred == data.test_y).float().mean().item() - summary.test_acc) <= 1 / len(data.test_y)


def test_checkpoint_for_other_architecture(tiny_cfg, tmp_path):
    run_dir, _ = train(tiny_cfg("baseline", "train.epochs=1"), tmp_path)
    other = build_run(tiny_cfg("intermediate"), tmp_path / "x")
    with pytest.raises(checkpoint.CheckpointError, match="different architecture"):
        checkpoint.load_weights(other.model, checkpoint.load(run_dir)["model"], "that checkpoint")


class _Evil:
    def __reduce__(self):
        return (exec, ("open('/tmp/cifarlab-ckpt-pwned', 'w').write('x')",))


def test_checkpoint_that_runs_code_is_refused(tmp_path):
    from pathlib import Path

    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "config": {}, "x": _Evil()}, path)
    with pytest.raises(checkpoint.CheckpointError, match="refusing to load"):
        checkpoint.load(path)
    assert not Path("/tmp/cifarlab-ckpt-pwned").exists()


def test_a_file_that_is_no_checkpoint(tmp_path):
    (tmp_path / "config.yaml").write_text("model: {}\n")
    with pytest.raises(checkpoint.CheckpointError, match="is not a checkpoint: give a run directory"):
        checkpoint.load(tmp_path / "config.yaml")


def test_truncated_checkpoint(tiny_cfg, tmp_path):
    run_dir, _ = train(tiny_cfg("baseline", "train.epochs=1"), tmp_path)
    raw = (run_dir / "last.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(raw[: len(raw) // 3])
    with pytest.raises(checkpoint.CheckpointError, match="not a readable checkpoint"):
        checkpoint.load(tmp_path / "cut.pt")


def test_a_run_with_ema_is_served_with_the_weights_it_was_summarized_with(tiny_cfg, tmp_path):
    from cifarlab.commands.evaluate import evaluate_run

    run_dir, summary = train(tiny_cfg("baseline", "train.ema=0.5"), tmp_path)
    raw = checkpoint.load(run_dir / "best.pt")
    model, _, _ = checkpoint.model_from_checkpoint(run_dir)
    served = model.state_dict()
    assert all(torch.equal(served[k], v) for k, v in raw["ema"].items())
    assert any(not torch.equal(served[k], v) for k, v in raw["model"].items())  # the raw weights differ
    ev = evaluate_run(str(run_dir), robustness_n=0, write=False, figures=False, speed=False)
    assert ev.test_acc == pytest.approx(summary.test_acc) and ev.test_loss == pytest.approx(summary.test_loss, abs=1e-4)
