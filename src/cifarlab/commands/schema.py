"""`cifarlab schema`: the config's JSON Schema, for an editor to complete and check a preset as it is typed."""

from __future__ import annotations

import json
from pathlib import Path

from ..config import json_schema
from ..io import atomic_write_text


def schema(out: str | None = None) -> None:
    text = json.dumps(json_schema(), indent=2) + "\n"
    if out is None:
        print(text, end="")
        return
    atomic_write_text(Path(out), text)
    print(f"wrote {out}")
