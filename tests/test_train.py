import json
import math

import pytest
import torch

from cifarlab import UserError, checkpoint
from cifarlab.callbacks import CurvesPlot
from cifarlab.errors import TrainingError
from cifarlab.rundir import summary_from_dict
from cifarlab.train import build_run, resume_run, train

SMALL_ADVANCED = ("data.batch_size=100", "model.stages.1.channels=64", "model.stages.2.channels=64")


def _metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_one_step_lowers_loss(tiny_cfg, tmp_path):
    run = build_run(tiny_cfg("baseline", "runtime.precision=fp32"), tmp_path)
    x, y = next(run.train_loader.epoch(0))
    import torch.nn.functional as F

    with torch.no_grad():
        before = F.cross_entropy(run.model(x), y).item()
    for _ in range(3):
        run.step(x, y)
    with torch.no_grad():
        after = F.cross_entropy(run.model(x), y).item()
    assert after < before


def test_micro_batches_accumulate_the_whole_batch_gradient(tiny_cfg, tmp_path):
    """Without BN a batch split into micro-batches takes the same optimizer step as the whole batch."""
    runs = [
        build_run(tiny_cfg("intermediate", "runtime.precision=fp32", *extra), tmp_path / str(i))
        for i, extra in enumerate([[], ["runtime.micro_batch=16"]])
    ]
    assert runs[0].micro_batch == 0 and runs[1].micro_batch == 16
    x, y = next(runs[0].train_loader.epoch(0))  # 50 images: micro-batches of 16, 16, 16, 2
    out = [run.step(x, y) for run in runs]
    assert torch.allclose(out[0][0], out[1][0], atol=1e-6) and out[0][1] == out[1][1]
    for p, q in zip(runs[0].model.parameters(), runs[1].model.parameters()):
        assert torch.allclose(p, q, atol=1e-5)


def test_micro_batches_keep_the_bn_statistics_horizon(tiny_cfg, tmp_path):
    import torch.nn as nn

    run = build_run(
        tiny_cfg("advanced", "data.batch_size=100", "runtime.micro_batch=25", *SMALL_ADVANCED[1:]), tmp_path
    )
    bns = [m for m in run.model.modules() if isinstance(m, nn.BatchNorm2d)]
    # 4 updates of momentum m per batch leave (1 - m)^4 of the old statistics: the preset's 0.6 per batch
    assert bns and all(math.isclose((1 - m.momentum) ** 4, 0.6) for m in bns)
    with pytest.raises(UserError, match="runtime.micro_batch"):
        tiny_cfg("advanced", "runtime.micro_batch=-1")


@pytest.mark.parametrize("precision,expected", [("fp32", 128), ("bf16", 0)])
def test_micro_batch_auto_only_for_fp32_on_cpu(tiny_cfg, tmp_path, precision, expected):
    # 130 images: one more than a pass of 128 in fp32 (128 + 2), one pass in bf16
    cfg = tiny_cfg("advanced", "data.batch_size=130", f"runtime.precision={precision}", *SMALL_ADVANCED[1:])
    run = build_run(cfg, tmp_path)
    assert run.micro_batch == expected
    x, y = next(run.train_loader.epoch(0))
    before = [p.detach().clone() for p in run.model.parameters() if p.requires_grad]
    loss, correct = run.step(x, y)
    assert math.isfinite(loss.item()) and 0 <= correct <= len(y)
    after = [p for p in run.model.parameters() if p.requires_grad]
    assert any(not torch.equal(a, b) for a, b in zip(after, before))  # the step updated the weights


