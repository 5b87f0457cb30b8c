import subprocess

import pytest


def test_board_serves_tensorboard_on_loopback(two_runs):
    import socket
    import sys
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "cifarlab", "board", str(two_runs[0].parent), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline, runs = time.time() + 90, ""
        while time.time() < deadline and "baseline" not in runs and proc.poll() is None:
            try:  # TensorBoard lists the runs it found once its first scan of the folder is done
                runs = urllib.request.urlopen(f"http://127.0.0.1:{port}/data/runs", timeout=2).read().decode()
            except OSError:
                pass
            time.sleep(0.5)
        assert "baseline" in runs, f"TensorBoard on 127.0.0.1:{port} did not list the runs (got {runs!r})"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    with pytest.raises(OSError):  # the TensorBoard server went down with `cifarlab board`, port released
        urllib.request.urlopen(f"http://127.0.0.1:{port}/data/runs", timeout=2)
