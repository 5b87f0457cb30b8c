import os

import pytest


def test_atomic_write_gives_usual_permissions_and_leaves_no_temp_on_failure(tmp_path):
    import stat

    from cifarlab.io import _atomic, atomic_write_text

    umask = os.umask(0)
    os.umask(umask)
    atomic_write_text(tmp_path / "a.json", "{}")
    # what open() would give (0644 under umask 022), not mkstemp's 0600: a shared run directory stays readable
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o666 & ~umask

    def failing_write(f):
        f.write(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        _atomic(tmp_path / "a.json", failing_write)
    assert (tmp_path / "a.json").read_text() == "{}" and [p.name for p in tmp_path.iterdir()] == ["a.json"]