def test_run_directory_contents(tiny_cfg, tmp_path):
    run_dir, summary = train(tiny_cfg("baseline"), tmp_path, callbacks=[CurvesPlot()])
    assert {"config.yaml", "metrics.jsonl", "best.pt", "last.pt", "summary.json", "curves.png"} <= {
        p.name for p in run_dir.iterdir()
    }
    m = _metrics(run_dir)
    assert [r["epoch"] for r in m] == [1, 2]
    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "epoch_time", "img_per_s"):
        assert key in m[0]
    s = json.loads((run_dir / "summary.json").read_text())
    for key in (
        "test_acc",
        "test_loss",
        "best_val_acc",
        "wall_time_s",
        "train_time_s",
        "train_img_per_s",
        "params",
        "flops_per_image",
        "device",
        "dtype",
        "torch",
        "python",
        "seed",
        "preset",
    ):
        assert key in s, key
    assert summary_from_dict(s) == summary and 0 <= s["test_acc"] <= 1 and s["preset"] == "baseline"
    assert s["wall_time_s"] >= s["train_time_s"] > 0


def test_training_without_a_validation_split(tiny_cfg, tmp_path):
    run_dir, s = train(tiny_cfg("baseline", "data.val_size=0", "train.epochs=3"), tmp_path)
    m = _metrics(run_dir)
    assert all(r["val_acc"] is None for r in m) and s.n_val == 0 and s.n_train == 500
    # best.pt is then the last epoch's weights, and the summary says so.
    assert s.best_val_acc is None and s.best_epoch == 3
    assert s.time_to_val_acc == {"90": None, "93": None, "94": None}
    best, last = checkpoint.load(run_dir / "best.pt"), checkpoint.load(run_dir / "last.pt")
    assert all(torch.equal(best["model"][k], last["model"][k]) for k in last["model"])


@pytest.mark.parametrize("keep, epoch", [("best", 1), ("last", 3)])
def test_checkpoint_key_picks_the_epoch_best_pt_holds(tiny_cfg, tmp_path, monkeypatch, keep, epoch):
    """Validation accuracy falling epoch by epoch: `best` keeps epoch 1 in best.pt, `last` the final weights; the
    summary's best_epoch, best_val_acc and test row are those of the epoch kept."""
    from cifarlab.train import Trainer

    val_accs, real = iter([0.5, 0.4, 0.3]), Trainer.evaluate

    def evaluate(self, loader, tta="none"):
        loss, acc, logits, y = real(self, loader, tta)
        return (loss, next(val_accs), logits, y) if loader is self.val_loader else (loss, acc, logits, y)

    monkeypatch.setattr(Trainer, "evaluate", evaluate)
    run_dir, s = train(tiny_cfg("baseline", "train.epochs=3", f"train.checkpoint={keep}"), tmp_path)
    assert s.best_epoch == epoch and s.best_val_acc == pytest.approx({1: 0.5, 3: 0.3}[epoch])
    best, last = checkpoint.load(run_dir / "best.pt"), checkpoint.load(run_dir / "last.pt")
    same = all(torch.equal(best["model"][k], last["model"][k]) for k in last["model"])
    assert same == (keep == "last") and best["state"]["epoch"] == epoch


def test_same_seed_same_metrics(tiny_cfg, tmp_path):
    cfg = tiny_cfg("advanced", "train.epochs=1", *SMALL_ADVANCED)
    _, a = train(cfg, tmp_path / "a")
    _, b = train(cfg, tmp_path / "b")
    assert a.test_acc == b.test_acc and a.test_loss == b.test_loss


