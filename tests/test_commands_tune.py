"""`cifarlab tune` on the tiny data: a space over 3 keys, pruning, kill -9 and resume, two processes on one
study, bad spaces, and a real PostgreSQL server on 127.0.0.1 when one can be had."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from cifarlab.cli import main
from cifarlab.commands.tune import load_optuna, open_study, tune
from conftest import TINY

SPACE = """
optim.lr: {choice: [0.02, 0.05, 1.0e-7]}
model.stages.2.channels: {int: [32, 96], step: 32}
data.augment.flip: {choice: [none, random]}
"""
SETS = [*TINY, "train.epochs=3"]


@pytest.fixture
def space(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(SPACE)
    return path


def _trials(study):
    return study.get_trials(deepcopy=False)


def test_six_trials_and_the_bad_lr_is_pruned(space, tiny_data, tmp_path, capsys):
    out = tmp_path / "tune"
    study = open_study("s", None, out)
    for lr in (0.02, 0.05, 1.0e-7):  # two good trials first: the median pruner then has a reference
        study.enqueue_trial({"optim.lr": lr, "model.stages.2.channels": 64, "data.augment.flip": "none"})
    tune("baseline", str(space), 6, "s", None, overrides=SETS, data=str(tiny_data), out=str(out))
    trials = _trials(open_study("s", None, out, create=False))
    states = [t.state.name for t in trials]
    assert len(trials) == 6 and all(s in ("COMPLETE", "PRUNED") for s in states), states
    bad = trials[2]
    assert bad.params["optim.lr"] == 1.0e-7 and bad.state.name == "PRUNED"
    assert max(bad.intermediate_values) < 3  # stopped before its 3rd epoch
    # a trial that reached its last epoch completes: pruning it then would save nothing
    assert all(max(t.intermediate_values) < 3 for t in trials if t.state.name == "PRUNED")
    run_dir = Path(bad.user_attrs["run_dir"])
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "pruned" and summary["test_acc"] is None  # the test set is never looked at
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) < 3
    good = [t for t in trials if t.state.name == "COMPLETE"]
    assert good and all(
        t.value == json.loads((Path(t.user_attrs["run_dir"]) / "summary.json").read_text())["best_val_acc"]
        for t in good
    )  # the objective is the run's best validation accuracy
    out_text = capsys.readouterr().out
    assert "trial   2" in out_text and "pruned" in out_text and "best so far: trial" in out_text
    best = out / "s.best.yaml"
    assert best.exists() and main(["train", str(best), "--data", str(tiny_data), "--out", str(tmp_path / "b"),
                                   "--plain", "--epochs", "1"]) == 0  # fmt: skip
    assert main(["tune", "--show", "s", "--out", str(out)]) == 0
    board = capsys.readouterr().out
    assert "pruned" in board and "complete" in board and board.count("\n") >= 8
    # the report's study section: leaderboard and Optuna's figures; search trials are left out of the runs.
    # `report DIR --study S` finds S.db in DIR, where `tune --out DIR` wrote it (it looked in runs/tune only)
    assert main(["report", str(out), "--out", str(tmp_path / "rep"), "--study", "s"]) == 0
    html = (tmp_path / "rep" / "report.html").read_text()
    assert 'id="study-s"' in html and html.count("data:image/png;base64,") >= 2
    capsys.readouterr()
    assert main(["report", str(out), "--out", str(tmp_path / "rep2"), "--study", "t"]) == 1
    assert f"no study 't' in {out / 't.db'} or runs/tune/t.db" in capsys.readouterr().err
    assert not (out / "t.db").exists() and not (tmp_path / "rep2").exists()  # nothing left behind


def _tune_cmd(space, tiny_data, out, *extra):
    sets = [a for s in SETS for a in ("--set", s)]
    return [
        sys.executable,
        "-m",
        "cifarlab",
        "tune",
        "baseline",
        "--space",
        str(space),
        "--data",
        str(tiny_data),
        "--out",
        str(out),
        *sets,
        "--epochs",
        "1",
        *extra,
    ]  # fmt: skip  (the processes, not learning, under test)


def test_kill_9_mid_trial_then_the_same_command_finishes_the_study(space, tiny_data, tmp_path):
    out = tmp_path / "tune"
    cmd = _tune_cmd(space, tiny_data, out, "--trials", "4", "--study", "k")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:  # kill once the second trial has begun training
        if len(list((out / "runs").glob("*trial1*/metrics.jsonl"))) or len(list((out / "runs").glob("*trial1*"))):
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    trials = _trials(open_study("k", None, out, create=False))
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials) == 4
    assert any(t.state.name in ("RUNNING", "FAIL") for t in trials)  # the killed one, not counted


def test_two_processes_share_one_journal_study(space, tiny_data, tmp_path):
    out, journal = tmp_path / "tune", tmp_path / "shared.journal"
    cmd = _tune_cmd(space, tiny_data, out, "--trials", "4", "--study", "j", "--storage", str(journal))
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=900) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-1500:] for o in outs]
    trials = _trials(open_study("j", str(journal), out, create=False))
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers)) and sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials) >= 4
    assert all("trial " in o[0] for o in outs)  # each process ran trials of its own
    dirs = {t.user_attrs["run_dir"] for t in trials}
    assert len(dirs) == len(trials)


@pytest.mark.parametrize(
    "text,msg",
    [
        ("optim.lrr: {log_uniform: [0.001, 0.1]}", "unknown config key 'optim.lrr': did you mean optim.lr"),
        ("optim.lr: {choice: [fast, slow]}", "bad value for 'optim.lr'"),
        ("optim.name: {choice: []}", "choice needs a non-empty list"),
        ("optim.lr: {uniform: [0.1, 0.01]}", "low 0.1 is above high 0.01"),
        ("optim.lr: {log_uniform: [0, 0.1]}", "log_uniform needs low > 0"),
        ("model.stages.1.channels: {int: [16.5, 64]}", "int needs [low, high] as integers"),
        ("model.stages.9.channels: {choice: [16]}", "not an index"),
        ("optim.lr: 0.1", "give a range as a mapping"),
    ],
)
def test_a_bad_space_is_one_line_before_any_training(text, msg, tmp_path, tiny_data, capsys):
    out = tmp_path / "tune"
    study = open_study("keep", None, out)
    study.enqueue_trial({"optim.lr": 0.02})
    db = (out / "keep.db").read_bytes()
    (tmp_path / "bad.yaml").write_text(text + "\n")
    code = main(["tune", "baseline", "--space", str(tmp_path / "bad.yaml"), "--trials", "2", "--study", "keep",
                 "--out", str(out), "--data", str(tiny_data)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and msg in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert not (out / "runs").exists() and (out / "keep.db").read_bytes() == db  # nothing trained, study intact


def test_unreachable_storage_is_one_line(space, tiny_data, tmp_path, capsys):
    for storage in ("postgresql://nobody@127.0.0.1:9/none", "not-a-url"):
        code = main(["tune", "baseline", "--space", str(space), "--storage", storage, "--out", str(tmp_path),
                     "--data", str(tiny_data)])  # fmt: skip
        err = capsys.readouterr().err
        assert code == 2 and "storage" in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert main(["tune", "--show", "nosuch", "--out", str(tmp_path)]) == 1
    assert "no study 'nosuch'" in capsys.readouterr().err


def test_a_process_that_loses_the_race_to_create_the_tables_opens_them(monkeypatch):
    """Two `tune` processes started together on a new PostgreSQL database: one creates the tables, the other's
    CREATE TABLE fails (DuplicateTable, a ProgrammingError) and must open the tables the first one made."""
    import cifarlab.commands.tune as t

    class ProgrammingError(Exception):  # the name SQLAlchemy gives it, as the race raises it
        pass

    calls = []

    def storage(optuna, url):
        calls.append(url)
        if len(calls) == 1:
            raise ProgrammingError('(psycopg.errors.DuplicateTable) relation "studies" already exists')
        return "the storage"

    monkeypatch.setattr(t, "_storage", storage)
    monkeypatch.setattr(t.time, "sleep", lambda s: None)
    assert t._storage_created(None, "postgresql://x/y") == "the storage" and len(calls) == 2
    calls.clear()  # an unreachable server is not a race: no second try, its error goes up at once

    def unreachable(optuna, url):
        calls.append(url)
        raise ConnectionError("connection refused")

    monkeypatch.setattr(t, "_storage", unreachable)
    with pytest.raises(ConnectionError):
        t._storage_created(None, "postgresql://x/y")
    assert len(calls) == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres(tmp_path):
    """A PostgreSQL server of the Debian package on 127.0.0.1, in a temporary folder, stopped afterwards."""
    pytest.importorskip("psycopg", reason='no PostgreSQL driver (pip install "psycopg[binary]")')
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not bins:
        pytest.skip("no PostgreSQL server (apt-get install postgresql)")
    bindir = bins[-1].parent
    # a folder of its own in /tmp: pytest's tmp_path sits under a root-only folder the server user cannot enter
    root = Path(tempfile.mkdtemp(prefix="cifarlab-pg-"))
    data = root / "pg"
    data.mkdir()
    as_user = []
    if os.geteuid() == 0:  # the server refuses to run as root
        shutil.chown(root, "nobody")
        shutil.chown(data, "nobody")
        as_user = ["runuser", "-u", "nobody", "--"]
    port = _free_port()
    run = lambda *a: subprocess.run([*as_user, *a], capture_output=True, text=True, timeout=120)  # noqa: E731
    init = run(str(bindir / "initdb"), "-D", str(data), "-U", "tune", "--auth=trust")
    if init.returncode:
        pytest.skip(f"initdb failed here: {init.stderr.strip()[-300:]}")
    opts = f"-p {port} -k {data} -c listen_addresses=127.0.0.1"
    start = run(str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(data / "log"), "-w", "start")
    if start.returncode:
        pytest.skip(f"the PostgreSQL server did not start here: {start.stderr.strip()[-300:]}")
    try:
        created = run(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "tune", "study")
        assert created.returncode == 0, created.stderr
        yield f"postgresql://tune@127.0.0.1:{port}/study"
    finally:
        run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop")
        shutil.rmtree(root, ignore_errors=True)


def test_two_processes_share_a_postgresql_study(postgres, space, tiny_data, tmp_path):
    out = tmp_path / "tune"
    cmd = _tune_cmd(space, tiny_data, out, "--trials", "3", "--study", "pg", "--storage", postgres)
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=900) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-1500:] for o in outs]
    trials = load_optuna().load_study(study_name="pg", storage=postgres).get_trials()
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers)) and sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials) >= 3
