"""Watching training as it happens: terminal view, TensorBoard event files, curves.png, notebooks.

Each watcher is a callback of the Trainer: it reads only the events (cifarlab.events) it is handed.
"""

from __future__ import annotations

import dataclasses
import sys
import time

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from .config import flatten
from .events import EpochEnd, Interrupt, StepEnd, TrainEnd, TrainStart
from .io import atomic_write_bytes
from .metrics import confusion_matrix
from .plots import confusion_figure, curves_png, prediction_grid_figure
from .rundir import EpochRecord

SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], width: int = 24) -> str:
    """A tiny curve in block characters (the last `width` values)."""
    vals = [v for v in values if v is not None][-width:]
    if not vals:
        return ""
    lo, hi = min(vals), max(vals)
    span = hi - lo or 1.0
    return "".join(SPARK[min(len(SPARK) - 1, int((v - lo) / span * (len(SPARK) - 1) + 0.5))] for v in vals)


def _fmt(v, pct=False):
    if v is None:
        return "-"
    return f"{100 * v:.2f}%" if pct else f"{v:.4f}"


def _records(history: list[EpochRecord]) -> list[dict]:
    return [dataclasses.asdict(r) for r in history]


class TerminalView:
    """A live rich view (progress bar, recent epochs table, sparkline curves) on a terminal;
    one plain line per epoch otherwise (CI, log files), so logs stay readable."""

    def __init__(self, console=None, live: bool | None = None, recent: int = 6):
        self.console = console or Console()
        if not self.console.is_terminal:  # log files: long lines rather than wrapped ones
            self.console.width = 160
        self.live_mode = self.console.is_terminal if live is None else live
        self.recent = recent
        self.live = None
        self.history: list[EpochRecord] = []

    def on_train_start(self, ev: TrainStart):
        self.total_epochs, self.steps_per_epoch, self.history = ev.planned_epochs, ev.steps_per_epoch, ev.history
        passes = f" (batches in passes of {ev.micro_batch})" if ev.micro_batch else ""
        self.console.print(
            f"[bold]cifarlab[/] {ev.name}: {ev.n_params / 1e6:.2f}M params, "
            f"{ev.flops / 1e6:.0f} MFLOPs/img, {ev.n_train} train images, "
            f"{ev.steps_per_epoch} steps/epoch x {ev.epochs:g} epochs{passes}, "
            f"device {ev.device} {ev.dtype}, run dir {ev.run_dir}",
            highlight=False,
            soft_wrap=True,
        )
        if not self.live_mode:
            return
        self.progress = Progress(
            TextColumn("epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "loss {task.fields[loss]:.4f} acc {task.fields[acc]:.2%} "
                "lr {task.fields[lr]:.3g} {task.fields[speed]:.0f} img/s"
            ),
            TimeRemainingColumn(),
            console=self.console,
        )
        self.task = self.progress.add_task(
            "train", total=ev.steps_per_epoch, epoch=self._label(ev.epoch + 1), loss=0.0, acc=0.0, lr=0.0, speed=0.0
        )
        self.epoch_start = time.time()
        self.live = Live(self._render(), console=self.console, refresh_per_second=4, transient=False)
        self.live.start()

    def _label(self, epoch: int) -> str:
        return f"{epoch}/{self.total_epochs}"

    def on_step_end(self, ev: StepEnd):
        if not self.live:
            return
        speed = ev.seen / max(1e-9, time.time() - self.epoch_start)
        self.progress.update(
            self.task,
            completed=ev.step_in_epoch,
            epoch=self._label(ev.epoch + 1),
            loss=ev.loss,
            acc=ev.acc,
            lr=ev.lr,
            speed=speed,
        )
        self.live.update(self._render())

    def on_epoch_end(self, ev: EpochEnd):
        r, self.history = ev.record, ev.history
        if not self.live:
            self.console.print(
                f"epoch {r.epoch:>3}/{self.total_epochs}  train loss {r.train_loss:.4f} acc "
                f"{_fmt(r.train_acc, True)}  val loss {_fmt(r.val_loss)} acc {_fmt(r.val_acc, True)}  "
                f"lr {r.lr:.3g}  {r.img_per_s:.0f} img/s  {r.epoch_time:.1f}s",
                highlight=False,
                soft_wrap=True,
            )
            return
        if r.epoch < self.total_epochs:  # the bar starts the next epoch; after the last one it stays full
            self.progress.reset(
                self.task,
                total=self.steps_per_epoch,
                epoch=self._label(r.epoch + 1),
                loss=r.train_loss,
                acc=r.train_acc,
                lr=r.lr,
                speed=r.img_per_s,
            )
            self.epoch_start = time.time()
        self.live.update(self._render())

    def on_interrupt(self, ev: Interrupt):
        self._stop()
        self.console.print(
            f"[yellow]stopped by {ev.signal}[/]: checkpoint saved at step {ev.step}. "
            f"Resume with: cifarlab train --resume {ev.run_dir}",
            highlight=False,
            soft_wrap=True,
        )

    def on_train_end(self, ev: TrainEnd):
        self._stop()
        s = ev.summary
        took = f"wall {s.wall_time_s:.1f}s (train {s.train_time_s:.1f}s, {s.train_img_per_s:.0f} img/s)"
        if s.test_acc is None:  # a search trial: the test set stays unseen
            self.console.print(f"best val {_fmt(s.best_val_acc, True)}; {took}", highlight=False, soft_wrap=True)
            return
        tta = f" (TTA {s.tta})" if s.tta != "none" else ""
        self.console.print(
            f"[bold green]test accuracy {100 * s.test_acc:.2f}%{tta}[/], loss {s.test_loss:.4f}; best val "
            f"{_fmt(s.best_val_acc, True)}; {took}; summary: {ev.run_dir / 'summary.json'}",
            highlight=False, soft_wrap=True,
        )  # fmt: skip

    def _stop(self):
        if self.live:
            self.live.stop()
            self.live = None

    def _render(self):
        table = Table(box=None, pad_edge=False, header_style="bold")
        for col in ("epoch", "train loss", "train acc", "val loss", "val acc", "lr", "img/s", "time"):
            table.add_column(col, justify="right")
        for r in self.history[-self.recent :]:
            table.add_row(
                str(r.epoch),
                _fmt(r.train_loss),
                _fmt(r.train_acc, True),
                _fmt(r.val_loss),
                _fmt(r.val_acc, True),
                f"{r.lr:.3g}",
                f"{r.img_per_s:.0f}",
                f"{r.epoch_time:.1f}s",
            )
        parts = [table] if self.history else []
        if len(self.history) >= 2:
            parts.append(
                f"train loss {sparkline([r.train_loss for r in self.history])}   "
                f"val acc {sparkline([r.val_acc for r in self.history])}"
            )
        return Group(*parts, self.progress)


