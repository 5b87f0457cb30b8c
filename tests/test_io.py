"""Atomic writes and the JSON reader: nothing half-written, usual permissions, one-line errors."""

import os
import stat

import pytest

from cifarlab import UserError
from cifarlab.io import atomic_torch_save, atomic_write_text, read_json


class _FailsHalfway:
    """Pickling writes some bytes, then fails as a full disk would."""

    def __reduce__(self):
        raise OSError(28, "No space left on device")


def test_atomic_write_gives_usual_permissions_and_leaves_no_temp_on_failure(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    atomic_write_text(tmp_path / "a.json", "{}")
    # what open() would give (0644 under umask 022), not mkstemp's 0600: a shared run directory stays readable
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o666 & ~umask

    with pytest.raises(OSError):
        atomic_torch_save({"weights": list(range(1000)), "x": _FailsHalfway()}, tmp_path / "a.json")
    assert (tmp_path / "a.json").read_text() == "{}" and [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_read_json_names_the_file_and_what_to_do(tmp_path):
    (tmp_path / "s.json").write_text('{"a":')
    with pytest.raises(UserError, match=r"cannot read summary .*s.json \(JSONDecodeError.*; leave it out"):
        read_json(tmp_path / "s.json", "summary", "; leave it out")
    (tmp_path / "m.jsonl").write_text('{"a": 1}\n\n{"a": 2}\n')
    assert read_json(tmp_path / "m.jsonl", lines=True) == [{"a": 1}, {"a": 2}]
