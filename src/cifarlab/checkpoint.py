"""Checkpoints: written atomically, read with `weights_only=True` so a file can never run code."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from .config import Config, from_dict
from .errors import CheckpointError
from .io import atomic_torch_save
from .models import build_model


def save(path: Path, model, config: Config, **state) -> None:
    model = getattr(model, "_orig_mod", model)  # a compiled model saves the plain module's keys
    try:
        atomic_torch_save({"model": model.state_dict(), "config": config.to_dict(), **state}, path)
    except OSError as e:  # disk full, permissions: the previous file is untouched (atomic write)
        raise CheckpointError(
            f"cannot write {path} ({e.strerror or e}); the previous checkpoint there is "
            "intact: free space or fix permissions, then resume with --resume"
        ) from None


def load(path: Path, map_location="cpu") -> dict:
    path = Path(path)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / name).exists():
                path = path / name
                break
        else:
            raise CheckpointError(f"{path} has no best.pt or last.pt: is it a run directory?")
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}")
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic not in (b"PK", b"\x80\x02"):  # torch.save writes a zip; old torch a protocol-2 pickle
        raise CheckpointError(f"{path} is not a checkpoint: give a run directory or its best.pt / last.pt")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        # torch's message is a paragraph; the line naming the refused global is the one that says why
        lines = [ln for ln in str(e).splitlines() if ln.strip()] or [type(e).__name__]
        why = next((ln for ln in lines if "GLOBAL" in ln or "global" in ln), lines[0])
        raise CheckpointError(f"refusing to load {path}: it holds more than weights ({why.strip()[:200]})") from None
    except Exception as e:  # truncated or not a checkpoint at all
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(e).__name__}: {str(e)[:200]})") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt or "config" not in ckpt:
        raise CheckpointError(f"{path} is not a cifarlab checkpoint (no model/config entries)")
    ckpt["path"] = str(path)
    return ckpt


def load_weights(model, state: dict, source: str = "checkpoint") -> None:
    """Load a state dict, explaining an architecture mismatch in one line."""
    model = getattr(model, "_orig_mod", model)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or unexpected or wrong:
        what = (
            f"shape of {wrong[0]} is {tuple(state[wrong[0]].shape)}, model has {tuple(own[wrong[0]].shape)}"
            if wrong
            else f"missing {missing[:3]}"
            if missing
            else f"unexpected {unexpected[:3]}"
        )
        raise CheckpointError(f"{source} is for a different architecture ({what}); use the config it was trained with")
    model.load_state_dict(state)


def config_of(ckpt: dict) -> Config:
    """The config a checkpoint was trained with (keys of earlier versions moved silently)."""
    return from_dict(ckpt["config"], note_renamed=False)


def served_weights(ckpt: dict) -> dict:
    """The weights a run is evaluated with: its EMA weights when it kept them (as its summary was), else the raw."""
    return ckpt["ema"] if ckpt.get("ema") is not None else ckpt["model"]


def checkpoint_step(ckpt: dict) -> int | None:
    """The training step a checkpoint's weights are of (None for a checkpoint without its trainer state)."""
    step = (ckpt.get("state") or {}).get("step")
    return int(step) if isinstance(step, int) else None


def model_from_checkpoint(path: Path, device="cpu") -> tuple[torch.nn.Module, Config, dict]:
    """The net a checkpoint serves (evaluate, predict, export): EMA weights where the run kept an EMA."""
    ckpt = load(path)
    cfg = config_of(ckpt)
    model = build_model(cfg.model)
    load_weights(model, served_weights(ckpt), ckpt["path"])
    return model.to(device).eval(), cfg, ckpt
