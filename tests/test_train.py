import json
import math

import pytest
import torch

from cifarlab import UserError, checkpoint
from cifarlab.config import apply_overrides
from cifarlab.hardware import select_precision
from cifarlab.train import Run, TrainingError, lr_factor, train
from cifarlab.config import ScheduleConfig
from cifarlab.live import CurvesPlot


SMALL_ADVANCED = ("data.batch_size=100", "model.stages.1.channels=64", "model.stages.2.channels=64")


def _metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_one_step_lowers_loss(tiny_cfg, tmp_path):
    run = Run.create(tiny_cfg("baseline", "train.precision=fp32"), tmp_path)
    x, y = next(run.train_loader.epoch(0))
    import torch.nn.functional as F

    with torch.no_grad():
        before = F.cross_entropy(run.model(x), y).item()
    for _ in range(3):
        run._step(x, y)
    with torch.no_grad():
        after = F.cross_entropy(run.model(x), y).item()
    assert after < before


def test_micro_batches_accumulate_the_whole_batch_gradient(tiny_cfg, tmp_path):
    """Without BN a batch split into micro-batches takes the same optimizer step as the whole batch."""
    runs = [Run.create(tiny_cfg("intermediate", "train.precision=fp32", *extra), tmp_path / str(i))
            for i, extra in enumerate([[], ["train.micro_batch=16"]])]
    assert runs[0].micro_batch == 0 and runs[1].micro_batch == 16
    x, y = next(runs[0].train_loader.epoch(0))  # 50 images: micro-batches of 16, 16, 16, 2
    out = [run._step(x, y) for run in runs]
    assert torch.allclose(out[0][0], out[1][0], atol=1e-6) and out[0][1] == out[1][1]
    for p, q in zip(runs[0].model.parameters(), runs[1].model.parameters()):
        assert torch.allclose(p, q, atol=1e-5)


def test_micro_batches_keep_the_bn_statistics_horizon(tiny_cfg, tmp_path):
    import torch.nn as nn

    run = Run.create(tiny_cfg("advanced", "data.batch_size=100", "train.micro_batch=25", *SMALL_ADVANCED[1:]),
                     tmp_path)
    bns = [m for m in run.model.modules() if isinstance(m, nn.BatchNorm2d)]
    # 4 updates of momentum m per batch leave (1 - m)^4 of the old statistics: the preset's 0.6 per batch
    assert bns and all(math.isclose((1 - m.momentum) ** 4, 0.6) for m in bns)
    with pytest.raises(UserError, match="train.micro_batch"):
        tiny_cfg("advanced", "train.micro_batch=-1")


@pytest.mark.parametrize("precision,expected", [("fp32", 128), ("bf16", 0)])
def test_micro_batch_auto_only_for_fp32_on_cpu(tiny_cfg, tmp_path, precision, expected):
    cfg = tiny_cfg("advanced", "data.batch_size=300", f"train.precision={precision}", *SMALL_ADVANCED[1:])
    run = Run.create(cfg, tmp_path)
    assert run.micro_batch == expected
    x, y = next(run.train_loader.epoch(0))
    loss, correct = run._step(x, y)
    assert math.isfinite(loss.item()) and 0 <= correct <= len(y)


def test_run_directory_contents(tiny_cfg, tmp_path):
    run_dir, summary = train(tiny_cfg("baseline"), tmp_path, callbacks=[CurvesPlot()])
    assert {"config.yaml", "metrics.jsonl", "best.pt", "last.pt", "summary.json", "curves.png"} <= {
        p.name for p in run_dir.iterdir()}
    m = _metrics(run_dir)
    assert [r["epoch"] for r in m] == [1, 2]
    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "epoch_time", "img_per_s"):
        assert key in m[0]
    s = json.loads((run_dir / "summary.json").read_text())
    for key in ("test_acc", "test_loss", "best_val_acc", "wall_time_s", "train_time_s", "train_img_per_s", "params",
                "flops_per_image", "device", "dtype", "torch", "python", "seed", "preset"):
        assert key in s, key
    assert s == summary and 0 <= s["test_acc"] <= 1 and s["preset"] == "baseline"
    assert s["wall_time_s"] >= s["train_time_s"] > 0


