"""Data-parallel training with 2 gloo processes on 127.0.0.1 under torchrun."""

import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from cifarlab.data import Loader
from conftest import TINY


def test_shards_are_disjoint_and_cover_the_epoch():
    x = torch.zeros(103, 3, 32, 32, dtype=torch.uint8)
    y = torch.arange(103)
    shards = [Loader(x, y, 10, "cpu", shuffle=True, seed=5, shard=(r, 3)) for r in range(3)]
    seen = [torch.cat([b for _, b in ld.epoch(2)]) for ld in shards]
    assert all(len(s) == 103 // 3 for s in seen)
    union = torch.cat(seen)
    assert len(set(union.tolist())) == len(union)  # disjoint
    assert set(union.tolist()) <= set(range(103))
    assert not torch.equal(shards[0].order(0), shards[0].order(1))  # reshuffled every epoch


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(*args, timeout=300):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        "-m",
        "cifarlab",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.slow
def test_ddp_two_processes_train_and_resume(tiny_data, tmp_path):
    # micro-batches of 20 in each rank's batch of 50: gradients all-reduced once per step, after the last
    sets = [a for s in TINY + ["train.epochs=1", "runtime.micro_batch=20"] for a in ("--set", s)]
    r = _torchrun("train", "baseline", "--data", str(tiny_data), "--out", str(tmp_path), "--plain", *sets)
    assert r.returncode == 0, r.stderr[-3000:]
    runs = list(tmp_path.iterdir())
    assert len(runs) == 1  # rank 0 alone made the run directory and wrote the files
    run_dir = runs[0]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["world_size"] == 2
    m = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    # each of the 2 ranks ran 4 steps of 50 on its 225-image shard: the epoch metrics cover both shards
    assert m[0]["samples"] == 2 * (225 // 50) * 50
    assert r.stdout.count("epoch   1/1") == 1  # only rank 0 reports
    assert sorted(p.name for p in run_dir.glob("*.pt")) == ["best.pt", "last.pt"]
    r = _torchrun("train", "--resume", str(run_dir), "--epochs", "2", "--data", str(tiny_data), "--plain")
    assert r.returncode == 0, r.stderr[-3000:]
    m = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in m] == [1, 2]
    assert json.loads((run_dir / "summary.json").read_text())["epochs"] == 2


@pytest.mark.slow
def test_ddp_trains_across_the_bias_freeze_and_late_freezing(tiny_data, tmp_path):
    """Each freeze turns requires_grad off after DDP wrapped the net: the trainer wraps it again, or the next
    step dies ('Expected to have finished reduction in the prior iteration')."""
    from pathlib import Path

    import cifarlab.config as config

    for preset in ("advanced", str(Path(config.PRESET_DIR) / "reference" / "airbench94_muon.yaml")):
        # 225 images a rank in batches of 25: 9 steps an epoch, 18 in all; the whitening bias freezes after
        # step 4, the stem and first block after step 11: several steps follow each
        sets = [a for s in [*(t for t in TINY if "batch_size" not in t and "epochs" not in t), "data.batch_size=25",
                            "train.epochs=2", "model.stem.bias_epochs=0.5", "model.freeze.at=0.6",
                            "model.freeze.layers=1", "runtime.micro_batch=0"] for a in ("--set", s)]  # fmt: skip
        out = tmp_path / Path(preset).stem
        r = _torchrun("train", preset, "--data", str(tiny_data), "--out", str(out), "--plain", *sets)
        assert r.returncode == 0, r.stderr[-3000:]
        (run_dir,) = out.iterdir()
        m = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        assert [row["step"] for row in m] == [9, 18]


def test_a_gpu_index_under_torchrun_is_refused(monkeypatch):
    import pytest

    from cifarlab.errors import UserError
    from cifarlab.parallel import check_device_under_torchrun

    with pytest.raises(UserError, match="LOCAL_RANK"):
        check_device_under_torchrun("cuda:1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match="no CUDA GPU"):
        check_device_under_torchrun("cuda")
    check_device_under_torchrun("cpu")  # allowed


def _two_nodes(tmp_path, *args, timeout=150):
    """A 2-node torchrun job on 127.0.0.1, one process a node, each node in its own folder (two machines that
    share no file system): node 0's folder holds the run directory, node 1's must stay empty."""
    port, env = str(_free_port()), {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = []
    for rank in (1, 0):
        cwd = tmp_path / f"node{rank}"
        cwd.mkdir(exist_ok=True)
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node_rank", str(rank),
               "--nproc_per_node", "1", "--master_addr", "127.0.0.1", "--master_port", port,
               "-m", "cifarlab", *args]  # fmt: skip
        procs.append(subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        outs = [p.communicate(timeout=timeout) for p in procs]
    finally:  # a hung job (a rank waiting for one that died) must not outlive the test
        for p in procs:
            p.kill()
    return [p.returncode for p in procs], outs[1][0], outs[0][1] + outs[1][1]


@pytest.mark.slow
def test_two_machines_without_a_shared_file_system_train_and_resume(tiny_data, tmp_path):
    """Only rank 0's machine has the run directory: the others get its checkpoint to resume from and its test
    summary from it (they read no file of it; before, rank 1 died at the end: 'no checkpoint at runs/...')."""
    sets = [a for s in TINY + ["train.epochs=1"] for a in ("--set", s)]
    codes, out, err = _two_nodes(tmp_path, "train", "baseline", "--data", str(tiny_data), "--plain", *sets)
    assert codes == [0, 0], err[-3000:]
    (run_dir,) = (tmp_path / "node0" / "runs").iterdir()
    assert not any((tmp_path / "node1").iterdir())  # node 1 wrote nothing
    assert json.loads((run_dir / "summary.json").read_text())["world_size"] == 2
    resume = ["train", "--resume", f"runs/{run_dir.name}", "--data", str(tiny_data), "--plain"]
    codes, out, err = _two_nodes(tmp_path, *resume, "--epochs", "2")
    assert codes == [0, 0], err[-3000:]
    assert [json.loads(line)["epoch"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    codes, out, err = _two_nodes(tmp_path, *resume)  # finished: every rank learns it from rank 0
    assert codes == [0, 0] and "has already trained 2 epochs" in out, err[-3000:]
    assert not any((tmp_path / "node1").iterdir())


def test_only_train_runs_under_torchrun(monkeypatch, capsys):
    """Any other command under a multi-process torchrun would run once per process, writing the same files."""
    from cifarlab.cli import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["bench", "baseline", "--seeds", "1"]) == 1
    err = capsys.readouterr().err
    assert "`cifarlab bench` runs in one process, not under torchrun (2 processes)" in err and "Traceback" not in err
    monkeypatch.setenv("WORLD_SIZE", "1")  # torchrun --nproc_per_node 1: one process, every command as usual
    assert main(["presets"]) == 0


def test_a_torchrun_worker_leaves_without_the_interpreters_teardown():
    # gloo's threads could abort a worker in that teardown after its files were written (SIGABRT), failing the run
    code = (
        "import atexit; from cifarlab.parallel import exit_process; atexit.register(print, 'teardown'); exit_process(3)"
    )
    env = {k: v for k, v in os.environ.items() if k != "WORLD_SIZE"}
    worker = subprocess.run(
        [sys.executable, "-c", code], env={**env, "WORLD_SIZE": "2"}, capture_output=True, text=True
    )
    single = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert (worker.returncode, worker.stdout) == (3, "")
    assert (single.returncode, single.stdout) == (3, "teardown\n")
