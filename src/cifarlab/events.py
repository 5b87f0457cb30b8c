"""What the training loop tells its callbacks: one record per event, holding all a callback may use.

A callback is any object with some of `on_train_start`, `on_step_end`, `on_epoch_end`, `on_train_end` and
`on_interrupt`, each taking the event below. A callback may end training early with `event.request_stop`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from .rundir import EpochRecord, Summary


@dataclass
class TrainStart:
    name: str
    run_dir: Path
    config: dict  # the run's whole config, as plain values
    n_params: int
    flops: int
    n_train: int
    steps_per_epoch: int
    epochs: float  # as configured (may be fractional)
    planned_epochs: int  # epoch records the run will have
    micro_batch: int  # images per pass, 0 = the whole batch
    device: str  # torch device type: cpu, cuda, mps
    dtype: str  # fp32, bf16 or fp16
    log_every: int
    epoch: int  # epochs already completed (a resumed run)
    history: list[EpochRecord]


@dataclass
class StepEnd:
    step: int  # optimizer steps taken in all
    step_in_epoch: int
    epoch: int  # epochs completed
    loss: float  # running mean over this epoch so far
    acc: float
    lr: float
    seen: int  # training images this epoch so far (this process)
    request_stop: Callable[[str], None]


@dataclass
class EpochEnd:
    record: EpochRecord
    history: list[EpochRecord]
    request_stop: Callable[[str], None]


@dataclass
class TrainEnd:
    run_dir: Path
    summary: Summary
    config: dict
    test_logits: torch.Tensor | None  # the best checkpoint's on the test set (run's TTA); None: not evaluated
    test_labels: torch.Tensor | None
    sample_images: torch.Tensor  # the first test images, normalized, for figures
    classes: tuple[str, ...]


@dataclass
class Interrupt:
    signal: str
    step: int
    run_dir: Path
    history: list[EpochRecord]
