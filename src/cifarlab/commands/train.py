"""`cifarlab train`: a preset, or --resume of a run directory, on one process or under torchrun."""

from __future__ import annotations

from pathlib import Path

from ..callbacks import default_callbacks
from ..config import resolve
from ..errors import INTERRUPTED, ConfigError
from ..parallel import from_env
from ..train import build_run, resume_run


def train_command(
    preset=None,
    overrides=(),
    data=None,
    out="runs",
    epochs=None,
    seed=None,
    device=None,
    fp32=False,
    resume=None,
    tensorboard=True,
    quiet=False,
    live=None,
) -> int:
    """Train (or resume) and return the exit code; only rank 0 of a torchrun job watches and writes."""
    if resume and (preset or overrides or seed is not None or fp32 or device):
        raise ConfigError(
            "--resume continues a run with its own config: drop the preset and the --set, --seed, "
            "--fp32 and --device options"
        )
    cfg = None if resume else resolve(preset, overrides, epochs, seed, device, fp32)
    if cfg is not None and not tensorboard:
        cfg.runtime.tensorboard = False
    dist = from_env(cfg.runtime.device if cfg else "auto")
    main = dist is None or dist.rank == 0
    cbs = (
        default_callbacks(tensorboard=tensorboard and (cfg is None or cfg.runtime.tensorboard), quiet=quiet, live=live)
        if main
        else []
    )
    code = None
    try:
        code = _train_or_resume(cfg, resume, out, data, cbs, epochs, dist, main)
        return code
    finally:
        if dist is not None:
            dist.close(together=code is not None)  # after an error the ranks may be anywhere


def _train_or_resume(cfg, resume, out, data, cbs, epochs, dist, main: bool) -> int:
    if resume:
        trainer = resume_run(Path(resume), data, cbs, epochs=epochs, dist=dist)
        if trainer.done and trainer.summarized:
            # re-evaluating would only rewrite summary.json with a longer wall time
            if main:
                print(
                    f"{trainer.dir} has already trained {trainer.state.step / trainer.steps_per_epoch:.3g} "
                    "epochs (see its summary.json); pass --epochs with a larger number to train it further"
                )
            return 0
    else:
        trainer = build_run(cfg, out, data, cbs, dist=dist)
    trainer.fit()
    if trainer.stop_requested:
        return INTERRUPTED
    trainer.finish()
    return 0