def test_training_without_a_validation_split(tiny_cfg, tmp_path):
    run_dir, s = train(tiny_cfg("baseline", "data.val_size=0", "train.epochs=3"), tmp_path)
    m = _metrics(run_dir)
    assert all(r["val_acc"] is None for r in m) and s["n_val"] == 0 and s["n_train"] == 500
    # best.pt is then the last epoch's weights, and the summary says so.
    assert s["best_val_acc"] is None and s["best_epoch"] == 3
    assert s["time_to_val_acc"] == {"90": None, "93": None, "94": None}
    best, last = checkpoint.load(run_dir / "best.pt"), checkpoint.load(run_dir / "last.pt")
    assert all(torch.equal(best["model"][k], last["model"][k]) for k in last["model"])


def test_same_seed_same_metrics(tiny_cfg, tmp_path):
    cfg = tiny_cfg("advanced", "train.epochs=1", *SMALL_ADVANCED)
    _, a = train(cfg, tmp_path / "a")
    _, b = train(cfg, tmp_path / "b")
    assert a["test_acc"] == b["test_acc"] and a["test_loss"] == b["test_loss"]


def test_checkpoint_round_trip(tiny_cfg, tmp_path):
    run_dir, summary = train(tiny_cfg("baseline"), tmp_path)
    model, cfg, ckpt = checkpoint.model_from_checkpoint(run_dir / "last.pt")
    run = Run.create(cfg, tmp_path / "other")
    for k, v in run.model.state_dict().items():
        assert v.shape == model.state_dict()[k].shape
    assert ckpt["state"]["epoch"] == 2
    ckpt_io_model = checkpoint.load(run_dir / "last.pt")["model"]
    assert all(torch.equal(ckpt_io_model[k], v) for k, v in model.state_dict().items())