class TensorBoardLogger:
    """Scalars per step and per epoch, hyper-parameters with final metrics, and figures."""

    def __init__(self):
        self.writer = None
        self.last_logged = 0

    def on_train_start(self, ev: TrainStart):
        try:  # tensorboard is optional at run time: a broken install should not stop training
            from torch.utils.tensorboard import SummaryWriter  # noqa: PLC0415 (optional at run time)
        except ImportError:
            print("tensorboard is not importable: no event files will be written", file=sys.stderr)
            return
        self.writer = SummaryWriter(str(ev.run_dir / "tensorboard"))
        self.every = ev.log_every

    def on_step_end(self, ev: StepEnd):
        # every log_every steps of each epoch (the cadence the trainer reads losses back at on a GPU; a global
        # step count would drop most of them whenever an epoch's steps are not a multiple of log_every), and at
        # least every log_every steps where epochs are shorter than that
        if self.writer and (ev.step_in_epoch % self.every == 0 or ev.step - self.last_logged >= self.every):
            self.last_logged = ev.step
            # the loss and accuracy are the epoch's running means up to this step, and named so
            self.writer.add_scalar("step/epoch_mean_loss", ev.loss, ev.step)
            self.writer.add_scalar("step/epoch_mean_acc", ev.acc, ev.step)
            self.writer.add_scalar("step/lr", ev.lr, ev.step)

    def on_epoch_end(self, ev: EpochEnd):
        if not self.writer:
            return
        for key in ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "img_per_s", "epoch_time"):
            value = getattr(ev.record, key)
            if value is not None:
                self.writer.add_scalar(f"epoch/{key}", value, ev.record.epoch)
        self.writer.flush()

    def on_train_end(self, ev: TrainEnd):
        if not self.writer:
            return
        hparams = {
            k: (v if isinstance(v, (int, float, str, bool)) else str(v))
            for k, v in flatten(ev.config).items()
            if k != "model" and v is not None
        }
        hparams["model"] = str(ev.config["model"])[:500]
        s = ev.summary
        metrics = {"hparam/best_val_acc": s.best_val_acc or 0.0}
        if ev.test_logits is not None:
            metrics.update({"hparam/test_acc": s.test_acc, "hparam/test_loss": s.test_loss})
        self.writer.add_hparams(hparams, metrics, run_name=".")
        if ev.test_logits is None:
            self.writer.close()
            return
        n = len(ev.sample_images)
        pred = ev.test_logits[:n].argmax(-1).tolist()
        self.writer.add_figure(
            "test/sample_predictions",
            prediction_grid_figure(ev.sample_images, pred, ev.test_labels[:n].tolist(), ev.classes),
            0,
        )
        cm = confusion_matrix(ev.test_logits.argmax(-1), ev.test_labels, len(ev.classes)).tolist()
        self.writer.add_figure("test/confusion_matrix", confusion_figure(cm, ev.classes), 0)
        self.writer.close()

    def on_interrupt(self, ev: Interrupt):
        if self.writer:
            self.writer.flush()