class StopAt:
    """Asks the run to stop (as SIGINT would) after a given optimizer step."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, ev):
        if ev.step == self.step:
            ev.request_stop("test")


# mid-epoch and at an epoch boundary (4 steps per epoch); Muon (the preset) and SGD with lookahead's slow weights
@pytest.mark.parametrize("stop_step,extra", [(4, []), (9, []), (7, ["optim.name=sgd", "train.lookahead_every=3"])])
def test_resume_equals_uninterrupted(tiny_cfg, tmp_path, stop_step, extra):
    cfg = tiny_cfg("advanced", "train.epochs=3", *SMALL_ADVANCED, *extra)
    full_dir, full = train(cfg, tmp_path / "full")
    assert full is not None, "the uninterrupted run stopped early (a SIGINT/SIGTERM reached the test process?)"
    part_dir, summary = train(cfg, tmp_path / "part", callbacks=[StopAt(stop_step)])
    assert summary is None and checkpoint.load(part_dir / "last.pt")["state"]["step"] == stop_step
    run = resume_run(part_dir)
    run.fit()
    resumed = run.finish()
    keys = ("train_loss", "train_acc", "val_loss", "val_acc", "lr")
    assert [[r[k] for k in keys] for r in _metrics(part_dir)] == [[r[k] for k in keys] for r in _metrics(full_dir)]
    assert resumed.test_acc == full.test_acc and resumed.test_loss == full.test_loss


def test_non_finite_loss_stops_with_message(tiny_cfg, tmp_path):
    cfg = tiny_cfg("baseline", "optim.lr=1e30", "runtime.precision=fp32", "train.epochs=3")
    with pytest.raises(TrainingError, match="loss became .* at step"):
        train(cfg, tmp_path)


def test_fp16_uses_grad_scaler_path(tiny_cfg, tmp_path):
    run = build_run(tiny_cfg("baseline", "runtime.precision=fp32"), tmp_path)
    # the scaler code path runs on CPU too (GradScaler is a no-op there): exercise it with a real step
    run.scaler = torch.amp.GradScaler("cpu")
    x, y = next(run.train_loader.epoch(0))
    before = [p.detach().clone() for p in run.model.parameters()]
    loss, correct = run.step(x, y)
    assert torch.isfinite(loss) and 0 <= int(correct) <= len(y)
    assert any(not torch.equal(a, b) for a, b in zip(run.model.parameters(), before))  # the scaler stepped


def test_full_disk_keeps_previous_checkpoint(tiny_cfg, tmp_path, monkeypatch):
    run_dir, _ = train(tiny_cfg("baseline", "train.epochs=1"), tmp_path)
    before = (run_dir / "last.pt").read_bytes()
    run = resume_run(run_dir, epochs=2)

    def no_space(obj, f, *a, **k):
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", no_space)
    with pytest.raises(checkpoint.CheckpointError, match="No space left.*previous checkpoint there is intact"):
        run.fit()
    assert (run_dir / "last.pt").read_bytes() == before
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]


def test_hardest_picks_the_highest_losses_in_batch_order():
    from cifarlab.train import hardest

    losses = torch.tensor([0.1, 3.0, 0.5, 2.0, 0.2])
    assert hardest(losses, 0.4).tolist() == [1, 3]
    assert hardest(losses, 0.5).tolist() == [1, 2, 3]  # ceil(2.5) = 3
    assert hardest(losses, 1.0).tolist() == [0, 1, 2, 3, 4]


def test_hard_example_selection_trains_on_the_selected_share_only(tiny_cfg, tmp_path):
    """With train.select_fraction the step's gradient is the one of the highest-loss images alone, and the
    loss it reports is the whole batch's."""
    import torch.nn.functional as F

    from cifarlab.train import hardest

    cfgs = [tiny_cfg("baseline", "runtime.precision=fp32", *e) for e in ([], ["train.select_fraction=0.5"])]
    full, selective = (build_run(c, tmp_path / str(i)) for i, c in enumerate(cfgs))
    selective.model.load_state_dict(full.model.state_dict())
    x, y = next(full.train_loader.epoch(0))
    with torch.no_grad():
        losses = F.cross_entropy(full.model(x), y, reduction="none")
    hard = hardest(losses, 0.5)
    assert len(hard) == math.ceil(len(y) / 2)
    loss, correct = selective.step(x, y)
    assert torch.allclose(loss, losses.mean(), atol=1e-5)  # the whole batch's loss, for the logs
    full.step(x[hard], y[hard])  # a plain step on the selected images: the same update
    for p, q in zip(full.model.parameters(), selective.model.parameters()):
        assert torch.allclose(p, q, atol=1e-6)