class StopAt:
    """Asks the run to stop (as SIGINT would) after a given optimizer step."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, run, **kw):
        if run.state.step == self.step:
            run.stop_requested = "test"


# mid-epoch and at an epoch boundary (4 steps per epoch); Muon (the preset) and SGD with lookahead's slow weights
@pytest.mark.parametrize("stop_step,extra", [(4, []), (9, []), (7, ["optim.name=sgd", "train.lookahead_every=3"])])
def test_resume_equals_uninterrupted(tiny_cfg, tmp_path, stop_step, extra):
    cfg = tiny_cfg("advanced", "train.epochs=3", *SMALL_ADVANCED, *extra)
    full_dir, full = train(cfg, tmp_path / "full")
    part_dir, summary = train(cfg, tmp_path / "part", callbacks=[StopAt(stop_step)])
    assert summary is None and checkpoint.load(part_dir / "last.pt")["state"]["step"] == stop_step
    run = Run.resume(part_dir)
    run.fit()
    resumed = run.finish()
    keys = ("train_loss", "train_acc", "val_loss", "val_acc", "lr")
    assert [[r[k] for k in keys] for r in _metrics(part_dir)] == [[r[k] for k in keys] for r in _metrics(full_dir)]
    assert resumed["test_acc"] == full["test_acc"] and resumed["test_loss"] == full["test_loss"]


def test_checkpoint_for_other_architecture(tiny_cfg, tmp_path):
    run_dir, _ = train(tiny_cfg("baseline", "train.epochs=1"), tmp_path)
    other = Run.create(tiny_cfg("intermediate"), tmp_path / "x")
    with pytest.raises(checkpoint.CheckpointError, match="different architecture"):
        checkpoint.load_weights(other.model, checkpoint.load(run_dir)["model"], "that checkpoint")


class _Evil:
    def __reduce__(self):
        return (exec, ("open('/tmp/cifarlab-ckpt-pwned', 'w').write('x')",))


def test_checkpoint_that_runs_code_is_refused(tmp_path):
    import pickle
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


def test_non_finite_loss_stops_with_message(tiny_cfg, tmp_path):
    cfg = tiny_cfg("baseline", "optim.lr=1e30", "train.precision=fp32", "train.epochs=3")
    with pytest.raises(TrainingError, match="loss became .* at step"):
        train(cfg, tmp_path)


@pytest.mark.parametrize("name,checks", [
    ("constant", [(0, 1.0), (99, 1.0)]),
    ("cosine", [(0, 1.0), (50, 0.5), (100, 0.0)]),
    ("linear", [(0, 1.0), (50, 0.5)]),
    ("step", [(0, 1.0), (10, 0.1), (25, 0.01)]),
    ("onecycle", [(0, 0.0), (25, 1.0), (100, 0.0)]),
])
def test_lr_schedules(name, checks):
    s = ScheduleConfig(name=name, step_epochs=1.0)
    for step, want in checks:
        assert math.isclose(lr_factor(step, 100, 10, s), want, abs_tol=1e-9), (name, step)
    warm = ScheduleConfig(name="cosine", warmup_epochs=1.0, start_factor=0.1)
    assert math.isclose(lr_factor(0, 100, 10, warm), 0.1) and math.isclose(lr_factor(10, 100, 10, warm), 1.0)


def test_precision_selection():
    cpu = torch.device("cpu")
    assert select_precision(cpu, "fp32") is None
    assert select_precision(cpu, "bf16") is torch.bfloat16
    with pytest.raises(UserError, match="fp16"):
        select_precision(cpu, "fp16")


def test_cuda_precision_choice_without_a_gpu(monkeypatch):
    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert select_precision(cuda) is torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert select_precision(cuda) is torch.float16  # older GPUs: fp16 autocast, with a GradScaler in Run


def test_cuda_index_beyond_the_gpus_is_refused(monkeypatch):
    from cifarlab.hardware import select_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert select_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(UserError, match="there are 2 GPUs: use cuda:0 .. cuda:1"):
        select_device("cuda:2")


def test_fp16_uses_grad_scaler_path(tiny_cfg, tmp_path):
    run = Run.create(tiny_cfg("baseline", "train.precision=fp32"), tmp_path)
    # the scaler code path runs on CPU too (GradScaler is a no-op there): exercise it with a real step
    run.scaler = torch.amp.GradScaler("cpu")
    x, y = next(run.train_loader.epoch(0))
    loss, correct = run._step(x, y)
    assert torch.isfinite(loss) and 0 <= int(correct) <= len(y)


def test_cpu_description_names_the_vector_unit(monkeypatch):
    from cifarlab import hardware

    flags = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx avx2 fma"
    assert hardware.cpu_vector_isa(flags) == "AVX2"
    assert hardware.cpu_vector_isa(flags + " avx512f avx512bw avx512_bf16") == "AVX-512 BF16"
    assert hardware.cpu_vector_isa(flags + " avx512f") == "AVX-512"
    assert hardware.cpu_vector_isa("flags : fpu sse2") == ""
    monkeypatch.setattr(hardware, "_cpuinfo", lambda: flags)
    desc = hardware.device_description(torch.device("cpu"))
    assert desc == f"cpu (AMD EPYC, {torch.get_num_threads()} threads, AVX2)"
    assert not hardware.cpu_has_native_bf16()


def test_freed_memory_is_reused_without_page_faults():
    """After keep_freed_memory, training steps whose activations are larger than glibc's largest mmap
    threshold (32 MiB) reuse the memory freed by the step before instead of having the kernel map and zero it
    anew: by default each of these steps faulted ~7 activations' worth of pages."""
    import resource

    import torch.nn as nn
    import torch.nn.functional as F

    from cifarlab.hardware import is_glibc, keep_freed_memory

    if not is_glibc():
        pytest.skip("the allocator setting is for glibc on Linux")
    assert keep_freed_memory(torch.device("cpu"))
    torch.manual_seed(0)
    conv = nn.Conv2d(16, 16, 3, padding=1)
    x = torch.randn(256, 16, 64, 64)  # 64 MiB, as is every activation below

    def step():
        conv.zero_grad(set_to_none=True)
        F.relu(conv(x)).sum().backward()

    for _ in range(5):  # the heap grows to the step's peak, then stays
        step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        step()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    pages = x.numel() * 4 // resource.getpagesize()
    assert faults < 2 * pages, f"{faults} page faults in 5 steps; one activation is {pages} pages"
