"""`cifarlab board`: TensorBoard on 127.0.0.1 for a folder of runs, stopped with us."""

from __future__ import annotations

import importlib.util
import signal
import subprocess
import sys
from pathlib import Path

from ..errors import ConfigError, UserError


def board(runs_dir: str, port: int) -> int:
    # run TensorBoard with this interpreter: its script may not be on PATH (venv not activated)
    if importlib.util.find_spec("tensorboard") is None:
        raise UserError("tensorboard is not installed in this environment: pip install tensorboard")
    if not 1 <= port <= 65535:
        raise ConfigError(f"--port must be 1..65535, got {port}")
    if not Path(runs_dir).is_dir():
        raise UserError(f"no folder {runs_dir}: train a run first or give the runs folder")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", runs_dir, "--host", "127.0.0.1", "--port", str(port)]
    )
    # a SIGTERM to `cifarlab board` must not orphan the server (it would keep the port): stop it with us
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        return proc.wait()
    except KeyboardInterrupt:
        return 130
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