class CurvesPlot:
    """Rewrites `curves.png` (loss, accuracy, lr) after every epoch: any image viewer shows it live.

    A redraw costs a fraction of a second of matplotlib: nothing beside a CPU epoch, but much of a GPU one,
    so epochs ending within `min_interval` seconds of the last redraw skip it; the final state is always
    drawn, at the end of training or on an interrupt.
    """

    def __init__(self, min_interval: float = 2.0):
        self.min_interval = min_interval
        self._drawn_at = float("-inf")
        self._stale = False

    def on_train_start(self, ev: TrainStart):
        self.path, self.title, self.history = ev.run_dir / "curves.png", ev.name, ev.history

    def on_epoch_end(self, ev: EpochEnd):
        self.history, self._stale = ev.history, True
        if time.perf_counter() - self._drawn_at >= self.min_interval:
            self._draw()

    def on_train_end(self, ev: TrainEnd):
        if self._stale:
            self._draw()

    def on_interrupt(self, ev: Interrupt):
        self.history = ev.history
        if self._stale:
            self._draw()

    def _draw(self):
        atomic_write_bytes(self.path, curves_png(_records(self.history), self.title))
        self._drawn_at, self._stale = time.perf_counter(), False


class NotebookPlot:
    """In Jupyter: redraws the learning curves in place after every epoch (as a PNG, whatever the backend)."""

    def on_train_start(self, ev: TrainStart):
        try:
            from IPython.display import display  # noqa: PLC0415 (only in a notebook, where IPython is)
        except ImportError:
            display = None
        self.title = ev.name
        self.handle = display(display_id=True) if display else None  # None outside a notebook's kernel
        if self.handle is None:
            print("NotebookPlot draws in Jupyter only; outside it, CurvesPlot() draws the same curves to curves.png")

    def on_epoch_end(self, ev: EpochEnd):
        if self.handle is None:
            return
        from IPython.display import Image  # noqa: PLC0415 (only in a notebook, where IPython is)

        self.handle.update(Image(data=curves_png(_records(ev.history), self.title)))


def default_callbacks(tensorboard: bool = True, quiet: bool = False, live: bool | None = None) -> list:
    cbs = [] if quiet else [TerminalView(live=live)]
    cbs.append(CurvesPlot())
    if tensorboard:
        cbs.append(TensorBoardLogger())
    return cbs
